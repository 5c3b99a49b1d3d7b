//! Key-dimension surgery (METRICS.md "Surgery"; fixtures README `final.surgery`):
//! remove m = round-half-up(p·d_k) key dimensions in every layer at once and
//! measure the mean cross-entropy on the held-out set.
//!
//! - **SVD**: per (layer, kv-head) V from the SVD of the unmodified model's K on
//!   the *eval* batch; k ← k·V_rV_rᵀ, r = d_k − m (projector built in f64,
//!   applied in f32).
//! - **γ**: zero the m coordinates with the smallest |γ| of the layer's key
//!   norm (stable ascending order: ties lower index first). Refused without a key norm.
//! - **Random**: seed s: `numpy.random.default_rng(s)`, one `permutation(d_k)`
//!   per layer in order; zero `perm_l[..m]` of layer l (all its kv-heads). The
//!   same permutations serve every p, so the sets are nested.
//!
//! Edits apply after the key norm, before RoPE ([`crate::model::forward::KeyTransform`]); queries are
//! untouched; m = 0 is the unmodified model. [`SurgeryPlan`] holds everything
//! a sweep needs, so a caller that must yield between forward passes (the
//! page) can run [`SurgeryPlan::jobs`] one at a time; [`run_sweep`] runs them all.
//!
//! The sweep is written once over [`ForwardBackend`]: [`run_sweep_on`] and
//! [`SurgeryPlan::build`] run the same passes on the CPU ([`ModelWeights`]) or a GPU, which
//! applies the [`KeyEdit`] and reduces the held-out loss on the device. [`run_sweep`] and
//! [`SurgeryPlan::new`] are the CPU's, blocking.

use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};

use super::numpy_rng::NumpyRng;
use super::spectrum::{matrix_from_row_major_f32, right_singular_vectors, SpectrumError};
use crate::formats::tokens::TokenBatch;
use crate::model::backend::ForwardBackend;
pub use crate::model::backend::KeyEdit;
use crate::model::forward::{ForwardError, KeyCollector, ModelWeights};
use crate::source::block_on;

/// The default fractions 0, 0.1, …, 0.9.
pub fn default_fractions() -> Vec<f64> {
    (0..10).map(|i| f64::from(i) / 10.0).collect()
}

/// How a sweep removes key dimensions.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// Project onto the top singular directions of the eval-batch K.
    Svd,
    /// Zero the smallest-|γ| coordinates of the key norm.
    Gamma,
    /// Zero random coordinates (seeded), the control.
    Random,
}

impl Strategy {
    /// Short label for legends and progress.
    pub fn label(self) -> &'static str {
        match self {
            Strategy::Svd => "SVD",
            Strategy::Gamma => "γ",
            Strategy::Random => "random",
        }
    }
}

/// Why surgery could not run.
#[derive(Debug, thiserror::Error)]
pub enum SurgeryError {
    #[error(transparent)]
    Forward(#[from] ForwardError),
    #[error("SVD of K (layer {layer}, kv-head {kv_head}): {source}")]
    Spectrum {
        layer: usize,
        kv_head: usize,
        source: SpectrumError,
    },
    /// γ surgery needs the key norm's weight.
    #[error("γ surgery needs a key norm (QK-norm), and this model has none in layer {layer}; use the SVD or random strategy")]
    NoKeyNorm { layer: usize },
    #[error("prune fraction {0} is not in [0, 1]")]
    BadFraction(f64),
    #[error("no prune fractions given")]
    NoFractions,
    #[error("the random strategy needs at least one seed")]
    NoSeeds,
    #[error("cancelled")]
    Cancelled,
}

/// What to sweep.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SweepOptions {
    /// Prune fractions p in [0, 1]; default 0, 0.1, …, 0.9.
    pub fractions: Vec<f64>,
    /// Random seeds 0..seeds (default 5).
    pub seeds: usize,
    /// Strategies to run, in order.
    pub strategies: Vec<Strategy>,
    /// Which of the sweep's forward passes to run (all of them by default).
    #[serde(default)]
    pub share: SweepShare,
}

impl Default for SweepOptions {
    fn default() -> Self {
        Self {
            fractions: default_fractions(),
            seeds: 5,
            strategies: vec![Strategy::Svd, Strategy::Gamma, Strategy::Random],
            share: SweepShare::WHOLE,
        }
    }
}

