//! `rankscope report`: the study report (HTML and its Markdown twin,
//! [`rankscope_core::report`]) from checkpoints, assembled by the same code as `compare`,
//! `collapse`, `surgery`, `scatter` and `figure layers`: the activation spectra are computed once
//! and every part reads them; the surgery (slow: a forward pass per fraction, strategy and seed)
//! runs only with `--surgery CHECKPOINT`, and the report says so when it did not.

use crate::compare::{
    comparisons, conditions_and_pairs, parse_group, parse_pair, spectra, MetricChoice,
};
use crate::inspect::inventory_of;
use crate::probe::read_tokens;
use crate::surgery::{layer_pr_run, scatter, sweep, Sweep};
use crate::text::{errln, outln};
use anyhow::{bail, Context, Result};
use rankscope_core::analysis::activations::{ActivationRun, KeyVariant};
use rankscope_core::analysis::collapse::{CollapseRule, PlateauRule};
use rankscope_core::analysis::compare::inputs::activation_metric_values;
use rankscope_core::analysis::compare::{CompareOptions, Margin, Pair};
use rankscope_core::analysis::conditions::{group_conditions, run_seeds, Condition, UserGroup};
use rankscope_core::analysis::importance::DEFAULT_PERMUTATIONS;
use rankscope_core::analysis::study::{
    trajectory_figure_from, waterfall_figure_from, CheckpointSel, LayerSel, Matrix, Metric,
    RunSpectra, Source, XAxis,
};
use rankscope_core::analysis::study_figures::layer_pr_figure;
use rankscope_core::formats::tokens::TokenBatch;
use rankscope_core::inventory::Inventory;
use rankscope_core::parallel;
use rankscope_core::report::{
    collapse_section, definitions, render, software, BatchFacts, FigureSlot, MarkdownFigures,
    Methods, Part, ReportInput, ReportOptions, SurgerySection,
};
use std::path::{Path, PathBuf};

