//! Which runs each of the study's figures opens on (`shared/DESIGN.md`): Figure 1 (trajectory)
//! compares the 2×2 of QK-norm × optimizer, A1, A2, B1 and B2; Figure 2 (waterfall) A1 against A2;
//! Figure 3 (PR per layer) the data pair C1 and C2. Putting all runs on one axis by default
//! hides the comparison the figure exists for.
//!
//! Runs are matched by condition ([`split_seed`]): `A1_seed43` is a seed of A1 and opens with
//! it. A figure opens on its plan runs only when every one of its conditions is present;
//! otherwise (a drop of other runs, or part of the plan) it opens on every run, since a partial
//! plan set would silently leave runs out.

use super::conditions::split_seed;

/// A figure of the study whose runs the reader picks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StudyFigure {
    Trajectory,
    Waterfall,
    LayerPr,
}

impl StudyFigure {
    /// The plan's conditions this figure compares.
    pub fn plan(self) -> &'static [&'static str] {
        match self {
            StudyFigure::Trajectory => &["A1", "A2", "B1", "B2"],
            StudyFigure::Waterfall => &["A1", "A2"],
            StudyFigure::LayerPr => &["C1", "C2"],
        }
    }
}

/// The runs among `available` (in their order) that `figure` opens on: those of its plan
/// conditions when all of them are present, else all of `available`.
pub fn default_runs(figure: StudyFigure, available: &[String]) -> Vec<String> {
    let plan = figure.plan();
    let condition = |run: &String| split_seed(run).0;
    let present = |c: &&str| available.iter().any(|r| condition(r) == *c);
    if plan.iter().all(present) {
        available
            .iter()
            .filter(|r| plan.contains(&condition(r).as_str()))
            .cloned()
            .collect()
    } else {
        available.to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_plan_runs_when_all_are_present() {
        let all = names(&["A1", "A2", "B1", "B2", "C1", "C2"]);
        assert_eq!(
            default_runs(StudyFigure::Trajectory, &all),
            ["A1", "A2", "B1", "B2"]
        );
        assert_eq!(default_runs(StudyFigure::Waterfall, &all), ["A1", "A2"]);
        assert_eq!(default_runs(StudyFigure::LayerPr, &all), ["C1", "C2"]);
    }

    #[test]
    fn every_run_when_part_of_the_plan_is_missing() {
        let some = names(&["A1", "A2", "B1", "stories260K"]);
        assert_eq!(default_runs(StudyFigure::Trajectory, &some), some);
        assert_eq!(default_runs(StudyFigure::Waterfall, &some), ["A1", "A2"]);
        assert_eq!(default_runs(StudyFigure::LayerPr, &some), some);
        assert!(default_runs(StudyFigure::LayerPr, &[]).is_empty());
    }

    #[test]
    fn seeds_open_with_their_condition() {
        let runs = names(&["A1", "A1_seed43", "A2-s2", "B1", "B2", "other"]);
        assert_eq!(
            default_runs(StudyFigure::Trajectory, &runs),
            ["A1", "A1_seed43", "A2-s2", "B1", "B2"]
        );
        assert_eq!(
            default_runs(StudyFigure::Waterfall, &runs),
            ["A1", "A1_seed43", "A2-s2"]
        );
        // A renamed run is its new name: "A1-qknorm" is not the plan's A1.
        let renamed = names(&["A1-qknorm", "A2"]);
        assert_eq!(default_runs(StudyFigure::Waterfall, &renamed), renamed);
    }
}
