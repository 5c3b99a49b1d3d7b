//! The page's state for the study's comparisons (a Leptos context of its own, next to
//! [`crate::state::AppState`]): how runs group into conditions (automatic, plus the user's
//! regrouping), the metric and margin the comparison cards use, the extra pair the user picks,
//! and whether Figures 1–3 draw single seeds. Every number comes from the core
//! ([`rankscope_core::analysis::conditions`], [`rankscope_core::analysis::compare`]).

use crate::state::AppState;
use leptos::prelude::*;
use rankscope_core::analysis::activations::KeyVariant;
use rankscope_core::analysis::compare::inputs::{heldout_loss_values, spectra_metric_values};
use rankscope_core::analysis::compare::{
    compare_all, plan_pairs, CompareOptions, ComparisonSet, Margin, MetricValues, Pair,
};
use rankscope_core::analysis::conditions::{
    group_conditions, run_seeds, Condition, RunSeed, SeedSource, UserGroup,
};
use rankscope_core::analysis::trajectory::{Matrix, Metric, RunSpectra, SpectraSource};
use std::collections::BTreeMap;

#[derive(Clone, Copy)]
pub struct Comparisons {
    /// Run → condition the user put it in (overrides grouping by name).
    pub assigned: RwSignal<BTreeMap<String, String>>,
    /// Figures 1–3 draw each seed as a thin line behind its condition's mean.
    pub show_seeds: RwSignal<bool>,
    /// Figure 1 marks each line's collapse onset and steepest drop (off by default: the marks are
    /// series of their own, and a plain Figure 1 keeps one series per run).
    pub mark_collapse: RwSignal<bool>,
    /// The cards' metric: where from, which matrix, which metric (Figure 1's menu).
    pub source: RwSignal<SpectraSource>,
    pub matrix: RwSignal<Matrix>,
    pub metric: RwSignal<Metric>,
    /// The equivalence margin δ, in percent of the pooled mean.
    pub margin_pct: RwSignal<f64>,
    /// A pair the user picks besides the plan's (x, y).
    pub extra: RwSignal<(String, String)>,
}

/// What the cards show: the comparisons, or why there are none.
#[derive(Clone, PartialEq)]
pub enum CardsInput {
    Set(Box<ComparisonSet>),
    Missing(String),
}

impl Comparisons {
    pub fn new() -> Self {
        Self {
            assigned: RwSignal::new(BTreeMap::new()),
            show_seeds: RwSignal::new(false),
            mark_collapse: RwSignal::new(false),
            source: RwSignal::new(SpectraSource::Activations(KeyVariant::PostNorm)),
            matrix: RwSignal::new(Matrix::K),
            metric: RwSignal::new(Metric::Pr),
            margin_pct: RwSignal::new(5.0),
            extra: RwSignal::new((String::new(), String::new())),
        }
    }

    pub fn use_context() -> Self {
        expect_context::<Comparisons>()
    }

    /// Puts `run` in condition `name` (trimmed); an empty name returns it to grouping by name.
    pub fn assign(self, run: String, name: String) {
        let name = name.trim().to_string();
        self.assigned.update(|m| {
            if name.is_empty() {
                m.remove(&run);
            } else {
                m.insert(run, name);
            }
        });
    }

    /// Every run the page knows, with the seed its files state: the inventory's runs, then runs
    /// only a saved session has (their seed is unknown).
    fn seeds(state: AppState) -> Vec<RunSeed> {
        let mut seeds = state.workspace.inventory.with(run_seeds);
        let computed: Vec<String> = state
            .analysis
            .spectra
            .with(|r| r.iter().map(|r| r.run.clone()).collect::<Vec<_>>())
            .into_iter()
            .chain(
                state
                    .analysis
                    .activations
                    .with(|r| r.iter().map(|r| r.run.clone()).collect::<Vec<_>>()),
            )
            .collect();
        for run in computed {
            if !seeds.iter().any(|s| s.run == run) {
                seeds.push(RunSeed {
                    run,
                    seed: None,
                    seed_from: SeedSource::Unknown,
                });
            }
        }
        seeds
    }

