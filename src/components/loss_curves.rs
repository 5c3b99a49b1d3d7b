//! Loss-curve diagnostics of the dropped run logs (issue 6): loss curves,
//! collapse residual with its flags, consolidation ratio C(t), health
//! timeline with editable rules, and rank vs loss. Every figure comes from a
//! pure builder in `rankscope_core::analysis::losscurve::figures`.

use super::figure_canvas::FigureCanvas;
use crate::state::AppState;
use crate::view_link::ViewChoices;
use leptos::prelude::*;
use rankscope_core::analysis::losscurve::axes::XAxis;
use rankscope_core::analysis::losscurve::consolidation::{
    ConsolidationConfig, NoiseSource, VarianceConvention,
};
use rankscope_core::analysis::losscurve::figures::{
    consolidation_figure, default_loss_metric, default_reference, health_figure, log_runs,
    loss_curve_figure, metric_names, pattern_label, rank_loss_figures, readout, residual_figure,
    LogRun, LossCurveOptions, RankLossOptions, ResidualFigure, ResidualOptions, DEFAULT_BUCKETS,
};
use rankscope_core::analysis::losscurve::geometry::geometry_figures;
use rankscope_core::analysis::losscurve::health::{builtin_rules, HealthReport, Rule};
use rankscope_core::analysis::losscurve::residual::{ResidualConfig, ResidualThresholds};
use rankscope_core::figures::spec::FigureSpec;
use std::collections::BTreeSet;

const X_AXES: [(XAxis, &str); 6] = [
    (XAxis::Step, "step"),
    (XAxis::Tokens, "tokens"),
    (XAxis::Progress, "progress"),
    (XAxis::CumulativeLr, "cumlr"),
    (XAxis::RelativeTime, "reltime"),
    (XAxis::WallTime, "wall"),
];

/// The settings every figure of the section reads.
#[derive(Clone, Copy)]
struct Settings {
    metric: RwSignal<Option<String>>,
    x: RwSignal<XAxis>,
    log_y: RwSignal<bool>,
    beta: RwSignal<f64>,
    hidden: RwSignal<BTreeSet<String>>,
    /// `None` until the user picks: the first of the largest group of comparable runs with the metric.
    reference: RwSignal<Option<BTreeSet<String>>>,
    window: RwSignal<(f64, f64)>,
    /// The residual's pattern thresholds.
    thresholds: RwSignal<ResidualThresholds>,
    /// C(t)'s settings (B, d, convention, noise source, ≈ 1 band, window).
    consolidation: RwSignal<ConsolidationConfig>,
}

