//! Figure builders of the loss-curve diagnostics (issue 6) on synthetic logs
//! and the fixtures, the shaded spans they use (drawn, pixel-checked), and a
//! native PNG of every figure in `target/losscurve-figures/` to look at.

use rankscope_core::analysis::losscurve::axes::XAxis;
use rankscope_core::analysis::losscurve::consolidation::ConsolidationConfig;
use rankscope_core::analysis::losscurve::figures::{
    consolidation_figure, health_figure, loss_curve_figure, rank_loss_figures, residual_figure,
    LogRun, LossCurveOptions, RankLossOptions, ResidualOptions,
};
use rankscope_core::analysis::losscurve::health::{builtin_rules, Comparison, Level, Rule};
use rankscope_core::analysis::losscurve::residual::{Pattern, ResidualConfig};
use rankscope_core::figures::spec::{Axis, FigureKind, FigureSpec, SeriesSpec, Style};
use rankscope_core::figures::to_png;
use rankscope_core::formats::logs::{self, LogFormat, Series};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures");

fn read_run(rel: &str, name: &str, color: usize) -> LogRun {
    let path = format!("{FIXTURES}/{rel}");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let series = logs::parse(&path, &bytes)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .remove(0);
    LogRun {
        name: name.into(),
        color,
        source: rel.into(),
        series,
    }
}

fn nanogpt() -> Vec<LogRun> {
    ["muonh_seed1", "muonh_seed2", "adamh_seed1", "adamh_seed2"]
        .iter()
        .enumerate()
        .map(|(i, n)| read_run(&format!("logs/modded-nanogpt/{n}.log"), n, i))
        .collect()
}

fn synthetic(name: &str, steps: &[f64], columns: &[(&str, Vec<Option<f64>>)]) -> LogRun {
    let mut s = Series::new(LogFormat::Jsonl);
    s.step = steps.iter().map(|&x| Some(x)).collect();
    s.tokens = vec![None; steps.len()];
    for (k, v) in columns {
        s.metrics.insert(k.to_string(), v.clone());
    }
    LogRun {
        name: name.into(),
        color: 0,
        source: format!("{name}.jsonl"),
        series: s,
    }
}

/// Writes the figure as a PNG under `target/losscurve-figures/` (to look at).
fn save(spec: &FigureSpec, name: &str) {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../target/losscurve-figures"
    );
    std::fs::create_dir_all(dir).unwrap();
    let png = to_png(spec, 900, 560, 1.0).expect("renders");
    std::fs::write(format!("{dir}/{name}.png"), png).unwrap();
}

fn decode(png_bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let mut decoder = png::Decoder::new(png_bytes);
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().expect("PNG header");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("PNG frame");
    buf.truncate(info.buffer_size());
    let rgba = match info.color_type.samples() {
        4 => buf,
        3 => buf
            .chunks(3)
            .flat_map(|c| [c[0], c[1], c[2], 255])
            .collect(),
        n => panic!("unexpected PNG with {n} channels"),
    };
    (info.width, info.height, rgba)
}

#[test]
fn loss_curves_ema_series_and_downsampling_count() {
    let n = 1_000_000;
    let steps: Vec<f64> = (1..=n).map(|i| i as f64).collect();
    let loss: Vec<Option<f64>> = (1..=n)
        .map(|i| Some(3.0 + 1.0 / (i as f64).sqrt() + ((i * 7919) % 13) as f64 * 0.01))
        .collect();
    let a = synthetic("long", &steps, &[("loss", loss)]);
    let mut b = synthetic(
        "short",
        &[1.0, 2.0, 3.0],
        &[
            ("loss", vec![Some(4.0), None, Some(3.0)]),
            ("lr", vec![Some(0.1); 3]),
        ],
    );
    b.color = 1;
    let runs = vec![a, b];
    let opts = LossCurveOptions {
        metric: "loss".into(),
        ..LossCurveOptions::default()
    };
    let f = loss_curve_figure(&runs, &opts).unwrap();
    // EMA on: a faint raw series and a line per run.
    assert_eq!(f.series.len(), 4);
    assert!(f.series[0].faint && !f.series[1].faint);
    assert_eq!(f.series[0].points_total, Some(n));
    let drawn = f.series[0].points.len() + f.series[2].points.len();
    assert!(f.series[0].points.len() <= 4 * opts.buckets);
    assert!(
        f.caption.contains(&format!(
            "{drawn} of {} logged points drawn (min–max downsampled",
            n + 2
        )),
        "{}",
        f.caption
    );
    assert!(
        f.caption.contains("debiased EMA (β = 0.9)"),
        "{}",
        f.caption
    );
    save(&f, "loss_curve_long");

    // EMA off: one line per run.
    let f = loss_curve_figure(
        &runs,
        &LossCurveOptions {
            ema_beta: 0.0,
            log_y: true,
            ..opts.clone()
        },
    )
    .unwrap();
    assert_eq!(f.series.len(), 2);
    assert!(f.caption.contains("no smoothing") && f.caption.contains("Log y"));

    // ∫lr: the run without lr is left out and named; a metric nobody logs is an error.
    let f = loss_curve_figure(
        &runs,
        &LossCurveOptions {
            x: XAxis::CumulativeLr,
            ..opts.clone()
        },
    )
    .unwrap();
    assert_eq!(f.series.len(), 2);
    assert!(
        f.caption.contains("long (no `lr` (∫lr needs it))"),
        "{}",
        f.caption
    );
    let err = loss_curve_figure(
        &runs,
        &LossCurveOptions {
            metric: "grad_norm".into(),
            ..opts
        },
    )
    .unwrap_err();
    assert!(err.contains("no `grad_norm`"), "{err}");
}

