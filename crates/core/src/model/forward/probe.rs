//! What a forward pass hands out ([`Probe`]) and what it lets a caller change
//! ([`KeyTransform`]): the per-head Q and K of `shared/METRICS.md`
//! ("Representations") and the surgery hook of its "Surgery" section.

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
    n_kv_heads: usize,
    n_heads: usize,
    d_k: usize,
    keys: Vec<Vec<f32>>,
    raw: Vec<Vec<f32>>,
    post_rope: Vec<Vec<f32>>,
    queries: Vec<Vec<f32>>,
}

impl KeyCollector {
    /// An empty collector sized for `arch`.
    pub fn new(arch: &Architecture) -> Self {
        let kv = arch.n_layers * arch.n_kv_heads;
        let q = arch.n_layers * arch.n_heads;
        Self {
            n_kv_heads: arch.n_kv_heads,
            n_heads: arch.n_heads,
            d_k: arch.d_k,
            keys: vec![Vec::new(); kv],
            raw: vec![Vec::new(); kv],
            post_rope: vec![Vec::new(); kv],
            queries: vec![Vec::new(); q],
        }
    }

    /// Columns of every collected matrix.
    pub fn d_k(&self) -> usize {
        self.d_k
    }

    /// Rows collected so far (B·T after a whole batch).
    pub fn rows(&self) -> usize {
        self.keys.first().map_or(0, |k| k.len() / self.d_k.max(1))
    }

    /// K of (`layer`, `kv_head`), after the key norm, before RoPE: `[rows, d_k]`.
    /// Empty when out of range.
    pub fn keys(&self, layer: usize, kv_head: usize) -> &[f32] {
        Self::get(&self.keys, self.n_kv_heads, layer, kv_head)
    }

    /// K before the key norm (METRICS.md variant `raw`).
    pub fn raw_keys(&self, layer: usize, kv_head: usize) -> &[f32] {
        Self::get(&self.raw, self.n_kv_heads, layer, kv_head)
    }

    /// K after RoPE (METRICS.md variant `post-RoPE`).
    pub fn post_rope_keys(&self, layer: usize, kv_head: usize) -> &[f32] {
        Self::get(&self.post_rope, self.n_kv_heads, layer, kv_head)
    }

    /// Q of query head `head`, after the query norm, before RoPE.
    pub fn queries(&self, layer: usize, head: usize) -> &[f32] {
        Self::get(&self.queries, self.n_heads, layer, head)
    }

    fn get(store: &[Vec<f32>], per_layer: usize, layer: usize, head: usize) -> &[f32] {
        if head >= per_layer {
            return &[];
        }
        store
            .get(layer * per_layer + head)
            .map_or(&[], Vec::as_slice)
    }

    fn slot(
        store: &mut [Vec<f32>],
        per_layer: usize,
        layer: usize,
        head: usize,
    ) -> Option<&mut Vec<f32>> {
        if head >= per_layer {
            return None;
        }
        store.get_mut(layer * per_layer + head)
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
        let n = self.n_kv_heads;
        for (store, data) in [
            (&mut self.keys, post_norm_pre_rope),
            (&mut self.raw, raw_pre_norm),
            (&mut self.post_rope, post_rope),
        ] {
            if let Some(v) = Self::slot(store, n, layer, kv_head) {
                v.extend_from_slice(data);
            }
        }
    }

    fn queries(&mut self, layer: usize, head: usize, post_norm_pre_rope: &[f32]) {
        if let Some(v) = Self::slot(&mut self.queries, self.n_heads, layer, head) {
            v.extend_from_slice(post_norm_pre_rope);
        }
    }
}
