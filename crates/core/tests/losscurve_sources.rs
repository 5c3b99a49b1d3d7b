//! Issue 18: the loss-curve diagnostics on logs shaped like their sources —
//! an RLAN-style collapse log (its metric names), a log with λ_max for C(t),
//! a DEQ/EP log with the gradient-geometry fields — made by
//! `tests/data/make_losscurve_logs.py`. Every rule and alert fires at the
//! steps the comments compute by hand from the values in that script.

use rankscope_core::analysis::losscurve::axes::XAxis;
use rankscope_core::analysis::losscurve::consolidation::{
    consolidation_ratio, AlertKind, ConsolidationConfig, ConsolidationError, NoiseSource, Regime,
    RegimeBounds,
};
use rankscope_core::analysis::losscurve::figures::{
    consolidation_figure, default_reference, loss_curve_figure, regime_shades, LogRun,
    LossCurveOptions,
};
use rankscope_core::analysis::losscurve::geometry::geometry_figures;
use rankscope_core::analysis::losscurve::health::{
    builtin_rules, evaluate, healthy_range_of, Aggregation, Comparison, Level, Rule,
};
use rankscope_core::figures::spec::Style;
use rankscope_core::formats::logs::{self, Series};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures");

fn read(path: &str) -> Series {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    logs::parse(path, text.as_bytes()).unwrap().remove(0)
}

fn data(name: &str) -> Series {
    read(&format!("{DATA}/{name}"))
}

fn run(name: &str, series: Series, color: usize) -> LogRun {
    LogRun {
        name: name.into(),
        color,
        source: format!("{name}.jsonl"),
        series,
    }
}

// ---------------------------------------------------------------- health (RLAN)

#[test]
fn rlan_log_fires_every_rule_at_the_hand_computed_steps() {
    let rep = evaluate(&builtin_rules(), &data("rlan_collapse.jsonl"), "rlan");
    let ev = |name: &str| {
        rep.events
            .iter()
            .find(|e| e.rule == name)
            .unwrap_or_else(|| panic!("{name} did not fire: {rep:#?}"))
    };
    // lora_norm 0.5 0.8 1.1 1.3 1.6 1.7 2.2 1.9 1.4 1.0 0.9 0.8 at steps 1–12:
    // > 1.0 at 3–9 (1.0 at step 10 is not > 1.0), > 1.5 at 5–8, > 2.0 at 7.
    let warn = ev("lora_norm warn");
    assert_eq!(
        (
            warn.level,
            warn.first_step,
            warn.last_step,
            warn.count,
            warn.duration
        ),
        (Level::Warn, 3.0, 9.0, 7, 6.0)
    );
    assert_eq!(warn.metric, "lora_norm");
    assert!(warn.action.starts_with("warn"), "{}", warn.action);
    assert_eq!(ev("lora_norm critical").ranges, vec![[5.0, 8.0]]);
    let kill = ev("lora_norm kill");
    assert_eq!(
        (kill.level, kill.ranges.clone(), kill.value),
        (Level::Kill, vec![[7.0, 7.0]], 2.2)
    );
    assert!(kill.action.contains("kill"));
    // lora_norm_ema … 1.4 1.7 1.8 1.6 1.4 …: > 1.5 at steps 7–9 → early stop.
    let stop = ev("lora_norm_ema early stop");
    assert_eq!(
        (stop.level, stop.ranges.clone()),
        (Level::EarlyStop, vec![[7.0, 9.0]])
    );
    assert!(stop.action.contains("early stop"));
    // nan_batches logged at each epoch's end: 3, 60, 12 → > 50 at step 8 → abort.
    let nan = ev("NaN batches per epoch");
    assert_eq!(
        (nan.level, nan.ranges.clone(), nan.value),
        (Level::Abort, vec![[8.0, 8.0]], 60.0)
    );
    // accuracy 0.50 0.60 0.70 0.72 0.74 0.70 0.66 0.69 0.75 0.74 0.70 0.71: running max
    // 0.74 over steps 5–8, 0.75 from 9; drops (0.74−0.70)/0.74 = 0.054, 0.108, 0.068 at 6–8,
    // (0.75−0.74)/0.75 = 0.013 at 10, 0.067 and 0.053 at 11–12.
    let acc = ev("accuracy drop");
    assert_eq!(acc.ranges, vec![[6.0, 8.0], [11.0, 12.0]]);
    assert!((acc.value - 0.08 / 0.74).abs() < 1e-12);
    // entropy > 2.0 at 7 (2.1), 8 (2.4); sharpness < 0.1 at 7 (0.09), 8 (0.05).
    assert_eq!(ev("entropy collapse").ranges, vec![[7.0, 8.0]]);
    let sharp = ev("attention sharpness collapse");
    assert_eq!(
        (sharp.level, sharp.ranges.clone(), sharp.value),
        (Level::Collapse, vec![[7.0, 8.0]], 0.05)
    );
    // The loss has no NaN: that rule applies and stays quiet; no PR, no geometry fields.
    assert!(
        rep.quiet.contains(&"NaN losses per epoch".to_string()),
        "{:?}",
        rep.quiet
    );
    assert!(rep
        .not_applicable
        .iter()
        .any(|n| n.rule.starts_with("rank collapse")));
    assert_eq!(
        rep.events.len(),
        8,
        "{:?}",
        rep.events.iter().map(|e| &e.rule).collect::<Vec<_>>()
    );
}

