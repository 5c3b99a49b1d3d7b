//! Activation spectra from per-head Gram matrices `XᵀX` (and column sums) summed sequence by
//! sequence, instead of from the `(B·T) × d_k` blocks themselves: what a batch too large to hold
//! needs (the CPU path past [`super::activations::BLOCK_BUDGET_BYTES`]) and what the GPU path
//! reads back (`rankscope-gpu` sums the Grams on the GPU). The eigen-solves, the trust test and
//! the metrics are [`head_spectrum_from_gram`]'s, the same for both.
//!
//! A Gram too ill conditioned to trust (κ > 1e4: collapsed heads) gives no spectrum; the caller
//! runs the batch again for just those heads' blocks ([`PendingSpectra::needed`],
//! [`BlockProbe`]) and [`PendingSpectra::fill`]s them with the block's SVD, as the block path does.

use std::collections::{HashMap, HashSet};

use super::results::{
    ActivationError, ActivationLayer, ActivationSpectra, KeyVariant, Progress, Stage, VariantHeads,
};
use super::spectrum::{
    check_shape, choose_route, first_non_finite, singular_values, singular_values_from_gram,
    singular_values_from_grams, singular_values_with, transpose_from_row_major_f32, weight_metrics,
    SpectrumError, SvdRoute,
};
use super::weights::HeadSpectrum;
use crate::model::arch::Architecture;
// What a forward pass gathers lives with the forward pass (model layer); re-exported here,
// where callers have always found it.
pub use crate::model::capture::{Activation, BlockProbe, GramProbe, HeadGram, PerActivation};
use nalgebra::DMatrix;

/// What the analysis asks of an [`Activation`]: which one a K variant is taken of.
impl Activation {
    /// The activation a K variant is taken of.
    pub fn of(variant: KeyVariant) -> Self {
        match variant {
            KeyVariant::PostNorm | KeyVariant::Centered => Activation::Keys,
            KeyVariant::PostRope => Activation::RotatedKeys,
            KeyVariant::Raw => Activation::RawKeys,
        }
    }

    /// The matrix's name in error messages ("K" or "Q").
    pub fn name(self) -> &'static str {
        if self == Activation::Queries {
            "Q"
        } else {
            "K"
        }
    }

    /// The activations `variants` need (Q always).
    pub fn needed_for(variants: &[KeyVariant]) -> Vec<Activation> {
        let mut needed: Vec<Activation> = variants.iter().map(|&v| Activation::of(v)).collect();
        needed.push(Activation::Queries);
        let mut seen = HashSet::new();
        needed.retain(|a| seen.insert(*a));
        needed
    }
}

/// How many spectra came from Gram matrices, and how many needed their blocks (a Gram not
/// trusted: κ > 1e4, as the Gram route of `singular_values` also refuses).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpectraRoutes {
    pub from_gram: usize,
    pub from_block: usize,
}

/// One group of a layer's spectra: every head of `activation`, centred or not.
#[derive(Debug, Clone)]
struct Group {
    activation: Activation,
    centre: bool,
    /// Per head; `None` until [`PendingSpectra::fill`] (a Gram not trusted).
    heads: Vec<Option<HeadSpectrum>>,
}

/// Activation spectra taken from Grams, some perhaps still waiting for their blocks.
#[derive(Debug, Clone)]
pub struct PendingSpectra {
    variants: Vec<KeyVariant>,
    /// Per layer, in output order: one group per variant (K), then Q, then Q centred when asked.
    layers: Vec<Vec<Group>>,
    d_k: usize,
    routes: SpectraRoutes,
}

