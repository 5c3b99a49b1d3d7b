//! `rankscope spectra` and `rankscope figure`: weight spectra of checkpoints,
//! and Figures 1–2 as SVG/PNG, with the page's numbers.

use crate::args::{self, Choice, FigureFiles};
use crate::inspect::{inventory_of, nothing_to_analyse, run_name, run_plan};
use crate::merge::SessionArgs;
use crate::text::{errln, outln};
use anyhow::{bail, Result};
use rankscope_core::analysis::pipeline::{Plan, RunTokens, SpectraFailure};
use rankscope_core::analysis::trajectory::{
    checkpoint_value, layer_value, results_trajectory_figure, trajectory_figure, waterfall_figure,
    CheckpointSel, CheckpointSpectra, LayerSel, Matrix, Metric, RunSpectra, TrainingAxis,
};
use rankscope_core::figures::FigureSpec;
use rankscope_core::formats::logs::LogFormat;
use rankscope_core::inventory::{Content, Inventory};
use std::path::PathBuf;

/// Weight spectra: W_k / W_q singular values and rank metrics of every checkpoint
///
/// Singular values and rank metrics of every W_k / W_q head of every checkpoint (f64 SVD), γ of
/// the key/query norms
#[derive(clap::Args, Debug)]
pub struct SpectraArgs {
    /// Checkpoints or folders (folders are walked recursively)
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Print every spectrum and metric as JSON
    #[arg(long)]
    json: bool,
    /// The metric of the table
    #[arg(long, value_parser = args::metric(), default_value = "pr")]
    metric: Metric,
    /// The matrix of the table
    #[arg(long, value_parser = args::matrix(), default_value = "k")]
    matrix: Matrix,
    #[command(flatten)]
    session: SessionArgs,
}

/// Figures 1–3 as SVG, PNG or the figure's JSON
///
/// Figure 1 (metric vs training tokens, one line per run), Figure 2 (σ_i/σ_1 waterfall) or
/// Figure 3 (K PR per layer with bootstrap CIs), as SVG/PNG or the figure's JSON
#[derive(clap::Subcommand, Debug)]
pub enum Figure {
    Trajectory(TrajectoryArgs),
    Waterfall(WaterfallArgs),
    Layers(crate::surgery::LayersArgs),
}

/// Figure 1: a metric against training tokens, one line per run
///
/// Figure 1: a metric against training tokens (or steps), one line per run; from checkpoints,
/// or from results.json files alone
#[derive(clap::Args, Debug)]
pub struct TrajectoryArgs {
    /// Checkpoints, folders or results.json files
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    #[arg(long, value_parser = args::metric(), default_value = "pr")]
    metric: Metric,
    /// `mean` (over layers) or a layer index
    #[arg(long, value_parser = args::layer, default_value = "mean")]
    layer: LayerSel,
    #[arg(long, value_parser = args::matrix(), default_value = "k")]
    matrix: Matrix,
    /// The x axis
    #[arg(long, value_parser = x_axis(), default_value = "tokens")]
    x: TrainingAxis,
    #[command(flatten)]
    files: FigureFiles,
    /// Print the figure as JSON
    #[arg(long)]
    json: bool,
}

fn x_axis() -> Choice<TrainingAxis> {
    Choice::new("x axis", ["tokens", "step"], |v| match v {
        "tokens" => Some(TrainingAxis::Tokens),
        "step" => Some(TrainingAxis::Step),
        _ => None,
    })
}

/// Figure 2: σ_i/σ_1 of each run's heads at a checkpoint
#[derive(clap::Args, Debug)]
pub struct WaterfallArgs {
    /// Checkpoints or folders
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// `final` or a checkpoint index within each run
    #[arg(long, value_parser = args::checkpoint, default_value = "final")]
    checkpoint: CheckpointSel,
    /// `mean` (over layers) or a layer index
    #[arg(long, value_parser = args::layer, default_value = "mean")]
    layer: LayerSel,
    /// One head (default: every head)
    #[arg(long, value_name = "N")]
    head: Option<usize>,
    #[arg(long, value_parser = args::matrix(), default_value = "k")]
    matrix: Matrix,
    /// Logarithmic y axis
    #[arg(long)]
    log_y: bool,
    #[command(flatten)]
    files: FigureFiles,
    /// Print the figure as JSON
    #[arg(long)]
    json: bool,
}

/// The weight spectra of every recognised checkpoint (`real[i]` is the path of `inv.files[i]`
/// on disk; each checkpoint is reopened there), the checkpoints on the `--threads` pool.
fn spectra_of(inv: &Inventory, real: &[PathBuf]) -> (Vec<RunSpectra>, Vec<SpectraFailure>) {
    let plan = Plan::spectra(inv, &|_| RunTokens::default(), &[]);
    let results = run_plan(inv, real, &plan, &|_, _| {});
    (results.weight_runs(&run_name(inv)), results.failures)
}