#[test]
fn loss_curves_of_the_nanogpt_logs_on_progress() {
    let runs = nanogpt();
    let f = loss_curve_figure(
        &runs,
        &LossCurveOptions {
            metric: "val_loss".into(),
            x: XAxis::Progress,
            log_y: true,
            ema_beta: 0.5,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(f.series.len(), 8);
    let last = f.series[1].points.last().unwrap();
    assert!((last[0] - 1.0).abs() < 1e-12, "ends at t̂ = 1: {last:?}");
    save(&f, "loss_curve_nanogpt");
}

#[test]
fn residual_flags_adam_against_the_muon_mean() {
    let runs = nanogpt();
    let opts = ResidualOptions {
        metric: "val_loss".into(),
        reference: vec!["muonh_seed1".into(), "muonh_seed2".into()],
        config: ResidualConfig::default(),
        buckets: 0,
    };
    let r = residual_figure(&runs, &opts).unwrap();
    assert_eq!(r.runs.len(), 4, "a mean reference keeps its members");
    let lines: Vec<&SeriesSpec> = r
        .spec
        .series
        .iter()
        .filter(|s| s.style == Style::Line)
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(r.spec.series[0].style, Style::VSpan);
    assert_eq!(r.spec.series[0].points, vec![[0.1, 0.3]]);
    for adam in ["adamh_seed1", "adamh_seed2"] {
        let run = r.runs.iter().find(|x| x.run == adam).unwrap();
        let neg = run
            .residual
            .flags
            .iter()
            .find(|f| f.pattern == Pattern::NegativeResidual)
            .expect("negative residual");
        // A marker at the flag's start, on the run's curve.
        let marks = r
            .spec
            .series
            .iter()
            .find(|s| s.style == Style::Markers && s.name == "negative residual")
            .unwrap();
        let at = run
            .residual
            .points
            .iter()
            .find(|p| p.0 >= neg.from)
            .unwrap();
        assert!(
            marks.points.contains(&[at.0, at.1]),
            "{adam}: {:?}",
            marks.points
        );
        let span = r
            .spec
            .series
            .iter()
            .find(|s| s.style == Style::VSpan && s.name == "negative residual")
            .unwrap();
        assert!(span.points.contains(&[neg.from, neg.to]));
    }
    assert!(
        r.spec
            .caption
            .contains("reference = mean of 2 (muonh_seed1, muonh_seed2)"),
        "{}",
        r.spec.caption
    );
    assert!(
        r.spec.caption.contains("window t̂ ∈ [0.1, 0.3]"),
        "{}",
        r.spec.caption
    );
    assert!(
        r.spec.caption.contains("S = muonh_seed1 "),
        "{}",
        r.spec.caption
    );
    save(&r.spec, "residual_nanogpt");

    // One reference run: it is not compared with itself; a moved window shows in the caption.
    let one = ResidualOptions {
        reference: vec!["muonh_seed1".into()],
        config: ResidualConfig {
            window: (0.2, 0.4),
            ..Default::default()
        },
        ..opts
    };
    let r = residual_figure(&runs, &one).unwrap();
    assert_eq!(r.runs.len(), 3);
    assert_eq!(r.spec.series[0].points, vec![[0.2, 0.4]]);
    assert!(residual_figure(
        &runs,
        &ResidualOptions {
            reference: vec![],
            ..one
        }
    )
    .is_err());
}

#[test]
fn consolidation_figure_shades_regimes_or_names_the_missing_field() {
    let runs = vec![
        read_run("runs/A1/metrics.jsonl", "A1", 0),
        read_run("runs/B1/metrics.jsonl", "B1", 2),
    ];
    let c = consolidation_figure(&runs, &ConsolidationConfig::default(), 0);
    let spec = c.spec.expect("C(t) from the fixture logs");
    assert!(c.messages.is_empty(), "{:?}", c.messages);
    // Four regimes and (issue 18) the grokking threshold C = 1.5 as a band of its own.
    let spans: Vec<&SeriesSpec> = spec
        .series
        .iter()
        .filter(|s| s.style == Style::HSpan)
        .collect();
    assert_eq!(spans.len(), 5);
    assert!(spans[4].name.starts_with("grokking threshold"));
    let lines: Vec<&SeriesSpec> = spec
        .series
        .iter()
        .filter(|s| s.style == Style::LineMarkers)
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0].name, "A1");
    // grad_var every 25 steps (lr 0 at step 1 never has grad_var): 320 / 25 = 12 points.
    assert_eq!(lines[0].points.len(), 12, "{:?}", lines[0].points);
    assert_eq!(lines[0].points[0][0], 25.0);
    assert!(
        spec.caption.contains("σ² = micro_batch_size·grad_var"),
        "{}",
        spec.caption
    );
    save(&spec, "consolidation_fixtures");

    // A log without grad_norm / grad_var: no figure, a message naming the fields.
    let c = consolidation_figure(&nanogpt()[..1], &ConsolidationConfig::default(), 0);
    assert!(c.spec.is_none());
    assert_eq!(c.messages.len(), 1);
    assert!(
        c.messages[0].contains("`grad_var`") && c.messages[0].contains("`grad_norm`"),
        "{:?}",
        c.messages
    );
}

