//! Run names, steps and token counts from file paths, for files whose
//! safetensors `__metadata__` does not say (metadata always wins).
//!
//! Recognised: `runs/A1/ckpt_tokens_4096.safetensors` (run = folder, tokens),
//! `A1_step_500.safetensors` (run = stem before the marker, step),
//! `run/checkpoint-500/model.safetensors` (Hugging Face Trainer folders),
//! `iter_0005000`, `step500`, `ckpt_1000` (a bare number after `ckpt` is a step).
//! A folder that names only a seed (`A1/seed3/ckpt_500.safetensors`) is named with its parent,
//! `A1/seed3`, so seed replicates in such folders stay apart (and group into condition `A1`, see
//! [`crate::analysis::conditions`]).

/// What a path says about its file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathFacts {
    pub run: Option<String>,
    pub step: Option<u64>,
    pub tokens: Option<u64>,
}

/// Folder names that name no run (the run is the folder above them).
const GENERIC_DIRS: &[&str] = &[
    "",
    ".",
    "runs",
    "run",
    "checkpoints",
    "checkpoint",
    "ckpt",
    "ckpts",
    "models",
    "model",
    "weights",
    "logs",
    "log",
    "output",
    "outputs",
    "results",
    "fixtures",
    "files",
    "data",
];

/// File stems that name no run (a log called `metrics.jsonl` belongs to its folder).
const GENERIC_STEMS: &[&str] = &[
    "metrics", "log", "logs", "train", "training", "results", "history", "model", "config",
    "events", "output", "stdout", "progress", "scalars", "eval", "run",
];

/// Splits a path on both separators (a dropped folder gives `/`, Windows paths `\`).
fn components(path: &str) -> Vec<&str> {
    path.split(['/', '\\']).filter(|c| !c.is_empty()).collect()
}

/// The file name without its extensions (`a.safetensors.index.json` → `a`).
pub fn file_stem(path: &str) -> &str {
    let name = components(path).last().copied().unwrap_or("");
    name.split('.').next().unwrap_or(name)
}

/// The folder part of a path ("" for a bare file name).
pub fn parent_dir(path: &str) -> &str {
    match path.rfind(['/', '\\']) {
        Some(i) => &path[..i],
        None => "",
    }
}

/// A number that follows `marker` in `stem`, with optional `_`/`-` between:
/// `find_number("ckpt_tokens_4096", "tokens")` → 4096. Returns the number and
/// the byte index where the marker starts. The last occurrence wins.
fn number_after(stem: &str, marker: &str) -> Option<(u64, usize)> {
    let lower = stem.to_ascii_lowercase();
    let mut found = None;
    let mut from = 0;
    while let Some(pos) = lower.get(from..).and_then(|s| s.find(marker)) {
        let start = from + pos;
        let after = &lower[start + marker.len()..];
        let digits_start = after.trim_start_matches(['_', '-', '=']);
        let digits: String = digits_start
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        // `step` must not match inside another word (`steps_total`): demand a
        // separator or a digit right after the marker.
        let boundary_ok = start == 0
            || !lower
                .as_bytes()
                .get(start - 1)
                .is_some_and(|b| b.is_ascii_alphabetic());
        if !digits.is_empty() && boundary_ok {
            if let Ok(n) = digits.parse() {
                found = Some((n, start));
            }
        }
        from = start + marker.len();
    }
    found
}

/// Trims separators from the end of a run-name prefix (`A1_` → `A1`).
fn clean_prefix(prefix: &str) -> Option<String> {
    let p = prefix.trim_end_matches(['_', '-', '.', ' ']);
    (!p.is_empty()).then(|| p.to_string())
}

/// Facts about a checkpoint from its path alone.
pub fn checkpoint_facts(path: &str) -> PathFacts {
    let comps = components(path);
    let stem = file_stem(path);
    let mut facts = PathFacts::default();
    let mut prefix_end = None;

    if let Some((n, at)) = number_after(stem, "tokens") {
        facts.tokens = Some(n);
        prefix_end = Some(at);
    }
    for marker in ["step", "iter", "checkpoint", "ckpt"] {
        if facts.step.is_some() || facts.tokens.is_some() && marker == "ckpt" {
            break;
        }
        if let Some((n, at)) = number_after(stem, marker) {
            facts.step = Some(n);
            prefix_end = Some(prefix_end.map_or(at, |p: usize| p.min(at)));
        }
    }
    // Hugging Face Trainer: `<run>/checkpoint-500/model.safetensors`.
    let dirs: Vec<&str> = comps.iter().rev().skip(1).copied().collect();
    let mut run_dirs = dirs.as_slice();
    if facts.step.is_none() && facts.tokens.is_none() {
        if let Some((n, _)) = dirs.first().and_then(|d| number_after(d, "checkpoint")) {
            facts.step = Some(n);
            run_dirs = &dirs[1..];
        }
    }
    // Run: the stem before the step marker (`A1_step_500`), else the nearest
    // folder that is not a generic name or itself a checkpoint folder.
    let stem_prefix = prefix_end
        .and_then(|end| stem.get(..end))
        .and_then(clean_prefix);
    let generic_stem = stem_prefix.as_deref().is_some_and(|p| {
        ["ckpt", "checkpoint", "model"].contains(&p.to_ascii_lowercase().as_str())
    });
    facts.run = match stem_prefix {
        Some(p) if !generic_stem => Some(p),
        _ => run_from_dirs(run_dirs, |d| number_after(d, "checkpoint").is_none()),
    };
    facts
}

