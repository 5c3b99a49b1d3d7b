//! `rankscope surgery`, `rankscope scatter` and `rankscope figure layers`:
//! key-dimension surgery (Figure 4), γ vs SVD importance (Figure 5) and
//! per-layer K PR with bootstrap CIs (Figure 3), computed by the forward pass
//! on a single-file checkpoint, safetensors or PyTorch (a `config.json`
//! beside it is used when present).

use crate::args::{self, FigureFiles};
use crate::inspect::inventory_of;
use crate::text::{errln, outln};
use anyhow::{bail, Context, Result};
use rankscope_core::analysis::importance::Importance;
use rankscope_core::analysis::importance::{gamma_vs_svd, layer_pr_with_ci, DEFAULT_PERMUTATIONS};
use rankscope_core::analysis::jobs::check_distinct_batches;
use rankscope_core::analysis::study_figures::{
    layer_pr_figure, scatter_figure, surgery_figure, LayerPrRun,
};
use rankscope_core::analysis::surgery::{has_key_norm, run_sweep_on, SurgeryResult, SweepOptions};
use rankscope_core::analysis::surgery_verdict::{surgery_verdict, SurgeryVerdict};
use rankscope_core::analysis::weights::Shards;
use rankscope_core::figures::FigureSpec;
use rankscope_core::formats::tokens::{parse_tokens_safetensors, TokenBatch};
use rankscope_core::inventory::batches::{misfit, narrow_ids};
use rankscope_core::inventory::Content;
use rankscope_core::model::arch::{Architecture, Recognition};
use rankscope_core::model::backend::ForwardBackend;
use rankscope_core::model::forward::ModelWeights;
use rankscope_core::parallel;
use rankscope_core::source::{block_on, FileSource};
use std::path::{Path, PathBuf};

/// Figure 4: held-out loss after pruning key dimensions, and the verdict
///
/// Held-out loss after pruning key dimensions (SVD, γ, random; Figure 4), the area under each
/// loss-increase curve and the plan's verdict (γ a reliable proxy / misleads)
#[derive(clap::Args, Debug)]
pub struct SurgeryArgs {
    /// A single-file checkpoint (.safetensors, .pt, .pth or .bin; a config.json beside it is used)
    #[arg(value_name = "CHECKPOINT")]
    checkpoint: PathBuf,
    /// The eval batch: the K spectra that rank the key dimensions
    #[arg(long, value_name = "TOKENS")]
    eval: PathBuf,
    /// The held-out batch the loss is measured on (not the eval batch)
    #[arg(long, value_name = "TOKENS")]
    heldout: PathBuf,
    /// Fractions of d_k to remove [default: 0, 0.1, …, 0.9]
    #[arg(long, value_delimiter = ',', value_name = "P,P,…", value_parser = args::number)]
    fractions: Option<Vec<f64>>,
    /// Random-mask seeds
    #[arg(long, default_value_t = 5)]
    seeds: usize,
    /// The verdict's margin m (share of SVD's advantage over random), in (0, 0.5)
    #[arg(long, default_value_t = 0.25, value_parser = margin)]
    margin: f64,
    /// Print the sweep and verdict as JSON
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    files: FigureFiles,
}

fn margin(v: &str) -> Result<f64, String> {
    match v.parse::<f64>() {
        Ok(m) if m > 0.0 && m < 0.5 => Ok(m),
        _ => Err(format!("must lie between 0 and 0.5, not `{v}`")),
    }
}

/// |γ| vs leverage in the top-r90 subspace of K, Spearman ρ with a permutation p (Figure 5)
#[derive(clap::Args, Debug)]
pub struct ScatterArgs {
    /// A single-file checkpoint
    #[arg(value_name = "CHECKPOINT")]
    checkpoint: PathBuf,
    /// The eval batch
    #[arg(long, value_name = "TOKENS")]
    eval: PathBuf,
    /// Permutations of the Spearman test
    #[arg(long, default_value_t = DEFAULT_PERMUTATIONS)]
    permutations: usize,
    /// Print ρ per layer and overall as JSON
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    files: FigureFiles,
}

