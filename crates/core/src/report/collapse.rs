//! The report's collapse section from the values every figure uses, so the CLI's `collapse` and
//! `report` and the page time the same trajectories the same way.

use super::{CollapseRun, CollapseSection, Part};
use crate::analysis::collapse::{collapse_timing, place_plateaus, CollapseRule, PlateauRule};
use crate::analysis::compare::MetricValues;
use crate::inventory::{Content, Inventory};

/// Every run of `values` timed by `rule`, each with its log's loss plateaus placed against its
/// steepest drop (a run without a log with a `loss` column says so).
pub fn collapse_section(
    inv: &Inventory,
    values: &MetricValues,
    rule: CollapseRule,
    plateau_rule: PlateauRule,
) -> CollapseSection {
    let runs = values
        .runs
        .iter()
        .map(|r| {
            let timing = collapse_timing(r, rule);
            let plateaus = match (&timing, run_loss(inv, &r.run)) {
                (Ok(t), Some((log, points))) => {
                    Part::Computed(place_plateaus(t, &log, &points, plateau_rule))
                }
                (Ok(_), None) => Part::NotComputed(
                    "no run log with a `loss` column and token counts for this run".into(),
                ),
                (Err(_), _) => Part::NotComputed("the run was not timed".into()),
            };
            CollapseRun {
                run: r.run.clone(),
                timing: timing.into(),
                plateaus,
            }
        })
        .collect();
    CollapseSection {
        metric: values.metric.label.clone(),
        rule,
        plateau_rule,
        runs,
    }
}

/// The training loss `(tokens, loss)` of a run's first log that has one, and the log's path.
fn run_loss(inv: &Inventory, run: &str) -> Option<(String, Vec<(f64, f64)>)> {
    let group = inv.runs.iter().find(|r| r.name == run)?;
    inv.files
        .iter()
        .filter(|f| group.logs.contains(&f.path))
        .find_map(|f| match &f.content {
            Content::RunLog(series) => series
                .iter()
                .map(|s| s.points_vs_tokens("loss"))
                .find(|p| !p.is_empty())
                .map(|p| (f.path.clone(), p)),
            _ => None,
        })
}