/// `rankscope spectra <checkpoints or folders…> [--json] [--shard I/N] [--session FILE]`
pub fn run_spectra(o: SpectraArgs) -> Result<()> {
    let (inv, real) = inventory_of(&o.paths)?;
    let selected = o.session.select(inv);
    let inv = &selected.inv;
    let (runs, failures) = spectra_of(inv, &real);
    // Written even when every checkpoint failed: the merged session lists the failures.
    o.session.write(&selected, |s| {
        s.weights = runs.clone();
        s.failures = failures.clone();
    })?;
    // An empty shard (more shards than checkpoints) still writes its (empty) session.
    if runs.is_empty() && !(selected.checkpoints == 0 && o.session.shard.is_some()) {
        for f in &failures {
            errln!("{}: {}", f.path, f.message);
        }
        if failures.is_empty() {
            return Err(nothing_to_analyse(inv));
        }
        bail!(
            "no checkpoint could be analysed ({} failed, above)",
            failures.len()
        );
    }
    if o.json {
        let out = serde_json::json!({ "runs": runs, "failures": failures });
        crate::text::print_json(&out)?;
        return Ok(());
    }
    for run in &runs {
        outln!("run {}", run.run);
        for c in &run.checkpoints {
            let per_layer: Vec<String> = (0..c.spectra.layers.len())
                .map(|l| {
                    layer_value(&c.spectra, l, o.matrix, o.metric)
                        .map_or("–".into(), |v| format!("{v:.4}"))
                })
                .collect();
            let mean = checkpoint_value(&c.spectra, LayerSel::Mean, o.matrix, o.metric)
                .map_or("–".into(), |v| format!("{v:.4}"));
            outln!(
                "  {:<44} {} per layer [{}]  mean {mean}",
                c.path,
                o.metric.key(),
                per_layer.join(", ")
            );
        }
    }
    for f in &failures {
        errln!("{}: {}", f.path, f.message);
    }
    Ok(())
}

/// `rankscope figure trajectory|waterfall|layers …`
pub fn run_figure(figure: Figure) -> Result<()> {
    match figure {
        Figure::Trajectory(o) => trajectory(o),
        Figure::Waterfall(o) => waterfall(o),
        Figure::Layers(o) => crate::surgery::run_layers(o),
    }
}

fn say_where(files: &FigureFiles, json: bool) -> Result<()> {
    if !files.any() && !json {
        bail!("say where the figure goes: --svg FILE, --png FILE or --json");
    }
    Ok(())
}

/// Writes the figure where `files` and `json` say.
fn emit(spec: &FigureSpec, files: &FigureFiles, json: bool) -> Result<()> {
    files.write(spec)?;
    if json {
        crate::text::print_json(spec)?;
    }
    Ok(())
}

/// `rankscope figure waterfall <paths…> --svg out.svg [--png out.png] …`
fn waterfall(o: WaterfallArgs) -> Result<()> {
    say_where(&o.files, o.json)?;
    let (inv, real) = inventory_of(&o.paths)?;
    let (runs, failures) = spectra_of(&inv, &real);
    for f in &failures {
        errln!("{}: {}", f.path, f.message);
    }
    if runs.is_empty() {
        return Err(nothing_to_analyse(&inv));
    }
    let spec = waterfall_figure(&runs, o.checkpoint, o.layer, o.matrix, o.head, o.log_y);
    emit(&spec, &o.files, o.json)
}

/// `rankscope figure trajectory <paths…> --svg out.svg [--png out.png] …`
fn trajectory(o: TrajectoryArgs) -> Result<()> {
    say_where(&o.files, o.json)?;
    let (inv, real) = inventory_of(&o.paths)?;
    let (runs, failures) = spectra_of(&inv, &real);
    for f in &failures {
        errln!("{}: {}", f.path, f.message);
    }
    let spec = if runs.is_empty() {
        // No checkpoints: draw the user's imported results.json files.
        let imported: Vec<(String, usize, &rankscope_core::formats::logs::Series)> = inv
            .runs
            .iter()
            .enumerate()
            .flat_map(|(color, run)| {
                inv.files
                    .iter()
                    .filter(move |f| f.run.as_deref() == Some(run.name.as_str()))
                    .filter_map(move |f| match &f.content {
                        Content::RunLog(series) => series
                            .iter()
                            .find(|s| s.format == LogFormat::StudyResults)
                            .map(|s| (run.name.clone(), color, s)),
                        _ => None,
                    })
            })
            .collect();
        if imported.is_empty() {
            return Err(nothing_to_analyse(&inv).context("and no results.json among the inputs"));
        }
        let sources = inv
            .files
            .iter()
            .filter(|f| f.path.ends_with(".json"))
            .map(|f| f.path.clone())
            .collect();
        results_trajectory_figure(&imported, o.layer, sources)
    } else {
        // A trajectory places checkpoints by their training point: with
        // none known, it would be an empty plot.
        let x_of = |c: &CheckpointSpectra| match o.x {
            TrainingAxis::Tokens => c.tokens,
            TrainingAxis::Step => c.step,
        };
        let placed = runs
            .iter()
            .flat_map(|r| &r.checkpoints)
            .any(|c| x_of(c).is_some());
        if !placed {
            let axis = if o.x == TrainingAxis::Tokens {
                "token count"
            } else {
                "step"
            };
            let files: Vec<&str> = runs
                .iter()
                .flat_map(|r| r.checkpoints.iter().map(|c| c.path.as_str()))
                .collect();
            bail!(
                    "nothing to draw on a trajectory: {} {} no training {axis} (none in the metadata, the pickle or the file name), \
                     so there is no x to place {} at; `rankscope figure waterfall` shows the spectrum, `rankscope spectra` the numbers",
                    files.join(", "),
                    if files.len() == 1 { "has" } else { "have" },
                    if files.len() == 1 { "it" } else { "them" }
                );
        }
        trajectory_figure(&runs, o.layer, o.matrix, o.metric, o.x)
    };
    emit(&spec, &o.files, o.json)
}