/// Whether a folder name is only a seed marker (`seed3`, `seed_43`, `s2`).
fn is_seed_dir(dir: &str) -> bool {
    let lower = dir.to_ascii_lowercase();
    let digits = match lower.strip_prefix("seed") {
        Some(rest) => rest.trim_start_matches(['_', '-', '=']),
        None => lower.strip_prefix('s').unwrap_or(""),
    };
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// The run named by the nearest folder (innermost first) that is not generic and passes `usable`;
/// a seed folder is named with the folder above it (`A1/seed3`).
fn run_from_dirs(dirs: &[&str], usable: impl Fn(&str) -> bool) -> Option<String> {
    let ok = |d: &&str| !GENERIC_DIRS.contains(&d.to_ascii_lowercase().as_str()) && usable(d);
    let at = dirs.iter().position(ok)?;
    let run = dirs[at];
    if is_seed_dir(run) {
        if let Some(parent) = dirs[at + 1..].iter().find(|d| ok(d)) {
            return Some(format!("{parent}/{run}"));
        }
    }
    Some(run.to_string())
}

/// The run a log file belongs to, from its path: the stem unless it is
/// generic (`metrics.jsonl`), then the nearest non-generic folder.
pub fn log_run(path: &str) -> Option<String> {
    let stem = file_stem(path);
    let lower = stem.to_ascii_lowercase();
    if !stem.is_empty() && !GENERIC_STEMS.contains(&lower.as_str()) && !lower.starts_with("events")
    {
        return Some(stem.to_string());
    }
    let dirs: Vec<&str> = components(path).into_iter().rev().skip(1).collect();
    run_from_dirs(&dirs, |_| true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(run: Option<&str>, step: Option<u64>, tokens: Option<u64>) -> PathFacts {
        PathFacts {
            run: run.map(str::to_string),
            step,
            tokens,
        }
    }

    #[test]
    fn reads_the_fixture_layout() {
        assert_eq!(
            checkpoint_facts("runs/A1/ckpt_tokens_4096.safetensors"),
            facts(Some("A1"), None, Some(4096))
        );
        assert_eq!(
            checkpoint_facts("A1/ckpt_tokens_0.safetensors"),
            facts(Some("A1"), None, Some(0))
        );
    }

    #[test]
    fn reads_run_and_step_from_the_stem() {
        assert_eq!(
            checkpoint_facts("A1_step_500.safetensors"),
            facts(Some("A1"), Some(500), None)
        );
        assert_eq!(
            checkpoint_facts("x/qk-norm-run-step500.safetensors"),
            facts(Some("qk-norm-run"), Some(500), None)
        );
        assert_eq!(
            checkpoint_facts("base_iter_0005000.safetensors"),
            facts(Some("base"), Some(5000), None)
        );
        assert_eq!(
            checkpoint_facts("exp7/ckpt_1000.safetensors"),
            facts(Some("exp7"), Some(1000), None)
        );
    }

    #[test]
    fn reads_trainer_folders() {
        assert_eq!(
            checkpoint_facts("my-run/checkpoint-500/model.safetensors"),
            facts(Some("my-run"), Some(500), None)
        );
        assert_eq!(
            checkpoint_facts(
                "outputs\\qk\\checkpoints\\checkpoint-20\\model-00001-of-00002.safetensors"
            ),
            facts(Some("qk"), Some(20), None)
        );
    }

    #[test]
    fn names_seed_folders_with_their_parent() {
        assert_eq!(
            checkpoint_facts("A1/seed3/ckpt_tokens_0.safetensors"),
            facts(Some("A1/seed3"), None, Some(0))
        );
        assert_eq!(
            checkpoint_facts("runs/B1/s2/checkpoints/step_10.safetensors")
                .run
                .as_deref(),
            Some("B1/s2")
        );
        assert_eq!(
            checkpoint_facts("seed3/ckpt_tokens_0.safetensors")
                .run
                .as_deref(),
            Some("seed3")
        );
        assert_eq!(
            log_run("A1/seed3/metrics.jsonl").as_deref(),
            Some("A1/seed3")
        );
        assert_eq!(
            checkpoint_facts("season1/ckpt_tokens_0.safetensors")
                .run
                .as_deref(),
            Some("season1")
        );
    }

    #[test]
    fn says_nothing_when_the_path_says_nothing() {
        assert_eq!(
            checkpoint_facts("model.safetensors"),
            facts(None, None, None)
        );
        assert_eq!(checkpoint_facts("steps_total.safetensors").step, None);
    }

    #[test]
    fn log_runs() {
        assert_eq!(log_run("runs/A1/metrics.jsonl").as_deref(), Some("A1"));
        assert_eq!(
            log_run("logs/modded-nanogpt/muonh_seed1.log").as_deref(),
            Some("muonh_seed1")
        );
        assert_eq!(
            log_run("B2/events.out.tfevents.1700000000.host").as_deref(),
            Some("B2")
        );
        assert_eq!(log_run("metrics.jsonl"), None);
    }
}
