//! `rankscope spectra` and `rankscope figure`: weight spectra of checkpoints,
//! and Figures 1–2 as SVG/PNG, with the page's numbers.

use crate::inspect::{inventory_of, nothing_to_analyse};
use crate::text::{errln, outln};
use anyhow::{bail, Context, Result};
use rankscope_core::analysis::collect::{collect_weight_spectra_blocking, SpectraFailure};
use rankscope_core::analysis::study::{
    checkpoint_value, layer_value, results_trajectory_figure, trajectory_figure, waterfall_figure,
    CheckpointSel, CheckpointSpectra, LayerSel, Matrix, Metric, RunSpectra, XAxis,
};
use rankscope_core::formats::logs::LogFormat;
use rankscope_core::inventory::{Content, Inventory};
use rankscope_core::source::FileSource;
use std::path::PathBuf;

/// The options both commands share, parsed from `--key value` pairs.
struct Options {
    paths: Vec<PathBuf>,
    json: bool,
    svg: Option<PathBuf>,
    png: Option<PathBuf>,
    metric: Metric,
    layer: LayerSel,
    matrix: Matrix,
    x: XAxis,
    log_y: bool,
    checkpoint: CheckpointSel,
    head: Option<usize>,
}

fn parse_options(args: &[String]) -> Result<Options> {
    let mut o = Options {
        paths: Vec::new(),
        json: false,
        svg: None,
        png: None,
        metric: Metric::Pr,
        layer: LayerSel::Mean,
        matrix: Matrix::K,
        x: XAxis::Tokens,
        log_y: false,
        checkpoint: CheckpointSel::Final,
        head: None,
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
            "--log-y" => o.log_y = true,
            "--svg" => o.svg = Some(value("--svg")?.into()),
            "--png" => o.png = Some(value("--png")?.into()),
            "--metric" => {
                let v = value("--metric")?;
                let keys: Vec<&str> = Metric::ALL.iter().map(|m| m.key()).collect();
                o.metric = Metric::from_key(&v)
                    .with_context(|| format!("unknown metric `{v}`; one of {}", keys.join(", ")))?;
            }
            "--layer" => {
                let v = value("--layer")?;
                o.layer = match v.as_str() {
                    "mean" => LayerSel::Mean,
                    n => LayerSel::Layer(n.parse().with_context(|| {
                        format!("--layer takes `mean` or a layer index, not `{n}`")
                    })?),
                };
            }
            "--matrix" => {
                o.matrix = match value("--matrix")?.as_str() {
                    "k" | "K" => Matrix::K,
                    "q" | "Q" => Matrix::Q,
                    v => bail!("--matrix takes k or q, not `{v}`"),
                }
            }
            "--x" => {
                o.x = match value("--x")?.as_str() {
                    "tokens" => XAxis::Tokens,
                    "step" => XAxis::Step,
                    v => bail!("--x takes tokens or step, not `{v}`"),
                }
            }
            "--checkpoint" => {
                let v = value("--checkpoint")?;
                o.checkpoint = match v.as_str() {
                    "final" => CheckpointSel::Final,
                    n => CheckpointSel::Index(n.parse().with_context(|| {
                        format!("--checkpoint takes `final` or an index, not `{n}`")
                    })?),
                };
            }
            "--head" => {
                o.head = Some(
                    value("--head")?
                        .parse()
                        .context("--head takes a head index")?,
                )
            }
            s if s.starts_with("--") => bail!("unknown option `{s}`"),
            s => o.paths.push(PathBuf::from(s)),
        }
    }
    if o.paths.is_empty() {
        bail!("give at least one checkpoint, log or folder");
    }
    Ok(o)
}

/// `real[i]` is the path of `inv.files[i]` on disk; each checkpoint is reopened there, the
/// checkpoints on the `--threads` pool.
fn spectra_of(inv: &Inventory, real: &[PathBuf]) -> (Vec<RunSpectra>, Vec<SpectraFailure>) {
    collect_weight_spectra_blocking(inv, &|i| real.get(i).and_then(|p| FileSource::open(p).ok()))
}

/// `rankscope spectra <checkpoints or folders…> [--json]`
pub fn run_spectra(args: &[String]) -> Result<()> {
    let o = parse_options(args)?;
    let (inv, real) = inventory_of(&o.paths)?;
    let (runs, failures) = spectra_of(&inv, &real);
    if runs.is_empty() {
        for f in &failures {
            errln!("{}: {}", f.path, f.message);
        }
        if failures.is_empty() {
            return Err(nothing_to_analyse(&inv));
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

/// `rankscope figure trajectory|waterfall <paths…> --svg out.svg [--png out.png] …`
pub fn run_figure(args: &[String]) -> Result<()> {
    let Some((which, rest)) = args.split_first() else {
        bail!("figure needs `trajectory` or `waterfall`")
    };
    let o = parse_options(rest)?;
    if o.svg.is_none() && o.png.is_none() && !o.json {
        bail!("say where the figure goes: --svg FILE, --png FILE or --json");
    }
    let (inv, real) = inventory_of(&o.paths)?;
    let (runs, failures) = spectra_of(&inv, &real);
    for f in &failures {
        errln!("{}: {}", f.path, f.message);
    }
    let spec = match which.as_str() {
        "trajectory" if runs.is_empty() => {
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
                return Err(
                    nothing_to_analyse(&inv).context("and no results.json among the inputs")
                );
            }
            let sources = inv
                .files
                .iter()
                .filter(|f| f.path.ends_with(".json"))
                .map(|f| f.path.clone())
                .collect();
            results_trajectory_figure(&imported, o.layer, sources)
        }
        "trajectory" => {
            // A trajectory places checkpoints by their training point: with
            // none known, it would be an empty plot.
            let x_of = |c: &CheckpointSpectra| match o.x {
                XAxis::Tokens => c.tokens,
                XAxis::Step => c.step,
            };
            let placed = runs
                .iter()
                .flat_map(|r| &r.checkpoints)
                .any(|c| x_of(c).is_some());
            if !placed {
                let axis = if o.x == XAxis::Tokens {
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
        }
        "waterfall" if runs.is_empty() => return Err(nothing_to_analyse(&inv)),
        "waterfall" => waterfall_figure(&runs, o.checkpoint, o.layer, o.matrix, o.head, o.log_y),
        other => bail!("unknown figure `{other}`: trajectory or waterfall"),
    };
    let (w, h) = (900, 560);
    if let Some(path) = &o.svg {
        let svg = rankscope_core::figures::draw::to_svg(&spec, w, h)?;
        std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &o.png {
        let png = rankscope_core::figures::render::to_png(&spec, w, h, 2.0)?;
        std::fs::write(path, png).with_context(|| format!("writing {}", path.display()))?;
    }
    if o.json {
        crate::text::print_json(&spec)?;
    }
    Ok(())
}