/// One share of a sweep's forward passes, so that one sweep can run on several of the page's
/// workers at once (each loads the model and runs its share; [`SurgeryResult::merge`] joins
/// them): share `index` of `of` runs every `of`-th pass of [`SurgeryPlan::jobs`] from `index`
/// on, which spreads strategies and fractions evenly; share 0 also measures the baseline.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct SweepShare {
    pub index: usize,
    pub of: usize,
}

impl SweepShare {
    /// The whole sweep: share 0 of 1.
    pub const WHOLE: Self = Self { index: 0, of: 1 };

    /// The `of` shares of a sweep.
    pub fn all(of: usize) -> impl Iterator<Item = Self> {
        let of = of.max(1);
        (0..of).map(move |index| Self { index, of })
    }

    /// Whether pass `job` (an index into [`SurgeryPlan::jobs`]) is this share's.
    fn takes(self, job: usize) -> bool {
        job % self.of.max(1) == self.index
    }
}

impl Default for SweepShare {
    fn default() -> Self {
        Self::WHOLE
    }
}

impl SweepOptions {
    /// The defaults, without γ when `model` has no key norm (say so to the user).
    pub fn for_model(model: &impl ForwardBackend) -> Self {
        let mut o = Self::default();
        if !has_key_norm(model) {
            o.strategies.retain(|s| *s != Strategy::Gamma);
        }
        o
    }
}

/// Whether every layer of `model` has a key norm weight.
pub fn has_key_norm(model: &impl ForwardBackend) -> bool {
    (0..model.arch().n_layers).all(|l| model.key_norm_weight(l).is_some())
}

/// m = round-half-up(p·d_k), as the reference's `(2·i·d_k + 10) div 20` for p = i/10.
pub fn dims_removed(fraction: f64, d_k: usize) -> usize {
    // The tiny epsilon makes 0.7·5 = 3.4999… round up like the exact 3.5.
    ((fraction * d_k as f64 + 0.5 + 1e-9).floor() as usize).min(d_k)
}

/// Right singular vectors V (d_k × d_k, columns by descending σ) of K per
/// (layer, kv-head), index `layer·n_kv + kv_head`, from collected keys.
pub fn key_bases(
    keys: &KeyCollector,
    n_layers: usize,
    n_kv: usize,
) -> Result<Vec<DMatrix<f64>>, SurgeryError> {
    let d_k = keys.d_k();
    (0..n_layers * n_kv)
        .map(|i| {
            let (layer, kv_head) = (i / n_kv, i % n_kv);
            let spectrum = |source| SurgeryError::Spectrum {
                layer,
                kv_head,
                source,
            };
            let m = matrix_from_row_major_f32(keys.keys(layer, kv_head), keys.rows(), d_k)
                .map_err(spectrum)?;
            Ok(right_singular_vectors(&m).map_err(spectrum)?.1)
        })
        .collect()
}

/// V_rV_rᵀ in f64, rounded to f32 (row-major d×d).
pub fn projector(v: &DMatrix<f64>, r: usize) -> Vec<f32> {
    let d = v.nrows();
    (0..d * d)
        .map(|ij| {
            (0..r.min(v.ncols()))
                .map(|c| v[(ij / d, c)] * v[(ij % d, c)])
                .sum::<f64>() as f32
        })
        .collect()
}

/// Stable ascending argsort of |γ| per layer (ties: lower index first); refuses models without a key norm.
pub fn gamma_orders(model: &impl ForwardBackend) -> Result<Vec<Vec<usize>>, SurgeryError> {
    (0..model.arch().n_layers)
        .map(|layer| {
            let g = model
                .key_norm_weight(layer)
                .ok_or(SurgeryError::NoKeyNorm { layer })?;
            let mut order: Vec<usize> = (0..g.len()).collect();
            order.sort_by(|&a, &b| g[a].abs().total_cmp(&g[b].abs()));
            Ok(order)
        })
        .collect()
}

/// `perms[seed][layer]`: the reference's random permutations (see the module doc).
pub fn random_permutations(seeds: usize, n_layers: usize, d_k: usize) -> Vec<Vec<Vec<usize>>> {
    (0..seeds as u64)
        .map(|s| {
            let mut rng = NumpyRng::new(s);
            (0..n_layers).map(|_| rng.permutation(d_k)).collect()
        })
        .collect()
}

/// One forward-pass job of a sweep.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub struct Job {
    pub strategy: Strategy,
    /// Index into the plan's fractions.
    pub fraction: usize,
    /// Seed (random strategy only).
    pub seed: Option<usize>,
}

