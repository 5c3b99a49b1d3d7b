//! The study's comparisons as cards: for each of the plan's pairs among the conditions (and a pair
//! the user picks), the effect at the final checkpoint and over the trajectory, per layer, its
//! uncertainty and test, Holm's corrected p and the verdict — all from the core's `compare_all`.
//! Numbers are shown to four significant digits; each cell keeps the full value in `data-*`.

use crate::comparisons::{CardsInput, Comparisons};
use crate::state::AppState;
use leptos::prelude::*;
use rankscope_core::analysis::activations::KeyVariant;
use rankscope_core::analysis::compare::{Comparison, Effect, FailedComparison};
use rankscope_core::analysis::trajectory::{Matrix, Metric, SpectraSource};
use rankscope_core::figures::format_number;

fn opt(v: Option<f64>) -> String {
    v.map_or(String::new(), |v| format!("{v}"))
}

fn source_key(s: SpectraSource) -> String {
    match s {
        SpectraSource::Weights => "weights".into(),
        SpectraSource::Activations(v) => format!("act:{}", v.key()),
    }
}

fn parse_source(v: &str) -> SpectraSource {
    v.strip_prefix("act:")
        .and_then(KeyVariant::from_key)
        .map_or(SpectraSource::Weights, SpectraSource::Activations)
}

#[component]
pub fn ComparisonCards() -> impl IntoView {
    let state = AppState::use_context();
    let cmp = Comparisons::use_context();
    let input = Memo::new(move |_| cmp.cards(state));
    let names = Memo::new(move |_| {
        cmp.conditions_or_none(state)
            .into_iter()
            .map(|c| c.name)
            .collect::<Vec<_>>()
    });
    let has_runs = move || {
        state.workspace.inventory.with(|i| !i.runs.is_empty())
            || state.analysis.spectra.with(|s| !s.is_empty())
    };
    let pick = move |which: usize, v: String| {
        cmp.extra
            .update(|p| if which == 0 { p.0 = v } else { p.1 = v })
    };
    view! {
        <Show when=has_runs>
            <section class="comparisons" id="comparisons" aria-labelledby="comparisons-title">
                <h2 id="comparisons-title">"Comparisons"</h2>
                <p class="note">
                    "The plan's pairs among the conditions (A1/A2: QK-norm, A1/B1: optimizer, C1/C2: data, A2/B2: double "
                    "control) and any pair you pick. With ≥ 2 seeds per side: Welch's t-test (interval, p) and the exact "
                    "permutation test over seed labels; with one seed a side: no test across seeds, and a paired "
                    "signed-rank test across (layer, head) units, descriptive only. Holm's correction runs over every "
                    "test shown here."
                </p>
                <div class="controls" id="comparison-controls">
                    <label>"source "
                        <select id="cmp-source" on:change=move |ev| cmp.source.set(parse_source(&event_target_value(&ev)))>
                            {KeyVariant::ALL.into_iter().map(|v| view! {
                                <option value=format!("act:{}", v.key()) prop:selected=move || source_key(cmp.source.get()) == format!("act:{}", v.key())>
                                    {format!("activations: {} (eval batch)", v.key())}
                                </option>
                            }).collect_view()}
                            <option value="weights" prop:selected=move || cmp.source.get() == SpectraSource::Weights>"weights (no forward pass)"</option>
                        </select>
                    </label>
                    <label>"matrix "
                        <select id="cmp-matrix" on:change=move |ev| cmp.matrix.set(if event_target_value(&ev) == "q" { Matrix::Q } else { Matrix::K })>
                            <option value="k" prop:selected=move || cmp.matrix.get() == Matrix::K>"K"</option>
                            <option value="q" prop:selected=move || cmp.matrix.get() == Matrix::Q>"Q"</option>
                        </select>
                    </label>
                    <label>"metric "
                        <select id="cmp-metric" on:change=move |ev| if let Some(m) = Metric::from_key(&event_target_value(&ev)) { cmp.metric.set(m) }>
                            {Metric::ALL.into_iter().map(|m| view! { <option value=m.key() prop:selected=move || cmp.metric.get() == m>{m.label()}</option> }).collect_view()}
                        </select>
                    </label>
                    <label>"equivalence margin ± "
                        <input id="cmp-margin" type="number" min="0.1" max="100" step="0.5" prop:value=move || cmp.margin_pct.get().to_string()
                            on:change=move |ev| { if let Ok(v) = event_target_value(&ev).parse::<f64>() { if v > 0.0 { cmp.margin_pct.set(v) } } }/>
                        " % of the pooled mean"
                    </label>
                    <label>"also compare "
                        <select id="cmp-x" on:change=move |ev| pick(0, event_target_value(&ev))>
                            <option value="" prop:selected=move || cmp.extra.with(|p| p.0.is_empty())>"—"</option>
                            {move || names.get().into_iter().map(|n| {
                                let chosen = n.clone();
                                view! { <option value=n.clone() prop:selected=move || cmp.extra.with(|p| p.0 == chosen)>{n.clone()}</option> }
                            }).collect_view()}
                        </select>
                    </label>
                    <label>" vs "
                        <select id="cmp-y" on:change=move |ev| pick(1, event_target_value(&ev))>
                            <option value="" prop:selected=move || cmp.extra.with(|p| p.1.is_empty())>"—"</option>
                            {move || names.get().into_iter().map(|n| {
                                let chosen = n.clone();
                                view! { <option value=n.clone() prop:selected=move || cmp.extra.with(|p| p.1 == chosen)>{n.clone()}</option> }
                            }).collect_view()}
                        </select>
                    </label>
                </div>
                {move || match input.get() {
                    CardsInput::Missing(why) => view! { <p class="note" id="comparisons-missing" role="status">{why}</p> }.into_any(),
                    CardsInput::Set(set) => {
                        let holm = if set.holm_family.is_empty() {
                            "No p-value to correct: no comparison has ≥ 2 seeds per side.".to_string()
                        } else {
                            format!("Holm's correction over {} tests: {}.", set.holm_family.len(), set.holm_family.join("; "))
                        };
                        view! {
                            <div class="cards" id="comparison-cards">
                                {set.comparisons.iter().cloned().map(|c| view! { <Card c=c/> }).collect_view()}
                                {set.failed.iter().cloned().map(|f| view! { <FailedCard f=f/> }).collect_view()}
                            </div>
                            <p class="note" id="holm-family">{holm}</p>
                        }.into_any()
                    }
                }}
            </section>
        </Show>
    }
}

