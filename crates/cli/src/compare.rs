//! `rankscope compare`: the study's comparisons of conditions (METRICS.md "Statistics across runs")
//! from checkpoints — runs grouped into conditions, the activation metric of Figure 1 (and the
//! held-out loss) computed by the same code as `probe`, then the core's effects, tests, Holm's
//! correction and verdicts ([`rankscope_core::analysis::compare`]).

use crate::args;
use crate::inspect::{inventory_of, run_name, run_plan};
use crate::probe::read_tokens;
use crate::surgery::load_model;
use crate::text::{errln, outln};
use anyhow::{bail, Context, Result};
use rankscope_core::analysis::activations::{ActivationRun, KeyVariant};
use rankscope_core::analysis::compare::inputs::{activation_metric_values, heldout_loss_values};
use rankscope_core::analysis::compare::verdict::{layer_cells, num};
use rankscope_core::analysis::compare::{
    compare_all, plan_pairs, CompareOptions, Comparison, ComparisonSet, Effect, Margin,
    MetricValues, Pair, Resampling,
};
use rankscope_core::analysis::conditions::{group_conditions, run_seeds, Condition, UserGroup};
use rankscope_core::analysis::importance::layer_mean_resamples;
use rankscope_core::analysis::pipeline::{Plan, RunTokens, SpectraFailure};
use rankscope_core::analysis::spectrum::weight_metrics;
use rankscope_core::analysis::trajectory::{Matrix, Metric};
use rankscope_core::formats::tokens::TokenBatch;
use rankscope_core::inventory::Inventory;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

/// The plan's comparisons of conditions: effects, tests, verdicts
///
/// The plan's comparisons of conditions (A1/A2, A1/B1, C1/C2, A2/B2, or --pair): runs grouped by
/// name (A1, A1_seed43, A1-s2, A1/seed3), metadata/log seed or --group; effect at the final
/// shared checkpoint, over the trajectory and per layer; Welch and exact permutation tests across
/// seeds, else the eval-sequence bootstrap; Wilcoxon across (layer, head) units with one seed;
/// Holm; verdicts (METRICS.md)
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The runs' checkpoints or folders
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// The eval batch: the default metric (K PR of the activations) and the held-out loss both
    /// come from forward passes
    #[arg(long, value_name = "TOKENS")]
    eval: PathBuf,
    /// A held-out batch: compares the held-out loss too
    #[arg(long, value_name = "TOKENS")]
    heldout: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) cmp: ComparisonArgs,
    #[arg(long, value_parser = args::matrix(), default_value = "k")]
    matrix: Matrix,
    /// Where K is taken
    #[arg(long, value_parser = args::variant(), default_value = "post_norm")]
    variant: KeyVariant,
    /// Print conditions and comparisons as JSON
    #[arg(long)]
    json: bool,
}

/// The flags `compare` and `report` share: which conditions, which metric, which tests.
#[derive(clap::Args, Debug)]
pub(crate) struct ComparisonArgs {
    /// Compare conditions X and Y (repeatable; default: the plan's pairs present)
    #[arg(long = "pair", value_name = "X,Y", value_parser = parse_pair)]
    pub pairs: Vec<Pair>,
    /// A condition made of the named runs (repeatable)
    #[arg(long = "group", value_name = "NAME=RUN,RUN…", value_parser = parse_group)]
    pub groups: Vec<UserGroup>,
    #[arg(long, value_parser = args::metric(), default_value = "pr")]
    pub metric: Metric,
    /// Equivalence margin: `N%` of the pooled mean, or an absolute difference [default: 5%]
    #[arg(long, value_name = "N%|ABS", value_parser = parse_margin)]
    pub margin: Option<Margin>,
    /// Confidence level of the intervals, in (0, 1)
    #[arg(long, default_value_t = CompareOptions::default().level, value_parser = parse_level)]
    pub level: f64,
    /// Bootstrap resamples of the eval sequences (0: none)
    #[arg(long, default_value_t = 1000)]
    pub boot: usize,
}

impl ComparisonArgs {
    pub fn compare_options(&self) -> CompareOptions {
        let mut o = CompareOptions {
            level: self.level,
            ..CompareOptions::default()
        };
        if let Some(m) = self.margin {
            o.margin = m;
        }
        o
    }
}

