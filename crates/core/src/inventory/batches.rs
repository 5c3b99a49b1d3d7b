//! Which token batch goes with which model. A drop may hold several studies
//! (a byte-level model with its `eval_tokens.safetensors` at the root, a
//! 49 152-token Llama with its own `smollm2/eval_tokens.safetensors`); a
//! batch is matched to a model by folder proximity first, then by name, and
//! only if it fits the model (every id below its vocabulary, sequences no
//! longer than its context when the model states one). An ambiguous or
//! incompatible match is a warning that names the files, never a silent choice.
//!
//! A tokenizer mismatch that ids alone cannot reveal (byte ids 0–255 under a
//! BPE model, where they are valid ids of other tokens) is flagged when every
//! id of the batch lies in the lowest 1 % of the model's vocabulary: a batch
//! of real text under a BPE tokenizer uses ids across it.

use super::{Content, FileKind, Inventory, Status};
use crate::figures::spec::FigureSpec;
use crate::formats::tokens::TokenBatch;
use crate::model::arch::{Architecture, Recognition};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a batch is for, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Eval,
    Heldout,
}

/// The batches chosen for one model, and what to tell the user about them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchMatch {
    /// Index of the model (a checkpoint or a sharded model's index) in [`Inventory::files`].
    pub model: usize,
    /// Index of the eval batch in [`Inventory::files`], if one fits.
    pub eval: Option<usize>,
    /// Index of the held-out batch, if one fits (never the eval batch).
    pub heldout: Option<usize>,
    /// Ambiguous and incompatible candidates, a batch under 1 % of the vocabulary.
    pub warnings: Vec<String>,
}

/// The role a batch's file name gives it: `heldout`/`held_out`/`held-out`
/// is held-out, anything else may be the eval batch.
pub fn role_of(path: &str) -> Role {
    let name = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
    if ["heldout", "held_out", "held-out"]
        .iter()
        .any(|k| name.contains(k))
    {
        Role::Heldout
    } else {
        Role::Eval
    }
}

/// Why `batch` cannot be run through a model of vocabulary `vocab` and context `context`
/// (`None`: not stated), or `None` when it fits: an id beyond the vocabulary, or sequences
/// longer than the context (a learned position embedding or the RoPE cache has no row for the
/// later tokens, or the model was never trained on them).
pub fn why_not_fit(batch: &TokenBatch, vocab: usize, context: Option<usize>) -> Option<String> {
    if let Err(e) = batch.check_vocab(vocab) {
        return Some(e.to_string());
    }
    context.filter(|&c| batch.seq_len > c).map(|c| {
        format!(
            "its sequences are {} tokens long, over the context size {c}",
            batch.seq_len
        )
    })
}

/// Why `batch` (read from `path`) cannot be run through the model `arch`
/// ([`why_not_fit`]), or `None` when it fits. The message names the batch
/// file: a misfit is the batch's problem, not the checkpoint's.
pub fn misfit(path: &str, batch: &TokenBatch, arch: &Architecture) -> Option<String> {
    why_not_fit(batch, arch.vocab, arch.context)
        .map(|why| format!("token batch {path}: {why} of this model"))
}

/// A warning when every id of `batch` lies in the lowest 1 % of a vocabulary
/// of `vocab` ids (see the module docs), else `None`.
pub fn narrow_ids(path: &str, batch: &TokenBatch, vocab: usize) -> Option<String> {
    let max = batch.max_id()? as usize;
    ((max + 1) * 100 < vocab).then(|| {
        format!(
            "token batch {path}: every id is ≤ {max}, under 1 % of this model's vocabulary of {vocab}: \
             was it made with another tokenizer (byte ids under a BPE model)?"
        )
    })
}

/// Steps from the folder of `from` to the folder of `to` (up to their common
/// folder, then down): 0 for the same folder.
fn folder_distance(from: &str, to: &str) -> usize {
    let dirs = |p: &str| -> Vec<String> {
        let mut parts: Vec<String> = p.split('/').map(str::to_owned).collect();
        parts.pop();
        parts
    };
    let (a, b) = (dirs(from), dirs(to));
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    (a.len() - common) + (b.len() - common)
}

/// Batches for every recognised model of `inv`: per role, the nearest
/// batches by folder, of those the ones whose name says the role
/// (`eval…`/`heldout…`), of those the ones that fit. Every candidate nearer
/// than the one taken that does not fit, and a tie, is a warning.
pub fn match_batches(inv: &Inventory) -> Vec<BatchMatch> {
    let batches = token_batches(inv);
    let mut out = Vec::new();
    for run in &inv.runs {
        for c in &run.checkpoints {
            let Some(Recognition::Known(arch)) = &inv.files[c.file].recognition else {
                continue;
            };
            out.push(match_model(
                &batches,
                c.file,
                &c.path,
                arch,
                &BatchChoice::default(),
            ));
        }
    }
    out
}