impl PendingSpectra {
    /// Every spectrum `variants` (all four when empty) ask for, each from its Gram where
    /// [`head_spectrum_from_gram`] trusts it. `grams(layer, activation)` is that layer's per-head
    /// Grams (Q per query head, K per kv-head); `cancelled` is checked between layers.
    pub fn from_grams<'g>(
        arch: &Architecture,
        variants: &[KeyVariant],
        grams: &dyn Fn(usize, Activation) -> &'g [HeadGram],
        cancelled: &dyn Fn() -> bool,
    ) -> Result<Self, ActivationError> {
        let variants: Vec<KeyVariant> = if variants.is_empty() {
            KeyVariant::ALL.to_vec()
        } else {
            variants.to_vec()
        };
        let d_k = arch.d_k;
        let mut routes = SpectraRoutes::default();
        let mut group =
            |l: usize, activation: Activation, centre: bool| -> Result<Group, ActivationError> {
                let failed = |head| {
                    move |source| ActivationError::Spectrum {
                        matrix: activation.name(),
                        layer: l,
                        head,
                        source,
                    }
                };
                // The group's heads' eigenvalues found together (`singular_values_from_grams`).
                let to_decompose = grams(l, activation)
                    .iter()
                    .enumerate()
                    .map(|(h, g)| {
                        gram_to_decompose(&g.gram, &g.sums, g.rows, d_k, centre).map_err(failed(h))
                    })
                    .collect::<Result<Vec<_>, ActivationError>>()?;
                // (Its one error, a Gram not square, is ruled out by `gram_to_decompose`.)
                let heads = singular_values_from_grams(&to_decompose)
                    .map_err(failed(0))?
                    .into_iter()
                    .enumerate()
                    .map(|(h, singular_values)| {
                        let spectrum = singular_values
                            .map(with_metrics)
                            .transpose()
                            .map_err(failed(h))?;
                        match spectrum {
                            Some(_) => routes.from_gram += 1,
                            None => routes.from_block += 1,
                        }
                        Ok(spectrum)
                    })
                    .collect::<Result<Vec<_>, ActivationError>>()?;
                Ok(Group {
                    activation,
                    centre,
                    heads,
                })
            };
        let mut layers = Vec::with_capacity(arch.n_layers);
        for l in 0..arch.n_layers {
            if cancelled() {
                return Err(ActivationError::Cancelled);
            }
            let mut groups = Vec::with_capacity(variants.len() + 2);
            for &variant in &variants {
                groups.push(group(
                    l,
                    Activation::of(variant),
                    variant == KeyVariant::Centered,
                )?);
            }
            groups.push(group(l, Activation::Queries, false)?);
            if variants.contains(&KeyVariant::Centered) {
                groups.push(group(l, Activation::Queries, true)?);
            }
            layers.push(groups);
        }
        Ok(Self {
            variants,
            layers,
            d_k,
            routes,
        })
    }

    /// How the spectra were (and will be) taken.
    pub fn routes(&self) -> SpectraRoutes {
        self.routes
    }

    /// The (layer, activation, head) blocks still needed; empty when every Gram was trusted.
    pub fn needed(&self) -> HashSet<(usize, Activation, usize)> {
        let mut needed = HashSet::new();
        for (l, groups) in self.layers.iter().enumerate() {
            for group in groups {
                for (h, head) in group.heads.iter().enumerate() {
                    if head.is_none() {
                        needed.insert((l, group.activation, h));
                    }
                }
            }
        }
        needed
    }

    /// Takes every missing spectrum from its `[rows, d_k]` block in `blocks` (the CPU path's
    /// SVD, [`head_spectrum`]).
    pub fn fill(
        &mut self,
        blocks: &HashMap<(usize, Activation, usize), Vec<f32>>,
        rows: usize,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<(), ActivationError> {
        let d_k = self.d_k;
        for (l, groups) in self.layers.iter_mut().enumerate() {
            if cancelled() {
                return Err(ActivationError::Cancelled);
            }
            for group in groups {
                for (h, head) in group.heads.iter_mut().enumerate() {
                    if head.is_some() {
                        continue;
                    }
                    let block = blocks
                        .get(&(l, group.activation, h))
                        .map_or(&[][..], Vec::as_slice);
                    let spectrum =
                        head_spectrum(block, rows, d_k, group.centre).map_err(|source| {
                            ActivationError::Spectrum {
                                matrix: group.activation.name(),
                                layer: l,
                                head: h,
                                source,
                            }
                        })?;
                    *head = Some(spectrum);
                }
            }
        }
        Ok(())
    }

    /// The finished spectra of a `[batch, seq_len]` eval batch, reporting one
    /// [`Stage::Spectra`] step per layer. Every spectrum must be there (see [`PendingSpectra::fill`]).
    pub fn finish(
        self,
        arch: &Architecture,
        batch: usize,
        seq_len: usize,
        progress: &mut dyn FnMut(Progress),
    ) -> ActivationSpectra {
        let n_layers = self.layers.len();
        let mut layers = Vec::with_capacity(n_layers);
        for (l, groups) in self.layers.into_iter().enumerate() {
            let mut groups = groups.into_iter().map(|g| {
                g.heads
                    .into_iter()
                    .map(|h| h.expect("PendingSpectra::fill ran before finish"))
                    .collect::<Vec<_>>()
            });
            let k = self
                .variants
                .iter()
                .map(|&variant| VariantHeads {
                    variant,
                    heads: groups.next().expect("one group per variant"),
                })
                .collect();
            let q_heads = groups.next().expect("the Q group");
            let q_centered = groups.next();
            layers.push(ActivationLayer {
                layer: l,
                k,
                q_heads,
                q_centered,
            });
            progress(Progress {
                stage: Stage::Spectra,
                done: l + 1,
                total: n_layers,
            });
        }
        ActivationSpectra {
            d_k: arch.d_k,
            d_model: arch.d_model,
            eval_batch: batch,
            eval_seq_len: seq_len,
            layers,
            heldout_loss: None,
        }
    }
}

