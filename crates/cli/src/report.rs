//! `rankscope report`: the study report (HTML and its Markdown twin,
//! [`rankscope_core::report`]) from checkpoints, assembled by the same code as `compare`,
//! `collapse`, `surgery`, `scatter` and `figure layers`: the activation spectra are computed once
//! and every part reads them; the surgery (slow: a forward pass per fraction, strategy and seed)
//! runs only with `--surgery CHECKPOINT`, and the report says so when it did not.

use crate::compare::{comparisons, conditions_and_pairs, spectra, ComparisonArgs, MetricChoice};
use crate::inspect::inventory_of;
use crate::probe::read_tokens;
use crate::surgery::{layer_pr_run, scatter, sweep, Sweep};
use crate::text::{errln, outln};
use anyhow::{bail, Context, Result};
use rankscope_core::analysis::activations::{ActivationRun, KeyVariant};
use rankscope_core::analysis::collapse::{CollapseRule, PlateauRule};
use rankscope_core::analysis::compare::inputs::activation_metric_values;
use rankscope_core::analysis::conditions::{group_conditions, run_seeds, Condition};
use rankscope_core::analysis::importance::DEFAULT_PERMUTATIONS;
use rankscope_core::analysis::study_figures::layer_pr_figure;
use rankscope_core::analysis::trajectory::{
    trajectory_figure_from, waterfall_figure_from, CheckpointSel, LayerSel, Matrix, RunSpectra,
    SpectraSource, TrainingAxis,
};
use rankscope_core::formats::tokens::TokenBatch;
use rankscope_core::inventory::Inventory;
use rankscope_core::parallel;
use rankscope_core::report::{
    collapse_section, definitions, render, software, BatchFacts, FigureSlot, MarkdownFigures,
    Methods, Part, ReportInput, ReportOptions, SurgerySection,
};
use std::path::{Path, PathBuf};

/// The study report: HTML (self-contained) and its Markdown twin
///
/// report.html (self-contained: inline SVG figures and CSS, no external requests, prints well)
/// and report.md beside it (with its figures as SVG files): the figures, a table per comparison,
/// the collapse timing, the surgery verdict (only with --surgery: it is slow), the methods, and a
/// summary that claims only what the statistics support, each claim linked to its table row;
/// every part not computed is listed with the reason.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The runs' checkpoints or folders
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// The eval batch: every figure and comparison reads the activation spectra of the forward
    /// pass on it
    #[arg(long, value_name = "TOKENS")]
    eval: PathBuf,
    /// A held-out batch: the held-out loss is compared too, and the surgery needs it
    #[arg(long, value_name = "TOKENS")]
    heldout: Option<PathBuf>,
    /// The HTML file; the Markdown twin (and its SVG figures) is written beside it
    #[arg(
        short = 'o',
        long = "out",
        value_name = "FILE",
        default_value = "report.html"
    )]
    out: PathBuf,
    /// The report's title
    #[arg(long, default_value = "Rank-collapse study")]
    title: String,
    #[command(flatten)]
    cmp: ComparisonArgs,
    /// Collapse onset: the first checkpoint at or below (1 − f) × the first value
    #[arg(long, default_value_t = CollapseRule::default().fraction)]
    fraction: f64,
    /// A drop is sudden when one interval holds at least this share of the total drop
    #[arg(long, default_value_t = CollapseRule::default().sudden_share)]
    sudden: f64,
    /// Run the surgery (Figures 4–5 and the verdict) on this checkpoint (slow; needs --heldout)
    #[arg(long, value_name = "CHECKPOINT", requires = "heldout")]
    surgery: Option<PathBuf>,
    /// The surgery's pruned fractions [default: 0, 0.1, …, 0.9]
    #[arg(long, value_name = "P,P,…", value_delimiter = ',')]
    fractions: Option<Vec<f64>>,
    /// Random-mask seeds of the surgery
    #[arg(long, default_value_t = 5)]
    seeds: usize,
    /// The surgery verdict's margin, in (0, 0.5)
    #[arg(long, default_value_t = 0.25)]
    surgery_margin: f64,
    /// Permutations of the Spearman test of Figure 5
    #[arg(long, default_value_t = DEFAULT_PERMUTATIONS)]
    permutations: usize,
}