/// The inventory's readable token batches: (file index, path, batch).
fn token_batches(inv: &Inventory) -> Vec<(usize, &str, &TokenBatch)> {
    inv.files
        .iter()
        .enumerate()
        .filter(|(_, f)| f.kind == FileKind::TokenBatch && f.status != Status::Error)
        .filter_map(|(i, f)| match &f.content {
            Content::TokenBatch(b) => Some((i, f.path.as_str(), b)),
            _ => None,
        })
        .collect()
}

/// The user's choice of batches for one run (paths; `None` = matched as above).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchChoice {
    pub eval: Option<String>,
    pub heldout: Option<String>,
}

/// One model's batches: the user's choice for a role when it fits (a choice
/// that does not fit is a warning, and the role is matched as if unchosen),
/// else the nearest fitting batch (see [`match_batches`]).
fn match_model(
    batches: &[(usize, &str, &TokenBatch)],
    model: usize,
    path: &str,
    arch: &Architecture,
    choice: &BatchChoice,
) -> BatchMatch {
    let mut m = BatchMatch {
        model,
        eval: None,
        heldout: None,
        warnings: Vec::new(),
    };
    let chosen = |want: &Option<String>, what: &str, warnings: &mut Vec<String>| {
        let want = want.as_deref()?;
        let Some(&(i, p, b)) = batches.iter().find(|x| x.1 == want) else {
            warnings.push(format!(
                "chosen {what} batch {want} is no longer among the files"
            ));
            return None;
        };
        match misfit(p, b, arch) {
            Some(why) => {
                warnings.push(format!("chosen {what} batch not used: {why}"));
                None
            }
            None => Some(i),
        }
    };
    m.eval = chosen(&choice.eval, "eval", &mut m.warnings)
        .or_else(|| pick(batches, path, arch, Role::Eval, None, &mut m.warnings));
    m.heldout = chosen(&choice.heldout, "held-out", &mut m.warnings)
        .filter(|h| Some(*h) != m.eval)
        .or_else(|| pick(batches, path, arch, Role::Heldout, m.eval, &mut m.warnings));
    for i in [m.eval, m.heldout].into_iter().flatten() {
        if let Some((_, p, b)) = batches.iter().find(|x| x.0 == i) {
            m.warnings.extend(narrow_ids(p, b, arch.vocab));
        }
    }
    m
}

/// A token batch as captions and exports name it: file, content digest, shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchRef {
    pub path: String,
    /// [`TokenBatch::content_digest`] (SHA-256 hex of shape and ids).
    pub digest: String,
    pub batch: usize,
    pub seq_len: usize,
}

impl BatchRef {
    fn of(path: &str, b: &TokenBatch) -> Self {
        Self {
            path: path.to_owned(),
            digest: b.content_digest(),
            batch: b.batch,
            seq_len: b.seq_len,
        }
    }

    /// `eval_tokens.safetensors (sha256 1a2b3c4d5e6f, 4×128)`.
    pub fn label(&self) -> String {
        let short: String = self.digest.chars().take(12).collect();
        format!(
            "{} (sha256 {short}, {}×{})",
            self.path, self.batch, self.seq_len
        )
    }
}

/// The batches one run's forward passes use, and the warnings about them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunBatches {
    pub run: String,
    pub eval: Option<BatchRef>,
    pub heldout: Option<BatchRef>,
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// [`RunBatches`] for every run with a recognised checkpoint, with the
/// user's choices (by run name). A run's batches are its last recognised
/// checkpoint's match; a checkpoint elsewhere that would match differently
/// is a warning (its forward pass uses the run's batches all the same).
pub fn run_batches(inv: &Inventory, choices: &BTreeMap<String, BatchChoice>) -> Vec<RunBatches> {
    let batches = token_batches(inv);
    let by_index = |i: Option<usize>| {
        i.and_then(|i| batches.iter().find(|x| x.0 == i))
            .map(|&(_, p, b)| BatchRef::of(p, b))
    };
    let mut out = Vec::new();
    for run in &inv.runs {
        let choice = choices.get(&run.name).cloned().unwrap_or_default();
        let matches: Vec<BatchMatch> = run
            .checkpoints
            .iter()
            .filter_map(|c| match &inv.files[c.file].recognition {
                Some(Recognition::Known(arch)) => {
                    Some(match_model(&batches, c.file, &c.path, arch, &choice))
                }
                _ => None,
            })
            .collect();
        let Some(last) = matches.last() else { continue };
        let mut warnings = last.warnings.clone();
        for m in &matches {
            if (m.eval, m.heldout) != (last.eval, last.heldout) {
                warnings.push(format!(
                    "checkpoint {} would take other batches than the run's last checkpoint; all use the run's",
                    inv.files[m.model].path
                ));
            }
        }
        out.push(RunBatches {
            run: run.name.clone(),
            eval: by_index(last.eval),
            heldout: by_index(last.heldout),
            warnings,
        });
    }
    out
}