#[component]
pub fn LossCurves() -> impl IntoView {
    let state = AppState::use_context();
    let runs = Memo::new(move |_| state.workspace.inventory.with(log_runs));
    // The section's view (metric, x, log y, smoothing, runs, window) lives in
    // the page's view, which the URL keeps; the rest are analysis settings.
    let v = ViewChoices::use_context();
    let s = Settings {
        metric: v.loss_metric,
        x: v.loss_x,
        log_y: v.loss_log_y,
        beta: v.loss_beta,
        hidden: v.loss_hidden,
        reference: v.loss_reference,
        window: v.loss_window,
        thresholds: RwSignal::new(ResidualThresholds::default()),
        consolidation: RwSignal::new(ConsolidationConfig::default()),
    };
    let metric = Memo::new(move |_| {
        s.metric
            .get()
            .or_else(|| runs.with(|r| default_loss_metric(r)))
            .unwrap_or_default()
    });
    let shown = Memo::new(move |_| {
        let hidden = s.hidden.get();
        runs.with(|r| {
            r.iter()
                .filter(|r| !hidden.contains(&r.name))
                .cloned()
                .collect::<Vec<LogRun>>()
        })
    });
    let reference = Memo::new(move |_| {
        s.reference.get().unwrap_or_else(|| {
            runs.with(|r| default_reference(r, &metric.get()).into_iter().collect())
        })
    });

    let loss = Memo::new(move |_| {
        let opts = LossCurveOptions {
            metric: metric.get(),
            x: s.x.get(),
            log_y: s.log_y.get(),
            ema_beta: s.beta.get(),
            buckets: DEFAULT_BUCKETS,
        };
        shown.with(|r| loss_curve_figure(r, &opts))
    });
    let residual = Memo::new(move |_| {
        let (w0, w1) = s.window.get();
        let opts = ResidualOptions {
            metric: metric.get(),
            reference: reference.get().into_iter().collect(),
            config: ResidualConfig {
                window: (w0, w1),
                thresholds: s.thresholds.get(),
            },
            buckets: DEFAULT_BUCKETS,
        };
        shown.with(|r| residual_figure(r, &opts))
    });
    let consolidation = Memo::new(move |_| {
        let config = s.consolidation.get();
        shown.with(|r| consolidation_figure(r, &config, DEFAULT_BUCKETS))
    });
    let geometry = Memo::new(move |_| {
        let x = if s.x.get() == XAxis::CumulativeLr {
            XAxis::CumulativeLr
        } else {
            XAxis::Step
        };
        shown.with(|r| geometry_figures(r, x))
    });
    let rules_text =
        RwSignal::new(serde_json::to_string_pretty(&builtin_rules()).unwrap_or_default());
    // The section's settings travel in sessions; an opened session's come back here.
    Effect::new(move |_| {
        state.loss_view.set(serde_json::json!({
            "metric": s.metric.get(),
            "x": s.x.get(),
            "log_y": s.log_y.get(),
            "beta": s.beta.get(),
            "hidden": s.hidden.get(),
            "reference": s.reference.get(),
            "window": s.window.get(),
            "thresholds": s.thresholds.get(),
            "consolidation": s.consolidation.get(),
            "rules": rules_text.get(),
        }));
    });
    Effect::new(move |_| {
        let Some(v) = state.loss_view_restore.get() else {
            return;
        };
        state.loss_view_restore.set(None);
        restore(s.metric, &v["metric"]);
        restore(s.x, &v["x"]);
        restore(s.log_y, &v["log_y"]);
        restore(s.beta, &v["beta"]);
        restore(s.hidden, &v["hidden"]);
        restore(s.reference, &v["reference"]);
        restore(s.window, &v["window"]);
        restore(s.thresholds, &v["thresholds"]);
        restore(s.consolidation, &v["consolidation"]);
        restore(rules_text, &v["rules"]);
    });
    let rules = Memo::new(move |_| {
        serde_json::from_str::<Vec<Rule>>(&rules_text.get())
            .map_err(|e| format!("rules are not valid JSON: {e}"))
    });
    let health = Memo::new(move |_| {
        rules
            .get()
            .ok()
            .map(|rules| shown.with(|r| health_figure(r, &rules)))
    });
    let rank_loss = Memo::new(move |_| {
        let opts = RankLossOptions {
            loss_metric: metric.get(),
            x: s.x.get(),
            ..RankLossOptions::default()
        };
        shown.with(|r| rank_loss_figures(r, &opts))
    });

    let spec_of = move |m: Memo<Result<FigureSpec, String>>| Signal::derive(move || m.get().ok());
    let loss_spec = spec_of(loss);
    let residual_spec = Signal::derive(move || residual.get().ok().map(|r| r.spec));
    let c_spec = Signal::derive(move || consolidation.get().spec);
    let health_spec = Signal::derive(move || health.get().and_then(|h| h.spec));
    let rank_spec = Signal::derive(move || rank_loss.get().ok().map(|f| f.rank));
    let rank_loss_spec = Signal::derive(move || rank_loss.get().ok().map(|f| f.loss));

    view! {
        <Show when=move || runs.with(|r| !r.is_empty())>
            <section class="figures loss-curves" id="loss-curves">
                <h2>"Loss curves"</h2>
                <Controls s=s runs=runs metric=metric reference=reference/>
                <h3>"Loss curve"</h3>
                <Message id="loss-message" text=Signal::derive(move || loss.get().err())/>
                <FigureCanvas id="figure-loss" readout=readout own_log_y=true spec=loss_spec empty_text="No run log has this metric on this x-axis."/>
                <h3>"Collapse residual"</h3>
                <Message id="residual-message" text=Signal::derive(move || residual.get().err())/>
                <FigureCanvas id="figure-residual" readout=readout spec=residual_spec empty_text="Pick a reference run and a metric both log."/>
                <ResidualThresholdInputs s=s/>
                <FlagsList residual=residual/>
                <h3>"Consolidation ratio C(t)"</h3>
                <ConsolidationInputs s=s/>
                <Message id="consolidation-message" text=Signal::derive(move || consolidation.with(|c| (!c.messages.is_empty()).then(|| c.messages.join("\n"))))/>
                <FigureCanvas id="figure-consolidation" readout=readout spec=c_spec empty_text="C(t) needs grad_norm, grad_var, lr, batch_size and n_params in a log."/>
                <h3>"Health rules"</h3>
                <RulesEditor text=rules_text error=Signal::derive(move || rules.get().err())/>
                <FigureCanvas id="figure-health" spec=health_spec empty_text="No rule fired in the runs shown."/>
                <HealthEvents reports=Signal::derive(move || health.get().map(|h| h.reports).unwrap_or_default())/>
                <h3>"Gradient geometry"</h3>
                <FigureCanvas id="figure-geometry" readout=readout spec=Signal::derive(move || geometry.get().cosines)
                    empty_text="No run logs a gradient-geometry cosine (cos_ep_bptt, self_cos, cos_ce_jac, cos_ce_total)."/>
                <FigureCanvas id="figure-geometry-ratios" readout=readout spec=Signal::derive(move || geometry.get().ratios) empty_text=""/>
                <h3>"Rank vs loss"</h3>
                <Message id="rank-message" text=Signal::derive(move || rank_loss.get().err())/>
                <FigureCanvas id="figure-rank" readout=readout spec=rank_spec empty_text="Rank vs loss needs a PR trajectory (mean_pr, e.g. the study's results.json)."/>
                <FigureCanvas id="figure-rank-loss" readout=readout spec=rank_loss_spec empty_text=""/>
            </section>
        </Show>
    }
}