fn parse_margin(v: &str) -> Result<Margin, String> {
    match v.strip_suffix('%') {
        Some(pct) => pct
            .parse::<f64>()
            .map(|p| Margin::FractionOfPooledMean(p / 100.0))
            .map_err(|_| format!("`{v}`: `N%` or a number")),
        None => v
            .parse()
            .map(Margin::Absolute)
            .map_err(|_| format!("`{v}`: `N%` (of the pooled mean) or a number")),
    }
}

fn parse_level(v: &str) -> Result<f64, String> {
    match v.parse::<f64>() {
        Ok(l) if l > 0.0 && l < 1.0 => Ok(l),
        _ => Err(format!("must lie between 0 and 1, not `{v}`")),
    }
}

pub(crate) fn parse_pair(v: &str) -> Result<Pair> {
    match v.split_once(',') {
        Some((x, y)) if !x.trim().is_empty() && !y.trim().is_empty() => Ok(Pair {
            x: x.trim().to_string(),
            y: y.trim().to_string(),
        }),
        _ => bail!("--pair takes two conditions, `X,Y` (got `{v}`)"),
    }
}

pub(crate) fn parse_group(v: &str) -> Result<UserGroup> {
    let Some((name, runs)) = v.split_once('=') else {
        bail!("--group takes `NAME=RUN,RUN…` (got `{v}`)")
    };
    let runs: Vec<String> = runs
        .split(',')
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
        .collect();
    if name.trim().is_empty() || runs.is_empty() {
        bail!("--group takes `NAME=RUN,RUN…` (got `{v}`)");
    }
    Ok(UserGroup {
        name: name.trim().to_string(),
        runs,
    })
}

/// `rankscope compare <paths…> --eval E [--heldout H] [--pair X,Y]… [--group NAME=RUN,…]…`
pub fn run(o: Args) -> Result<()> {
    let eval_path = &o.eval;
    let eval = read_tokens(eval_path)?;
    let heldout = o.heldout.as_deref().map(read_tokens).transpose()?;
    let (inv, real) = inventory_of(&o.paths)?;
    let (conditions, pairs) = conditions_and_pairs(&inv, &o.cmp.groups, &o.cmp.pairs)?;
    let wanted = runs_of(&conditions, &pairs);
    let mut needed = inv.clone();
    needed.runs.retain(|r| wanted.contains(&r.name));
    let (runs, failures) = spectra(
        &needed,
        &real,
        (eval_path, &eval),
        o.heldout.as_deref().zip(heldout.as_ref()),
        o.variant,
    );
    let choice = MetricChoice {
        metric: o.cmp.metric,
        matrix: o.matrix,
        variant: o.variant,
    };
    let (set, notes) = comparisons(
        &conditions,
        &pairs,
        &runs,
        &needed,
        &real,
        &eval,
        heldout.is_some(),
        choice,
        o.cmp.boot,
        o.cmp.compare_options(),
    );
    if o.json {
        let out = serde_json::json!({
            "eval": { "path": eval_path, "batch": eval.batch, "seq_len": eval.seq_len },
            "heldout": o.heldout,
            "conditions": conditions,
            "comparisons": set,
            "notes": notes,
            "failures": failures,
        });
        crate::text::print_json(&out)?;
    } else {
        print_text(&conditions, &set, &notes);
    }
    for f in &failures {
        errln!("{}: {}", f.path, f.message);
    }
    if set.comparisons.is_empty() {
        bail!(
            "no comparison could be made: {}",
            set.failed
                .iter()
                .map(|f| f.message.clone())
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    Ok(())
}

/// Which activation metric is compared (and timed).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct MetricChoice {
    pub metric: Metric,
    pub matrix: Matrix,
    pub variant: KeyVariant,
}

/// The runs grouped into conditions (names, seeds, `groups`) and the pairs to compare: `pairs`,
/// or the plan's pairs among the conditions (`compare` and `report`).
pub(crate) fn conditions_and_pairs(
    inv: &Inventory,
    groups: &[UserGroup],
    pairs: &[Pair],
) -> Result<(Vec<Condition>, Vec<Pair>)> {
    let conditions = group_conditions(&run_seeds(inv), groups)?;
    let names: Vec<&str> = conditions.iter().map(|c| c.name.as_str()).collect();
    let pairs = if pairs.is_empty() {
        plan_pairs(&names)
    } else {
        pairs.to_vec()
    };
    if pairs.is_empty() {
        bail!(
            "none of the plan's pairs (A1/A2, A1/B1, C1/C2, A2/B2) is among the conditions ({}); name one with --pair X,Y",
            names.join(", ")
        );
    }
    Ok((conditions, pairs))
}

/// The comparisons of `pairs` on the chosen activation metric, and on the held-out loss when
/// `heldout` (the runs' checkpoints carry it), Holm-corrected together; with the notes on the
/// eval-sequence bootstrap (`compare` and `report`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn comparisons(
    conditions: &[Condition],
    pairs: &[Pair],
    runs: &[ActivationRun],
    inv: &Inventory,
    real: &[PathBuf],
    eval: &TokenBatch,
    heldout: bool,
    choice: MetricChoice,
    boot: usize,
    options: CompareOptions,
) -> (ComparisonSet, Vec<String>) {
    let mut values = activation_metric_values(runs, choice.variant, choice.matrix, choice.metric);
    let mut notes = Vec::new();
    attach_resamples(
        &mut values,
        conditions,
        pairs,
        inv,
        real,
        eval,
        choice,
        boot,
        &mut notes,
    );
    let mut tables = vec![values];
    if heldout {
        tables.push(heldout_loss_values(runs));
    }
    (compare_all(conditions, &tables, pairs, options), notes)
}