/// Singular values (f64) and metrics of a row-major `[rows, d_k]` f32 block,
/// its column means removed first when `centre`.
pub fn head_spectrum(
    data: &[f32],
    rows: usize,
    d_k: usize,
    centre: bool,
) -> Result<HeadSpectrum, SpectrumError> {
    if centre {
        // Centred first, then its spectrum: no cancellation in `G − s sᵀ/n` to trust.
        // Xᵀ, not X: the same singular values and the same Gram product, from a sequential
        // conversion (see `transpose_from_row_major_f32`).
        let x_t = transpose_from_row_major_f32(data, rows, d_k)?;
        let sums = column_sums(&x_t);
        return spectrum_of(&centred_rows(x_t, &sums));
    }
    let mut plain = head_spectra(data, rows, d_k, &[false])?;
    Ok(plain.remove(0))
}

/// [`head_spectrum`] of one block once per entry of `centres` (plain or centred, in the order
/// given), from one Gram product on the Gram route ([`HeadGram::add_block`], which widens the
/// f32 rows to f64 as it goes: the block is never copied whole): K and Q are each taken plain
/// and centred (METRICS.md). The plain spectrum is the one [`head_spectrum`] gives, bit for
/// bit; the centred one comes from `G − s sᵀ/n` where [`head_spectrum_from_gram`]'s trust test
/// (which counts the cancellation) allows, and from the centred block otherwise. Alone, a
/// centred spectrum is [`head_spectrum`]'s, of the centred block.
pub fn head_spectra(
    data: &[f32],
    rows: usize,
    d_k: usize,
    centres: &[bool],
) -> Result<Vec<HeadSpectrum>, SpectrumError> {
    blocks_spectra(&[(data, centres)], rows, d_k).remove(0)
}

/// [`head_spectra`] of several `rows × d_k` blocks, each with its own `centres`, the same
/// spectra bit for bit: each block's Gram is formed on its own, and then the eigenvalues of
/// every Gram at once ([`singular_values_from_grams`], whose iterations run interleaved: a
/// layer's 32 Grams of 64 × 64 at ~80 µs each where one at a time took ~135). Each block's
/// result is its own: an error in one spoils no other.
pub fn blocks_spectra(
    blocks: &[(&[f32], &[bool])],
    rows: usize,
    d_k: usize,
) -> Vec<Result<Vec<HeadSpectrum>, SpectrumError>> {
    // Each block's Gram and the matrices to decompose, or its spectra already (a route
    // without a Gram), or its error.
    let mut prepared: Vec<Result<Prepared, SpectrumError>> = blocks
        .iter()
        .map(|&(data, centres)| block_gram(data, rows, d_k, centres))
        .collect();
    let to_decompose: Vec<(DMatrix<f64>, f64)> = prepared
        .iter_mut()
        .flat_map(|prepared| match prepared {
            Ok(Prepared::Gram(block)) => std::mem::take(&mut block.to_decompose),
            _ => Vec::new(),
        })
        .collect();
    // Its one error (a Gram not square) cannot happen here; were it to, the blocks would take
    // their direct SVDs.
    let mut from_gram = singular_values_from_grams(&to_decompose)
        .unwrap_or_else(|_| vec![None; to_decompose.len()])
        .into_iter();
    blocks
        .iter()
        .zip(prepared)
        .map(|(&(data, centres), prepared)| match prepared {
            Err(e) => Err(e),
            Ok(Prepared::Done(spectra)) => Ok(spectra),
            Ok(Prepared::Gram(block)) => {
                let trusted: Vec<Option<Vec<f64>>> =
                    centres.iter().map(|_| from_gram.next().flatten()).collect();
                spectra_from_gram(data, rows, d_k, centres, &block.gram, trusted)
            }
        })
        .collect()
}