impl Args {
    fn collapse_rule(&self) -> CollapseRule {
        CollapseRule {
            fraction: self.fraction,
            sudden_share: self.sudden,
        }
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// `rankscope report <checkpoints or folders…> --eval E [--heldout H] [-o report.html] …`
pub fn run(o: Args) -> Result<()> {
    if o.out.extension().is_some_and(|e| e == "md") {
        bail!("-o names the HTML file (report.html); the Markdown twin is written beside it");
    }
    let eval_path = &o.eval;
    let eval = read_tokens(eval_path)?;
    let heldout = o.heldout.as_deref().map(read_tokens).transpose()?;
    let (inv, real) = inventory_of(&o.paths)?;
    // A bad --group is the user's error: refuse it rather than report without it.
    let conditions = group_conditions(&run_seeds(&inv), &o.cmp.groups)?;
    let variant = KeyVariant::PostNorm;
    let choice = MetricChoice {
        metric: o.cmp.metric,
        matrix: Matrix::K,
        variant,
    };
    let (runs, failures) = spectra(
        &inv,
        &real,
        (eval_path, &eval),
        o.heldout.as_deref().zip(heldout.as_ref()),
        variant,
    );
    let mut notes: Vec<String> = failures
        .iter()
        .map(|f| format!("{}: not analysed: {}", f.path, f.message))
        .collect();
    let run_spectra: Vec<RunSpectra> = runs
        .iter()
        .map(|r| r.run_spectra(variant))
        .filter(|r| !r.checkpoints.is_empty())
        .collect();

    let comparisons = match conditions_and_pairs(&inv, &o.cmp.groups, &o.cmp.pairs) {
        Ok((conditions, pairs)) => {
            let (set, mut n) = comparisons(
                &conditions,
                &pairs,
                &runs,
                &inv,
                &real,
                &eval,
                heldout.is_some(),
                choice,
                o.cmp.boot,
                o.cmp.compare_options(),
            );
            notes.append(&mut n);
            Part::Computed(set)
        }
        Err(e) => Part::NotComputed(format!("{e:#}")),
    };

    let values = activation_metric_values(&runs, variant, choice.matrix, choice.metric);
    let collapse = if values.metric.rank_like {
        Part::Computed(collapse_section(
            &inv,
            &values,
            o.collapse_rule(),
            PlateauRule::default(),
        ))
    } else {
        Part::NotComputed(format!(
            "collapse timing reads a fall of a rank metric (pr, pr_eig, r90, erank, stable_rank); `{}` is not one",
            o.cmp.metric.key()
        ))
    };

    let mut figures = trajectory_figures(&run_spectra, &o, variant);
    figures.push(layers_figure(&runs, &inv, &real, &conditions, &eval, &o));
    let surgery = surgery_parts(&o, &eval, heldout.as_ref(), &mut figures);

    let input = ReportInput {
        title: o.title.clone(),
        figures,
        conditions,
        comparisons,
        collapse,
        surgery,
        methods: Methods {
            eval: Some(BatchFacts::of(file_name(eval_path), &eval)),
            heldout: o
                .heldout
                .as_deref()
                .zip(heldout.as_ref())
                .map(|(p, b)| BatchFacts::of(file_name(p), b)),
            definitions: definitions(&values.metric.short, &values.metric.label),
            software: software(),
        },
        notes,
    };
    let stem = o
        .out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "report".into());
    let report = render(
        &input,
        &ReportOptions {
            markdown_figures: MarkdownFigures::Files { stem },
            ..ReportOptions::default()
        },
    )?;
    let dir = o.out.parent().unwrap_or(Path::new("."));
    let md = o.out.with_extension("md");
    let write = |path: &Path, text: &str| {
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
    };
    write(&o.out, &report.html)?;
    write(&md, &report.markdown)?;
    for f in &report.figure_files {
        write(&dir.join(&f.name), &f.svg)?;
    }
    outln!(
        "wrote {} and {} (with {} figure files beside it)",
        o.out.display(),
        md.display(),
        report.figure_files.len()
    );
    for m in &report.missing {
        outln!("not in the report: {m}");
    }
    for f in &failures {
        errln!("{}: {}", f.path, f.message);
    }
    Ok(())
}

/// Figures 1 and 2 from the activation spectra every part shares.
fn trajectory_figures(runs: &[RunSpectra], o: &Args, variant: KeyVariant) -> Vec<FigureSlot> {
    let source = SpectraSource::Activations(variant);
    let (t1, t2) = (
        "Figure 1: rank trajectory (K of the activations vs training tokens)",
        "Figure 2: singular-value waterfall at the final checkpoint",
    );
    if runs.is_empty() {
        let why = "no checkpoint could be analysed on the eval batch (see Notes)";
        return vec![FigureSlot::missing(t1, why), FigureSlot::missing(t2, why)];
    }
    let placed = runs
        .iter()
        .flat_map(|r| &r.checkpoints)
        .any(|c| c.tokens.is_some());
    let fig1 = if placed {
        FigureSlot::computed(
            t1,
            trajectory_figure_from(
                source,
                runs,
                LayerSel::Mean,
                Matrix::K,
                o.cmp.metric,
                TrainingAxis::Tokens,
            ),
        )
    } else {
        FigureSlot::missing(
            t1,
            "no checkpoint has a training token count, so none can be placed on a trajectory",
        )
    };
    let fig2 = FigureSlot::computed(
        t2,
        waterfall_figure_from(
            source,
            runs,
            CheckpointSel::Final,
            LayerSel::Mean,
            Matrix::K,
            None,
            true,
        ),
    );
    vec![fig1, fig2]
}

/// Figure 3: K PR per layer at each run's final checkpoint, with bootstrap CIs — the plan's
/// C1 beside C2 when both conditions are there, else every run.
#[allow(clippy::too_many_arguments)]
fn layers_figure(
    runs: &[ActivationRun],
    inv: &Inventory,
    real: &[PathBuf],
    conditions: &[Condition],
    eval: &TokenBatch,
    o: &Args,
) -> FigureSlot {
    let title = "Figure 3: K PR per layer at the final checkpoint";
    let data_pair: Vec<String> = ["C1", "C2"]
        .iter()
        .filter_map(|name| conditions.iter().find(|c| c.name == *name))
        .flat_map(|c| c.run_names())
        .collect();
    let wanted = |run: &str| data_pair.len() < 2 || data_pair.iter().any(|r| r == run);
    let finals: Vec<(usize, String)> = runs
        .iter()
        .filter(|r| wanted(&r.run))
        .filter_map(|r| Some((r.color, r.checkpoints.last()?.path.clone())))
        .collect();
    if finals.is_empty() {
        return FigureSlot::missing(title, "no run has an analysed checkpoint");
    }
    // The inventory names files as shown to the user; `real` holds where each is on disk.
    let made = parallel::map(&finals, |(color, shown)| {
        let path = inv
            .files
            .iter()
            .position(|f| &f.path == shown)
            .and_then(|i| real.get(i))
            .with_context(|| format!("{shown}: cannot find the file again"))?;
        layer_pr_run(path, *color, eval, &o.eval, o.cmp.boot)
    });
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    for (r, (_, shown)) in made.into_iter().zip(&finals) {
        match r {
            Ok(run) => ok.push(run),
            Err(e) => failed.push(format!("{shown}: {e:#}")),
        }
    }
    if ok.is_empty() {
        return FigureSlot::missing(
            title,
            format!("no final checkpoint could be run: {}", failed.join("; ")),
        );
    }
    let sources = finals.iter().map(|(_, p)| p.clone()).collect();
    let mut spec = layer_pr_figure(&ok, o.cmp.boot, sources);
    if !failed.is_empty() {
        spec.caption
            .push_str(&format!(" Left out: {}.", failed.join("; ")));
    }
    FigureSlot::computed(title, spec)
}

/// Figures 4 and 5 and the surgery verdict, on `--surgery CHECKPOINT`; each says why when absent.
fn surgery_parts(
    o: &Args,
    eval: &TokenBatch,
    heldout: Option<&TokenBatch>,
    figures: &mut Vec<FigureSlot>,
) -> Part<SurgerySection> {
    let (t4, t5) = (
        "Figure 4: key-dimension surgery (held-out loss vs % of key dimensions pruned)",
        "Figure 5: |γ| vs SVD importance",
    );
    let (Some(path), Some(heldout)) = (&o.surgery, heldout) else {
        let why = "not run: the surgery is slow (a forward pass per fraction, strategy and seed); \
                   pass --surgery CHECKPOINT (and --heldout) to include it";
        figures.push(FigureSlot::missing(t4, why));
        figures.push(FigureSlot::missing(
            t5,
            "not run: it is computed on the --surgery checkpoint, and none was given",
        ));
        return Part::NotComputed(why.into());
    };
    let surgery = match sweep(
        path,
        eval,
        &o.eval,
        heldout,
        o.heldout.as_deref().unwrap_or(path),
        o.fractions.as_deref(),
        o.seeds,
        o.surgery_margin,
    ) {
        Ok(Sweep {
            run,
            result,
            verdict,
            spec,
        }) => {
            figures.push(FigureSlot::computed(t4, spec));
            Part::Computed(SurgerySection {
                run,
                checkpoint: file_name(path),
                result,
                verdict,
            })
        }
        Err(e) => {
            let why = format!("{}: {e:#}", path.display());
            figures.push(FigureSlot::missing(t4, why.clone()));
            Part::NotComputed(why)
        }
    };
    figures.push(match scatter(path, eval, &o.eval, o.permutations) {
        Ok((_, _, spec)) => FigureSlot::computed(t5, spec),
        Err(e) => FigureSlot::missing(t5, format!("{}: {e:#}", path.display())),
    });
    surgery
}
