//! Which token batch goes with which model. A drop may hold several studies
//! (a byte-level model with its `eval_tokens.safetensors` at the root, a
//! 49 152-token Llama with its own `smollm2/eval_tokens.safetensors`); a
//! batch is matched to a model by folder proximity first, then by name, and
//! only if it fits the model (every id below its vocabulary). An ambiguous or
//! incompatible match is a warning that names the files, never a silent choice.
//!
//! A tokenizer mismatch that ids alone cannot reveal (byte ids 0–255 under a
//! BPE model, where they are valid ids of other tokens) is flagged when every
//! id of the batch lies in the lowest 1 % of the model's vocabulary: a batch
//! of real text under a BPE tokenizer uses ids across it.

use super::{Content, FileKind, Inventory, Status};
use crate::formats::tokens::TokenBatch;
use crate::model::arch::{Architecture, Recognition};
use serde::Serialize;

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

/// Why `batch` (read from `path`) cannot be run through the model `arch`, or
/// `None` when it fits. The message names the batch file: an id beyond the
/// vocabulary is the batch's problem, not the checkpoint's.
pub fn misfit(path: &str, batch: &TokenBatch, arch: &Architecture) -> Option<String> {
    batch
        .check_vocab(arch.vocab)
        .err()
        .map(|e| format!("token batch {path}: {e} of this model"))
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
    let batches: Vec<(usize, &str, &TokenBatch)> = inv
        .files
        .iter()
        .enumerate()
        .filter(|(_, f)| f.kind == FileKind::TokenBatch && f.status != Status::Error)
        .filter_map(|(i, f)| match &f.content {
            Content::TokenBatch(b) => Some((i, f.path.as_str(), b)),
            _ => None,
        })
        .collect();
    let mut out = Vec::new();
    for run in &inv.runs {
        for c in &run.checkpoints {
            let Some(Recognition::Known(arch)) = &inv.files[c.file].recognition else {
                continue;
            };
            let mut m = BatchMatch {
                model: c.file,
                eval: None,
                heldout: None,
                warnings: Vec::new(),
            };
            m.eval = pick(&batches, &c.path, arch, Role::Eval, None, &mut m.warnings);
            m.heldout = pick(
                &batches,
                &c.path,
                arch,
                Role::Heldout,
                m.eval,
                &mut m.warnings,
            );
            if let Some((_, path, b)) = m.eval.and_then(|e| batches.iter().find(|x| x.0 == e)) {
                m.warnings.extend(narrow_ids(path, b, arch.vocab));
            }
            out.push(m);
        }
    }
    out
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