/// A block's Gram and, one per centre, the matrix whose eigenvalues give its spectrum with
/// the error scale of the trust test ([`gram_to_decompose`]).
struct GramOfBlock {
    gram: HeadGram,
    to_decompose: Vec<(DMatrix<f64>, f64)>,
}

/// What [`block_gram`] prepares of one block.
enum Prepared {
    /// Its Gram, to be decomposed with the others'.
    Gram(GramOfBlock),
    /// Its spectra, taken without a Gram.
    Done(Vec<HeadSpectrum>),
}

/// The Gram of one block of [`blocks_spectra`], checked finite; or the block's spectra when
/// they are not taken from a Gram (a centred spectrum alone, a block with fewer than twice
/// d_k rows).
fn block_gram(
    data: &[f32],
    rows: usize,
    d_k: usize,
    centres: &[bool],
) -> Result<Prepared, SpectrumError> {
    if centres == [true] {
        return Ok(Prepared::Done(vec![head_spectrum(data, rows, d_k, true)?]));
    }
    check_shape(data, rows, d_k)?;
    // The d_k × d_k Gram: a block with fewer rows than that takes the direct SVD.
    if rows < d_k || choose_route(rows, d_k) != SvdRoute::Gram {
        // (`transpose_from_row_major_f32` checks that the block is finite.)
        let x_t = transpose_from_row_major_f32(data, rows, d_k)?;
        let sums = column_sums(&x_t);
        return Ok(Prepared::Done(
            centres
                .iter()
                .map(|&centre| match centre {
                    true => spectrum_of(&centred_rows(x_t.clone(), &sums)),
                    false => spectrum_of(&x_t),
                })
                .collect::<Result<_, _>>()?,
        ));
    }
    let mut gram = HeadGram::zeros(d_k);
    gram.add_block(data, d_k);
    // The block is finite exactly when the Gram's diagonal is: `Σ x²` over a column is NaN or
    // +∞ once a value is NaN or ±∞, and squares of f32 values cannot overflow an f64 sum. So
    // the block is read again only to say where (a separate pass over every block had taken
    // ~10% of the full-size benchmark's spectra).
    if (0..d_k).any(|j| !gram.gram[j * d_k + j].is_finite()) {
        first_non_finite(data, d_k)?;
    }
    let to_decompose = centres
        .iter()
        .map(|&centre| gram_to_decompose(&gram.gram, &gram.sums, rows, d_k, centre))
        .collect::<Result<_, _>>()?;
    Ok(Prepared::Gram(GramOfBlock { gram, to_decompose }))
}

/// One block's spectra from its Gram's singular values where they are `trusted` (one per
/// centre, `None` where not), and from the block itself elsewhere.
fn spectra_from_gram(
    data: &[f32],
    rows: usize,
    d_k: usize,
    centres: &[bool],
    gram: &HeadGram,
    trusted: Vec<Option<Vec<f64>>>,
) -> Result<Vec<HeadSpectrum>, SpectrumError> {
    // Xᵀ in f64, made only for a Gram that is not trusted.
    let mut x_t = None;
    centres
        .iter()
        .zip(trusted)
        .map(|(&centre, singular_values)| {
            if let Some(singular_values) = singular_values {
                return with_metrics(singular_values);
            }
            let x_t = match &mut x_t {
                Some(x_t) => x_t,
                None => x_t.insert(transpose_from_row_major_f32(data, rows, d_k)?),
            };
            if centre {
                // The sums are `column_sums(x_t)`'s: the same f64 additions in the same order.
                spectrum_of(&centred_rows(x_t.clone(), &gram.sums))
            } else {
                // Not trusted plain: `singular_values` would take the direct SVD too.
                with_metrics(singular_values_with(x_t, SvdRoute::Direct)?)
            }
        })
        .collect()
}