#[test]
fn adapter_norm_is_an_alias_of_lora_norm() {
    let new = evaluate(&builtin_rules(), &data("rlan_collapse.jsonl"), "new");
    let old = evaluate(&builtin_rules(), &data("rlan_adapter_norm.jsonl"), "old");
    for name in ["lora_norm warn", "lora_norm critical", "lora_norm kill"] {
        let (a, b) = (
            new.events.iter().find(|e| e.rule == name).unwrap(),
            old.events.iter().find(|e| e.rule == name).unwrap(),
        );
        assert_eq!(
            (a.ranges.clone(), a.count),
            (b.ranges.clone(), b.count),
            "{name}"
        );
        assert_eq!(b.metric, "adapter_norm");
    }
    // Without either name the reason names both.
    let s = data("deq_geometry.jsonl");
    let rep = evaluate(&builtin_rules(), &s, "deq");
    let na = rep
        .not_applicable
        .iter()
        .find(|n| n.rule == "lora_norm warn")
        .unwrap();
    assert_eq!(
        na.reason,
        "not applicable (no `lora_norm` (or `adapter_norm`, `lora_weight_norm`) in this log)"
    );
}

#[test]
fn ema_aggregation_smooths_before_comparing() {
    // Debiased EMA (β = 0.5) of lora_norm: m_n = 0.5·m_{n−1} + 0.5·v_n over 1 − 0.5ⁿ gives
    // 0.5, 0.7, 0.929, 1.127, 1.371, 1.538, 1.872, 1.886, 1.642, 1.321, …: > 1.5 at steps 6–9,
    // where the raw value's > 1.5 is steps 5–8.
    let rule = Rule {
        name: "lora_norm EMA critical".into(),
        metric: "lora_norm".into(),
        comparison: Comparison::Gt,
        threshold: 1.5,
        level: Level::Critical,
        aggregation: Aggregation::Ema { beta: 0.5 },
        aliases: vec![],
        action: String::new(),
    };
    let json = serde_json::to_string(&rule).unwrap();
    assert!(json.contains(r#""kind":"ema","beta":0.5"#), "{json}");
    let rep = evaluate(&[rule], &data("rlan_collapse.jsonl"), "rlan");
    let e = &rep.events[0];
    assert_eq!(e.ranges, vec![[6.0, 9.0]]);
    // The worst EMA value, at step 8: m_8 / (1 − 2⁻⁸).
    let mut m = 0.0;
    for v in [0.5, 0.8, 1.1, 1.3, 1.6, 1.7, 2.2, 1.9] {
        m = 0.5 * m + 0.5 * v;
    }
    assert!(
        (e.value - m / (1.0 - 0.5f64.powi(8))).abs() < 1e-12,
        "{}",
        e.value
    );
}

#[test]
fn healthy_ranges_are_bands_on_the_metric_figure() {
    let runs = vec![run("rlan", data("rlan_collapse.jsonl"), 0)];
    let entropy = healthy_range_of("attn_entropy").expect("an alias finds the range");
    assert_eq!((entropy.lo, entropy.hi), (None, Some(0.5)));
    let f = loss_curve_figure(
        &runs,
        &LossCurveOptions {
            metric: "entropy".into(),
            ema_beta: 0.0,
            ..Default::default()
        },
    )
    .unwrap();
    let band = &f.series[0];
    assert_eq!(
        (band.style, band.points.clone()),
        (Style::HSpan, vec![[-1e300, 0.5]])
    );
    assert!(
        f.caption.contains("healthy: entropy < 0.5"),
        "{}",
        f.caption
    );
    let f = loss_curve_figure(
        &runs,
        &LossCurveOptions {
            metric: "attention_sharpness".into(),
            ema_beta: 0.0,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(f.series[0].points, vec![[0.5, 1e300]]);
    // Accuracy's healthy state is a trend: said in the caption, no band.
    let f = loss_curve_figure(
        &runs,
        &LossCurveOptions {
            metric: "accuracy".into(),
            ema_beta: 0.0,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(
        f.series.iter().all(|s| s.style != Style::HSpan) && f.caption.contains("accuracy rising"),
        "{}",
        f.caption
    );
    // A metric without a healthy range draws no band.
    let f = loss_curve_figure(
        &runs,
        &LossCurveOptions {
            metric: "loss".into(),
            ema_beta: 0.0,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(f.series.iter().all(|s| s.style != Style::HSpan));
}

// ---------------------------------------------------------------- consolidation

fn alerts_of(
    kind: AlertKind,
    c: &rankscope_core::analysis::losscurve::consolidation::ConsolidationCurve,
) -> Vec<(f64, f64, f64)> {
    c.alerts
        .iter()
        .filter(|a| a.kind == kind)
        .map(|a| (a.step, a.from, a.to))
        .collect()
}

#[test]
fn consolidation_alerts_fire_where_the_hand_computation_says() {
    // B = 4, d = 100, σ² = grad_var = 4 (micro_batch_size 1), lr 0.1: D = 0.01·4/8 = 0.005,
    // C = g²/(2·0.005·100) = g², so C is the script's list at steps 10, 20, …, 200:
    // 150 160 170 120 40 25 15 8 5 3 1.6 1.2 0.9 0.7 0.45 0.4 0.35 0.3 0.3 0.3.
    let s = data("consolidation_lambda.jsonl");
    let c = consolidation_ratio(&s, &ConsolidationConfig::default()).unwrap();
    let want = [
        150.0, 160.0, 170.0, 120.0, 40.0, 25.0, 15.0, 8.0, 5.0, 3.0, 1.6, 1.2, 0.9, 0.7, 0.45, 0.4,
        0.35, 0.3, 0.3, 0.3,
    ];
    assert_eq!(c.points.len(), 20);
    for (p, w) in c.points.iter().zip(want) {
        assert!(
            (p.c - w).abs() < 1e-9 * w,
            "step {}: {} vs {w}",
            p.step,
            p.c
        );
        assert!((p.d_noise - 0.005).abs() < 1e-15);
    }
    assert!(!c.convention_assumed);
    // Regimes with the labels' own bounds: > 20; 10–20; (1.5, 10); [0.5, 1.5]; < 0.5.
    let regimes: Vec<Regime> = c.points.iter().map(|p| p.regime).collect();
    use Regime::*;
    let expect = [
        SignalDominated,
        SignalDominated,
        SignalDominated,
        SignalDominated,
        SignalDominated,
        SignalDominated,
        Transitional,
        Consolidating,
        Consolidating,
        Consolidating,
        Consolidating,
        Balanced,
        Balanced,
        Balanced,
        NoiseDominated,
        NoiseDominated,
        NoiseDominated,
        NoiseDominated,
        NoiseDominated,
        NoiseDominated,
    ];
    assert_eq!(regimes, expect);
    for p in &c.points {
        let (lo, hi) = p.regime.range(&c.bounds).unwrap();
        assert!(
            p.c >= lo && p.c <= hi,
            "{} outside its label {}",
            p.c,
            p.regime.label(&c.bounds)
        );
    }
    // Sharp minimum: C > 100 and not decreasing over 3 points only for 150, 160, 170 (ends at step 30).
    assert_eq!(
        alerts_of(AlertKind::SharpMinimum, &c),
        vec![(30.0, 10.0, 30.0)]
    );
    // Sharp drop: (120 − 40)/120 = 0.67 > 0.5 at step 50; every other fall is ≤ 0.47.
    assert_eq!(
        alerts_of(AlertKind::SharpDrop, &c),
        vec![(50.0, 40.0, 50.0)]
    );
    let drop = c
        .alerts
        .iter()
        .find(|a| a.kind == AlertKind::SharpDrop)
        .unwrap();
    assert!((drop.value - 80.0 / 120.0).abs() < 1e-9);
    // Next 10–20 % of the 200 steps after step 50: steps 70–90.
    assert!(
        drop.message
            .contains("phase transition in the next 10–20 % of training (steps 70–90)"),
        "{}",
        drop.message
    );
    // Grokking threshold: 1.6 → 1.2 at step 120.
    assert_eq!(
        alerts_of(AlertKind::GrokkingThreshold, &c),
        vec![(120.0, 110.0, 120.0)]
    );
    // Stuck: C < 0.5 from step 150 to 200; more than 10 % of 200 = 20 steps first at step 180
    // (170 − 150 = 20 is not more); the stretch is 50/200 = 25 % of training.
    assert_eq!(alerts_of(AlertKind::Stuck, &c), vec![(180.0, 150.0, 200.0)]);
    let stuck = c
        .alerts
        .iter()
        .find(|a| a.kind == AlertKind::Stuck)
        .unwrap();
    assert!(
        (stuck.value - 0.25).abs() < 1e-12
            && stuck.message.contains("raise the learning rate 2–5×")
    );
    // Kramers escape: C < 0.5 and the loss over the window's steps within 1 %: steps 160–180
    // hold 1.950, 1.948, 1.952 (range 0.004, 0.2 %) — first at 180; the window ending at 170
    // (2.0, 1.95, 1.948: 2.6 %) is not a plateau. It stays until 200.
    assert_eq!(
        alerts_of(AlertKind::KramersEscape, &c),
        vec![(180.0, 160.0, 200.0)]
    );
    assert_eq!(c.alerts.len(), 5);
    // α_opt = 2D/λ_max where λ_max is logged: 2·0.005/50 at step 10, 2·0.005/20 at step 100.
    let opt: Vec<(f64, f64)> = c
        .points
        .iter()
        .filter_map(|p| Some((p.step, p.alpha_opt?)))
        .collect();
    assert_eq!(opt.len(), 2);
    assert!(
        (opt[0].1 - 2e-4).abs() < 1e-15 && (opt[1].1 - 5e-4).abs() < 1e-15,
        "{opt:?}"
    );
    // The SNR explanation: C·α² = C/100; median C is (3 + 1.6)/2 = 2.3.
    assert!(
        c.scale_note.contains("median 2.3") && c.scale_note.contains("≈ 0.023"),
        "{}",
        c.scale_note
    );
}

#[test]
fn consolidation_figure_marks_alerts_and_labels_agree_with_bounds() {
    let runs = vec![run("c_alerts", data("consolidation_lambda.jsonl"), 0)];
    let f = consolidation_figure(&runs, &ConsolidationConfig::default(), 0);
    let spec = f.spec.unwrap();
    let bands: Vec<(&str, [f64; 2])> = spec
        .series
        .iter()
        .filter(|s| s.style == Style::HSpan)
        .map(|s| (s.name.as_str(), s.points[0]))
        .collect();
    assert_eq!(
        bands[1],
        (
            "exploring vs exploiting, optimal (1.5 < C < 10)",
            [1.5, 10.0]
        )
    );
    assert_eq!(
        bands[2],
        (
            "C ≈ 1, phase transition imminent (0.5 ≤ C ≤ 1.5)",
            [0.5, 1.5]
        )
    );
    assert!(bands[4].0.starts_with("grokking threshold C = 1.5"));
    for kind in [
        "sharp drop of C",
        "stuck (C low for long)",
        "Kramers escape (C low on a plateau)",
    ] {
        assert!(
            spec.series
                .iter()
                .any(|s| s.style == Style::Markers && s.name == kind),
            "{kind}"
        );
    }
    let drop = spec
        .series
        .iter()
        .find(|s| s.name == "sharp drop of C")
        .unwrap();
    assert!((drop.points[0][0] - 50.0).abs() < 1e-12 && (drop.points[0][1] - 40.0).abs() < 1e-9);
    assert!(
        spec.caption
            .contains("α_opt = 2D/λ_max from 2e-4 (first) to 5e-4 (last)"),
        "{}",
        spec.caption
    );
    assert!(spec.caption.contains("5 alert(s)"), "{}", spec.caption);

    // A narrower ≈ 1 band moves both the regimes and the labels.
    let cfg = ConsolidationConfig {
        near_one: 0.2,
        ..Default::default()
    };
    let c = consolidation_ratio(&data("consolidation_lambda.jsonl"), &cfg).unwrap();
    let p = c.points.iter().find(|p| p.step == 140.0).unwrap(); // C = 0.7
    assert_eq!(p.regime, Regime::BelowBalanced);
    assert_eq!(p.regime.label(&c.bounds), "between regimes (0.5 ≤ C < 0.8)");
    let shades = regime_shades(&RegimeBounds::new(0.2).unwrap());
    assert_eq!(
        shades[2].0,
        "C ≈ 1, phase transition imminent (0.8 ≤ C ≤ 1.2)"
    );
    assert!(matches!(
        consolidation_ratio(
            &data("consolidation_lambda.jsonl"),
            &ConsolidationConfig {
                near_one: 12.0,
                ..Default::default()
            }
        ),
        Err(ConsolidationError::BadSetting(_))
    ));
}

#[test]
fn noise_from_the_warmup_and_an_assumed_convention() {
    // Warm-up ends at step 2. D₁ = 0.05²·4/(2·4) = 0.00125, D₂ = 0.1²·4/8 = 0.005; D = their
    // mean 0.003125, so C = g²/(2·0.003125·100) = 1.6·g²: 1.6, 1.6 and, on the row without
    // grad_var, 6.4. Per row: C₁ = 1/(2·0.00125·100) = 4, C₂ = 1, no C at step 3.
    let text = "{\"header\": true, \"batch_size\": 4, \"n_params\": 100, \"warmup_steps\": 2}\n\
                {\"step\": 1, \"lr\": 0.05, \"grad_norm\": 1.0, \"grad_var\": 4.0}\n\
                {\"step\": 2, \"lr\": 0.1, \"grad_norm\": 1.0, \"grad_var\": 4.0}\n\
                {\"step\": 3, \"lr\": 0.1, \"grad_norm\": 2.0}\n";
    let s = logs::parse("w.jsonl", text.as_bytes()).unwrap().remove(0);
    let warm = consolidation_ratio(
        &s,
        &ConsolidationConfig {
            noise: NoiseSource::Warmup { steps: None },
            ..Default::default()
        },
    )
    .unwrap();
    let cs: Vec<f64> = warm.points.iter().map(|p| p.c).collect();
    assert_eq!(cs.len(), 3);
    for (got, want) in cs.iter().zip([1.6, 1.6, 6.4]) {
        assert!((got - want).abs() < 1e-12, "{cs:?}");
    }
    assert!(
        warm.noise.contains("warm-up (steps ≤ 2, 2 row(s)"),
        "{}",
        warm.noise
    );
    let per_row = consolidation_ratio(&s, &ConsolidationConfig::default()).unwrap();
    let cs: Vec<f64> = per_row.points.iter().map(|p| p.c).collect();
    assert!(
        (cs[0] - 4.0).abs() < 1e-12 && (cs[1] - 1.0).abs() < 1e-12 && cs.len() == 2,
        "{cs:?}"
    );
    // No micro_batch_size in this log: the per-sample reading is an assumption, and says so.
    assert!(
        per_row.convention_assumed && per_row.convention.contains("ASSUMED"),
        "{}",
        per_row.convention
    );
    // An explicit warm-up end of step 1 uses D₁ alone: C = 1/(2·0.00125·100) = 4 everywhere g = 1.
    let one = consolidation_ratio(
        &s,
        &ConsolidationConfig {
            noise: NoiseSource::Warmup { steps: Some(1.0) },
            ..Default::default()
        },
    )
    .unwrap();
    assert!((one.points[1].c - 4.0).abs() < 1e-12);
}

#[test]
fn fixture_logs_explain_their_scale_and_refuse_an_empty_warmup() {
    // The fixtures' C(t) lies at 10³–10⁶: C·α² (the gradient SNR) is ≈ 1–10³. The caption says so.
    let s = read(&format!("{FIXTURES}/runs/A1/metrics.jsonl"));
    let c = consolidation_ratio(&s, &ConsolidationConfig::default()).unwrap();
    assert!(c
        .points
        .iter()
        .all(|p| p.c > 1e3 && p.regime == Regime::SignalDominated));
    assert!(
        c.scale_note.contains("Every point lies in one regime"),
        "{}",
        c.scale_note
    );
    assert!(
        c.scale_note.contains("signal-to-noise ratio divided by α²"),
        "{}",
        c.scale_note
    );
    // The median of C·α² recomputed from the JSON lines: B·g²/(d·σ²) with σ² = 2·grad_var.
    let text = std::fs::read_to_string(format!("{FIXTURES}/runs/A1/metrics.jsonl")).unwrap();
    let mut snr: Vec<f64> = text
        .lines()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            let (g, gv) = (v["grad_norm"].as_f64()?, v["grad_var"].as_f64()?);
            Some(8.0 * g * g / (197312.0 * 2.0 * gv))
        })
        .collect();
    snr.sort_by(f64::total_cmp);
    let med = (snr[5] + snr[6]) / 2.0;
    let shown = rankscope_core::figures::draw::format_tick(med);
    assert!(
        c.scale_note.contains(&format!("only ≈ {shown}")),
        "{shown} in {}",
        c.scale_note
    );
    // Warm-up: 5 % of 320 steps = step 16, and grad_var is logged from step 25 only.
    let err = consolidation_ratio(
        &s,
        &ConsolidationConfig {
            noise: NoiseSource::Warmup { steps: None },
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(err, ConsolidationError::NoWarmupVariance(16.0));
}

// ---------------------------------------------------------------- gradient geometry

#[test]
fn geometry_rules_fire_at_the_hand_computed_steps() {
    let rep = evaluate(&builtin_rules(), &data("deq_geometry.jsonl"), "deq");
    let ranges = |name: &str| {
        rep.events
            .iter()
            .find(|e| e.rule == name)
            .unwrap_or_else(|| panic!("{name}: {rep:#?}"))
            .ranges
            .clone()
    };
    // cos(EP, BPTT) … 0.2 −0.1 −0.3 0.1 …: < 0 at steps 6–7.
    assert_eq!(ranges("EP against BPTT"), vec![[6.0, 7.0]]);
    // self-cos −0.2 at step 4.
    assert_eq!(ranges("gradient flips"), vec![[4.0, 4.0]]);
    // cos(g_CE, g_jac) 0.0 at 3 and 8 is not < 0; −0.1 … −0.1 at 4–7.
    assert_eq!(ranges("penalty against CE"), vec![[4.0, 7.0]]);
    // Penalty share (logged as `jac_ratio`) 1.0 at 4 is not > 1; 1.2 1.5 1.1 at 5–7.
    let share = rep
        .events
        .iter()
        .find(|e| e.rule == "penalty dominates")
        .unwrap();
    assert_eq!(
        (share.ranges.clone(), share.metric.as_str()),
        (vec![[5.0, 7.0]], "jac_ratio")
    );
    assert!(share.action.contains("most of the update is the penalty"));
    // cos(g_CE, total) −0.05 at 7; non-normality 0.55 0.6 at 7–8 (0.5 at 6 is not > 0.5).
    assert_eq!(ranges("update against CE"), vec![[7.0, 7.0]]);
    assert_eq!(ranges("J far from symmetric"), vec![[7.0, 8.0]]);
}

#[test]
fn geometry_cosines_share_a_fixed_axis_with_zero_marked() {
    let runs = vec![
        run("deq", data("deq_geometry.jsonl"), 0),
        run("rlan", data("rlan_collapse.jsonl"), 1),
    ];
    let f = geometry_figures(&runs, XAxis::CumulativeLr);
    let cos = f.cosines.unwrap();
    assert_eq!(cos.y.range, Some((-1.05, 1.05)));
    assert_eq!(
        (cos.series[0].style, cos.series[0].points.clone()),
        (Style::HSpan, vec![[-0.01, 0.01]])
    );
    let lines: Vec<&str> = cos.series[1..].iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        lines,
        [
            "deq: cos(EP, BPTT)",
            "deq: self-cos",
            "deq: cos(g_CE, g_jac)",
            "deq: cos(g_CE, total)"
        ]
    );
    // x = cumulative lr: 0.1 per step.
    let ep = &cos.series[1].points;
    assert!((ep[5][0] - 0.6).abs() < 1e-12 && ep[5][1] == -0.1, "{ep:?}");
    let ratios = f.ratios.unwrap();
    assert_eq!(ratios.series.len(), 3);
    assert_eq!(ratios.series[1].name, "deq: |jr·g_jac|/|g_CE|");
    assert_eq!(f.messages.len(), 1);
    assert!(f.messages[0].starts_with("rlan: no gradient-geometry metric"));
}

// ---------------------------------------------------------------- residual reference

#[test]
fn default_reference_is_a_comparable_run_with_the_metric() {
    // The RLAN log (12 steps, no val_loss) comes first; it must not become the reference for
    // the fixture runs (320 steps) — nor a modded-nanogpt log when the fixtures are the majority.
    let mut runs = vec![run("rlan", data("rlan_collapse.jsonl"), 0)];
    for (i, name) in ["A1", "A2", "B1"].iter().enumerate() {
        runs.push(run(
            name,
            read(&format!("{FIXTURES}/runs/{name}/metrics.jsonl")),
            i + 1,
        ));
    }
    let nanogpt = read(&format!("{FIXTURES}/logs/modded-nanogpt/muonh_seed1.log"));
    runs.insert(1, run("muonh_seed1", nanogpt, 4));
    assert_eq!(default_reference(&runs, "val_loss").as_deref(), Some("A1"));
    // The RLAN log's own loss: it has it, and it is the only 12-step run.
    assert_eq!(
        default_reference(&runs[..1], "loss").as_deref(),
        Some("rlan")
    );
    assert_eq!(default_reference(&runs, "no_such_metric"), None);
}
