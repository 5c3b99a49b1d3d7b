//! Joining session files: the shards of one analysis (`--shard i/n` on n machines, see
//! [`crate::analysis::shard`]) into the session one machine would have written, or sessions of
//! different folders into one workspace. Numbers are placed, never combined: a checkpoint that
//! two sessions hold must hold the same numbers in both, and sessions whose numbers cannot sit
//! side by side (other versions, other eval batches) are refused with the reason.

use super::{BatchRecord, Session, StudyRunRecord};
use crate::analysis::activations::{ActivationCheckpoint, ActivationRun};
use crate::analysis::trajectory::{CheckpointSpectra, RunSpectra};
use crate::inventory::training_order;
use serde::Serialize;
use std::collections::BTreeMap;

/// Why sessions cannot be joined. `a` and `b` name the files (as the caller gave them).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MergeError {
    #[error("no session file to merge")]
    Nothing,
    #[error(
        "{a} was written by rankscope {a_version} (session format v{a_format}) and {b} by rankscope \
         {b_version} (v{b_format}): sessions of different versions are not merged, since their numbers \
         may differ; analyse them again with one version"
    )]
    Versions {
        a: String,
        a_version: String,
        a_format: u32,
        b: String,
        b_version: String,
        b_format: u32,
    },
    #[error(
        "{a} and {b} hold activation spectra computed on different {which} batches ({a}: {a_batch}; \
         {b}: {b_batch}): their numbers cannot be put side by side"
    )]
    Batches {
        which: &'static str,
        a: String,
        a_batch: String,
        b: String,
        b_batch: String,
    },
    #[error(
        "{file} holds activation spectra but does not record their eval batch (a session saved by the \
         page?), so it cannot be checked against {other}'s; merge sessions written by `rankscope probe --session`"
    )]
    UnrecordedBatch { file: String, other: String },
    #[error(
        "{a} and {b} both hold the {what} of run {run}, checkpoint {path}, and the numbers differ: \
         they come from different analyses (other files, settings or versions)"
    )]
    Disagree {
        what: &'static str,
        run: String,
        path: String,
        a: String,
        b: String,
    },
    #[error(
        "{a} and {b} list the file {name} with different sizes ({a_size} and {b_size} bytes): the \
         sessions were computed from different files of the same name"
    )]
    Files {
        name: String,
        a: String,
        a_size: u64,
        b: String,
        b_size: u64,
    },
}

/// The joined session and what the caller should be told about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    pub session: Session,
    /// Missing shards, checkpoints held twice, runs given new colours.
    pub notes: Vec<String>,
}

/// Whether two results are the same numbers. Through JSON, so that a NaN (written `null`)
/// equals itself, as it does once both are saved.
fn same<T: PartialEq + Serialize>(a: &T, b: &T) -> bool {
    a == b || serde_json::to_value(a).ok() == serde_json::to_value(b).ok()
}

/// A run of per-checkpoint results: weight spectra or activation spectra.
trait Run: Clone {
    type Checkpoint: Clone + PartialEq + Serialize;
    fn name(&self) -> &str;
    fn color_mut(&mut self) -> &mut usize;
    fn checkpoints_mut(&mut self) -> &mut Vec<Self::Checkpoint>;
    /// (tokens, step, path).
    fn point(c: &Self::Checkpoint) -> (Option<u64>, Option<u64>, &str);
}

impl Run for RunSpectra {
    type Checkpoint = CheckpointSpectra;
    fn name(&self) -> &str {
        &self.run
    }
    fn color_mut(&mut self) -> &mut usize {
        &mut self.color
    }
    fn checkpoints_mut(&mut self) -> &mut Vec<CheckpointSpectra> {
        &mut self.checkpoints
    }
    fn point(c: &CheckpointSpectra) -> (Option<u64>, Option<u64>, &str) {
        (c.tokens, c.step, &c.path)
    }
}

impl Run for ActivationRun {
    type Checkpoint = ActivationCheckpoint;
    fn name(&self) -> &str {
        &self.run
    }
    fn color_mut(&mut self) -> &mut usize {
        &mut self.color
    }
    fn checkpoints_mut(&mut self) -> &mut Vec<ActivationCheckpoint> {
        &mut self.checkpoints
    }
    fn point(c: &ActivationCheckpoint) -> (Option<u64>, Option<u64>, &str) {
        (c.tokens, c.step, &c.path)
    }
}

