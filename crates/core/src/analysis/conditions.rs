//! Conditions and seed replicates (METRICS.md "Statistics across runs"): runs of one setting
//! trained with other seeds are replicates of one **condition**. A run joins a condition
//!
//! 1. by the user's explicit mapping (the page's grouping, `--group NAME=RUN,RUN…`), which wins;
//! 2. else by its name: a seed marker is taken out and the rest names the condition —
//!    `A1_seed43`, `A1-seed-43`, `A1.seed=43`, `A1-s2`, `A1/seed3` (a run named after its seed
//!    folder, see [`crate::inventory::naming`]) all belong to `A1`; a name without a marker is its
//!    own condition (`A1`, the fixtures' seed-42 run).
//!
//! The seed number comes from a `seed` entry of the checkpoints' safetensors `__metadata__` or of
//! the run log's header (`seed`, `train_seed`) when there is one, else from the name's marker.

use crate::inventory::{Content, Inventory};
use serde::{Deserialize, Serialize};

/// Where a replicate's seed number was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeedSource {
    /// A `seed` entry in a checkpoint's `__metadata__`.
    Metadata,
    /// A `seed` / `train_seed` field of the run log's header.
    Log,
    /// The run's name (`A1_seed43`).
    Name,
    /// Nowhere: the seed is unknown.
    Unknown,
}

impl SeedSource {
    /// "metadata", "log header", "name", "unknown".
    pub fn label(self) -> &'static str {
        match self {
            SeedSource::Metadata => "metadata",
            SeedSource::Log => "log header",
            SeedSource::Name => "name",
            SeedSource::Unknown => "unknown",
        }
    }
}

impl GroupedBy {
    /// "name", "user".
    pub fn label(self) -> &'static str {
        match self {
            GroupedBy::Name => "grouped by name",
            GroupedBy::User => "grouped by hand",
        }
    }
}

/// One run of a condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Replicate {
    pub run: String,
    pub seed: Option<u64>,
    pub seed_from: SeedSource,
}

/// How a condition was formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupedBy {
    /// Runs whose names differ only by a seed marker.
    Name,
    /// The user's explicit mapping.
    User,
}

/// A condition and its replicates, in the order the runs were given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    pub name: String,
    pub runs: Vec<Replicate>,
    pub grouped_by: GroupedBy,
}

impl Condition {
    /// The runs' names.
    pub fn run_names(&self) -> Vec<String> {
        self.runs.iter().map(|r| r.run.clone()).collect()
    }
}

/// What the files say about a run's seed (before grouping).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSeed {
    pub run: String,
    /// From metadata or a log header; `None` when the files do not say.
    pub seed: Option<u64>,
    pub seed_from: SeedSource,
}

/// The user's mapping of one condition: `name = runs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserGroup {
    pub name: String,
    pub runs: Vec<String>,
}

/// Why runs could not be grouped as asked.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConditionError {
    #[error("group `{group}` names run `{run}`, which is not among the runs ({known})")]
    UnknownRun {
        group: String,
        run: String,
        known: String,
    },
    #[error("run `{run}` is put in two groups: `{first}` and `{second}`")]
    TwoGroups {
        run: String,
        first: String,
        second: String,
    },
    #[error("group `{0}` names no run")]
    EmptyGroup(String),
}

fn is_separator(c: char) -> bool {
    matches!(c, '_' | '-' | '.' | '/' | '\\' | ' ')
}