/// Everything a sweep needs besides the held-out set, computed once.
#[derive(Clone, Debug)]
pub struct SurgeryPlan {
    pub fractions: Vec<f64>,
    /// m per fraction.
    pub removed: Vec<usize>,
    pub strategies: Vec<Strategy>,
    pub d_k: usize,
    n_layers: usize,
    n_kv: usize,
    /// SVD bases per (layer, kv-head), when SVD is swept.
    bases: Vec<DMatrix<f64>>,
    /// γ order per layer, when γ is swept.
    pub gamma_order: Option<Vec<Vec<usize>>>,
    /// `perms[seed][layer]`, when random is swept.
    pub random_perms: Vec<Vec<Vec<usize>>>,
}

impl SurgeryPlan {
    /// [`SurgeryPlan::build`] on the CPU, blocking.
    pub fn new(
        model: &ModelWeights,
        eval: &TokenBatch,
        options: &SweepOptions,
    ) -> Result<Self, SurgeryError> {
        block_on(Self::build(model, eval, options))
    }

    /// Checks the options and precomputes bases (one forward pass over `eval` on `model`
    /// when SVD is swept), γ orders and random permutations.
    pub async fn build(
        model: &impl ForwardBackend,
        eval: &TokenBatch,
        options: &SweepOptions,
    ) -> Result<Self, SurgeryError> {
        if options.fractions.is_empty() {
            return Err(SurgeryError::NoFractions);
        }
        if let Some(&p) = options.fractions.iter().find(|p| !(0.0..=1.0).contains(*p)) {
            return Err(SurgeryError::BadFraction(p));
        }
        let arch = model.arch();
        let (d_k, n_layers, n_kv) = (arch.d_k, arch.n_layers, arch.n_kv_heads);
        let wants = |s| options.strategies.contains(&s);
        if wants(Strategy::Random) && options.seeds == 0 {
            return Err(SurgeryError::NoSeeds);
        }
        let gamma_order = if wants(Strategy::Gamma) {
            Some(gamma_orders(model)?)
        } else {
            None
        };
        let bases = if wants(Strategy::Svd) {
            let keys = model.collect_keys(eval, &mut |_| true).await?;
            key_bases(&keys, n_layers, n_kv)?
        } else {
            Vec::new()
        };
        let random_perms = if wants(Strategy::Random) {
            random_permutations(options.seeds, n_layers, d_k)
        } else {
            Vec::new()
        };
        let mut strategies = options.strategies.clone();
        strategies.dedup();
        Ok(Self {
            removed: options
                .fractions
                .iter()
                .map(|&p| dims_removed(p, d_k))
                .collect(),
            fractions: options.fractions.clone(),
            strategies,
            d_k,
            n_layers,
            n_kv,
            bases,
            gamma_order,
            random_perms,
        })
    }

    /// Every forward pass the sweep needs, strategy by strategy, fraction by
    /// fraction (seeds innermost). Fractions with m = 0 need none: they are the baseline.
    pub fn jobs(&self) -> Vec<Job> {
        let mut jobs = Vec::new();
        for &strategy in &self.strategies {
            for (fraction, &m) in self.removed.iter().enumerate() {
                if m == 0 {
                    continue;
                }
                match strategy {
                    Strategy::Random => jobs.extend((0..self.random_perms.len()).map(|s| Job {
                        strategy,
                        fraction,
                        seed: Some(s),
                    })),
                    _ => jobs.push(Job {
                        strategy,
                        fraction,
                        seed: None,
                    }),
                }
            }
        }
        jobs
    }

    /// The key edit of `job`.
    pub fn edit(&self, job: &Job) -> KeyEdit {
        let m = self.removed[job.fraction];
        self.edit_removing(job.strategy, m, job.seed.unwrap_or(0))
    }

    /// The key edit removing `m` dimensions (also for m = 0, e.g. to test that
    /// the edit is the identity). A strategy or seed the plan was not built
    /// for gives an edit that changes nothing.
    pub fn edit_removing(&self, strategy: Strategy, m: usize, seed: usize) -> KeyEdit {
        let d_k = self.d_k;
        match strategy {
            Strategy::Svd => KeyEdit::Project {
                projectors: self
                    .bases
                    .iter()
                    .map(|v| projector(v, d_k - m.min(d_k)))
                    .collect(),
                n_kv: self.n_kv,
                d_k,
            },
            Strategy::Gamma => KeyEdit::Zero {
                zero: match &self.gamma_order {
                    Some(orders) => orders.iter().map(|o| o[..m.min(d_k)].to_vec()).collect(),
                    None => vec![Vec::new(); self.n_layers],
                },
                d_k,
            },
            Strategy::Random => KeyEdit::Zero {
                zero: match self.random_perms.get(seed) {
                    Some(perms) => perms.iter().map(|p| p[..m.min(d_k)].to_vec()).collect(),
                    None => vec![Vec::new(); self.n_layers],
                },
                d_k,
            },
        }
    }