/// A pair that could not be compared, and what is missing.
#[component]
fn FailedCard(f: FailedComparison) -> impl IntoView {
    view! {
        <article class="card failed" data-x=f.x.clone() data-y=f.y.clone() data-metric=f.metric.clone()>
            <h3>{format!("{} vs {} — {}", f.x, f.y, f.metric)}</h3>
            <p class="error">{format!("Not compared: {}", f.message)}</p>
        </article>
    }
}

#[component]
fn Card(c: Comparison) -> impl IntoView {
    let question = c.question.as_ref().map(|q| q.question.clone());
    let layers = (!c.layers.is_empty()).then(|| {
        c.layers
            .iter()
            .map(|l| {
                let ci = l.interval.map_or(String::new(), |[lo, hi]| {
                    format!(" [{}, {}]", format_number(lo), format_number(hi))
                });
                format!("L{}: {}{ci}", l.layer, format_number(l.difference))
            })
            .collect::<Vec<_>>()
            .join(" · ")
    });
    let units = c.units.as_ref().map(|u| {
        format!(
            "Paired Wilcoxon signed-rank test across (layer, head) units, {} vs {} at {}: T = {}, p = {} (n = {}{}); {}.",
            u.run_x,
            u.run_y,
            u.at,
            format_number(u.test.statistic),
            format_number(u.test.p),
            u.test.n,
            if u.test.zeros > 0 { format!(", {} zero differences dropped", u.test.zeros) } else { String::new() },
            u.caveat
        )
    });
    let units_p = c.units.as_ref().map(|u| u.test.p);
    view! {
        <article class="card" data-x=c.x.clone() data-y=c.y.clone() data-metric=c.metric.key.clone()
            id=format!("card-{}-{}-{}", c.x, c.y, c.metric.key)>
            <h3>{format!("{} vs {}", c.x, c.y)}{question.map(|q| format!(" — {q}"))}</h3>
            <p class="note">{format!("{}. Runs: {} ({}) vs {} ({}); {} shared checkpoints.",
                c.metric.label, c.runs_x.join(", "), c.runs_x.len(), c.runs_y.join(", "), c.runs_y.len(), c.shared.len())}</p>
            <table class="effects">
                <thead><tr>
                    <th scope="col">"effect"</th><th scope="col">{c.x.clone()}</th><th scope="col">{c.y.clone()}</th>
                    <th scope="col">"difference"</th><th scope="col">"interval"</th><th scope="col">"test"</th>
                    <th scope="col">"p"</th><th scope="col">"Holm p"</th><th scope="col">"verdict"</th>
                </tr></thead>
                <tbody>
                    <EffectRow kind="final" e=c.final_effect.clone()/>
                    {c.trajectory.clone().map(|e| view! { <EffectRow kind="trajectory" e=e/> })}
                </tbody>
            </table>
            {layers.map(|l| view! { <p class="layers note">{format!("Per layer at the final checkpoint (x − y, uncorrected): {l}")}</p> })}
            {units.map(|u| view! { <p class="units note" data-p=opt(units_p)>{u}</p> })}
            {(!c.notes.is_empty()).then(|| view! { <ul class="notes">{c.notes.iter().map(|n| view! { <li>{n.clone()}</li> }).collect_view()}</ul> })}
        </article>
    }
}

