//! `rankscope probe`: activation spectra of checkpoints on an eval batch — K
//! per kv-head and Q per query head of every layer (METRICS.md
//! "Representations"), singular values in f64 and every rank metric — and the
//! held-out loss, as the page computes them.

use crate::args::Choice;
use crate::inspect::{inventory_of, nothing_to_analyse, run_name, run_plan};
use crate::merge::SessionArgs;
use crate::text::{errln, outln};
use anyhow::{bail, Result};
use rankscope_core::analysis::activations::{ActivationRun, KeyVariant};
use rankscope_core::analysis::pipeline::{Plan, RunTokens};
use rankscope_core::analysis::weights::HeadSpectrum;
use rankscope_core::formats::tokens::TokenBatch;
use rankscope_core::inventory::batches::{misfit, narrow_ids};
use rankscope_core::inventory::{Content, Inventory};
use rankscope_core::model::arch::Recognition;
use rankscope_core::session::BatchRecord;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

/// Activation spectra of K and Q on an eval batch, and the held-out loss
///
/// Forward pass on the eval batch: singular values (f64) and rank metrics of K per kv-head
/// (after k_norm, before RoPE by default; --variant for post_rope, raw, centered) and Q per
/// query head, every layer; with --heldout, the mean next-token cross-entropy on the held-out set
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Checkpoints or folders (folders are walked recursively)
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// The eval batch (token ids: safetensors, .npy or JSON)
    #[arg(long, value_name = "TOKENS")]
    eval: PathBuf,
    /// A held-out batch: adds each checkpoint's held-out loss
    #[arg(long, value_name = "TOKENS")]
    heldout: Option<PathBuf>,
    /// Print every spectrum and metric as JSON
    #[arg(long)]
    json: bool,
    /// Where K is taken (repeat for several; `all` for every one)
    #[arg(long = "variant", value_name = "VARIANT", value_parser = variants())]
    variant_sets: Vec<Variants>,
    /// No progress line on the terminal
    #[arg(short, long)]
    quiet: bool,
    #[command(flatten)]
    session: SessionArgs,
}

/// The key variants one `--variant` names (`all`: every one).
#[derive(Debug, Clone)]
struct Variants(Vec<KeyVariant>);

fn variants() -> Choice<Variants> {
    let names = KeyVariant::ALL
        .map(KeyVariant::key)
        .into_iter()
        .chain(["all"]);
    Choice::new("variant", names, |v| match v {
        "all" => Some(Variants(KeyVariant::ALL.to_vec())),
        v => KeyVariant::from_key(v).map(|v| Variants(vec![v])),
    })
}

impl Args {
    /// The variants asked for, in their order and each once (the default alone if none).
    fn variants(&self) -> Vec<KeyVariant> {
        let mut v: Vec<KeyVariant> = self.variant_sets.iter().flat_map(|s| s.0.clone()).collect();
        if v.is_empty() {
            v.push(KeyVariant::default());
        }
        v.sort();
        v.dedup();
        v
    }
}

/// A token batch (safetensors, .npy or JSON), recognised as the page does.
pub(crate) fn read_tokens(path: &Path) -> Result<TokenBatch> {
    let (inv, _) = inventory_of(&[path.to_path_buf()])?;
    let Some(entry) = inv.files.first() else {
        bail!("{}: not a file", path.display())
    };
    match &entry.content {
        Content::TokenBatch(batch) => Ok(batch.clone()),
        _ => bail!(
            "{}: not a token batch ({})",
            path.display(),
            entry.all_messages().join("; ")
        ),
    }
}

