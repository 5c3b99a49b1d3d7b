//! `rankscope probe`: activation spectra of checkpoints on an eval batch — K
//! per kv-head and Q per query head of every layer (METRICS.md
//! "Representations"), singular values in f64 and every rank metric — and the
//! held-out loss, as the page computes them.

use crate::inspect::{inventory_of, nothing_to_analyse};
use anyhow::{bail, Context, Result};
use rankscope_core::analysis::activations::{ActivationRun, KeyVariant};
use rankscope_core::analysis::collect::collect_activation_spectra_blocking;
use rankscope_core::analysis::weights::HeadSpectrum;
use rankscope_core::formats::tokens::TokenBatch;
use rankscope_core::inventory::Content;
use rankscope_core::source::FileSource;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

struct Options {
    paths: Vec<PathBuf>,
    eval: PathBuf,
    heldout: Option<PathBuf>,
    json: bool,
    variants: Vec<KeyVariant>,
    quiet: bool,
}

fn parse_options(args: &[String]) -> Result<Options> {
    let (mut paths, mut eval, mut heldout, mut json, mut variants, mut quiet) =
        (Vec::new(), None, None, false, Vec::new(), false);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .with_context(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "--json" => json = true,
            "--quiet" | "-q" => quiet = true,
            "--eval" => eval = Some(PathBuf::from(value("--eval")?)),
            "--heldout" => heldout = Some(PathBuf::from(value("--heldout")?)),
            "--variant" => {
                let v = value("--variant")?;
                if v == "all" {
                    variants.extend(KeyVariant::ALL);
                } else {
                    let keys: Vec<&str> = KeyVariant::ALL.iter().map(|v| v.key()).collect();
                    variants.push(KeyVariant::from_key(&v).with_context(|| {
                        format!("unknown variant `{v}`; one of {}, all", keys.join(", "))
                    })?);
                }
            }
            s if s.starts_with("--") => bail!("unknown option `{s}` for probe"),
            s => paths.push(PathBuf::from(s)),
        }
    }
    let Some(eval) = eval else {
        bail!("probe needs the eval batch: --eval <tokens file>")
    };
    if paths.is_empty() {
        bail!("probe needs at least one checkpoint or folder");
    }
    if variants.is_empty() {
        variants.push(KeyVariant::default());
    }
    variants.sort();
    variants.dedup();
    Ok(Options {
        paths,
        eval,
        heldout,
        json,
        variants,
        quiet,
    })
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

/// `rankscope probe --eval <tokens> [--heldout <tokens>] <checkpoints or folders…> [--json] [--variant V]…`
pub fn run(args: &[String]) -> Result<()> {
    let o = parse_options(args)?;
    let eval = read_tokens(&o.eval)?;
    let heldout = o.heldout.as_deref().map(read_tokens).transpose()?;
    let (inv, real) = inventory_of(&o.paths)?;
    // Progress only on a terminal: one overwritten line on stderr, so stdout stays clean for --json.
    let show_progress = !o.quiet && std::io::stderr().is_terminal();
    // Checkpoints run on the `--threads` pool; each reports when it is finished.
    let (runs, failures) = collect_activation_spectra_blocking(
        &inv,
        &|i| real.get(i).and_then(|p| FileSource::open(p).ok()),
        &eval,
        heldout.as_ref(),
        &o.variants,
        &|done, total| {
            if show_progress {
                let _ = write!(
                    std::io::stderr(),
                    "\r\x1b[2K{done} of {total} checkpoints probed"
                );
            }
        },
    );
    if show_progress {
        eprintln!();
    }
    if runs.is_empty() {
        for f in &failures {
            eprintln!("{}: {}", f.path, f.message);
        }
        return Err(nothing_to_analyse(&inv));
    }
    if o.json {
        let out = serde_json::json!({
            "eval": { "path": o.eval, "batch": eval.batch, "seq_len": eval.seq_len },
            "heldout": heldout.as_ref().map(|h| serde_json::json!({ "path": o.heldout, "batch": h.batch, "seq_len": h.seq_len })),
            "variants": o.variants,
            "runs": runs,
            "failures": failures,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_text(&runs, &o.variants, &eval);
    }
    for f in &failures {
        eprintln!("{}: {}", f.path, f.message);
    }
    Ok(())
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
    println!(
        "eval batch {}×{} tokens; K per kv-head, Q per query head; rows of each matrix = {}; SVD in f64, not centred unless stated",
        eval.batch,
        eval.seq_len,
        eval.batch * eval.seq_len
    );
    for run in runs {
        println!("run {}", run.run);
        for c in &run.checkpoints {
            let s = &c.spectra;
            let loss = s.heldout_loss.map_or("–".into(), |l| format!("{l:.6}"));
            println!(
                "  {}  (tokens {})  held-out loss {loss}",
                c.path,
                c.tokens.map_or("?".into(), |t| t.to_string())
            );
            for l in &s.layers {
                println!("    layer {}", l.layer);
                for &v in variants {
                    if let Some(heads) = l.k_heads(v) {
                        println!("     K ({})", v.k_where());
                        for (h, spec) in heads.iter().enumerate() {
                            println!("{}", head_line("K", h, spec));
                        }
                    }
                }
                println!("     Q (after q_norm, before RoPE)");
                for (h, spec) in l.q_heads.iter().enumerate() {
                    println!("{}", head_line("Q", h, spec));
                }
            }
        }
    }
}
