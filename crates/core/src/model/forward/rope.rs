//! Rotary position embedding: the `(cos, sin)` table of a sequence and the rotation.
//!
//! The inverse frequencies follow transformers' `ROPE_INIT_FUNCTIONS`
//! (`modeling_rope_utils.py`) for each [`RopeScaling`], in f32 in the order torch
//! evaluates them, so that the table matches the reference to the last bit or two:
//! θ_i = 1 / base^(2i/d_k), angle = position·θ_i in f32, cos/sin of that angle (times
//! YaRN's attention factor). Meta's `apply_scaling` (`use_scaled_rope`) is the llama3 rule.

use crate::model::arch::{Architecture, Rope, RopeScaling};

/// `(cos, sin)` per (position, frequency), `[t, d_k/2]` each.
pub(super) struct RopeTable {
    pub cos: Vec<f32>,
    pub sin: Vec<f32>,
    half: usize,
}

impl RopeTable {
    /// The table of `arch` for a sequence of `t` tokens (dynamic NTK scaling depends on `t`).
    pub fn of(arch: &Architecture, t: usize) -> Self {
        Self::new(t, arch.d_k, arch.rope_theta, arch.rope_scaling)
    }

    pub fn new(t: usize, d_k: usize, base: f64, scaling: RopeScaling) -> Self {
        let half = d_k / 2;
        let (inv_freq, attention_factor) = inverse_frequencies(d_k, base, scaling, t);
        let mut cos = Vec::with_capacity(t * half);
        let mut sin = Vec::with_capacity(t * half);
        for p in 0..t {
            for &th in &inv_freq {
                let angle = f64::from(p as f32 * th);
                // transformers: `emb.cos() * attention_scaling` (1.0 except for YaRN).
                cos.push(angle.cos() as f32 * attention_factor);
                sin.push(angle.sin() as f32 * attention_factor);
            }
        }
        Self { cos, sin, half }
    }

    /// Rotates every `d_k`-long row of `x` (row index = position) in place.
    pub fn apply(&self, x: &mut [f32], d_k: usize, style: Rope) {
        let half = self.half;
        for (p, row) in x.chunks_exact_mut(d_k).enumerate() {
            let cos = &self.cos[p * half..(p + 1) * half];
            let sin = &self.sin[p * half..(p + 1) * half];
            match style {
                // torchtune and Meta's complex view: pairs (x[2i], x[2i+1]).
                Rope::InterleavedPairs => {
                    for (i, pair) in row.chunks_exact_mut(2).enumerate() {
                        let (a, b) = (pair[0], pair[1]);
                        pair[0] = a * cos[i] - b * sin[i];
                        pair[1] = b * cos[i] + a * sin[i];
                    }
                }
                // Hugging Face rotate_half: pairs (x[i], x[i + d/2]).
                Rope::RotateHalf => {
                    let (lo, hi) = row.split_at_mut(half);
                    for i in 0..half {
                        let (a, b) = (lo[i], hi[i]);
                        lo[i] = a * cos[i] - b * sin[i];
                        hi[i] = b * cos[i] + a * sin[i];
                    }
                }
                Rope::None => {}
            }
        }
    }
}

