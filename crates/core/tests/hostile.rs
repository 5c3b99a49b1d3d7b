//! Hostile inputs of issue 19 that are not files of the malformed corpus:
//! figures whose ranges overflow f64, links asking for absurd figures,
//! run names that break XML. Each must finish quickly with a drawing or a
//! message, never hang or panic.

use rankscope_core::analysis::losscurve::figures::{loss_curve_figure, LogRun, LossCurveOptions};
use rankscope_core::figures::{
    svg_to_png, to_csv, to_svg, Axis, FigureKind, FigureSpec, SeriesSpec, Style,
};
use rankscope_core::formats::logs;
use rankscope_core::share::{
    decode_link, encode_link, LinkError, SharedFigure, MAX_LINK_POINTS, MAX_LINK_SERIES,
};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Runs `f` on a thread and fails the test if it takes longer than `secs`
/// (a hang would otherwise hang the test run).
fn within<T: Send + 'static>(secs: u64, what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what}: still running after {secs} s"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what}: panicked"),
    }
}

fn spec(x: Axis, y: Axis, series: Vec<SeriesSpec>) -> FigureSpec {
    FigureSpec {
        kind: FigureKind::LossCurve,
        title: "hostile".into(),
        caption: String::new(),
        x,
        y,
        series,
        sources: vec!["metrics.jsonl".into()],
    }
}

/// SVG, then PNG through resvg (which parses it as XML).
fn draws(s: FigureSpec, what: &str) -> String {
    within(60, what, move || {
        let svg = to_svg(&s, 800, 500).unwrap_or_else(|e| panic!("svg: {e}"));
        svg_to_png(&svg, 1.0).unwrap_or_else(|e| panic!("png: {e}"));
        svg
    })
}

#[test]
fn linear_axes_wider_than_f64_draw() {
    let pts = vec![[0.0, 1e308], [1.0, -1e308]];
    draws(
        spec(
            Axis::linear("step"),
            Axis::linear("val_loss"),
            vec![SeriesSpec::new("a", pts, Style::Line, 0)],
        ),
        "±1e308 y",
    );
    let pts = vec![[-1.7e308, 1.0], [1.7e308, 2.0]];
    draws(
        spec(
            Axis::linear("x"),
            Axis::linear("y"),
            vec![SeriesSpec::new("a", pts, Style::LineMarkers, 0)],
        ),
        "±1.7e308 x",
    );
    // Near the top of the range: padding alone would overflow.
    let pts = vec![[0.0, 1.0], [1.0, 1.79e308]];
    draws(
        spec(
            Axis::linear("x"),
            Axis::linear("y"),
            vec![SeriesSpec::new("a", pts, Style::Bars, 0)],
        ),
        "bars to 1.79e308",
    );
    // A fixed range of infinite width is not taken as is.
    let mut y = Axis::linear("y");
    y.range = Some((-1.7e308, 1.7e308));
    draws(
        spec(
            Axis::linear("x"),
            y,
            vec![SeriesSpec::new(
                "a",
                vec![[0.0, 1.0], [1.0, 2.0]],
                Style::Line,
                0,
            )],
        ),
        "fixed ±1.7e308",
    );
}

#[test]
fn log_axes_that_underflow_or_overflow_draw() {
    let pts = vec![[0.0, 1e-310], [1.0, 1.0], [2.0, 0.5]];
    draws(
        spec(
            Axis::linear("step"),
            Axis::log("loss"),
            vec![SeriesSpec::new("a", pts, Style::Line, 0)],
        ),
        "1e-310 on log y",
    );
    let pts = vec![[0.0, 1.0], [1.0, 1e300]];
    draws(
        spec(
            Axis::linear("step"),
            Axis::log("loss"),
            vec![SeriesSpec::new("a", pts, Style::LineMarkers, 0)],
        ),
        "1e300 on log y",
    );
    let pts = vec![[1e-320, 1.0], [1.7e308, 2.0]];
    draws(
        spec(
            Axis::log("x"),
            Axis::log("y"),
            vec![SeriesSpec::new("a", pts, Style::Markers, 0)],
        ),
        "subnormal to max on log x",
    );
    let pts = vec![[0.0, 1e-320], [1.0, 2e-320]];
    draws(
        spec(
            Axis::linear("x"),
            Axis::log("y"),
            vec![SeriesSpec::new("a", pts, Style::Line, 0)],
        ),
        "all subnormal on log y",
    );
}

/// The two-line JSONL (val_loss 1e308 then −1e308) through the loss-curve figure.
#[test]
fn loss_curve_of_extreme_values_draws() {
    let text = b"{\"step\": 1, \"val_loss\": 1e308}\n{\"step\": 2, \"val_loss\": -1e308}\n";
    let series = logs::parse("metrics.jsonl", text)
        .expect("parses")
        .remove(0);
    let runs = vec![LogRun {
        name: "a".into(),
        color: 0,
        source: "metrics.jsonl".into(),
        series,
    }];
    for log_y in [false, true] {
        let opts = LossCurveOptions {
            metric: "val_loss".into(),
            log_y,
            ..LossCurveOptions::default()
        };
        let mut s = loss_curve_figure(&runs, &opts).expect("figure");
        if log_y {
            s.y = Axis::log(s.y.label.clone());
        }
        draws(s, "extreme loss curve");
    }
}