/// A muted line (or several), hidden when empty.
#[component]
fn Message(id: &'static str, text: Signal<Option<String>>) -> impl IntoView {
    move || {
        text.get()
            .map(|t| view! { <p class="message" id=id>{t}</p> })
    }
}

/// Metric, x-axis, log y, EMA β, runs shown, reference run(s), window.
#[component]
fn Controls(
    s: Settings,
    runs: Memo<Vec<LogRun>>,
    metric: Memo<String>,
    reference: Memo<BTreeSet<String>>,
) -> impl IntoView {
    let names = move || runs.with(|r| r.iter().map(|r| r.name.clone()).collect::<Vec<_>>());
    let set_window = move |start: bool, v: String| {
        if let Ok(v) = v.trim().parse::<f64>() {
            s.window.update(|w| if start { w.0 = v } else { w.1 = v });
        }
    };
    view! {
        <div class="controls">
            <label>"metric "
                <select id="lc-metric" on:change=move |ev| s.metric.set(Some(event_target_value(&ev)))>
                    {move || runs.with(|r| metric_names(r)).into_iter().map(|m| {
                        let (sel, value) = (m.clone(), m.clone());
                        view! { <option value=value prop:selected=move || metric.get() == sel>{m}</option> }
                    }).collect_view()}
                </select>
            </label>
            <label>"x "
                <select id="lc-x" on:change=move |ev| {
                    let v = event_target_value(&ev);
                    if let Some((a, _)) = X_AXES.iter().find(|(_, k)| *k == v) { s.x.set(*a) }
                }>
                    {X_AXES.into_iter().map(|(a, k)| view! { <option value=k prop:selected=move || s.x.get() == a>{a.label()}</option> }).collect_view()}
                </select>
            </label>
            <label><input id="lc-log-y" type="checkbox" prop:checked=move || s.log_y.get() on:change=move |_| s.log_y.update(|v| *v = !*v)/>" log y"</label>
            <label>"EMA β "
                <input id="lc-beta" type="number" min="0" max="0.999" step="0.05" prop:value=move || s.beta.get().to_string()
                    on:change=move |ev| { if let Ok(b) = event_target_value(&ev).parse::<f64>() { s.beta.set(b.clamp(0.0, 0.999)) } }/>
            </label>
            <label>"window t̂ "
                <input id="lc-w0" aria-label="window start (t̂, fraction of training)" class="num" type="number" min="0" max="1" step="0.05" prop:value=move || s.window.get().0.to_string()
                    on:change=move |ev| set_window(true, event_target_value(&ev))/>
                " – "
                <input id="lc-w1" aria-label="window end (t̂, fraction of training)" class="num" type="number" min="0" max="1" step="0.05" prop:value=move || s.window.get().1.to_string()
                    on:change=move |ev| set_window(false, event_target_value(&ev))/>
            </label>
        </div>
        <table class="lc-runs" id="lc-runs">
            <thead><tr><th>"run"</th><th>"shown"</th><th>"reference"</th></tr></thead>
            <tbody>
                <For each=names key=|n| n.clone() let:name>
                    {
                        let (a, b, c, d, attr) = (name.clone(), name.clone(), name.clone(), name.clone(), name.clone());
                        let (show_label, ref_label) = (format!("show {name}"), format!("use {name} as a reference"));
                        view! {
                            <tr data-run=attr>
                                <td>{name}</td>
                                <td><input class="lc-show" type="checkbox" aria-label=show_label prop:checked=move || !s.hidden.with(|h| h.contains(&a))
                                    on:change=move |_| s.hidden.update(|h| if !h.remove(&b) { h.insert(b.clone()); })/></td>
                                <td><input class="lc-ref" type="checkbox" aria-label=ref_label prop:checked=move || reference.with(|r| r.contains(&c))
                                    on:change=move |_| {
                                        let mut r = reference.get_untracked();
                                        if !r.remove(&d) { r.insert(d.clone()); }
                                        s.reference.set(Some(r));
                                    }/></td>
                            </tr>
                        }
                    }
                </For>
            </tbody>
        </table>
    }
}