/// The runs of every condition in `pairs`.
pub(crate) fn runs_of(conditions: &[Condition], pairs: &[Pair]) -> Vec<String> {
    conditions
        .iter()
        .filter(|c| pairs.iter().any(|p| p.x == c.name || p.y == c.name))
        .flat_map(|c| c.run_names())
        .collect()
}

/// Activation spectra (and held-out loss) of every checkpoint of `inv`, as `probe` computes them
/// (the page's planner, on the `--threads` pool).
pub(crate) fn spectra(
    inv: &Inventory,
    real: &[PathBuf],
    eval: (&Path, &TokenBatch),
    heldout: Option<(&Path, &TokenBatch)>,
    variant: KeyVariant,
) -> (Vec<ActivationRun>, Vec<SpectraFailure>) {
    let show = std::io::stderr().is_terminal();
    // Each batch named by the path the user gave (captions and sessions show it).
    let named = |(p, b): (&Path, &TokenBatch)| (p.display().to_string(), b.clone());
    let tokens = RunTokens {
        eval: Some(named(eval)),
        heldout: heldout.map(named),
    };
    let plan = Plan::spectra(inv, &|_| tokens.clone(), &[variant]);
    let results = run_plan(inv, real, &plan, &|done, total| {
        if show {
            let _ = write!(
                std::io::stderr(),
                "\r\x1b[2K{done} of {total} checkpoints probed"
            );
        }
    });
    if show {
        errln!();
    }
    (results.activation_runs(&run_name(inv)), results.failures)
}

/// With fewer than two seeds on a side of some pair, each run of that pair gets its metric on
/// resampled eval sequences at every checkpoint (Figure 3's bootstrap, one seed for all runs so
/// the draws are paired). Only for K after the key norm (the keys the forward pass collects).
#[allow(clippy::too_many_arguments)]
fn attach_resamples(
    values: &mut MetricValues,
    conditions: &[Condition],
    pairs: &[Pair],
    inv: &Inventory,
    real: &[PathBuf],
    eval: &TokenBatch,
    choice: MetricChoice,
    boot: usize,
    notes: &mut Vec<String>,
) {
    let size = |name: &str| {
        conditions
            .iter()
            .find(|c| c.name == name)
            .map_or(0, |c| c.runs.len())
    };
    let thin: Vec<&Pair> = pairs
        .iter()
        .filter(|p| size(&p.x) < 2 || size(&p.y) < 2)
        .collect();
    if thin.is_empty() || boot == 0 {
        return;
    }
    if choice.matrix != Matrix::K || choice.variant != KeyVariant::PostNorm {
        notes.push(format!(
            "no eval-sequence bootstrap for {} (it resamples K after the key norm only)",
            values.metric.short
        ));
        return;
    }
    let runs = runs_of(conditions, &thin.into_iter().cloned().collect::<Vec<_>>());
    let seed = 0;
    let metric = choice.metric;
    for run in inv.runs.iter().filter(|r| runs.contains(&r.name)) {
        let Some(rm) = values.runs.iter_mut().find(|v| v.run == run.name) else {
            continue;
        };
        for c in &run.checkpoints {
            let Some(point) = rm
                .points
                .iter_mut()
                .find(|p| p.tokens == c.tokens && p.step == c.step)
            else {
                continue;
            };
            let drawn = real.get(c.file).context("file not found").and_then(|path| {
                let model = load_model(path)?;
                let keys = model.collect_keys(eval, None)?;
                let a = model.arch();
                let f = |sv: &[f64]| metric.of(&weight_metrics(sv).ok()?);
                Ok(layer_mean_resamples(
                    &keys,
                    a.n_layers,
                    a.n_kv_heads,
                    eval.seq_len,
                    boot,
                    seed,
                    &f,
                )?)
            });
            match drawn {
                Ok(d) => point.resamples = Some(d),
                Err(e) => notes.push(format!("{}: no eval-sequence bootstrap: {e:#}", c.path)),
            }
        }
    }
    values.resampling = Some(Resampling {
        n_boot: boot,
        n_sequences: eval.batch,
        seed,
    });
}