    /// The conditions (reactive), or why the user's grouping cannot be applied.
    pub fn conditions(self, state: AppState) -> Result<Vec<Condition>, String> {
        let seeds = Self::seeds(state);
        // Only runs that still exist (a renamed or cleared run drops out of the mapping).
        let groups: Vec<UserGroup> = self.assigned.with(|m| {
            let mut groups: Vec<UserGroup> = Vec::new();
            for (run, name) in m.iter().filter(|(r, _)| seeds.iter().any(|s| &s.run == *r)) {
                match groups.iter_mut().find(|g| &g.name == name) {
                    Some(g) => g.runs.push(run.clone()),
                    None => groups.push(UserGroup {
                        name: name.clone(),
                        runs: vec![run.clone()],
                    }),
                }
            }
            groups
        });
        group_conditions(&seeds, &groups).map_err(|e| e.to_string())
    }

    /// The conditions, or none when the grouping fails (the runs panel says why).
    pub fn conditions_or_none(self, state: AppState) -> Vec<Condition> {
        self.conditions(state).unwrap_or_default()
    }

    /// The spectra of the cards' source, per run.
    fn spectra(self, state: AppState) -> Vec<RunSpectra> {
        match self.source.get() {
            SpectraSource::Activations(v) => state
                .analysis
                .activations
                .with(|runs| runs.iter().map(|r| r.run_spectra(v)).collect()),
            SpectraSource::Weights => state.analysis.spectra.get(),
        }
    }

    /// The cards' metric per run, from the spectra of the cards' source (also what the report
    /// times collapse on); `None` while there are no spectra ([`Self::no_spectra`] says why).
    pub fn metric_values(self, state: AppState) -> Option<MetricValues> {
        let spectra = self.spectra(state);
        (!spectra.is_empty()).then(|| {
            spectra_metric_values(
                &spectra,
                self.source.get(),
                self.matrix.get(),
                self.metric.get(),
            )
        })
    }

    /// Why there are no spectra of the cards' source.
    pub fn no_spectra(self, state: AppState) -> String {
        match self.source.get() {
            SpectraSource::Activations(_) if state.analysis.expecting_activations.get() => {
                "waiting for the activation spectra (forward passes on the eval batch)".into()
            }
            SpectraSource::Activations(_) => {
                "no activation spectra: the default metric, K PR of the activations, needs an eval token batch \
                 among the dropped files (a batch named eval…); choose the weights as the source to compare \
                 without one"
                    .into()
            }
            SpectraSource::Weights => "no weight spectra computed yet".into(),
        }
    }

    /// The pairs to compare: the plan's pairs among the conditions, then the user's pair.
    pub fn pairs(self, conditions: &[Condition]) -> Vec<Pair> {
        let names: Vec<&str> = conditions.iter().map(|c| c.name.as_str()).collect();
        let mut pairs = plan_pairs(&names);
        let (x, y) = self.extra.get();
        let extra = Pair { x, y };
        if !extra.x.is_empty() && !extra.y.is_empty() && !pairs.contains(&extra) {
            pairs.push(extra);
        }
        pairs
    }

    /// Every comparison of the cards, Holm-corrected together (the chosen metric and, when a
    /// held-out batch gave losses, the final held-out loss), or what is missing.
    pub fn cards(self, state: AppState) -> CardsInput {
        let conditions = match self.conditions(state) {
            Ok(c) => c,
            Err(e) => return CardsInput::Missing(format!("the runs cannot be grouped: {e}")),
        };
        if conditions.len() < 2 {
            return CardsInput::Missing(format!(
                "comparisons need two conditions; the runs form {} ({})",
                conditions.len(),
                conditions
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let pairs = self.pairs(&conditions);
        if pairs.is_empty() {
            return CardsInput::Missing(format!(
                "none of the plan's pairs (A1/A2, A1/B1, C1/C2, A2/B2) is among the conditions ({}): pick two \
                 conditions to compare",
                conditions
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let Some(values) = self.metric_values(state) else {
            return CardsInput::Missing(self.no_spectra(state));
        };
        let mut tables: Vec<MetricValues> = vec![values];
        let heldout = state.analysis.activations.with(|r| heldout_loss_values(r));
        if heldout.runs.iter().any(|r| !r.points.is_empty()) {
            tables.push(heldout);
        }
        let options = CompareOptions {
            margin: Margin::FractionOfPooledMean(self.margin_pct.get() / 100.0),
            ..CompareOptions::default()
        };
        CardsInput::Set(Box::new(compare_all(&conditions, &tables, &pairs, options)))
    }
}