    /// Held-out loss of one job (on the CPU; [`ForwardBackend::mean_cross_entropy`] with
    /// [`SurgeryPlan::edit`] on any backend).
    pub fn run_job(
        &self,
        model: &ModelWeights,
        heldout: &TokenBatch,
        job: &Job,
    ) -> Result<f64, SurgeryError> {
        Ok(model.mean_cross_entropy(heldout, Some(&self.edit(job)))?)
    }

    /// Assembles the result from the baseline and one loss per job (in any order).
    pub fn result(&self, baseline: f64, losses: &[(Job, f64)]) -> SurgeryResult {
        let find = |s: Strategy, i: usize, seed: Option<usize>| {
            if self.removed[i] == 0 {
                return baseline;
            }
            losses
                .iter()
                .find(|(j, _)| j.strategy == s && j.fraction == i && j.seed == seed)
                .map_or(f64::NAN, |(_, l)| *l)
        };
        let n = self.fractions.len();
        let curve = |s| {
            self.strategies
                .contains(&s)
                .then(|| (0..n).map(|i| find(s, i, None)).collect())
        };
        let random = self.strategies.contains(&Strategy::Random).then(|| {
            let per_seed: Vec<Vec<f64>> = (0..self.random_perms.len())
                .map(|s| (0..n).map(|i| find(Strategy::Random, i, Some(s))).collect())
                .collect();
            RandomLosses::of(per_seed, self.random_perms.clone())
        });
        SurgeryResult {
            fractions: self.fractions.clone(),
            removed: self.removed.clone(),
            d_k: self.d_k,
            n_layers: self.n_layers,
            baseline,
            svd: curve(Strategy::Svd),
            gamma: curve(Strategy::Gamma),
            gamma_order: self.gamma_order.clone(),
            random,
        }
    }
}

/// Random-strategy losses over seeds.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct RandomLosses {
    /// `losses[seed][fraction]`.
    #[serde(with = "crate::json_f64::vecs")]
    pub losses: Vec<Vec<f64>>,
    #[serde(with = "crate::json_f64::vec")]
    pub mean: Vec<f64>,
    #[serde(with = "crate::json_f64::vec")]
    pub min: Vec<f64>,
    #[serde(with = "crate::json_f64::vec")]
    pub max: Vec<f64>,
    /// `perms[seed][layer]`: the coordinates zeroed are the first m.
    pub perms: Vec<Vec<Vec<usize>>>,
}

impl RandomLosses {
    /// The per-seed losses (`losses[seed][fraction]`) with their mean, min and max per fraction.
    fn of(losses: Vec<Vec<f64>>, perms: Vec<Vec<Vec<usize>>>) -> Self {
        let n = losses.first().map_or(0, Vec::len);
        let over = |i: usize| losses.iter().map(move |l| l[i]);
        Self {
            mean: (0..n)
                .map(|i| over(i).sum::<f64>() / losses.len() as f64)
                .collect(),
            min: (0..n)
                .map(|i| over(i).fold(f64::INFINITY, f64::min))
                .collect(),
            max: (0..n)
                .map(|i| over(i).fold(f64::NEG_INFINITY, f64::max))
                .collect(),
            losses,
            perms,
        }
    }
}

/// Held-out loss per strategy and prune fraction.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SurgeryResult {
    pub fractions: Vec<f64>,
    /// Dimensions removed per kv-head at each fraction.
    pub removed: Vec<usize>,
    pub d_k: usize,
    pub n_layers: usize,
    /// Unmodified model's held-out loss (= every m = 0 entry). The losses may be NaN (a
    /// diverged model; a pass another share of the sweep ran), which JSON carries as "NaN".
    #[serde(with = "crate::json_f64::num")]
    pub baseline: f64,
    #[serde(with = "crate::json_f64::opt_vec")]
    pub svd: Option<Vec<f64>>,
    /// `None` when not swept (e.g. no key norm).
    #[serde(with = "crate::json_f64::opt_vec")]
    pub gamma: Option<Vec<f64>>,
    pub gamma_order: Option<Vec<Vec<usize>>>,
    pub random: Option<RandomLosses>,
}