/// The singular values (by [`singular_values`]' route) and metrics of `x_t`.
fn spectrum_of(x_t: &DMatrix<f64>) -> Result<HeadSpectrum, SpectrumError> {
    with_metrics(singular_values(x_t)?)
}

/// A head's spectrum: its singular values and their metrics.
fn with_metrics(singular_values: Vec<f64>) -> Result<HeadSpectrum, SpectrumError> {
    let metrics = weight_metrics(&singular_values)?;
    Ok(HeadSpectrum {
        singular_values,
        metrics,
    })
}

/// [`head_spectrum`] from the block's Gram matrix `XᵀX` (`[d_k, d_k]` row-major) and column
/// sums over `rows` rows instead of the block itself — what the GPU path sums on the GPU. Centred,
/// the Gram is `XᵀX − s sᵀ/rows`, and the trust test counts the cancellation that can cost
/// (its error scale is the uncentred trace). `Ok(None)` when the Gram cannot be trusted (see
/// [`singular_values_from_gram`]): then [`head_spectrum`] of the block gives the answer.
pub fn head_spectrum_from_gram(
    gram: &[f64],
    sums: &[f64],
    rows: usize,
    d_k: usize,
    centre: bool,
) -> Result<Option<HeadSpectrum>, SpectrumError> {
    let (g, error_scale) = gram_to_decompose(gram, sums, rows, d_k, centre)?;
    singular_values_from_gram(g, error_scale)?
        .map(with_metrics)
        .transpose()
}

/// The matrix [`head_spectrum_from_gram`] takes the eigenvalues of — the Gram, or centred
/// `XᵀX − s sᵀ/rows` — and the error scale its trust test counts.
fn gram_to_decompose(
    gram: &[f64],
    sums: &[f64],
    rows: usize,
    d_k: usize,
    centre: bool,
) -> Result<(DMatrix<f64>, f64), SpectrumError> {
    if d_k == 0 || rows == 0 {
        return Err(SpectrumError::EmptyMatrix);
    }
    let expected = d_k * d_k;
    if gram.len() != expected || sums.len() != d_k {
        return Err(SpectrumError::ShapeMismatch {
            len: gram.len(),
            rows: d_k,
            cols: d_k,
            expected,
        });
    }
    let mut g = DMatrix::from_row_slice(d_k, d_k, gram);
    let error_scale = if centre {
        let trace = g.trace();
        let n = rows as f64;
        g -= DMatrix::from_fn(d_k, d_k, |i, j| sums[i] * sums[j] / n);
        trace
    } else {
        0.0
    };
    Ok((g, error_scale))
}

/// X's column sums (the row sums of `x_t`), in f64, summed in X's row order as a column-wise
/// centring of X sums them. On the column-major slice (one column of Xᵀ = one row of X,
/// contiguous): nalgebra's column views iterate through strides and do not vectorise.
fn column_sums(x_t: &DMatrix<f64>) -> Vec<f64> {
    let d = x_t.nrows();
    let mut sums = vec![0.0f64; d];
    for row in x_t.as_slice().chunks_exact(d) {
        sums.iter_mut().zip(row).for_each(|(s, v)| *s += v);
    }
    sums
}