fn print_text(conditions: &[Condition], set: &ComparisonSet, notes: &[String]) {
    outln!("conditions:");
    for c in conditions {
        let runs: Vec<String> = c
            .runs
            .iter()
            .map(|r| match r.seed {
                Some(s) => format!("{} (seed {s} from its {})", r.run, r.seed_from.label()),
                None => format!("{} (seed not stated)", r.run),
            })
            .collect();
        outln!(
            "  {} = {}  [{}]",
            c.name,
            runs.join(", "),
            c.grouped_by.label()
        );
    }
    for c in &set.comparisons {
        print_comparison(c);
    }
    for f in &set.failed {
        outln!(
            "\n{} vs {} ({}): not compared: {}",
            f.x,
            f.y,
            f.metric,
            f.message
        );
    }
    if !set.holm_family.is_empty() {
        outln!(
            "\nHolm's correction over {} tests: {}",
            set.holm_family.len(),
            set.holm_family.join("; ")
        );
    }
    for n in notes {
        outln!("note: {n}");
    }
}

fn print_comparison(c: &Comparison) {
    outln!();
    let q = c
        .question
        .as_ref()
        .map_or(String::new(), |q| format!(" — {}", q.question));
    outln!("{} vs {}{q}", c.x, c.y);
    outln!("  metric: {}", c.metric.label);
    outln!(
        "  runs: {} vs {}; {} shared checkpoints",
        c.runs_x.join(", "),
        c.runs_y.join(", "),
        c.shared.len()
    );
    print_effect(&c.final_effect);
    if let Some(t) = &c.trajectory {
        print_effect(t);
    }
    if !c.layers.is_empty() {
        outln!(
            "  per layer at the final checkpoint (x − y, uncorrected): {}",
            layer_cells(&c.layers)
        );
    }
    if let Some(u) = &c.units {
        outln!(
            "  units: Wilcoxon signed-rank {} vs {} at {}: T = {}, p = {} (n = {}, {} zeros dropped{}); {}",
            u.run_x,
            u.run_y,
            u.at,
            u.test.statistic,
            num(u.test.p),
            u.test.n,
            u.test.zeros,
            if u.test.ties { ", ties at average ranks" } else { "" },
            u.caveat
        );
    }
    for n in &c.notes {
        outln!("  note: {n}");
    }
}

fn print_effect(e: &Effect) {
    let ci = e.interval.map_or("no interval".to_string(), |[lo, hi]| {
        format!(
            "{:.0}% interval [{}, {}]",
            e.level * 100.0,
            num(lo),
            num(hi)
        )
    });
    outln!(
        "  {}: {} vs {}, difference {}, {ci}",
        e.what,
        num(e.mean_x),
        num(e.mean_y),
        num(e.difference)
    );
    let mut tests = Vec::new();
    if let Some(w) = &e.welch {
        tests.push(format!(
            "Welch t = {}, df = {}, p = {}",
            num(w.t),
            num(w.df),
            num(w.p)
        ));
    }
    if let Some(p) = e.p_holm {
        tests.push(format!("Holm p = {}", num(p)));
    }
    if let Some(p) = &e.permutation {
        tests.push(format!(
            "exact permutation p = {} ({} relabelings)",
            num(p.p),
            p.relabelings
        ));
    }
    if let Some(eq) = &e.equivalence {
        let tost = eq
            .tost
            .map_or(String::new(), |t| format!(", TOST p = {}", num(t.p)));
        tests.push(format!(
            "equivalence at ±{}: {}{tost}",
            num(eq.margin),
            if eq.passed { "passed" } else { "not shown" }
        ));
    }
    if !tests.is_empty() {
        outln!("    {}", tests.join("; "));
    }
    outln!("    uncertainty: {}", e.uncertainty.describe());
    outln!("    verdict: {} ({})", e.verdict.sentence, e.verdict.reason);
}
