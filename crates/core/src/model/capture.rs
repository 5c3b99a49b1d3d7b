//! What a forward pass's probes gather per (layer, activation, head): the Gram matrices `XᵀX`
//! of each head's K and Q summed sequence by sequence ([`GramProbe`], [`HeadGram`]) and the
//! stacked blocks of chosen heads ([`BlockProbe`]). A [`crate::model::backend::ForwardBackend`]
//! hands them to the analysis (`analysis::gram_spectra` takes the spectra from them).

use std::collections::{HashMap, HashSet};

use super::arch::Architecture;
use super::forward::Probe;
use super::gram_kernel::add_gram;

/// Which activation of a layer a spectrum is taken of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Activation {
    /// K after the key norm, before RoPE (the default and the centred variant).
    Keys,
    /// K before the key norm.
    RawKeys,
    /// K after RoPE.
    RotatedKeys,
    /// Q after the query norm, before RoPE.
    Queries,
}

/// One head's Gram matrix `XᵀX` (`[d_k, d_k]` row-major, both triangles) and column sums, over
/// `rows` rows, in f64.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadGram {
    pub gram: Vec<f64>,
    pub sums: Vec<f64>,
    pub rows: usize,
}

impl HeadGram {
    pub fn zeros(d_k: usize) -> Self {
        Self {
            gram: vec![0.0; d_k * d_k],
            sums: vec![0.0; d_k],
            rows: 0,
        }
    }

    /// Adds a row-major `[rows, d_k]` f32 block: `G += XᵀX` in f64, sums += column sums
    /// ([`add_gram`]: each entry summed over the rows in order, so adding a block in pieces
    /// gives the Gram of the whole block, bit for bit).
    pub fn add_block(&mut self, block: &[f32], d_k: usize) {
        if d_k == 0 || block.is_empty() {
            return;
        }
        let rows = block.len() / d_k;
        add_gram(&mut self.gram, &mut self.sums, &block[..rows * d_k], d_k);
        self.rows += rows;
    }

    /// One Gram per sequence of a row-major `[rows, d_k]` block whose row `b·seq_len + t` is
    /// token t of sequence b (how [`crate::model::forward::KeyCollector`] stacks a batch).
    pub fn per_sequence(block: &[f32], seq_len: usize, d_k: usize) -> Vec<HeadGram> {
        if seq_len == 0 || d_k == 0 {
            return Vec::new();
        }
        block
            .chunks(seq_len * d_k)
            .map(|sequence| {
                let mut gram = HeadGram::zeros(d_k);
                gram.add_block(sequence, d_k);
                gram
            })
            .collect()
    }

    /// `Σ_i copies[i] · parts[i]`: the Gram of the rows of `parts[i]` stacked `copies[i]` times
    /// each, i.e. of a bootstrap resample that picked sequence i `copies[i]` times. Summing
    /// d_k × d_k Grams instead of multiplying the resample's `(n·T) × d_k` block costs a factor
    /// T less. `parts` must all be `d_k × d_k`; a part without copies is skipped.
    pub fn weighted_sum(parts: &[HeadGram], copies: &[usize], d_k: usize) -> HeadGram {
        let mut total = HeadGram::zeros(d_k);
        for (part, &n) in parts.iter().zip(copies) {
            if n == 0 {
                continue;
            }
            let w = n as f64;
            total
                .gram
                .iter_mut()
                .zip(&part.gram)
                .for_each(|(t, g)| *t += w * g);
            total
                .sums
                .iter_mut()
                .zip(&part.sums)
                .for_each(|(t, s)| *t += w * s);
            total.rows += n * part.rows;
        }
        total
    }
}

/// Sums, per layer, activation and head, the Gram of every block a forward pass hands it
/// (K after the key norm and Q always; raw and rotated K when asked).
#[derive(Debug, Clone)]
pub struct GramProbe {
    d_k: usize,
    grams: HashMap<(usize, Activation), Vec<HeadGram>>,
}

impl GramProbe {
    pub fn new(arch: &Architecture, activations: &[Activation]) -> Self {
        let mut grams = HashMap::new();
        for l in 0..arch.n_layers {
            for &activation in activations {
                let heads = if activation == Activation::Queries {
                    arch.n_heads
                } else {
                    arch.n_kv_heads
                };
                grams.insert((l, activation), vec![HeadGram::zeros(arch.d_k); heads]);
            }
        }
        Self {
            d_k: arch.d_k,
            grams,
        }
    }

    /// Puts `heads` (summed elsewhere, e.g. on a GPU and read back) as the Grams of
    /// `activation` in `layer`.
    pub fn set(&mut self, layer: usize, activation: Activation, heads: Vec<HeadGram>) {
        self.grams.insert((layer, activation), heads);
    }

    /// The per-head Grams of `activation` in `layer` (empty if not summed).
    pub fn grams(&self, layer: usize, activation: Activation) -> &[HeadGram] {
        self.grams
            .get(&(layer, activation))
            .map_or(&[], Vec::as_slice)
    }
}

impl PerActivation for GramProbe {
    fn add(&mut self, layer: usize, activation: Activation, head: usize, block: &[f32]) {
        if let Some(gram) = self
            .grams
            .get_mut(&(layer, activation))
            .and_then(|heads| heads.get_mut(head))
        {
            gram.add_block(block, self.d_k);
        }
    }
}

/// Stacks only the blocks in `needed` over the sequences of a batch (row `b·T + t`).
#[derive(Debug, Clone, Default)]
pub struct BlockProbe {
    pub blocks: HashMap<(usize, Activation, usize), Vec<f32>>,
}

impl BlockProbe {
    pub fn new(needed: &HashSet<(usize, Activation, usize)>) -> Self {
        Self {
            blocks: needed.iter().map(|&key| (key, Vec::new())).collect(),
        }
    }
}

impl PerActivation for BlockProbe {
    /// Appends one sequence's block of (layer, activation, head) when it is needed.
    fn add(&mut self, layer: usize, activation: Activation, head: usize, block: &[f32]) {
        if let Some(stacked) = self.blocks.get_mut(&(layer, activation, head)) {
            stacked.extend_from_slice(block);
        }
    }
}

/// A [`Probe`] that takes each block by (layer, activation, head): [`GramProbe`] and
/// [`BlockProbe`], and the GPU path handing its read-back blocks to a `BlockProbe`.
pub trait PerActivation {
    /// One sequence's `[T, d_k]` block of `head` of `activation` in `layer`.
    fn add(&mut self, layer: usize, activation: Activation, head: usize, block: &[f32]);
}

impl<P: PerActivation> Probe for P {
    fn keys(&mut self, layer: usize, kv_head: usize, keys: &[f32], raw: &[f32], rotated: &[f32]) {
        self.add(layer, Activation::Keys, kv_head, keys);
        self.add(layer, Activation::RawKeys, kv_head, raw);
        self.add(layer, Activation::RotatedKeys, kv_head, rotated);
    }

    fn queries(&mut self, layer: usize, head: usize, queries: &[f32]) {
        self.add(layer, Activation::Queries, head, queries);
    }
}