/// Joins the runs of every input (`(file, runs)`): a run's checkpoints from all inputs, each once,
/// in training order; runs in palette order (`colors`: each run's colour in the merged session).
fn join_runs<R: Run>(
    what: &'static str,
    inputs: &[(&str, &[R])],
    colors: &BTreeMap<String, usize>,
    duplicates: &mut usize,
) -> Result<Vec<R>, MergeError> {
    // Each run with the file each of its checkpoints came from.
    let mut out: Vec<(R, Vec<&str>)> = Vec::new();
    for &(file, runs) in inputs {
        for run in runs {
            let mut run = run.clone();
            let Some((have, sources)) = out.iter_mut().find(|(r, _)| r.name() == run.name()) else {
                let n = run.checkpoints_mut().len();
                out.push((run, vec![file; n]));
                continue;
            };
            for c in std::mem::take(run.checkpoints_mut()) {
                let path = R::point(&c).2;
                let held = have.checkpoints_mut();
                match held.iter().position(|h| R::point(h).2 == path) {
                    Some(i) if same(&held[i], &c) => *duplicates += 1,
                    Some(i) => {
                        return Err(MergeError::Disagree {
                            what,
                            run: run.name().to_string(),
                            path: path.to_string(),
                            a: sources[i].to_string(),
                            b: file.to_string(),
                        })
                    }
                    None => {
                        held.push(c);
                        sources.push(file);
                    }
                }
            }
        }
    }
    let mut runs: Vec<R> = out.into_iter().map(|(r, _)| r).collect();
    for r in &mut runs {
        if let Some(&c) = colors.get(r.name()) {
            *r.color_mut() = c;
        }
        // Shards put end to end are already in this order; sessions of other cuts are not.
        r.checkpoints_mut().sort_by(|a, b| {
            let (a, b) = (R::point(a), R::point(b));
            training_order(a.0, a.1, a.2).cmp(&training_order(b.0, b.1, b.2))
        });
    }
    runs.sort_by_key(|r| colors.get(r.name()).copied().unwrap_or(usize::MAX));
    Ok(runs)
}

/// "name (4×128 tokens, sha256 1a2b3c4d5e6f…)", or "none".
fn describe(b: Option<&BatchRecord>) -> String {
    b.map_or("none".into(), |b| {
        format!(
            "{} ({}×{} tokens, sha256 {}…)",
            b.name,
            b.batch,
            b.seq_len,
            b.digest.get(..12).unwrap_or(&b.digest)
        )
    })
}

/// The eval and held-out batches of the inputs that hold activations: one of each for all.
fn common_batches(
    inputs: &[(String, Session)],
) -> Result<(Option<BatchRecord>, Option<BatchRecord>), MergeError> {
    let with: Vec<&(String, Session)> = inputs
        .iter()
        .filter(|(_, s)| !s.activations.is_empty())
        .collect();
    let Some((first, s0)) = with.first() else {
        return Ok((None, None));
    };
    for (file, s) in &with {
        if s.eval.is_none() {
            let other = with
                .iter()
                .find(|(f, _)| f != file)
                .map_or(first, |(f, _)| f);
            return Err(MergeError::UnrecordedBatch {
                file: file.clone(),
                other: other.clone(),
            });
        }
        for (which, a, b) in [
            ("eval", &s0.eval, &s.eval),
            ("held-out", &s0.heldout, &s.heldout),
        ] {
            let digest = |r: &Option<BatchRecord>| r.as_ref().map(|r| r.digest.clone());
            if digest(a) != digest(b) {
                return Err(MergeError::Batches {
                    which,
                    a: first.clone(),
                    a_batch: describe(a.as_ref()),
                    b: file.clone(),
                    b_batch: describe(b.as_ref()),
                });
            }
        }
    }
    Ok((s0.eval.clone(), s0.heldout.clone()))
}