/// Xᵀ with X's columns centred (each row of Xᵀ less its mean), given X's `column_sums`.
fn centred_rows(mut x_t: DMatrix<f64>, sums: &[f64]) -> DMatrix<f64> {
    let (d, n) = x_t.shape();
    let means: Vec<f64> = sums.iter().map(|s| s / n as f64).collect();
    for row in x_t.as_mut_slice().chunks_exact_mut(d) {
        row.iter_mut().zip(&means).for_each(|(v, m)| *v -= m);
    }
    x_t
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocks taken together get the spectra each gets alone, bit for bit, whatever route
    /// each takes; a block with a NaN gets its error and spoils none of the others.
    #[test]
    fn blocks_taken_together_are_each_taken_alone() {
        let d = 16;
        let block = |rows: usize, seed: usize| -> Vec<f32> {
            (0..rows * d)
                .map(|i| (((i + seed) * 37 % 23) as f32 - 11.0) * 0.1 + (i % d) as f32 * 0.05)
                .collect()
        };
        let rows = 200;
        let (a, b, c) = (block(rows, 1), block(rows, 2), block(rows, 3));
        let mut bad = block(rows, 4);
        bad[5 * d + 3] = f32::NAN;
        let cases: [(&[f32], &[bool]); 5] = [
            (&a, &[false, true]),
            (&b, &[false]),
            (&bad, &[false, true]),
            (&c, &[true]),
            (&a, &[true, false]),
        ];
        let together = blocks_spectra(&cases, rows, d);
        assert_eq!(together.len(), cases.len());
        for (i, (&(data, centres), got)) in cases.iter().zip(&together).enumerate() {
            let alone = blocks_spectra(&[(data, centres)], rows, d).remove(0);
            assert_eq!(got, &alone, "block {i}");
        }
        assert_eq!(
            together[2],
            Err(SpectrumError::NonFinite { row: 5, col: 3 })
        );
        assert!(together.iter().filter(|r| r.is_ok()).count() == 4);
        // Fewer than 2·d rows take the direct route, one block at a time.
        let short = block(20, 5);
        let mixed = blocks_spectra(&[(&short, &[false, true]), (&a[..20 * d], &[false])], 20, d);
        assert_eq!(mixed[0], head_spectra(&short, 20, d, &[false, true]));
    }

    #[test]
    fn a_non_finite_value_is_found_where_it_is_on_every_route() {
        // 300 × 16 takes the Gram route (finiteness read off the Gram's diagonal), 20 × 16
        // the direct one; the largest f32 values are finite and pass.
        for rows in [300, 20] {
            let (d, at) = (16, (rows - 3) * 16 + 7);
            let block: Vec<f32> = (0..rows * d)
                .map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.1)
                .collect();
            for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                let mut with_bad = block.clone();
                with_bad[at] = bad;
                for centres in [&[false][..], &[false, true], &[true]] {
                    assert_eq!(
                        head_spectra(&with_bad, rows, d, centres).err(),
                        Some(SpectrumError::NonFinite {
                            row: rows - 3,
                            col: 7
                        }),
                        "{rows} rows, {bad}, {centres:?}"
                    );
                }
            }
            let mut huge = block.clone();
            huge.iter_mut().step_by(5).for_each(|v| *v = f32::MAX);
            assert!(
                head_spectra(&huge, rows, d, &[false, true]).is_ok(),
                "{rows} rows"
            );
        }
    }

    #[test]
    fn blocks_added_one_by_one_make_the_stacked_gram() {
        let d = 3;
        let a: Vec<f32> = (0..12).map(|i| (i * 7 % 5) as f32 - 2.0).collect(); // 4 rows
        let b: Vec<f32> = (0..6).map(|i| i as f32 * 0.5).collect(); // 2 rows
        let mut one_by_one = HeadGram::zeros(d);
        one_by_one.add_block(&a, d);
        one_by_one.add_block(&b, d);
        let stacked: Vec<f32> = a.iter().chain(&b).copied().collect();
        let mut want = HeadGram::zeros(d);
        for row in stacked.chunks(d) {
            for i in 0..d {
                want.sums[i] += row[i] as f64;
                for j in 0..d {
                    want.gram[i * d + j] += row[i] as f64 * row[j] as f64;
                }
            }
        }
        want.rows = 6;
        assert_eq!(one_by_one, want);
    }

    #[test]
    fn a_weighted_sum_of_sequence_grams_is_the_gram_of_the_resample() {
        let (d, t) = (3, 4);
        let block: Vec<f32> = (0..3 * t * d)
            .map(|i| ((i * 13 % 11) as f32 - 5.0) * 0.25)
            .collect();
        let parts = HeadGram::per_sequence(&block, t, d);
        assert_eq!(parts.len(), 3);
        // Sequence 2 twice, sequence 0 once: the Gram of those rows stacked.
        let resample: Vec<f32> = [2, 0, 2]
            .iter()
            .flat_map(|&b| block[b * t * d..(b + 1) * t * d].iter().copied())
            .collect();
        let mut want = HeadGram::zeros(d);
        want.add_block(&resample, d);
        let got = HeadGram::weighted_sum(&parts, &[1, 0, 2], d);
        assert_eq!(got.rows, want.rows);
        for (a, b) in got
            .gram
            .iter()
            .chain(&got.sums)
            .zip(want.gram.iter().chain(&want.sums))
        {
            assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "{a} vs {b}");
        }
    }

    /// A `[rows, d]` block of deterministic values in [−1, 1) plus `offset` on every column
    /// (the mean the centring removes), its first column a multiple of the second when
    /// `collapsed` (a Gram no route trusts).
    fn block(rows: usize, d: usize, offset: f32, collapsed: bool) -> Vec<f32> {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut data: Vec<f32> = (0..rows * d)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0 + offset
            })
            .collect();
        if collapsed {
            for row in data.chunks_exact_mut(d) {
                row[0] = 3.0 * row[1];
            }
        }
        data
    }

    /// Both spectra from one Gram equal [`head_spectrum`]'s: the plain one bit for bit (the
    /// same Gram, the same eigenvalues), the centred one to rounding; where the centred Gram
    /// is not trusted (a large mean, a collapsed column) the block route answers, so the values
    /// are [`head_spectrum`]'s exactly. Short blocks (the direct SVD) too.
    #[test]
    fn plain_and_centred_from_one_gram_equal_each_taken_alone() {
        for (rows, d, offset, collapsed) in [
            (1024, 64, 0.0, false),
            (1024, 64, 0.3, false),
            (512, 16, 40.0, false),
            (512, 16, 0.5, true),
            (20, 16, 0.2, false),
            (6, 16, 0.2, false),
        ] {
            let data = block(rows, d, offset, collapsed);
            let both = head_spectra(&data, rows, d, &[false, true]).expect("both");
            let reversed = head_spectra(&data, rows, d, &[true, false]).expect("reversed");
            assert_eq!(both[0], reversed[1]);
            assert_eq!(both[1], reversed[0]);
            let plain = head_spectrum(&data, rows, d, false).expect("plain");
            assert_eq!(both[0], plain, "{rows}×{d} offset {offset}");
            let centred = head_spectrum(&data, rows, d, true).expect("centred");
            // G − s sᵀ/n rounds λ by about ε·trace(G) (the uncentred trace: the cancellation
            // the trust test counts), so σ = √λ by that over 2σ; d such errors at most.
            let trace: f64 = data.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
            for (a, b) in both[1].singular_values.iter().zip(&centred.singular_values) {
                let tolerance = d as f64 * f64::EPSILON * trace / b;
                assert!(
                    (a - b).abs() <= tolerance,
                    "{rows}×{d} offset {offset}: {a} vs {b}"
                );
            }
            let pr = |s: &HeadSpectrum| s.metrics.spectrum.pr;
            assert!((pr(&both[1]) - pr(&centred)).abs() <= 1e-10 * pr(&centred));
        }
        assert!(head_spectra(&[1.0, f32::NAN], 1, 2, &[false, true]).is_err());
        assert_eq!(
            head_spectra(&block(8, 2, 0.0, false), 8, 2, &[true]).expect("one"),
            vec![head_spectrum(&block(8, 2, 0.0, false), 8, 2, true).expect("alone")]
        );
    }

    #[test]
    fn activations_needed_by_variants() {
        assert_eq!(
            Activation::needed_for(&[KeyVariant::Centered, KeyVariant::PostNorm]),
            [Activation::Keys, Activation::Queries]
        );
        assert_eq!(Activation::needed_for(&KeyVariant::ALL).len(), 4);
    }
}