/// Appends to a figure's caption which batch each of `runs` was run on (`heldout`: the
/// held-out batch too), one sentence when every run shares them, else one clause per run; and
/// adds the batch files to its sources, each once, as files (a share link describes each
/// source file; the caption already says which run took which).
pub fn name_batches(spec: &mut FigureSpec, batches: &[RunBatches], runs: &[String], heldout: bool) {
    let label = |b: &Option<BatchRef>| b.as_ref().map_or("none".to_owned(), BatchRef::label);
    let chosen: Vec<&RunBatches> = runs
        .iter()
        .filter_map(|r| batches.iter().find(|b| &b.run == r))
        .collect();
    let per_run: Vec<(&str, String)> = chosen
        .iter()
        .map(|b| {
            let mut s = format!("eval batch {}", label(&b.eval));
            if heldout {
                s.push_str(&format!(", held-out batch {}", label(&b.heldout)));
            }
            (b.run.as_str(), s)
        })
        .collect();
    if per_run.is_empty() {
        return;
    }
    let text = if per_run.iter().all(|(_, s)| *s == per_run[0].1) {
        let mut s = per_run[0].1.clone();
        s[..1].make_ascii_uppercase();
        s
    } else {
        per_run
            .iter()
            .map(|(r, s)| format!("{r}: {s}"))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let caption = spec.caption.trim_end();
    spec.caption = if caption.is_empty() {
        format!("{text}.")
    } else if caption.ends_with('.') {
        format!("{caption} {text}.")
    } else {
        format!("{caption}. {text}.")
    };
    for b in chosen {
        let used = [Some(&b.eval), heldout.then_some(&b.heldout)];
        for batch in used.into_iter().flatten().flatten() {
            if !spec.sources.contains(&batch.path) {
                spec.sources.push(batch.path.clone());
            }
        }
    }
}

/// The batch for `role` (see [`match_batches`]); warnings go to `warnings`.
fn pick(
    batches: &[(usize, &str, &TokenBatch)],
    model: &str,
    arch: &Architecture,
    role: Role,
    not: Option<usize>,
    warnings: &mut Vec<String>,
) -> Option<usize> {
    let name_says = |p: &str| {
        let name = p.rsplit('/').next().unwrap_or(p).to_ascii_lowercase();
        match role {
            Role::Eval => name.contains("eval"),
            Role::Heldout => true,
        }
    };
    // (distance, name does not say the role) orders the candidates.
    let mut ranked: Vec<((usize, bool), usize, &str, &TokenBatch)> = batches
        .iter()
        .filter(|(i, p, _)| role_of(p) == role && Some(*i) != not)
        .map(|&(i, p, b)| ((folder_distance(model, p), !name_says(p)), i, p, b))
        .collect();
    ranked.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.2.cmp(b.2)));
    let what = match role {
        Role::Eval => "eval",
        Role::Heldout => "held-out",
    };
    let mut skipped = Vec::new();
    for (k, (rank, i, path, batch)) in ranked.iter().enumerate() {
        if let Some(why) = misfit(path, batch, arch) {
            skipped.push(why);
            continue;
        }
        for why in &skipped {
            warnings.push(format!("nearer {what} batch not used: {why}"));
        }
        let tie: Vec<&str> = ranked[k + 1..]
            .iter()
            .filter(|(r, _, p, b)| r == rank && misfit(p, b, arch).is_none())
            .map(|x| x.2)
            .collect();
        if !tie.is_empty() {
            warnings.push(format!(
                "ambiguous {what} batch: {path} and {} are equally near and both fit; using {path} (choose one to be sure)",
                tie.join(", ")
            ));
        }
        return Some(*i);
    }
    if !skipped.is_empty() {
        warnings.push(format!(
            "no {what} batch fits this model: {}",
            skipped.join("; ")
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_and_roles() {
        assert_eq!(
            folder_distance(
                "smollm2/model.safetensors",
                "smollm2/eval_tokens.safetensors"
            ),
            0
        );
        assert_eq!(
            folder_distance("smollm2/model.safetensors", "eval_tokens.safetensors"),
            1
        );
        assert_eq!(
            folder_distance("model.safetensors", "smollm2/eval_tokens.safetensors"),
            1
        );
        assert_eq!(folder_distance("a/b/m.safetensors", "c/eval.json"), 3);
        assert_eq!(role_of("x/heldout_tokens.safetensors"), Role::Heldout);
        assert_eq!(role_of("x/eval_tokens.safetensors"), Role::Eval);
    }

    #[test]
    fn narrow_ids_flag_byte_batches_under_big_vocabularies() {
        let bytes = TokenBatch {
            batch: 1,
            seq_len: 3,
            ids: vec![10, 200, 255],
        };
        assert!(narrow_ids("eval.json", &bytes, 49152)
            .unwrap()
            .contains("every id is ≤ 255, under 1 %"));
        assert_eq!(narrow_ids("eval.json", &bytes, 512), None);
        let bpe = TokenBatch {
            batch: 1,
            seq_len: 2,
            ids: vec![10, 40000],
        };
        assert_eq!(narrow_ids("eval.json", &bpe, 49152), None);
    }
}