impl SurgeryResult {
    /// Joins another share of the same sweep ([`SweepShare`]) into this one, share 0's (which
    /// has the baseline): each pass ran in exactly one share, and the others left it NaN.
    pub fn merge(&mut self, share: &SurgeryResult) {
        fn fill(mine: &mut [f64], theirs: &[f64]) {
            for (m, t) in mine.iter_mut().zip(theirs) {
                if m.is_nan() {
                    *m = *t;
                }
            }
        }
        if let (Some(m), Some(t)) = (&mut self.svd, &share.svd) {
            fill(m, t);
        }
        if let (Some(m), Some(t)) = (&mut self.gamma, &share.gamma) {
            fill(m, t);
        }
        if let (Some(m), Some(t)) = (&mut self.random, &share.random) {
            let mut losses = std::mem::take(&mut m.losses);
            for (mine, theirs) in losses.iter_mut().zip(&t.losses) {
                fill(mine, theirs);
            }
            *m = RandomLosses::of(losses, std::mem::take(&mut m.perms));
        }
    }
}

/// Where a sweep is: the job about to run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SweepProgress {
    pub strategy: Strategy,
    pub fraction: f64,
    pub seed: Option<usize>,
    /// Jobs done so far and in all (the baseline counts as one).
    pub done: usize,
    pub total: usize,
}

/// [`run_sweep_on`] on the CPU, blocking (surgery passes on the `--threads` pool).
pub fn run_sweep(
    model: &ModelWeights,
    eval: &TokenBatch,
    heldout: &TokenBatch,
    options: &SweepOptions,
    progress: &mut dyn FnMut(SweepProgress),
    cancel: &dyn Fn() -> bool,
) -> Result<SurgeryResult, SurgeryError> {
    block_on(run_sweep_on(
        model, eval, heldout, options, progress, cancel,
    ))
}

/// The sweep on `backend`: baseline, then every job of [`SurgeryPlan::jobs`] (those of
/// `options.share`: a share other than 0 leaves the baseline and the other shares' losses NaN,
/// for [`SurgeryResult::merge`] to fill). `progress` is called before each forward pass;
/// `cancel` is checked before each and ends the sweep with [`SurgeryError::Cancelled`].
pub async fn run_sweep_on(
    backend: &impl ForwardBackend,
    eval: &TokenBatch,
    heldout: &TokenBatch,
    options: &SweepOptions,
    progress: &mut dyn FnMut(SweepProgress),
    cancel: &dyn Fn() -> bool,
) -> Result<SurgeryResult, SurgeryError> {
    if cancel() {
        return Err(SurgeryError::Cancelled);
    }
    let plan = SurgeryPlan::build(backend, eval, options).await?;
    let share = options.share;
    let jobs: Vec<Job> = (plan.jobs().into_iter().enumerate())
        .filter(|(i, _)| share.takes(*i))
        .map(|(_, job)| job)
        .collect();
    let measures_baseline = share.index == 0;
    let total = jobs.len() + usize::from(measures_baseline);
    let first = options.strategies.first().copied().unwrap_or(Strategy::Svd);
    progress(SweepProgress {
        strategy: first,
        fraction: 0.0,
        seed: None,
        done: 0,
        total,
    });
    let baseline = match measures_baseline {
        true => backend.mean_cross_entropy(heldout, None).await?,
        false => f64::NAN,
    };
    let mut losses = Vec::with_capacity(jobs.len());
    // As many passes at a time as there are threads (one without the `parallel` feature): each
    // is announced (after a check for cancellation) before its chunk runs, as one at a time
    // would be; the backend runs a chunk's passes side by side where it can.
    for chunk in jobs.chunks(crate::parallel::width()) {
        for (i, job) in chunk.iter().enumerate() {
            if cancel() {
                return Err(SurgeryError::Cancelled);
            }
            progress(SweepProgress {
                strategy: job.strategy,
                fraction: plan.fractions[job.fraction],
                seed: job.seed,
                done: losses.len() + i + usize::from(measures_baseline),
                total,
            });
        }
        let edits: Vec<KeyEdit> = chunk.iter().map(|job| plan.edit(job)).collect();
        let chunk_losses = backend.mean_cross_entropies(heldout, &edits).await?;
        losses.extend(chunk.iter().copied().zip(chunk_losses));
    }
    Ok(plan.result(baseline, &losses))
}