/// Figure 3: K PR per layer, runs side by side, with bootstrap CIs
///
/// Figure 3: K PR per layer, runs side by side, with the head range and a bootstrap CI over
/// eval sequences
#[derive(clap::Args, Debug)]
pub struct LayersArgs {
    /// Single-file checkpoints, one per run
    #[arg(required = true, value_name = "CHECKPOINT")]
    checkpoints: Vec<PathBuf>,
    /// The eval batch
    #[arg(long, value_name = "TOKENS")]
    eval: PathBuf,
    /// Bootstrap resamples of the eval sequences
    #[arg(long, default_value_t = 1000)]
    boot: usize,
    /// Print the figure as JSON
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    files: FigureFiles,
}

/// Loads a single-file checkpoint (safetensors or PyTorch, with the
/// `config.json` beside it) for the forward pass, recognised as `inspect` does.
pub(crate) fn load_model(path: &Path) -> Result<ModelWeights> {
    let (inv, _) = inventory_of(&[path.to_path_buf()])?;
    let entry = inv
        .files
        .first()
        .with_context(|| format!("{}: not a file", path.display()))?;
    let (Content::Checkpoint { header, .. }, Some(Recognition::Known(arch))) =
        (&entry.content, &entry.recognition)
    else {
        let why = inv
            .why_no_checkpoints()
            .into_iter()
            .next()
            .map(|(_, why)| why)
            .unwrap_or_default();
        bail!("{}: {why}", path.display());
    };
    let src = FileSource::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    block_on(ModelWeights::load(
        &Shards::single(header, &src),
        arch,
        &mut |_| {},
    ))
    .with_context(|| format!("loading {}", path.display()))
}

fn load_tokens(path: &Path) -> Result<TokenBatch> {
    let src = FileSource::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    parse_tokens_safetensors(&src).with_context(|| format!("{}: not a token batch", path.display()))
}

/// Refuses a batch whose ids do not fit the model (naming the batch file, not
/// the checkpoint) and warns when its ids use under 1 % of the vocabulary.
fn check_fit(path: &Path, batch: &TokenBatch, arch: &Architecture) -> Result<()> {
    let shown = path.display().to_string();
    if let Some(why) = misfit(&shown, batch, arch) {
        bail!(why);
    }
    if let Some(warning) = narrow_ids(&shown, batch, arch.vocab) {
        errln!("warning: {warning}");
    }
    Ok(())
}