/// One effect: means, difference, interval, test, p, Holm p and the verdict with its reason.
#[component]
fn EffectRow(kind: &'static str, e: Effect) -> impl IntoView {
    let interval = e.interval.map_or("—".to_string(), |[lo, hi]| {
        format!(
            "{:.0}%: [{}, {}]",
            e.level * 100.0,
            format_number(lo),
            format_number(hi)
        )
    });
    let mut tests = Vec::new();
    if let Some(w) = &e.welch {
        tests.push(format!(
            "Welch t = {}, df = {}",
            format_number(w.t),
            format_number(w.df)
        ));
    }
    if let Some(p) = &e.permutation {
        tests.push(format!(
            "exact permutation p = {} ({} relabelings)",
            format_number(p.p),
            p.relabelings
        ));
    }
    if let Some(eq) = &e.equivalence {
        tests.push(format!(
            "equivalence at ±{}: {}{}",
            format_number(eq.margin),
            if eq.passed { "passed" } else { "not shown" },
            eq.tost.map_or(String::new(), |t| format!(
                " (TOST p = {})",
                format_number(t.p)
            ))
        ));
    }
    let verdict = if e.verdict.sentence.is_empty() {
        e.verdict.reason.clone()
    } else {
        format!("{} ({})", e.verdict.sentence, e.verdict.reason)
    };
    let kind_label = format!("{:?}", e.verdict.kind).to_lowercase();
    view! {
        <tr class="effect" data-effect=kind data-mean-x=e.mean_x.to_string() data-mean-y=e.mean_y.to_string()
            data-difference=e.difference.to_string()
            data-t=opt(e.welch.map(|w| w.t)) data-df=opt(e.welch.map(|w| w.df)) data-p=opt(e.p) data-p-holm=opt(e.p_holm)
            data-perm-p=opt(e.permutation.as_ref().map(|p| p.p)) data-relabelings=opt(e.permutation.as_ref().map(|p| p.relabelings as f64))
            data-verdict=kind_label>
            <th scope="row">{e.what.clone()}</th>
            <td>{format_number(e.mean_x)}</td>
            <td>{format_number(e.mean_y)}</td>
            <td>{format_number(e.difference)}</td>
            <td>{interval}</td>
            <td class="test">{tests.join("; ")}<span class="uncertainty">{format!(" Uncertainty: {}.", e.uncertainty.describe())}</span></td>
            <td>{e.p.map_or("—".into(), format_number)}</td>
            <td>{e.p_holm.map_or("—".into(), format_number)}</td>
            <td class="verdict">{verdict}</td>
        </tr>
    }
}