#[test]
fn control_characters_in_names_keep_the_svg_valid() {
    let name = "run\u{1b}]0;owned\u{7}\u{1b}[2J\u{0}\u{8}<b>&amp;";
    let mut s = spec(
        Axis::linear("x"),
        Axis::linear("y"),
        vec![SeriesSpec::new(
            name,
            vec![[0.0, 1.0], [1.0, 2.0]],
            Style::Line,
            0,
        )],
    );
    s.title = format!("title {name}");
    s.caption = format!("caption {name}");
    let svg = draws(s, "control characters");
    assert!(
        !svg.contains(['\u{1b}', '\u{7}', '\u{0}', '\u{8}']),
        "control characters left in the SVG"
    );
    assert!(svg.contains("&lt;b&gt;"), "markup stays escaped");
}

#[test]
fn csv_neutralises_formula_starts() {
    let series = ["=1+1", "+1", "-1", "@SUM(A1)", "\tcmd", "\r=1"]
        .iter()
        .map(|n| SeriesSpec::new(*n, vec![[0.0, 1.0]], Style::Line, 0))
        .collect();
    let csv = to_csv(&spec(Axis::linear("x"), Axis::linear("y"), series));
    for line in csv.lines().skip(1).filter(|l| !l.is_empty()) {
        let cell = line.trim_start_matches('"');
        assert!(cell.starts_with('\''), "{line:?} is not neutralised");
    }
}

/// 200 000 faint series (the 48 KB link froze the page for 71 s):
/// drawing them is linear, and a link holding them is refused.
#[test]
fn many_series_are_linear_and_links_are_capped() {
    let series: Vec<SeriesSpec> = (0..200_000)
        .map(|i| {
            let mut s = SeriesSpec::new(
                format!("s{}", i % 7),
                vec![[i as f64, 1.0]],
                Style::Line,
                i % 9,
            );
            s.faint = true;
            s
        })
        .collect();
    let big = spec(Axis::linear("x"), Axis::linear("y"), series);
    let t = Instant::now();
    draws(big.clone(), "200k series");
    eprintln!(
        "200k faint series drawn in {:.2} s",
        t.elapsed().as_secs_f64()
    );

    let mut over = big;
    over.series.truncate(MAX_LINK_SERIES + 1);
    let e = decode_link(&encode_link(&SharedFigure::new(over, vec![]))).unwrap_err();
    let want = format!("{} series (at most {MAX_LINK_SERIES})", MAX_LINK_SERIES + 1);
    assert!(
        matches!(&e, LinkError::Unreasonable(m) if m.contains(&want)),
        "{e}"
    );

    let points: Vec<[f64; 2]> = (0..600_000).map(|i| [i as f64, 1.0]).collect();
    let many_points = spec(
        Axis::linear("x"),
        Axis::linear("y"),
        vec![SeriesSpec::new("a", points, Style::Line, 0)],
    );
    let e = decode_link(&encode_link(&SharedFigure::new(many_points, vec![]))).unwrap_err();
    assert!(
        e.to_string()
            .contains(&format!("600000 points (at most {MAX_LINK_POINTS})")),
        "{e}"
    );
}

#[test]
fn links_with_undrawable_ranges_draw_fitted_and_say_so() {
    let mut y = Axis::linear("y");
    y.range = Some((-1.7e308, 1.7e308));
    let s = spec(
        Axis::linear("x"),
        y,
        vec![SeriesSpec::new(
            "a",
            vec![[0.0, 1.0], [1.0, 2.0]],
            Style::Line,
            0,
        )],
    );
    let back = decode_link(&encode_link(&SharedFigure::new(s, vec![]))).expect("kept as written");
    assert!(back.spec.drawn_caption().contains(
        "the fixed y range [-1.7e308, 1.7e308] cannot be drawn, so y is fitted to the data"
    ));
    draws(back.spec, "link with an infinite-width range");

    let mut x = Axis::log("x");
    x.range = Some((-1.0, 10.0));
    let s = spec(
        x,
        Axis::linear("y"),
        vec![SeriesSpec::new(
            "a",
            vec![[1.0, 1.0], [2.0, 3.0]],
            Style::Line,
            0,
        )],
    );
    let back = decode_link(&encode_link(&SharedFigure::new(s, vec![]))).expect("kept as written");
    assert!(
        back.spec
            .drawn_caption()
            .contains("the fixed x range [-1, 10] cannot be drawn"),
        "{}",
        back.spec.drawn_caption()
    );
    draws(back.spec, "log range below zero");

    // Log y with points 1 and 1e300: a fine link, and it draws.
    let s = spec(
        Axis::linear("x"),
        Axis::log("y"),
        vec![SeriesSpec::new(
            "a",
            vec![[0.0, 1.0], [1.0, 1e300]],
            Style::Line,
            0,
        )],
    );
    let back = decode_link(&encode_link(&SharedFigure::new(s, vec![]))).expect("decodes");
    draws(back.spec, "link with 1 and 1e300 on log y");
}