/// The run's name: the checkpoint's folder (runs/B1/ckpt.safetensors → B1).
fn run_name(path: &Path) -> String {
    path.parent()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// One checkpoint's surgery sweep, its verdict and Figure 4 (`surgery` and `report`).
pub(crate) struct Sweep {
    pub run: String,
    pub result: SurgeryResult,
    pub verdict: SurgeryVerdict,
    pub spec: FigureSpec,
}

/// Sweeps `path` (fractions: the core's default when `None`), after the checks the page makes:
/// distinct eval and held-out batches, ids that fit the model, a margin in (0, 0.5).
#[allow(clippy::too_many_arguments)]
pub(crate) fn sweep(
    path: &Path,
    eval: &TokenBatch,
    eval_path: &Path,
    heldout: &TokenBatch,
    heldout_path: &Path,
    fractions: Option<&[f64]>,
    seeds: usize,
    margin: f64,
) -> Result<Sweep> {
    if !(margin > 0.0 && margin < 0.5) {
        bail!("--margin must lie between 0 and 0.5");
    }
    // The page's check (core): a held-out batch with the eval batch's content is refused.
    check_distinct_batches(eval, heldout)?;
    let model = load_model(path)?;
    check_fit(eval_path, eval, model.arch())?;
    check_fit(heldout_path, heldout, model.arch())?;
    let mut options = SweepOptions::for_model(&model);
    if let Some(f) = fractions {
        options.fractions = f.to_vec();
    }
    options.seeds = seeds;
    if !has_key_norm(&model) {
        errln!(
            "note: {} has no key norm, so there is no γ strategy",
            path.display()
        );
    }
    let started = std::time::Instant::now();
    // The sweep over the core's backend trait; the CLI's backend is the CPU's (`ModelWeights`,
    // passes on the `--threads` pool): the CLI does not build with rankscope-gpu.
    let result = block_on(run_sweep_on(
        &model,
        eval,
        heldout,
        &options,
        &mut |p| {
            let what = if p.done == 0 {
                "baseline".to_owned()
            } else {
                format!("{} p = {:.2}", p.strategy.label(), p.fraction)
            };
            eprint!("\r{:>3}/{} {what:<16}", p.done + 1, p.total);
        },
        &|| false,
    ))?;
    // `errln!` shows control characters as escapes, so the carriage return goes out on its own.
    eprint!("\r");
    errln!(
        "done in {:.1?} on {}{:30}",
        started.elapsed(),
        model.engine(),
        ""
    );
    let run = run_name(path);
    let spec = surgery_figure(&run, &result, vec![path.display().to_string()]);
    let verdict = surgery_verdict(&result, margin);
    Ok(Sweep {
        run,
        result,
        verdict,
        spec,
    })
}

/// `rankscope surgery --eval E --heldout H <checkpoint> [--fractions 0,0.1,…] [--seeds 5] [--json] [--svg F] [--png F]`
pub fn run_surgery(o: SurgeryArgs) -> Result<()> {
    let (eval, heldout) = (load_tokens(&o.eval)?, load_tokens(&o.heldout)?);
    let Sweep {
        run,
        result,
        verdict,
        spec,
    } = sweep(
        &o.checkpoint,
        &eval,
        &o.eval,
        &heldout,
        &o.heldout,
        o.fractions.as_deref(),
        o.seeds,
        o.margin,
    )?;
    o.files.write(&spec)?;
    if o.json {
        crate::text::print_json(
            &serde_json::json!({ "run": run, "surgery": result, "verdict": verdict }),
        )?;
        return Ok(());
    }
    outln!(
        "{run}: held-out loss after removing m of d_k = {} key dimensions (baseline {:.6})",
        result.d_k,
        result.baseline
    );
    outln!(
        "{:>6} {:>3} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "p",
        "m",
        "SVD",
        "γ",
        "random",
        "rand min",
        "rand max"
    );
    let cell = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.6}"));
    for (i, p) in result.fractions.iter().enumerate() {
        let r = result.random.as_ref();
        outln!(
            "{p:>6.2} {:>3} {:>10} {:>10} {:>10} {:>10} {:>10}",
            result.removed[i],
            cell(result.svd.as_ref().map(|v| v[i])),
            cell(result.gamma.as_ref().map(|v| v[i])),
            cell(r.map(|r| r.mean[i])),
            cell(r.map(|r| r.min[i])),
            cell(r.map(|r| r.max[i])),
        );
    }
    let a = &verdict.areas;
    let range = a
        .random_min
        .zip(a.random_max)
        .map_or(String::new(), |(lo, hi)| {
            format!(" (seeds {lo:.4} … {hi:.4})")
        });
    outln!(
        "area of loss(p) − loss(0) over p ∈ [0, {}]: SVD {}, γ {}, random {}{range}",
        a.p_max,
        cell(a.svd),
        cell(a.gamma),
        cell(a.random_mean)
    );
    if let (Some(d), Some([lo, hi])) = (
        verdict.gamma_minus_random,
        verdict.gamma_minus_random_interval,
    ) {
        outln!("γ − random {d:.4}, 95% interval over the random seeds [{lo:.4}, {hi:.4}]");
    }
    if let Some(d) = verdict.svd_minus_gamma {
        outln!("SVD − γ {d:.4} (no interval: both deterministic; held-out resampling needs per-sequence losses)");
    }
    outln!("verdict: {}\nrule: {}", verdict.sentence, verdict.rule);
    Ok(())
}

