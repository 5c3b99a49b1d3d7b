//! `rankscope surgery`, `rankscope scatter` and `rankscope figure layers`:
//! key-dimension surgery (Figure 4), γ vs SVD importance (Figure 5) and
//! per-layer K PR with bootstrap CIs (Figure 3), computed by the forward pass
//! on a single-file checkpoint, safetensors or PyTorch (a `config.json`
//! beside it is used when present).

use crate::inspect::inventory_of;
use crate::text::{errln, outln};
use anyhow::{bail, Context, Result};
use rankscope_core::analysis::importance::{
    gamma_vs_svd, layer_pr_with_ci, Importance, DEFAULT_PERMUTATIONS,
};
use rankscope_core::analysis::jobs::check_distinct_batches;
use rankscope_core::analysis::study_figures::{
    layer_pr_figure, scatter_figure, surgery_figure, LayerPrRun,
};
use rankscope_core::analysis::surgery::{has_key_norm, run_sweep, SurgeryResult, SweepOptions};
use rankscope_core::analysis::surgery_verdict::{surgery_verdict, SurgeryVerdict};
use rankscope_core::analysis::weights::Shards;
use rankscope_core::figures::FigureSpec;
use rankscope_core::formats::tokens::{parse_tokens_safetensors, TokenBatch};
use rankscope_core::inventory::batches::{misfit, narrow_ids};
use rankscope_core::inventory::Content;
use rankscope_core::model::arch::{Architecture, Recognition};
use rankscope_core::model::forward::ModelWeights;
use rankscope_core::parallel;
use rankscope_core::source::{block_on, FileSource};
use std::path::{Path, PathBuf};