/// The condition and seed a run's name says: (`A1`, Some(43)) for `A1_seed43`; the name itself
/// and `None` when it carries no seed marker. A marker is `seed` (any case) followed by an optional
/// `_`, `-` or `=` and digits, or `s` and digits, standing as its own separator-delimited part after
/// a non-empty condition; the part must end the name or be followed by a separator.
pub fn split_seed(name: &str) -> (String, Option<u64>) {
    let lower = name.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    // Markers start right after a separator (never at 0: the condition must not be empty).
    let mut best = None;
    for (start, c) in lower.char_indices() {
        if start == 0 || !is_separator(lower[..start].chars().next_back().unwrap_or('x')) {
            continue;
        }
        let rest = &lower[start..];
        let digits_at = if let Some(after) = rest.strip_prefix("seed") {
            let skip = after.len() - after.trim_start_matches(['_', '-', '=']).len();
            start + 4 + skip
        } else if c == 's' {
            start + 1
        } else {
            continue;
        };
        let n_digits = bytes[digits_at..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let end = digits_at + n_digits;
        let ends_part = end == lower.len() || lower[end..].starts_with(is_separator);
        if n_digits == 0 || !ends_part {
            continue;
        }
        if let Ok(seed) = lower[digits_at..end].parse::<u64>() {
            best = Some((start, end, seed));
        }
    }
    let Some((start, end, seed)) = best else {
        return (name.to_string(), None);
    };
    let before = name[..start].trim_end_matches(is_separator);
    let after = &name[end..];
    if before.is_empty() {
        return (name.to_string(), None);
    }
    // Text after the marker stays part of the condition (`A1_seed3_long` → `A1_long`).
    (
        format!(
            "{before}{}",
            if after.trim_matches(is_separator).is_empty() {
                ""
            } else {
                after
            }
        ),
        Some(seed),
    )
}

/// Seeds that the inventory's files state: a `seed` entry in a checkpoint's `__metadata__`, else a
/// `seed`/`train_seed` field of the run's log header. Every run of the inventory, in its order.
pub fn run_seeds(inv: &Inventory) -> Vec<RunSeed> {
    let parse = |v: &serde_json::Value| {
        v.as_u64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
    };
    inv.runs
        .iter()
        .map(|run| {
            let from_metadata =
                run.checkpoints
                    .iter()
                    .find_map(|c| match &inv.files.get(c.file)?.content {
                        Content::Checkpoint { header, .. } => {
                            header.metadata.get("seed")?.trim().parse().ok()
                        }
                        _ => None,
                    });
            let from_log = inv
                .files
                .iter()
                .filter(|f| run.logs.contains(&f.path))
                .find_map(|f| match &f.content {
                    Content::RunLog(series) => series.iter().find_map(|s| {
                        s.constants
                            .get("seed")
                            .or(s.constants.get("train_seed"))
                            .and_then(parse)
                    }),
                    _ => None,
                });
            let (seed, seed_from) = match (from_metadata, from_log) {
                (Some(s), _) => (Some(s), SeedSource::Metadata),
                (None, Some(s)) => (Some(s), SeedSource::Log),
                (None, None) => (None, SeedSource::Unknown),
            };
            RunSeed {
                run: run.name.clone(),
                seed,
                seed_from,
            }
        })
        .collect()
}

/// Groups runs into conditions: the user's groups first (in their order), then every other run by
/// its name ([`split_seed`]), conditions in the order of their first run.
pub fn group_conditions(
    runs: &[RunSeed],
    user: &[UserGroup],
) -> Result<Vec<Condition>, ConditionError> {
    let known = || {
        runs.iter()
            .map(|r| r.run.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let replicate = |r: &RunSeed| {
        let (_, name_seed) = split_seed(&r.run);
        match (r.seed, name_seed) {
            (Some(seed), _) => Replicate {
                run: r.run.clone(),
                seed: Some(seed),
                seed_from: r.seed_from,
            },
            (None, Some(seed)) => Replicate {
                run: r.run.clone(),
                seed: Some(seed),
                seed_from: SeedSource::Name,
            },
            (None, None) => Replicate {
                run: r.run.clone(),
                seed: None,
                seed_from: SeedSource::Unknown,
            },
        }
    };
    let mut claimed: Vec<(&str, &str)> = Vec::new();
    let mut out = Vec::new();
    for g in user {
        if g.runs.is_empty() {
            return Err(ConditionError::EmptyGroup(g.name.clone()));
        }
        let mut members = Vec::new();
        for name in &g.runs {
            let Some(r) = runs.iter().find(|r| &r.run == name) else {
                return Err(ConditionError::UnknownRun {
                    group: g.name.clone(),
                    run: name.clone(),
                    known: known(),
                });
            };
            if let Some((_, first)) = claimed.iter().find(|(run, _)| *run == name) {
                return Err(ConditionError::TwoGroups {
                    run: name.clone(),
                    first: first.to_string(),
                    second: g.name.clone(),
                });
            }
            claimed.push((name, &g.name));
            members.push(replicate(r));
        }
        out.push(Condition {
            name: g.name.clone(),
            runs: members,
            grouped_by: GroupedBy::User,
        });
    }
    let mut by_name: Vec<Condition> = Vec::new();
    for r in runs
        .iter()
        .filter(|r| !claimed.iter().any(|(run, _)| *run == r.run))
    {
        let (condition, _) = split_seed(&r.run);
        match by_name.iter_mut().find(|c| c.name == condition) {
            Some(c) => c.runs.push(replicate(r)),
            None => by_name.push(Condition {
                name: condition,
                runs: vec![replicate(r)],
                grouped_by: GroupedBy::Name,
            }),
        }
    }
    out.extend(by_name);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seedless(names: &[&str]) -> Vec<RunSeed> {
        names
            .iter()
            .map(|n| RunSeed {
                run: n.to_string(),
                seed: None,
                seed_from: SeedSource::Unknown,
            })
            .collect()
    }

    #[test]
    fn reads_seed_markers_from_names() {
        for (name, want) in [
            ("A1", ("A1", None)),
            ("A1_seed43", ("A1", Some(43))),
            ("A1-seed-43", ("A1", Some(43))),
            ("A1.seed=7", ("A1", Some(7))),
            ("A1-s2", ("A1", Some(2))),
            ("A1/seed3", ("A1", Some(3))),
            ("qk_norm_seed3_long", ("qk_norm_long", Some(3))),
            ("muonh_seed1", ("muonh", Some(1))),
            ("seed3", ("seed3", None)),
            ("A1_seedling", ("A1_seedling", None)),
            ("A1_s2x", ("A1_s2x", None)),
            ("runs1", ("runs1", None)),
        ] {
            let (c, s) = split_seed(name);
            assert_eq!((c.as_str(), s), want, "{name}");
        }
    }

    #[test]
    fn groups_by_name_and_by_hand() {
        let runs = seedless(&["A1", "A1_seed43", "A2", "A1_seed44", "A2-s43", "X", "Y"]);
        let c = group_conditions(&runs, &[]).expect("by name");
        let names: Vec<(&str, Vec<String>)> =
            c.iter().map(|c| (c.name.as_str(), c.run_names())).collect();
        assert_eq!(
            names[0],
            (
                "A1",
                vec!["A1".into(), "A1_seed43".into(), "A1_seed44".into()]
            )
        );
        assert_eq!(names[1], ("A2", vec!["A2".into(), "A2-s43".into()]));
        assert_eq!(c[0].runs[1].seed, Some(43));
        assert_eq!(c[0].runs[1].seed_from, SeedSource::Name);
        let user = [UserGroup {
            name: "base".into(),
            runs: vec!["X".into(), "Y".into()],
        }];
        let c = group_conditions(&runs, &user).expect("by hand");
        assert_eq!(
            (c[0].name.as_str(), c[0].grouped_by, c[0].runs.len()),
            ("base", GroupedBy::User, 2)
        );
        assert!(c
            .iter()
            .all(|c| !c.run_names().contains(&"X".to_string()) || c.name == "base"));
    }

    #[test]
    fn metadata_seed_wins_and_bad_groups_are_named() {
        let runs = vec![RunSeed {
            run: "A1_seed43".into(),
            seed: Some(99),
            seed_from: SeedSource::Metadata,
        }];
        let c = group_conditions(&runs, &[]).expect("valid");
        assert_eq!(
            (c[0].runs[0].seed, c[0].runs[0].seed_from),
            (Some(99), SeedSource::Metadata)
        );
        let bad = [UserGroup {
            name: "g".into(),
            runs: vec!["nope".into()],
        }];
        let e = group_conditions(&runs, &bad).expect_err("unknown run");
        assert!(
            e.to_string().contains("`nope`") && e.to_string().contains("A1_seed43"),
            "{e}"
        );
        let twice = [
            UserGroup {
                name: "g".into(),
                runs: vec!["A1_seed43".into()],
            },
            UserGroup {
                name: "h".into(),
                runs: vec!["A1_seed43".into()],
            },
        ];
        assert!(matches!(
            group_conditions(&runs, &twice),
            Err(ConditionError::TwoGroups { .. })
        ));
    }
}