#[test]
fn health_markers_sit_where_rules_fire() {
    let a = synthetic(
        "a",
        &[10.0, 20.0, 30.0, 40.0],
        &[(
            "adapter_norm",
            vec![Some(0.5), Some(1.2), Some(1.3), Some(0.9)],
        )],
    );
    let mut b = synthetic(
        "b",
        &[10.0, 20.0],
        &[("adapter_norm", vec![Some(2.5), Some(0.1)])],
    );
    b.color = 1;
    let h = health_figure(&[a, b], &builtin_rules());
    let spec = h.spec.expect("rules fired");
    let warn = spec
        .series
        .iter()
        .find(|s| s.name.starts_with("lora_norm warn"))
        .unwrap();
    assert_eq!(warn.points, vec![[20.0, 0.0], [30.0, 0.0], [10.0, 1.0]]);
    let kill = spec
        .series
        .iter()
        .find(|s| s.name.starts_with("lora_norm kill"))
        .unwrap();
    assert_eq!(kill.points, vec![[10.0, 1.0]]);
    assert!(spec.series.iter().all(|s| s.style == Style::Markers));
    assert_eq!(spec.y.range, Some((-0.5, 1.5)));
    assert_eq!(h.reports.len(), 2);
    save(&spec, "health_synthetic");

    // A user rule on val_loss fires on the nanogpt logs; the built-ins are not applicable there.
    let rule = Rule {
        name: "val loss high".into(),
        metric: "val_loss".into(),
        comparison: Comparison::Gt,
        threshold: 4.0,
        level: Level::Warn,
        aggregation: Default::default(),
        aliases: vec![],
        action: String::new(),
    };
    let h = health_figure(&nanogpt(), &[rule]);
    assert_eq!(h.spec.as_ref().unwrap().series.len(), 1);
    assert!(h.spec.unwrap().series[0]
        .points
        .iter()
        .all(|p| p[0] >= 0.0 && p[0] <= 1000.0));
    assert!(health_figure(&nanogpt(), &builtin_rules()).spec.is_none());
}

#[test]
fn rank_vs_loss_share_x_and_mark_the_pr_drop() {
    let runs = vec![
        read_run("logs/user-study/QK_results.json", "QK", 0),
        read_run("logs/user-study/NoQK_results.json", "NoQK", 1),
    ];
    let f = rank_loss_figures(&runs, &RankLossOptions::default()).unwrap();
    assert_eq!(f.rank.x.range, f.loss.x.range);
    assert!(f.rank.x.range.is_some());
    assert!(
        !f.transitions.is_empty(),
        "the user study has a PR phase transition"
    );
    let (run, t) = &f.transitions[0];
    let span = &f.rank.series[0];
    assert_eq!(span.style, Style::VSpan);
    assert!(span.points.contains(&[t.x_before, t.x]), "{run}");
    assert_eq!(f.loss.series[0].points, span.points);
    assert_eq!(
        f.rank
            .series
            .iter()
            .filter(|s| s.style == Style::LineMarkers)
            .count(),
        2
    );
    save(&f.rank, "rank_vs_loss_pr");
    save(&f.loss, "rank_vs_loss_loss");
    assert!(rank_loss_figures(&nanogpt(), &RankLossOptions::default())
        .unwrap_err()
        .contains("`mean_pr`"));
}