/// `rankscope probe --eval <tokens> [--heldout <tokens>] <checkpoints or folders…> [--json] [--variant V]…
/// [--shard I/N] [--session FILE]`
pub fn run(o: Args) -> Result<()> {
    let variants = o.variants();
    let eval = read_tokens(&o.eval)?;
    let heldout = o.heldout.as_deref().map(read_tokens).transpose()?;
    let (inv, real) = inventory_of(&o.paths)?;
    let selected = o.session.select(inv);
    let inv = &selected.inv;
    // Progress only on a terminal: one overwritten line on stderr, so stdout stays clean for --json.
    let show_progress = !o.quiet && std::io::stderr().is_terminal();
    warn_narrow_ids(inv, &o.eval, &eval);
    // The page's planner: every checkpoint's job with these batches, run on the `--threads`
    // pool; each reports when it is finished.
    let tokens = RunTokens {
        eval: Some((o.eval.display().to_string(), eval.clone())),
        heldout: o
            .heldout
            .as_ref()
            .zip(heldout.clone())
            .map(|(p, h)| (p.display().to_string(), h)),
    };
    let plan = Plan::spectra(inv, &|_| tokens.clone(), &variants);
    let results = run_plan(inv, &real, &plan, &|done, total| {
        if show_progress {
            let _ = write!(
                std::io::stderr(),
                "\r\x1b[2K{done} of {total} checkpoints probed"
            );
        }
    });
    let (runs, failures) = (results.activation_runs(&run_name(inv)), results.failures);
    if show_progress {
        errln!();
    }
    // Written even when every checkpoint failed: the merged session lists the failures.
    o.session.write(&selected, |s| {
        s.activations = runs.clone();
        s.failures = failures.clone();
        s.eval = Some(BatchRecord::of(&o.eval.display().to_string(), &eval));
        s.heldout = o
            .heldout
            .as_ref()
            .zip(heldout.as_ref())
            .map(|(p, h)| BatchRecord::of(&p.display().to_string(), h));
    })?;
    let report_failures = || {
        for f in &failures {
            errln!(
                "{}: {}",
                f.path,
                batch_blame(inv, &f.path, &o, &eval, heldout.as_ref())
                    .unwrap_or_else(|| f.message.clone())
            );
        }
    };
    // An empty shard (more shards than checkpoints) is not an error.
    if runs.is_empty() && !(selected.checkpoints == 0 && o.session.shard.is_some()) {
        report_failures();
        if failures.is_empty() {
            return Err(nothing_to_analyse(inv));
        }
        bail!(
            "no checkpoint could be probed ({} failed, above)",
            failures.len()
        );
    }
    if o.json {
        let out = serde_json::json!({
            "eval": { "path": o.eval, "batch": eval.batch, "seq_len": eval.seq_len },
            "heldout": heldout.as_ref().map(|h| serde_json::json!({ "path": o.heldout, "batch": h.batch, "seq_len": h.seq_len })),
            "variants": variants,
            "runs": runs,
            "failures": failures,
        });
        crate::text::print_json(&out)?;
    } else {
        print_text(&runs, &variants, &eval);
    }
    report_failures();
    Ok(())
}

/// When the checkpoint at `path` failed because a batch does not fit it,
/// the message that names the batch file (the forward pass only knows the
/// checkpoint).
fn batch_blame(
    inv: &Inventory,
    path: &str,
    o: &Args,
    eval: &TokenBatch,
    heldout: Option<&TokenBatch>,
) -> Option<String> {
    let f = inv.files.iter().find(|f| f.path == path)?;
    let Some(Recognition::Known(arch)) = &f.recognition else {
        return None;
    };
    misfit(&o.eval.display().to_string(), eval, arch).or_else(|| {
        let shown = o.heldout.as_ref()?.display().to_string();
        misfit(&shown, heldout?, arch)
    })
}

/// Warns once per vocabulary size when the eval batch's ids use under 1 % of
/// a model's vocabulary (byte ids under a BPE model).
fn warn_narrow_ids(inv: &Inventory, path: &Path, eval: &TokenBatch) {
    let mut vocabs: Vec<usize> = inv
        .files
        .iter()
        .filter_map(|f| match &f.recognition {
            Some(Recognition::Known(a)) => Some(a.vocab),
            _ => None,
        })
        .collect();
    vocabs.sort_unstable();
    vocabs.dedup();
    for v in vocabs {
        if let Some(w) = narrow_ids(&path.display().to_string(), eval, v) {
            errln!("warning: {w}");
        }
    }
}

fn head_line(label: &str, h: usize, s: &HeadSpectrum) -> String {
    let m = &s.metrics.spectrum;
    let sv: Vec<String> = s
        .singular_values
        .iter()
        .map(|v| format!("{v:.4}"))
        .collect();
    format!(
        "      {label}{h:<3} PR {:>7.4}  PR_eig {:>7.4}  r90 {:>3}  cond {:>10.3}  erank {:>7.4}  stable {:>7.4}  σ [{}]",
        m.pr,
        m.pr_eig,
        m.r90,
        m.cond,
        m.erank,
        m.stable_rank,
        sv.join(" ")
    )
}

fn print_text(runs: &[ActivationRun], variants: &[KeyVariant], eval: &TokenBatch) {
    outln!(
        "eval batch {}×{} tokens; K per kv-head, Q per query head; rows of each matrix = {}; SVD in f64, not centred unless stated",
        eval.batch,
        eval.seq_len,
        eval.batch * eval.seq_len
    );
    for run in runs {
        outln!("run {}", run.run);
        for c in &run.checkpoints {
            let s = &c.spectra;
            let loss = s.heldout_loss.map_or("–".into(), |l| format!("{l:.6}"));
            outln!(
                "  {}  (tokens {})  held-out loss {loss}",
                c.path,
                c.tokens.map_or("?".into(), |t| t.to_string())
            );
            for l in &s.layers {
                outln!("    layer {}", l.layer);
                for &v in variants {
                    if let Some(heads) = l.k_heads(v) {
                        outln!("     K ({})", v.k_where());
                        for (h, spec) in heads.iter().enumerate() {
                            outln!("{}", head_line("K", h, spec));
                        }
                    }
                }
                outln!("     Q (after q_norm, before RoPE)");
                for (h, spec) in l.q_heads.iter().enumerate() {
                    outln!("{}", head_line("Q", h, spec));
                }
            }
        }
    }
}