struct Options {
    paths: Vec<PathBuf>,
    eval: Option<PathBuf>,
    heldout: Option<PathBuf>,
    fractions: Option<Vec<f64>>,
    seeds: usize,
    permutations: usize,
    boot: usize,
    /// The surgery verdict's margin m (share of SVD's advantage over random).
    margin: f64,
    json: bool,
    svg: Option<PathBuf>,
    png: Option<PathBuf>,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut o = Options {
        paths: Vec::new(),
        eval: None,
        heldout: None,
        fractions: None,
        seeds: 5,
        permutations: DEFAULT_PERMUTATIONS,
        boot: 1000,
        margin: 0.25,
        json: false,
        svg: None,
        png: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .with_context(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "--json" => o.json = true,
            "--eval" => o.eval = Some(value("--eval")?.into()),
            "--heldout" => o.heldout = Some(value("--heldout")?.into()),
            "--svg" => o.svg = Some(value("--svg")?.into()),
            "--png" => o.png = Some(value("--png")?.into()),
            "--seeds" => o.seeds = value("--seeds")?.parse().context("--seeds takes a count")?,
            "--permutations" => {
                o.permutations = value("--permutations")?
                    .parse()
                    .context("--permutations takes a count")?
            }
            "--boot" => o.boot = value("--boot")?.parse().context("--boot takes a count")?,
            "--margin" => {
                o.margin = value("--margin")?
                    .parse()
                    .context("--margin takes a number like 0.25")?
            }
            "--fractions" => {
                let v = value("--fractions")?;
                let list = v
                    .split(',')
                    .map(|f| {
                        f.trim()
                            .parse::<f64>()
                            .with_context(|| format!("--fractions: `{f}` is not a number"))
                    })
                    .collect::<Result<Vec<_>>>()?;
                o.fractions = Some(list);
            }
            s if s.starts_with("--") => bail!("unknown option `{s}`"),
            s => o.paths.push(PathBuf::from(s)),
        }
    }
    if o.paths.is_empty() {
        bail!("give a checkpoint (.safetensors, .pt, .pth or .bin)");
    }
    Ok(o)
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

fn load_tokens(path: &Option<PathBuf>, flag: &str) -> Result<TokenBatch> {
    let path = path.as_ref().with_context(|| {
        format!("{flag} FILE is required (a token batch, e.g. eval_tokens.safetensors)")
    })?;
    let src = FileSource::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    parse_tokens_safetensors(&src).with_context(|| format!("{}: not a token batch", path.display()))
}

/// Refuses a batch whose ids do not fit the model (naming the batch file, not
/// the checkpoint) and warns when its ids use under 1 % of the vocabulary.
fn check_fit(path: &Option<PathBuf>, batch: &TokenBatch, arch: &Architecture) -> Result<()> {
    let shown = path
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
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

fn write_figure(spec: &FigureSpec, o: &Options) -> Result<()> {
    let (w, h) = (900, 560);
    if let Some(path) = &o.svg {
        std::fs::write(path, rankscope_core::figures::draw::to_svg(spec, w, h)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &o.png {
        std::fs::write(
            path,
            rankscope_core::figures::render::to_png(spec, w, h, 2.0)?,
        )
        .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
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
    eval_path: &Option<PathBuf>,
    heldout: &TokenBatch,
    heldout_path: &Option<PathBuf>,
    fractions: Option<&[f64]>,
    seeds: usize,
    margin: f64,
) -> Result<Sweep> {
    if !(margin > 0.0 && margin < 0.5) {
        bail!("--margin must lie between 0 and 0.5");
    }
    // The page's check (core): a held-out batch with the eval batch's content is refused.
    check_distinct_batches(eval, heldout).map_err(anyhow::Error::msg)?;
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
    let result = run_sweep(
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
    )?;
    // `errln!` shows control characters as escapes, so the carriage return goes out on its own.
    eprint!("\r");
    errln!("done in {:.1?}{:30}", started.elapsed(), "");
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
pub fn run_surgery(args: &[String]) -> Result<()> {
    let o = parse(args)?;
    let [path] = o.paths.as_slice() else {
        bail!("surgery takes one checkpoint")
    };
    let (eval, heldout) = (
        load_tokens(&o.eval, "--eval")?,
        load_tokens(&o.heldout, "--heldout")?,
    );
    let Sweep {
        run,
        result,
        verdict,
        spec,
    } = sweep(
        path,
        &eval,
        &o.eval,
        &heldout,
        &o.heldout,
        o.fractions.as_deref(),
        o.seeds,
        o.margin,
    )?;
    write_figure(&spec, &o)?;
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
    eval_path: &Option<PathBuf>,
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
pub fn run_scatter(args: &[String]) -> Result<()> {
    let o = parse(args)?;
    let [path] = o.paths.as_slice() else {
        bail!("scatter takes one checkpoint")
    };
    let eval = load_tokens(&o.eval, "--eval")?;
    let (run, imp, spec) = scatter(path, &eval, &o.eval, o.permutations)?;
    write_figure(&spec, &o)?;
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
    eval_path: &Option<PathBuf>,
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
pub fn run_layers(args: &[String]) -> Result<()> {
    let o = parse(args)?;
    if o.svg.is_none() && o.png.is_none() && !o.json {
        bail!("say where the figure goes: --svg FILE, --png FILE or --json");
    }
    let eval = load_tokens(&o.eval, "--eval")?;
    // Checkpoints on the `--threads` pool (and each one's resamples too), in the given order.
    let indexed: Vec<(usize, &PathBuf)> = o.paths.iter().enumerate().collect();
    let runs = parallel::map(&indexed, |&(color, path)| {
        layer_pr_run(path, color, &eval, &o.eval, o.boot)
    })
    .into_iter()
    .collect::<Result<Vec<_>>>()?;
    let spec = layer_pr_figure(
        &runs,
        o.boot,
        o.paths.iter().map(|p| p.display().to_string()).collect(),
    );
    write_figure(&spec, &o)?;
    if o.json {
        crate::text::print_json(&spec)?;
    }
    Ok(())
}
