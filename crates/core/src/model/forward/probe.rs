//! What a forward pass hands out ([`Probe`]) and what it lets a caller change
//! ([`KeyTransform`]): the per-head Q and K of `shared/METRICS.md`
//! ("Representations") and the surgery hook of its "Surgery" section.

use super::memory;
use crate::model::arch::Architecture;

/// Receives each layer's keys and queries, head by head, as a forward pass
/// computes them. Every slice is `[T, d_k]` row-major (row = position).
pub trait Probe {
    /// Kv-head `kv_head` of `layer`: `post_norm_pre_rope` is K after the key
    /// norm (when the model has one) and after any [`KeyTransform`], before
    /// RoPE — the K of METRICS.md; `raw_pre_norm` is the projection before the
    /// key norm; `post_rope` is what attention uses.
    fn keys(
        &mut self,
        layer: usize,
        kv_head: usize,
        post_norm_pre_rope: &[f32],
        raw_pre_norm: &[f32],
        post_rope: &[f32],
    );

    /// Query head `head` of `layer`, after the query norm, before RoPE.
    fn queries(&mut self, layer: usize, head: usize, post_norm_pre_rope: &[f32]);

    /// Whether the forward pass needs to call [`Probe::keys`] / [`Probe::queries`] at all.
    fn active(&self) -> bool {
        true
    }
}

/// A probe that records nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProbe;

impl Probe for NoProbe {
    fn keys(&mut self, _: usize, _: usize, _: &[f32], _: &[f32], _: &[f32]) {}
    fn queries(&mut self, _: usize, _: usize, _: &[f32]) {}
    fn active(&self) -> bool {
        false
    }
}

/// Edits the keys of every sequence: the surgery hook. Applied to K after the
/// key norm and before RoPE (where the reference's surgery edits the
/// `k_norm` output); queries are untouched.
pub trait KeyTransform {
    /// `keys` is `[T, d_k]` row-major for kv-head `kv_head` of `layer`.
    fn apply(&self, layer: usize, kv_head: usize, keys: &mut [f32]);
}

/// Stacks K and Q per head over the sequences of a batch, fed one sequence
/// at a time in batch order, so row `b·T + t` is position `t` of sequence `b`
/// (the `(B·T) × d_k` matrices of METRICS.md).
#[derive(Debug, Clone)]
pub struct KeyCollector {
    d_k: usize,
    keys: Stack,
    raw: Stack,
    post_rope: Stack,
    queries: Stack,
}

impl KeyCollector {
    /// An empty collector sized for `arch` and `rows` rows per head (B·T of the batch it will
    /// see: each kind of matrix is then one allocation, written once; more rows still fit,
    /// at the cost of a copy).
    pub fn new(arch: &Architecture, rows: usize) -> Self {
        let stack = |per_layer| Stack::new(arch.n_layers, per_layer, arch.d_k, rows);
        Self {
            d_k: arch.d_k,
            keys: stack(arch.n_kv_heads),
            raw: stack(arch.n_kv_heads),
            post_rope: stack(arch.n_kv_heads),
            queries: stack(arch.n_heads),
        }
    }

    /// Columns of every collected matrix.
    pub fn d_k(&self) -> usize {
        self.d_k
    }

    /// Rows collected so far (B·T after a whole batch).
    pub fn rows(&self) -> usize {
        self.keys.filled.first().copied().unwrap_or(0)
    }

    /// K of (`layer`, `kv_head`), after the key norm, before RoPE: `[rows, d_k]`.
    /// Empty when out of range.
    pub fn keys(&self, layer: usize, kv_head: usize) -> &[f32] {
        self.keys.get(layer, kv_head)
    }

    /// K before the key norm (METRICS.md variant `raw`).
    pub fn raw_keys(&self, layer: usize, kv_head: usize) -> &[f32] {
        self.raw.get(layer, kv_head)
    }

    /// K after RoPE (METRICS.md variant `post-RoPE`).
    pub fn post_rope_keys(&self, layer: usize, kv_head: usize) -> &[f32] {
        self.post_rope.get(layer, kv_head)
    }

    /// Q of query head `head`, after the query norm, before RoPE.
    pub fn queries(&self, layer: usize, head: usize) -> &[f32] {
        self.queries.get(layer, head)
    }
}