/// Each run's colour in the merged session: its colour in the first input that has it; a run
/// whose colour another run already has (sessions of different folders) gets the next free one.
fn run_colors(inputs: &[(String, Session)], notes: &mut Vec<String>) -> BTreeMap<String, usize> {
    let mut colors: BTreeMap<String, usize> = BTreeMap::new();
    let named = inputs.iter().flat_map(|(_, s)| {
        let w = s.weights.iter().map(|r| (&r.run, r.color));
        let a = s.activations.iter().map(|r| (&r.run, r.color));
        let st = s.study.iter().map(|r| (&r.run, r.color));
        w.chain(a).chain(st)
    });
    let mut moved = Vec::new();
    for (run, color) in named {
        if colors.contains_key(run) {
            continue;
        }
        let color = if colors.values().any(|&c| c == color) {
            let free = colors.values().max().map_or(0, |m| m + 1).max(color);
            moved.push(format!("{run} (colour {color} → {free})"));
            free
        } else {
            color
        };
        colors.insert(run.clone(), color);
    }
    if !moved.is_empty() {
        notes.push(format!(
            "runs of different sessions had the same palette colour; given new ones: {}",
            moved.join(", ")
        ));
    }
    colors
}

/// Joins `inputs` (`(file name, session)`). Shards of one analysis are put in shard order, so the
/// result equals the session of the unsharded analysis; other sessions keep the given order.
pub fn merge_sessions(mut inputs: Vec<(String, Session)>) -> Result<Merged, MergeError> {
    let Some((first, s0)) = inputs.first() else {
        return Err(MergeError::Nothing);
    };
    for (file, s) in &inputs {
        if (s.version, &s.app_version) != (s0.version, &s0.app_version) {
            return Err(MergeError::Versions {
                a: first.clone(),
                a_version: s0.app_version.clone(),
                a_format: s0.version,
                b: file.clone(),
                b_version: s.app_version.clone(),
                b_format: s.version,
            });
        }
    }
    let mut notes = Vec::new();
    if inputs.iter().all(|(_, s)| s.shard.is_some()) {
        inputs.sort_by_key(|(_, s)| s.shard.map(|r| (r.shard.count, r.shard.index)));
        let counts: Vec<usize> = inputs
            .iter()
            .filter_map(|(_, s)| s.shard.map(|r| r.shard.count))
            .collect();
        let n = counts[0];
        if counts.iter().all(|&c| c == n) {
            let have: Vec<usize> = inputs
                .iter()
                .filter_map(|(_, s)| s.shard.map(|r| r.shard.index))
                .collect();
            let missing: Vec<String> = (1..=n)
                .filter(|i| !have.contains(i))
                .map(|i| format!("{i}/{n}"))
                .collect();
            if !missing.is_empty() {
                notes.push(format!(
                    "shard(s) {} not given: the merged session lacks their checkpoints",
                    missing.join(", ")
                ));
            }
        } else {
            notes.push(format!(
                "the shards were cut {} ways: checkpoints held twice are kept once",
                counts
                    .iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    let (eval, heldout) = common_batches(&inputs)?;
    let colors = run_colors(&inputs, &mut notes);

    let s0 = &inputs[0].1;
    let mut merged = Session::new(Vec::new());
    merged.version = s0.version;
    merged.app_version = s0.app_version.clone();
    merged.eval = eval;
    merged.heldout = heldout;
    let mut file_of: BTreeMap<String, (String, u64)> = BTreeMap::new();
    for (input, s) in &inputs {
        for f in &s.files {
            match file_of.get(&f.name) {
                Some((a, size)) if *size != f.size => {
                    return Err(MergeError::Files {
                        name: f.name.clone(),
                        a: a.clone(),
                        a_size: *size,
                        b: input.clone(),
                        b_size: f.size,
                    })
                }
                Some(_) => {}
                None => {
                    file_of.insert(f.name.clone(), (input.clone(), f.size));
                    merged.files.push(f.clone());
                }
            }
        }
        if merged.view.is_null() {
            merged.view = s.view.clone();
        }
        for failure in &s.failures {
            if !merged.failures.contains(failure) {
                merged.failures.push(failure.clone());
            }
        }
    }

    let mut duplicates = 0;
    let weights: Vec<(&str, &[RunSpectra])> = inputs
        .iter()
        .map(|(f, s)| (f.as_str(), s.weights.as_slice()))
        .collect();
    merged.weights = join_runs("weight spectra", &weights, &colors, &mut duplicates)?;
    let activations: Vec<(&str, &[ActivationRun])> = inputs
        .iter()
        .map(|(f, s)| (f.as_str(), s.activations.as_slice()))
        .collect();
    merged.activations = join_runs("activation spectra", &activations, &colors, &mut duplicates)?;

    let mut study: Vec<(StudyRunRecord, &str)> = Vec::new();
    for (input, s) in &inputs {
        for r in &s.study {
            let mut r = r.clone();
            if let Some(&c) = colors.get(&r.run) {
                r.color = c;
            }
            match study
                .iter()
                .find(|(h, _)| h.run == r.run && h.checkpoint.path == r.checkpoint.path)
            {
                Some((h, _)) if same(h, &r) => duplicates += 1,
                Some((_, a)) => {
                    return Err(MergeError::Disagree {
                        what: "Figures 3–5 numbers",
                        run: r.run.clone(),
                        path: r.checkpoint.path.clone(),
                        a: a.to_string(),
                        b: input.clone(),
                    })
                }
                None => study.push((r, input)),
            }
        }
    }
    merged.study = study.into_iter().map(|(r, _)| r).collect();
    if duplicates > 0 {
        notes.push(format!(
            "{duplicates} result(s) were in more than one session with the same numbers; kept once"
        ));
    }
    Ok(Merged {
        session: merged,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::shard::Shard;
    use crate::analysis::weights::{LayerSpectra, ModelSpectra};
    use crate::session::ShardRecord;

    fn ckpt(tokens: u64, layers: usize) -> CheckpointSpectra {
        CheckpointSpectra {
            path: format!("runs/A/ckpt_tokens_{tokens}.safetensors"),
            step: None,
            tokens: Some(tokens),
            spectra: ModelSpectra {
                d_k: 4,
                d_model: 8,
                layers: (0..layers)
                    .map(|layer| LayerSpectra {
                        layer,
                        k_heads: Vec::new(),
                        q_heads: Vec::new(),
                        gamma_k: None,
                        gamma_q: None,
                    })
                    .collect(),
            },
        }
    }

    fn shard(index: usize, checkpoints: Vec<CheckpointSpectra>) -> (String, Session) {
        let mut s = Session::new(Vec::new());
        s.shard = Some(ShardRecord {
            shard: Shard { index, count: 3 },
            of_checkpoints: 3,
        });
        s.weights = vec![RunSpectra {
            run: "A".into(),
            color: 0,
            checkpoints,
        }];
        (format!("s{index}.json"), s)
    }

    #[test]
    fn shards_join_in_shard_order_and_disagreement_is_refused() {
        let m = merge_sessions(vec![
            shard(3, vec![ckpt(300, 1)]),
            shard(1, vec![ckpt(100, 1)]),
        ])
        .unwrap();
        let got: Vec<Option<u64>> = m.session.weights[0]
            .checkpoints
            .iter()
            .map(|c| c.tokens)
            .collect();
        assert_eq!(got, [Some(100), Some(300)]);
        assert!(m.notes[0].contains("2/3 not given"), "{:?}", m.notes);

        let e = merge_sessions(vec![
            shard(1, vec![ckpt(100, 1)]),
            shard(2, vec![ckpt(100, 2)]),
        ])
        .unwrap_err();
        assert!(matches!(e, MergeError::Disagree { .. }), "{e}");
        assert!(e
            .to_string()
            .contains("checkpoint runs/A/ckpt_tokens_100.safetensors"));

        let mut other = shard(2, vec![ckpt(200, 1)]);
        other.1.app_version = "0.0.1".into();
        let e = merge_sessions(vec![shard(1, vec![]), other]).unwrap_err();
        assert!(e.to_string().contains("by rankscope 0.0.1"), "{e}");
        assert_eq!(merge_sessions(vec![]), Err(MergeError::Nothing));
    }
}