/// The `d_k/2` inverse frequencies for a sequence of `t` tokens, and the factor cos/sin are
/// multiplied by. Each branch is the transformers function of the same name, step by step in f32.
fn inverse_frequencies(d_k: usize, base: f64, scaling: RopeScaling, t: usize) -> (Vec<f32>, f32) {
    let dim = d_k as f32;
    // `1.0 / (base ** (torch.arange(0, dim, 2).float() / dim))`
    let default = |base: f32| -> Vec<f32> {
        (0..d_k / 2)
            .map(|i| 1.0 / base.powf((2 * i) as f32 / dim))
            .collect()
    };
    match scaling {
        RopeScaling::None => (default(base as f32), 1.0),
        // `_compute_linear_scaling_rope_parameters`: `inv_freq /= factor`.
        RopeScaling::Linear { factor } => {
            let f = factor as f32;
            (default(base as f32).iter().map(|v| v / f).collect(), 1.0)
        }
        // `_compute_dynamic_ntk_parameters` with seq_len = max(t, max_position_embeddings),
        // as `dynamic_rope_update` calls it for a fresh model (its cache of a longer sequence
        // seen earlier is state rankscope does not keep). The tensor arithmetic is f32.
        RopeScaling::Dynamic {
            factor,
            max_positions,
        } => {
            let seq = t.max(max_positions) as f32;
            let f = factor as f32;
            let ratio = f * seq / max_positions as f32 - (factor - 1.0) as f32;
            let exponent = (d_k as f64 / (d_k as f64 - 2.0)) as f32;
            (default(base as f32 * ratio.powf(exponent)), 1.0)
        }
        // `_compute_llama3_parameters` (Meta's `apply_scaling`).
        RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_positions,
        } => {
            let old = original_max_positions as f32;
            let (low, f) = (low_freq_factor as f32, factor as f32);
            let low_wavelen = (original_max_positions as f64 / low_freq_factor) as f32;
            let high_wavelen = (original_max_positions as f64 / high_freq_factor) as f32;
            let span = (high_freq_factor - low_freq_factor) as f32;
            let two_pi = (2.0 * std::f64::consts::PI) as f32;
            let inv = default(base as f32)
                .into_iter()
                .map(|v| {
                    // torch's `scalar / tensor` is `tensor.reciprocal() * scalar`.
                    let wavelen = (1.0 / v) * two_pi;
                    let scaled = if wavelen > low_wavelen { v / f } else { v };
                    if wavelen < high_wavelen || wavelen > low_wavelen {
                        scaled
                    } else {
                        let smooth = ((1.0 / wavelen) * old - low) / span;
                        (1.0 - smooth) * scaled / f + smooth * scaled
                    }
                })
                .collect();
            (inv, 1.0)
        }
        // `_compute_yarn_parameters`.
        RopeScaling::Yarn {
            factor,
            original_max_positions,
            beta_fast,
            beta_slow,
            truncate,
            attention_factor,
        } => {
            let d = d_k as f64;
            let correction_dim = |rotations: f64| {
                d * (original_max_positions as f64 / (rotations * 2.0 * std::f64::consts::PI)).ln()
                    / (2.0 * base.ln())
            };
            let (mut low, mut high) = (correction_dim(beta_fast), correction_dim(beta_slow));
            if truncate {
                low = low.floor();
                high = high.ceil();
            }
            let low = low.max(0.0);
            let mut high = high.min(d - 1.0);
            if low == high {
                high += 0.001; // transformers: "prevent singularity"
            }
            let f = factor as f32;
            let b = base as f32;
            let inv = (0..d_k / 2)
                .map(|i| {
                    let pos_freq = b.powf((2 * i) as f32 / dim);
                    let extrapolation = 1.0 / pos_freq;
                    let interpolation = 1.0 / (f * pos_freq);
                    let ramp = ((i as f32 - low as f32) / (high - low) as f32).clamp(0.0, 1.0);
                    let keep = 1.0 - ramp;
                    interpolation * (1.0 - keep) + extrapolation * keep
                })
                .collect();
            (inv, attention_factor as f32)
        }
    }
}

/// RoPE's `(cos, sin)` for positions `0..t` of `arch`, `[t, d_k/2]` row-major each: exactly
/// the table the CPU forward pass rotates Q and K with (scaling and YaRN's factor included).
pub fn rope_cos_sin(arch: &Architecture, t: usize) -> (Vec<f32>, Vec<f32>) {
    let table = RopeTable::of(arch, t);
    (table.cos, table.sin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rope_styles_rotate_their_own_pairs() {
        let table = RopeTable::new(3, 4, 10_000.0, RopeScaling::None);
        let x0 = [1.0f32, 2.0, 3.0, 4.0];
        let mut a = [x0, x0, x0].concat();
        table.apply(&mut a, 4, Rope::InterleavedPairs);
        assert_eq!(&a[..4], &x0, "position 0 is the identity");
        let (c, s) = (1f32.cos(), 1f32.sin()); // position 1, θ_0 = 1
        assert!(
            (a[4] - (1.0 * c - 2.0 * s)).abs() < 1e-6 && (a[5] - (2.0 * c + 1.0 * s)).abs() < 1e-6
        );
        let mut b = [x0, x0, x0].concat();
        table.apply(&mut b, 4, Rope::RotateHalf);
        assert!(
            (b[4] - (1.0 * c - 3.0 * s)).abs() < 1e-6 && (b[6] - (3.0 * c + 1.0 * s)).abs() < 1e-6
        );
        // Rotations keep each pair's norm.
        for row in a.chunks(4).chain(b.chunks(4)) {
            let n: f32 = row.iter().map(|v| v * v).sum();
            assert!((n - 30.0).abs() < 1e-4);
        }
    }

    /// Dynamic NTK changes nothing up to `max_positions` tokens and raises the base past them.
    #[test]
    fn dynamic_scaling_starts_past_the_trained_length() {
        let dynamic = RopeScaling::Dynamic {
            factor: 2.0,
            max_positions: 8,
        };
        let plain = inverse_frequencies(16, 10_000.0, RopeScaling::None, 8).0;
        assert_eq!(inverse_frequencies(16, 10_000.0, dynamic, 8).0, plain);
        let long = inverse_frequencies(16, 10_000.0, dynamic, 16).0;
        assert_eq!(long[0], plain[0], "θ_0 = 1 for any base");
        assert!(long[1..].iter().zip(&plain[1..]).all(|(l, p)| l < p));
    }
}