/// One kind of `[rows, d_k]` matrix for every (layer, head), in one buffer: slot `s` (layer ·
/// heads + head) holds its rows at `s · capacity · d_k`. One allocation rather than one per
/// head lets the buffer take huge pages ([`memory::zeroed`]: a full-size pass faulted in its
/// 112 MB of keys 4 KiB at a time).
#[derive(Debug, Clone)]
struct Stack {
    per_layer: usize,
    d_k: usize,
    /// Rows reserved per slot.
    capacity: usize,
    data: Vec<f32>,
    /// Rows written per slot.
    filled: Vec<usize>,
}

impl Stack {
    fn new(layers: usize, per_layer: usize, d_k: usize, capacity: usize) -> Self {
        let slots = layers * per_layer;
        Self {
            per_layer,
            d_k,
            capacity,
            data: memory::zeroed(slots * capacity * d_k),
            filled: vec![0; slots],
        }
    }

    fn slot(&self, layer: usize, head: usize) -> Option<usize> {
        let s = layer * self.per_layer + head;
        (head < self.per_layer && s < self.filled.len()).then_some(s)
    }

    fn get(&self, layer: usize, head: usize) -> &[f32] {
        self.slot(layer, head).map_or(&[], |s| {
            let at = s * self.capacity * self.d_k;
            &self.data[at..at + self.filled[s] * self.d_k]
        })
    }

    /// Appends `values` (whole rows) to (`layer`, `head`); out of range, nothing.
    fn push(&mut self, layer: usize, head: usize, values: &[f32]) {
        let Some(s) = self.slot(layer, head) else {
            return;
        };
        let rows = values.len() / self.d_k.max(1);
        if self.filled[s] + rows > self.capacity {
            self.grow((self.filled[s] + rows).max(2 * self.capacity));
        }
        let at = (s * self.capacity + self.filled[s]) * self.d_k;
        self.data[at..at + values.len()].copy_from_slice(values);
        self.filled[s] += rows;
    }

    /// Re-lays the slots out `capacity` rows apart, keeping what they hold.
    fn grow(&mut self, capacity: usize) {
        let mut data = memory::zeroed(self.filled.len() * capacity * self.d_k);
        for (s, &rows) in self.filled.iter().enumerate() {
            let (from, to, n) = (
                s * self.capacity * self.d_k,
                s * capacity * self.d_k,
                rows * self.d_k,
            );
            data[to..to + n].copy_from_slice(&self.data[from..from + n]);
        }
        self.data = data;
        self.capacity = capacity;
    }
}

impl Probe for KeyCollector {
    fn keys(
        &mut self,
        layer: usize,
        kv_head: usize,
        post_norm_pre_rope: &[f32],
        raw_pre_norm: &[f32],
        post_rope: &[f32],
    ) {
        self.keys.push(layer, kv_head, post_norm_pre_rope);
        self.raw.push(layer, kv_head, raw_pre_norm);
        self.post_rope.push(layer, kv_head, post_rope);
    }

    fn queries(&mut self, layer: usize, head: usize, post_norm_pre_rope: &[f32]) {
        self.queries.push(layer, head, post_norm_pre_rope);
    }
}

#[cfg(test)]
mod tests {
    use super::Stack;

    /// Rows pushed past the reserved capacity are kept, each slot's in the order pushed, and
    /// a slot out of range holds nothing.
    #[test]
    fn a_stack_keeps_every_row_past_its_capacity() {
        for capacity in [0, 1, 2, 6] {
            let mut stack = Stack::new(2, 3, 2, capacity);
            let mut expected = vec![Vec::new(); 6];
            // Three "sequences" of two rows, fed layer by layer, head by head, as a pass does.
            for b in 0..3 {
                for layer in 0..2 {
                    for head in 0..3 {
                        let base = (100 * b + 10 * layer + head) as f32;
                        let rows = [base, base + 0.5, -base, -base - 0.5];
                        stack.push(layer, head, &rows);
                        expected[layer * 3 + head].extend_from_slice(&rows);
                    }
                }
            }
            for layer in 0..2 {
                for head in 0..3 {
                    assert_eq!(
                        stack.get(layer, head),
                        &expected[layer * 3 + head][..],
                        "capacity {capacity}, layer {layer}, head {head}"
                    );
                }
            }
            stack.push(0, 3, &[1.0, 2.0]);
            stack.push(2, 0, &[1.0, 2.0]);
            assert!(stack.get(0, 3).is_empty() && stack.get(2, 0).is_empty());
        }
    }
}