struct Options {
    paths: Vec<PathBuf>,
    eval: Option<PathBuf>,
    heldout: Option<PathBuf>,
    out: PathBuf,
    title: String,
    pairs: Vec<Pair>,
    groups: Vec<UserGroup>,
    metric: Metric,
    compare: CompareOptions,
    boot: usize,
    collapse: CollapseRule,
    surgery: Option<PathBuf>,
    fractions: Option<Vec<f64>>,
    seeds: usize,
    surgery_margin: f64,
    permutations: usize,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut o = Options {
        paths: Vec::new(),
        eval: None,
        heldout: None,
        out: PathBuf::from("report.html"),
        title: "Rank-collapse study".into(),
        pairs: Vec::new(),
        groups: Vec::new(),
        metric: Metric::Pr,
        compare: CompareOptions::default(),
        boot: 1000,
        collapse: CollapseRule::default(),
        surgery: None,
        fractions: None,
        seeds: 5,
        surgery_margin: 0.25,
        permutations: DEFAULT_PERMUTATIONS,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .with_context(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "--eval" => o.eval = Some(value("--eval")?.into()),
            "--heldout" => o.heldout = Some(value("--heldout")?.into()),
            "-o" | "--out" => o.out = value("-o")?.into(),
            "--title" => o.title = value("--title")?,
            "--pair" => o.pairs.push(parse_pair(&value("--pair")?)?),
            "--group" => o.groups.push(parse_group(&value("--group")?)?),
            "--metric" => {
                let v = value("--metric")?;
                o.metric = Metric::from_key(&v).with_context(|| format!("unknown metric `{v}`"))?;
            }
            "--margin" => {
                let v = value("--margin")?;
                o.compare.margin = match v.strip_suffix('%') {
                    Some(pct) => Margin::FractionOfPooledMean(
                        pct.parse::<f64>().context("--margin: `N%` or a number")? / 100.0,
                    ),
                    None => Margin::Absolute(
                        v.parse()
                            .context("--margin: `N%` (of the pooled mean) or a number")?,
                    ),
                };
            }
            "--level" => {
                o.compare.level = value("--level")?
                    .parse()
                    .context("--level takes a number like 0.95")?
            }
            "--boot" => o.boot = value("--boot")?.parse().context("--boot takes a count")?,
            "--fraction" => {
                o.collapse.fraction = value("--fraction")?
                    .parse()
                    .context("--fraction takes a number like 0.3")?
            }
            "--sudden" => {
                o.collapse.sudden_share = value("--sudden")?
                    .parse()
                    .context("--sudden takes a number like 0.5")?
            }
            "--surgery" => o.surgery = Some(value("--surgery")?.into()),
            "--fractions" => {
                let v = value("--fractions")?;
                o.fractions = Some(
                    v.split(',')
                        .map(|f| {
                            f.trim()
                                .parse::<f64>()
                                .with_context(|| format!("--fractions: `{f}` is not a number"))
                        })
                        .collect::<Result<Vec<_>>>()?,
                );
            }
            "--seeds" => o.seeds = value("--seeds")?.parse().context("--seeds takes a count")?,
            "--surgery-margin" => {
                o.surgery_margin = value("--surgery-margin")?
                    .parse()
                    .context("--surgery-margin takes a number like 0.25")?
            }
            "--permutations" => {
                o.permutations = value("--permutations")?
                    .parse()
                    .context("--permutations takes a count")?
            }
            s if s.starts_with('-') => bail!("unknown option `{s}` for report"),
            s => o.paths.push(PathBuf::from(s)),
        }
    }
    if o.paths.is_empty() {
        bail!("report needs the runs' checkpoints or folders");
    }
    if !(o.compare.level > 0.0 && o.compare.level < 1.0) {
        bail!("--level must lie between 0 and 1");
    }
    if o.surgery.is_some() && o.heldout.is_none() {
        bail!("--surgery needs the held-out batch (--heldout <tokens file>): the surgery measures the held-out loss");
    }
    if o.out.extension().is_some_and(|e| e == "md") {
        bail!("-o names the HTML file (report.html); the Markdown twin is written beside it");
    }
    Ok(o)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// `rankscope report <checkpoints or folders…> --eval E [--heldout H] [-o report.html] …`
pub fn run(args: &[String]) -> Result<()> {
    let o = parse(args)?;
    let Some(eval_path) = &o.eval else {
        bail!(
            "report needs the eval batch (--eval <tokens file>): every figure and comparison reads the activation \
             spectra of the forward pass on it"
        )
    };
    let eval = read_tokens(eval_path)?;
    let heldout = o.heldout.as_deref().map(read_tokens).transpose()?;
    let (inv, real) = inventory_of(&o.paths)?;
    // A bad --group is the user's error: refuse it rather than report without it.
    let conditions = group_conditions(&run_seeds(&inv), &o.groups)?;
    let variant = KeyVariant::PostNorm;
    let choice = MetricChoice {
        metric: o.metric,
        matrix: Matrix::K,
        variant,
    };
    let (runs, failures) = spectra(&inv, &real, &eval, heldout.as_ref(), variant);
    let mut notes: Vec<String> = failures
        .iter()
        .map(|f| format!("{}: not analysed: {}", f.path, f.message))
        .collect();
    let run_spectra: Vec<RunSpectra> = runs
        .iter()
        .map(|r| r.run_spectra(variant))
        .filter(|r| !r.checkpoints.is_empty())
        .collect();

    let comparisons = match conditions_and_pairs(&inv, &o.groups, &o.pairs) {
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
                o.boot,
                o.compare,
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
            o.collapse,
            PlateauRule::default(),
        ))
    } else {
        Part::NotComputed(format!(
            "collapse timing reads a fall of a rank metric (pr, pr_eig, r90, erank, stable_rank); `{}` is not one",
            o.metric.key()
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
fn trajectory_figures(runs: &[RunSpectra], o: &Options, variant: KeyVariant) -> Vec<FigureSlot> {
    let source = Source::Activations(variant);
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
                o.metric,
                XAxis::Tokens,
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
    o: &Options,
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
        layer_pr_run(path, *color, eval, &o.eval, o.boot)
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
    let mut spec = layer_pr_figure(&ok, o.boot, sources);
    if !failed.is_empty() {
        spec.caption
            .push_str(&format!(" Left out: {}.", failed.join("; ")));
    }
    FigureSlot::computed(title, spec)
}

/// Figures 4 and 5 and the surgery verdict, on `--surgery CHECKPOINT`; each says why when absent.
fn surgery_parts(
    o: &Options,
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
        &o.heldout,
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