/// The residual's flagged patterns with their evidence and suggested checks.
#[component]
fn FlagsList(residual: Memo<Result<ResidualFigure, String>>) -> impl IntoView {
    let items = move || {
        residual.with(|r| {
            r.as_ref()
                .map(|r| {
                    r.runs
                        .iter()
                        .flat_map(|run| {
                            run.residual
                                .flags
                                .iter()
                                .map(move |f| (run.run.clone(), f.clone()))
                        })
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        })
    };
    view! {
        <ul class="flags" id="residual-flags">
            {move || {
                let items = items();
                if items.is_empty() && residual.with(Result::is_ok) {
                    return view! { <li class="none">"No pattern flagged: every run collapses onto the reference."</li> }.into_any();
                }
                items.into_iter().map(|(run, f)| view! {
                    <li class="flag" data-run=run.clone() data-pattern=pattern_label(f.pattern)>
                        <strong>{format!("{run}: {}", pattern_label(f.pattern))}</strong>
                        {format!(" (t̂ {:.3}–{:.3}) — {}", f.from, f.to, f.evidence)}
                        <p class="causes">{format!("Root causes: {}. Remediations: {}.", f.causes.join("; "), f.remediations.join("; "))}</p>
                        <ul class="checks">{f.checks.into_iter().map(|c| view! { <li>{c}</li> }).collect_view()}</ul>
                    </li>
                }).collect_view().into_any()
            }}
        </ul>
    }
}

/// The health rules as editable JSON (the built-in RLAN and rank-collapse set to start).
#[component]
fn RulesEditor(text: RwSignal<String>, error: Signal<Option<String>>) -> impl IntoView {
    view! {
        <details class="rules" id="rules-editor">
            <summary>"Edit rules (JSON: name, metric, comparison > >= < <=, threshold, level, optional aggregation)"</summary>
            <textarea id="rules-json" aria-label="health rules as JSON" rows="12" spellcheck="false" prop:value=move || text.get()
                on:change=move |ev| text.set(event_target_value(&ev))></textarea>
            <button class="link" on:click=move |_| text.set(serde_json::to_string_pretty(&builtin_rules()).unwrap_or_default())>"reset to the built-in rules"</button>
        </details>
        {move || error.get().map(|e| view! { <p class="error" id="rules-error" role="alert">{e}</p> })}
    }
}

/// Where each rule fired, per run, and the rules that could not be evaluated.
#[component]
fn HealthEvents(reports: Signal<Vec<HealthReport>>) -> impl IntoView {
    view! {
        <ul class="events" id="health-events">
            {move || reports.get().into_iter().map(|rep| {
                let na = rep.not_applicable.iter().map(|n| n.rule.clone()).collect::<Vec<_>>();
                let events = rep.events.clone();
                let quiet = if events.is_empty() { " no rule fired." } else { "" };
                let run = rep.run.clone();
                let run_attr = rep.run.clone();
                let x = rep.x.clone();
                view! {
                    <li class="run-events" data-run=run_attr>
                        <strong>{run}</strong>
                        {quiet}
                        <ul>
                            {events.into_iter().map(|e| view! {
                                <li class="event" data-rule=e.rule.clone()>
                                    {format!(
                                        "{} ({:?}): first at {x} {} ({} = {}), until {x} {} ({} firing(s), {} {x}s in all), worst {}{}",
                                        e.rule, e.level, e.first_step, e.metric, e.first_value, e.last_step, e.count, e.duration, e.value,
                                        if e.action.is_empty() { String::new() } else { format!(" — action: {}", e.action) }
                                    )}
                                </li>
                            }).collect_view()}
                        </ul>
                        {(!na.is_empty()).then(|| view! { <p class="muted">{format!("not applicable (metric not logged): {}", na.join(", "))}</p> })}
                    </li>
                }
            }).collect_view()}
        </ul>
    }
}

/// A number input that writes a parsed, finite value through `set` (anything else is ignored).
#[component]
fn NumberInput(
    id: &'static str,
    label: &'static str,
    step: &'static str,
    get: Signal<f64>,
    set: Callback<f64>,
) -> impl IntoView {
    view! {
        <label>{label}" "
            <input id=id class="num" type="number" step=step prop:value=move || get.get().to_string()
                on:change=move |ev| { if let Ok(v) = event_target_value(&ev).trim().parse::<f64>() { if v.is_finite() { set.run(v) } } }/>
        </label>
    }
}

/// The residual's pattern thresholds (METRICS.md: the user's to adjust).
#[component]
fn ResidualThresholdInputs(s: Settings) -> impl IntoView {
    let t = s.thresholds;
    let field = move |id: &'static str,
                      label: &'static str,
                      step: &'static str,
                      get: fn(&ResidualThresholds) -> f64,
                      put: fn(&mut ResidualThresholds, f64)| {
        view! { <NumberInput id=id label=label step=step get=Signal::derive(move || t.with(get)) set=Callback::new(move |v| t.update(|x| put(x, v)))/> }
    };
    view! {
        <details class="controls thresholds" id="residual-thresholds">
            <summary>"Pattern thresholds"</summary>
            {field("lc-th-drift-slope", "drift slope >", "0.005", |x| x.drift_slope, |x, v| x.drift_slope = v)}
            {field("lc-th-drift-final", "drift final >", "0.001", |x| x.drift_final, |x, v| x.drift_final = v)}
            {field("lc-th-spike-k", "spike k·σ, k =", "0.5", |x| x.spike_k, |x, v| x.spike_k = v)}
            {field("lc-th-spike-min", "spike size >", "0.001", |x| x.spike_min, |x, v| x.spike_min = v)}
            {field("lc-th-spike-window", "spike half-window (points)", "1", |x| x.spike_half_window as f64, |x, v| x.spike_half_window = v.max(1.0) as usize)}
            {field("lc-th-negative", "negative below −", "0.001", |x| x.negative, |x, v| x.negative = v)}
            {field("lc-th-non-collapse", "non-collapse RMS >", "0.005", |x| x.non_collapse_rms, |x, v| x.non_collapse_rms = v)}
            {field("lc-th-window-rms", "window RMS >", "0.005", |x| x.window_rms, |x, v| x.window_rms = v)}
            <button class="link" on:click=move |_| t.set(ResidualThresholds::default())>"reset"</button>
        </details>
    }
}

/// C(t)'s settings: B, d, the variance convention, where D comes from, the ≈ 1 band and the window.
#[component]
fn ConsolidationInputs(s: Settings) -> impl IntoView {
    let c = s.consolidation;
    let optional = move |id: &'static str,
                         label: &'static str,
                         get: fn(&ConsolidationConfig) -> Option<f64>,
                         put: fn(&mut ConsolidationConfig, Option<f64>)| {
        view! {
            <label>{label}" "
                <input id=id class="num" type="number" placeholder="from the log" prop:value=move || c.with(get).map(|v| v.to_string()).unwrap_or_default()
                    on:change=move |ev| { let v = event_target_value(&ev).trim().parse::<f64>().ok().filter(|v| v.is_finite() && *v > 0.0); c.update(|x| put(x, v)) }/>
            </label>
        }
    };
    let convention = move || match c.with(|x| x.variance) {
        VarianceConvention::Auto => "auto".to_string(),
        VarianceConvention::PerSample => "per-sample".to_string(),
        VarianceConvention::MicroBatch(n) => format!("micro:{n}"),
    };
    view! {
        <details class="controls consolidation-settings" id="consolidation-settings">
            <summary>"C(t) settings"</summary>
            {optional("lc-c-batch", "B", |x| x.batch_size, |x, v| x.batch_size = v)}
            {optional("lc-c-params", "d", |x| x.n_params, |x, v| x.n_params = v)}
            <label>"grad_var is (auto, per-sample, micro:N) "
                <input id="lc-c-convention" type="text" prop:value=convention on:change=move |ev| {
                    let v = event_target_value(&ev);
                    let conv = match v.trim() {
                        "auto" => Some(VarianceConvention::Auto),
                        "per-sample" => Some(VarianceConvention::PerSample),
                        other => other.strip_prefix("micro:").and_then(|n| n.parse::<f64>().ok()).filter(|n| *n > 0.0).map(VarianceConvention::MicroBatch),
                    };
                    if let Some(conv) = conv { c.update(|x| x.variance = conv) }
                }/>
            </label>
            <label><input id="lc-c-warmup" type="checkbox" prop:checked=move || matches!(c.with(|x| x.noise), NoiseSource::Warmup { .. })
                on:change=move |_| c.update(|x| x.noise = match x.noise { NoiseSource::PerRow => NoiseSource::Warmup { steps: None }, NoiseSource::Warmup { .. } => NoiseSource::PerRow })/>
                " D once from the warm-up"</label>
            <NumberInput id="lc-c-near-one" label="≈ 1 band half-width" step="0.1" get=Signal::derive(move || c.with(|x| x.near_one))
                set=Callback::new(move |v: f64| c.update(|x| x.near_one = v))/>
            <NumberInput id="lc-c-window" label="window (points)" step="1" get=Signal::derive(move || c.with(|x| x.window as f64))
                set=Callback::new(move |v: f64| c.update(|x| x.window = v.max(2.0) as usize))/>
            <button class="link" on:click=move |_| c.set(ConsolidationConfig::default())>"reset"</button>
        </details>
    }
}

/// Sets `signal` from a session's saved value when it reads as one (a value
/// from another version that does not is left at its current setting).
fn restore<T: serde::de::DeserializeOwned + Send + Sync + 'static>(
    signal: RwSignal<T>,
    saved: &serde_json::Value,
) {
    if let Ok(v) = serde_json::from_value(saved.clone()) {
        signal.set(v);
    }
}