/// Pixels within 3 of `rgb` in every channel.
fn count_near(rgba: &[u8], rgb: [f64; 3]) -> usize {
    rgba.chunks(4)
        .filter(|p| (0..3).all(|i| (p[i] as f64 - rgb[i]).abs() <= 3.0))
        .count()
}

#[test]
fn spans_are_shaded_and_do_not_fit_the_axes() {
    let line = SeriesSpec::new("run", vec![[0.0, 0.0], [10.0, 10.0]], Style::Line, 0);
    let spec = |extra: Vec<SeriesSpec>| FigureSpec {
        kind: FigureKind::LossCurve,
        title: "spans".into(),
        caption: String::new(),
        x: Axis::linear("x"),
        y: Axis::linear("y"),
        series: extra.into_iter().chain([line.clone()]).collect(),
        sources: vec![],
    };
    // Bluish green (0, 158, 115) at alpha 0.14 on white.
    let tint = |c: [f64; 3]| c.map(|v| 255.0 * 0.86 + v * 0.14);
    let green = tint([0.0, 158.0, 115.0]);
    let plain = decode(&to_png(&spec(vec![]), 600, 400, 1.0).unwrap()).2;
    assert!(count_near(&plain, green) < 50);
    // A y range far outside the data is clamped, not fitted: [2, 4] is inside, [100, 200] is not drawn.
    let h = SeriesSpec::new("regime", vec![[2.0, 4.0], [100.0, 200.0]], Style::HSpan, 2);
    let f = spec(vec![h]);
    assert!(f.has_data() && f.dropped().non_finite == 0);
    let (w, _, px) = decode(&to_png(&f, 600, 400, 1.0).unwrap());
    let n = count_near(&px, green);
    assert!(n > 5_000, "{n} shaded pixels");
    // The band is horizontal: as wide as the plot, about a fifth of its height.
    let rows: Vec<usize> = px
        .chunks(4 * w as usize)
        .enumerate()
        .filter(|(_, row)| count_near(row, green) > 300)
        .map(|(i, _)| i)
        .collect();
    assert!(rows.len() > 30 && rows.len() < 120, "{} rows", rows.len());
    // A vertical span over [4, 6] with an open (1e300) end clamped: columns, full height.
    let v = SeriesSpec::new("flag", vec![[4.0, 6.0]], Style::VSpan, 2);
    let (w, h, px) = decode(&to_png(&spec(vec![v]), 600, 400, 1.0).unwrap());
    let cols = (0..w as usize)
        .filter(|&x| {
            (0..h as usize)
                .filter(|&y| count_near(&px[(y * w as usize + x) * 4..][..4], green) == 1)
                .count()
                > 100
        })
        .count();
    assert!(cols > 40 && cols < 150, "{cols} columns");
    let json = serde_json::to_string(&spec(vec![SeriesSpec::new(
        "r",
        vec![[0.0, 1e300]],
        Style::HSpan,
        1,
    )]))
    .unwrap();
    let back: FigureSpec = serde_json::from_str(&json).unwrap();
    assert_eq!(back.series[0].points[0][1], 1e300);
}

#[test]
fn readout_picks_the_nearest_point_and_frames_map_back() {
    use plotters::prelude::*;
    use rankscope_core::analysis::losscurve::figures::readout;
    use rankscope_core::figures::draw::draw_figure_framed;
    let runs = nanogpt();
    let f = loss_curve_figure(
        &runs[..1],
        &LossCurveOptions {
            metric: "val_loss".into(),
            ema_beta: 0.0,
            ..Default::default()
        },
    )
    .unwrap();
    // val_loss every 125 steps: step 130 reads the point at 125.
    let r = readout(&f, 130.0).unwrap();
    let p = f.series[0].points.iter().find(|p| p[0] == 125.0).unwrap();
    assert_eq!(r, format!("muonh_seed1: {:.5} at step 125", p[1]));
    let mut svg = String::new();
    let frame = {
        let root = SVGBackend::with_string(&mut svg, (900, 560)).into_drawing_area();
        draw_figure_framed(&root, &f).unwrap().unwrap()
    };
    let (l, t, r, b) = frame.rect;
    assert!(
        l > 0 && t > 0 && r < 900 && b < 560 && l < r && t < b,
        "{:?}",
        frame.rect
    );
    let (x0, _) = frame.to_data(l as f64, b as f64).unwrap();
    let (x1, _) = frame.to_data(r as f64, t as f64).unwrap();
    assert_eq!((x0, x1), (frame.x.0, frame.x.1));
    assert!(frame.to_data(0.0, 0.0).is_none());
}