/// |γ| vs SVD leverage of one checkpoint and Figure 5 (`scatter` and `report`).
pub(crate) fn scatter(
    path: &Path,
    eval: &TokenBatch,
    eval_path: &Path,
    permutations: usize,
) -> Result<(String, Importance, FigureSpec)> {
    let model = load_model(path)?;
    check_fit(eval_path, eval, model.arch())?;
    let keys = model.collect_keys(eval, None)?;
    let imp = gamma_vs_svd(&model, &keys, permutations, 0)?;
    let run = run_name(path);
    let spec = scatter_figure(&run, &imp, vec![path.display().to_string()]);
    Ok((run, imp, spec))
}

/// `rankscope scatter --eval E <checkpoint> [--permutations N] [--json] [--svg F] [--png F]`
pub fn run_scatter(o: ScatterArgs) -> Result<()> {
    let eval = load_tokens(&o.eval)?;
    let (run, imp, spec) = scatter(&o.checkpoint, &eval, &o.eval, o.permutations)?;
    o.files.write(&spec)?;
    if o.json {
        crate::text::print_json(&serde_json::json!({ "run": run, "gamma_vs_svd": imp }))?;
        return Ok(());
    }
    if !imp.has_key_norm {
        outln!("{run}: no key norm (no γ); leverage only");
    }
    for l in &imp.layers {
        let rho = l.spearman.as_ref().map_or("–".to_owned(), |s| {
            format!("ρ = {:.6}  p_perm = {:.5}", s.rho, s.p_perm)
        });
        outln!(
            "layer {}: r90 per head {:?}  {rho}",
            l.layer,
            l.r90_per_head
        );
    }
    if let Some(s) = &imp.overall {
        outln!(
            "overall: ρ = {:.6}  p_perm = {:.5}  (n = {}, {} permutations)",
            s.rho,
            s.p_perm,
            s.n,
            s.n_perm
        );
    }
    Ok(())
}

/// One checkpoint's K PR per layer with bootstrap CIs, for Figure 3 (`figure layers` and `report`).
pub(crate) fn layer_pr_run(
    path: &Path,
    color: usize,
    eval: &TokenBatch,
    eval_path: &Path,
    boot: usize,
) -> Result<LayerPrRun> {
    let model = load_model(path)?;
    check_fit(eval_path, eval, model.arch())?;
    let keys = model.collect_keys(eval, None)?;
    let a = model.arch();
    let layers = layer_pr_with_ci(&keys, a.n_layers, a.n_kv_heads, eval.seq_len, boot, 0)
        .with_context(|| format!("{}: K spectra", path.display()))?;
    let checkpoint = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(LayerPrRun {
        run: run_name(path),
        color,
        checkpoint,
        layers,
    })
}

/// `rankscope figure layers --eval E <checkpoints…> [--boot N] [--json] [--svg F] [--png F]`
pub fn run_layers(o: LayersArgs) -> Result<()> {
    if !o.files.any() && !o.json {
        bail!("say where the figure goes: --svg FILE, --png FILE or --json");
    }
    let eval = load_tokens(&o.eval)?;
    // Checkpoints on the `--threads` pool (and each one's resamples too), in the given order.
    let indexed: Vec<(usize, &PathBuf)> = o.checkpoints.iter().enumerate().collect();
    let runs = parallel::map(&indexed, |&(color, path)| {
        layer_pr_run(path, color, &eval, &o.eval, o.boot)
    })
    .into_iter()
    .collect::<Result<Vec<_>>>()?;
    let spec = layer_pr_figure(
        &runs,
        o.boot,
        o.checkpoints
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
    );
    o.files.write(&spec)?;
    if o.json {
        crate::text::print_json(&spec)?;
    }
    Ok(())
}
