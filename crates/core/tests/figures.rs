//! Figures end to end: spec → SVG → PNG, decoded and checked pixel by pixel.
//! The PNGs land in `tests/figures_out/` for a person to look at.

use rankscope_core::figures::build::{self, BandCurve, RunBars, RunPoints, RunSpectrum};
use rankscope_core::figures::draw::legend_names;
use rankscope_core::figures::palette::{COLORS, SERIES_COLORS};
use rankscope_core::figures::{
    min_max_downsample, to_png, to_svg, Axis, FigureKind, FigureSpec, Scale, SeriesSpec, Style,
};

const W: u32 = 800;
const H: u32 = 500;

/// Deterministic pseudo-random numbers in [0, 1) (Knuth's MMIX LCG).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

const RUNS: [&str; 4] = [
    "A1 QK-norm + Muon",
    "A2 no QK-norm + Muon",
    "B1 QK-norm + AdamW",
    "B2 no QK-norm + AdamW",
];

/// Decodes a PNG into (width, height, RGBA bytes).
fn decode(png_bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let mut decoder = png::Decoder::new(png_bytes);
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().expect("PNG header");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("PNG frame");
    buf.truncate(info.buffer_size());
    let channels = info.color_type.samples();
    let rgba = match channels {
        4 => buf,
        3 => buf
            .chunks(3)
            .flat_map(|c| [c[0], c[1], c[2], 255])
            .collect(),
        n => panic!("unexpected PNG with {n} channels"),
    };
    (info.width, info.height, rgba)
}

/// Pixels within a small distance of each (non-black) palette colour.
fn palette_counts(rgba: &[u8]) -> [usize; SERIES_COLORS] {
    let mut counts = [0; SERIES_COLORS];
    for px in rgba.chunks(4) {
        for (i, (r, g, b)) in COLORS.iter().enumerate() {
            let d = (px[0] as i32 - *r as i32)
                .abs()
                .max((px[1] as i32 - *g as i32).abs())
                .max((px[2] as i32 - *b as i32).abs());
            if d <= 8 {
                counts[i] += 1;
            }
        }
    }
    counts
}

/// Renders `spec` to PNG at 800×500, writes it out, and checks that it is not
/// blank and that exactly the series' colours are present.
fn render_and_check(spec: &FigureSpec, file: &str) {
    let png_bytes = to_png(spec, W, H, 1.0).expect("render PNG");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/figures_out");
    std::fs::create_dir_all(&dir).expect("output dir");
    std::fs::write(dir.join(file), &png_bytes).expect("write PNG");
    std::fs::write(
        dir.join(file.replace(".png", ".svg")),
        to_svg(spec, W, H).expect("svg"),
    )
    .expect("write SVG");

    let (w, h, rgba) = decode(&png_bytes);
    assert_eq!((w, h), (W, H));
    let non_white = rgba
        .chunks(4)
        .filter(|p| p[0] < 240 || p[1] < 240 || p[2] < 240)
        .count();
    assert!(
        non_white > (w * h) as usize / 50,
        "{file}: only {non_white} non-white pixels"
    );
    // Text is drawn (the bundled font works): many near-black pixels.
    let dark = rgba
        .chunks(4)
        .filter(|p| p[0] < 60 && p[1] < 60 && p[2] < 60)
        .count();
    assert!(
        dark > 1000,
        "{file}: only {dark} dark pixels, is the text missing?"
    );

    let counts = palette_counts(&rgba);
    let present: Vec<usize> = (0..SERIES_COLORS).filter(|&i| counts[i] >= 40).collect();
    let mut expected: Vec<usize> = spec
        .series
        .iter()
        .map(|s| s.color % SERIES_COLORS)
        .collect();
    expected.sort_unstable();
    expected.dedup();
    assert_eq!(present, expected, "{file}: palette pixel counts {counts:?}");
    assert_eq!(
        present.len(),
        spec.series.len(),
        "{file}: one colour per series"
    );
}

fn trajectory_spec() -> FigureSpec {
    let runs: Vec<RunPoints> = RUNS
        .iter()
        .enumerate()
        .map(|(r, name)| RunPoints {
            run: (*name).into(),
            color: r,
            points: (1..=6)
                .map(|c| {
                    let tokens = c as f64 * 0.5e9;
                    let pr = 12.0 + 40.0 * (-(c as f64) * (0.2 + 0.15 * r as f64)).exp();
                    [tokens, pr]
                })
                .collect(),
        })
        .collect();
    build::trajectory(
        "participation ratio PR of keys",
        "training tokens",
        &runs,
        "PR = (Σσ)²/Σσ² of K after k_norm, before RoPE; mean over layers and kv-heads; eval batch 8×512 tokens; runs A1, A2, B1, B2; 24 points drawn.",
        vec!["A1/ckpt_*.safetensors".into(), "eval_batch.npy".into()],
    )
}

fn waterfall_spec() -> FigureSpec {
    let runs: Vec<RunSpectrum> = RUNS
        .iter()
        .enumerate()
        .map(|(r, name)| RunSpectrum {
            run: (*name).into(),
            color: r,
            singular_values: (0..16)
                .map(|i| 10.0 * (-(i as f64) * (0.15 + 0.12 * r as f64)).exp())
                .collect(),
        })
        .collect();
    build::waterfall(
        &runs,
        true,
        "σ_i of K (layer mean, final checkpoint), eval batch 8×512; 64 points drawn.",
        vec![],
    )
}

fn bars_spec() -> FigureSpec {
    let runs = [("C1 simple data", 4usize, 0.0), ("C2 complex data", 5, 3.0)];
    let runs: Vec<RunBars> = runs
        .iter()
        .map(|(name, color, shift)| RunBars {
            run: (*name).into(),
            color: *color,
            values: (0..4).map(|l| 10.0 + shift + l as f64 * 2.0).collect(),
            intervals: Some(
                (0..4)
                    .map(|l| (8.5 + shift + l as f64 * 2.0, 11.0 + shift + l as f64 * 2.3))
                    .collect(),
            ),
        })
        .collect();
    build::layer_bars(
        "PR of keys",
        &runs,
        "PR per layer, mean over kv-heads, bars = min–max over heads; final checkpoints.",
        vec![],
    )
}

fn surgery_spec() -> FigureSpec {
    let xs: Vec<f64> = (0..10).map(|i| i as f64 * 10.0).collect();
    let curve = |k: f64| {
        xs.iter()
            .map(|&x| [x, 3.2 + k * (x / 100.0).powi(2)])
            .collect::<Vec<_>>()
    };
    let random = curve(4.0);
    let band = random
        .iter()
        .map(|p| [p[0], p[1] - 0.1 - p[0] / 300.0, p[1] + 0.1 + p[0] / 300.0])
        .collect();
    build::surgery(
        &[
            BandCurve { name: "SVD".into(), color: 0, points: curve(0.6), band: None },
            BandCurve { name: "γ".into(), color: 1, points: curve(1.8), band: None },
            BandCurve { name: "random (5 seeds, min–max)".into(), color: 2, points: random, band: Some(band) },
        ],
        "Held-out loss after removing key dimensions in every layer; run A1 final checkpoint; held-out set 16×512 tokens.",
        vec![],
    )
}

fn scatter_spec() -> FigureSpec {
    let mut rng = Lcg(7);
    let groups: Vec<RunPoints> = (0..4)
        .map(|l| RunPoints {
            run: format!("layer {l}"),
            color: l,
            points: (0..64)
                .map(|_| {
                    let g = rng.next() * 2.0;
                    [g, (0.3 * g + 0.2 * rng.next() + 0.05 * l as f64).min(1.0)]
                })
                .collect(),
        })
        .collect();
    build::scatter(
        "γ vs SVD importance",
        "|γ_d|",
        "leverage of d in top-r90 subspace",
        &groups,
        "Spearman ρ = 0.71 overall (p < 0.001, 10⁴ permutations); run A1 final checkpoint.",
        vec![],
    )
}

fn loss_spec() -> FigureSpec {
    let mut rng = Lcg(42);
    let n = 1_000_000;
    let runs: Vec<RunPoints> = (0..3)
        .map(|r| RunPoints {
            run: RUNS[r].into(),
            color: r,
            points: (0..n)
                .map(|i| {
                    let step = i as f64;
                    let spike = if i % 250_000 == 1234 * (r + 1) {
                        2.0
                    } else {
                        0.0
                    };
                    [
                        step,
                        2.8 + 6.0 / (1.0 + step / 2e4).sqrt()
                            + 0.3 * r as f64
                            + 0.1 * rng.next()
                            + spike,
                    ]
                })
                .collect(),
        })
        .collect();
    build::loss_curves(
        "training loss (nats/token)",
        "step",
        &runs,
        400,
        false,
        "Raw loss, no smoothing",
        vec!["A1/log.jsonl".into()],
    )
}

#[test]
fn trajectory_png() {
    render_and_check(&trajectory_spec(), "trajectory.png");
}

#[test]
fn waterfall_png() {
    render_and_check(&waterfall_spec(), "waterfall.png");
}

#[test]
fn layer_bars_png() {
    render_and_check(&bars_spec(), "layer_bars.png");
}

#[test]
fn surgery_png() {
    render_and_check(&surgery_spec(), "surgery.png");
}

#[test]
fn scatter_png() {
    render_and_check(&scatter_spec(), "scatter.png");
}

#[test]
fn loss_curve_png() {
    let spec = loss_spec();
    for s in &spec.series {
        assert!(s.points.len() <= 1600);
        assert_eq!(s.points_total, Some(1_000_000));
        // The spikes survive downsampling.
        assert!(
            s.points.iter().any(|p| p[1] > 4.5 && p[0] > 1000.0),
            "{}: spike lost",
            s.name
        );
    }
    assert!(
        spec.caption.contains("of 3000000 points drawn"),
        "{}",
        spec.caption
    );
    render_and_check(&spec, "loss_curve.png");
}

#[test]
fn svg_names_everything() {
    for spec in [
        trajectory_spec(),
        waterfall_spec(),
        bars_spec(),
        surgery_spec(),
        scatter_spec(),
    ] {
        let svg = to_svg(&spec, W, H).expect("svg");
        assert!(
            svg.trim_start().starts_with("<svg"),
            "{}",
            &svg[..60.min(svg.len())]
        );
        assert!(svg.trim_end().ends_with("</svg>"));
        let has = |t: &str| svg.contains(t);
        assert!(has(&spec.title), "title {:?} missing", spec.title);
        assert!(
            has(&spec.x.label) && has(&spec.y.label),
            "axis labels missing in {:?}",
            spec.kind
        );
        for s in &spec.series {
            assert!(
                has(&s.name),
                "series {:?} missing in {:?}",
                s.name,
                spec.kind
            );
        }
    }
}

#[test]
fn serde_round_trip_is_lossless() {
    let mut spec = surgery_spec();
    spec.series[0].error_bars = Some(vec![[0.0, 3.0, 3.5], [10.0, 3.1, 3.6]]);
    spec.series[1].faint = true;
    spec.series[1].points_total = Some(12345);
    spec.x.range = Some((0.0, 90.0));
    spec.y.scale = Scale::Log;
    spec.series[2].points.push([95.0, 1e-300]);
    spec.series[2].points.push([96.0, 0.1 + 0.2]);
    for spec in [spec, loss_spec(), waterfall_spec(), bars_spec()] {
        let json = serde_json::to_string(&spec).expect("serialize");
        let back: FigureSpec = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, spec);
    }
}

fn assert_downsample_ok(pts: &[[f64; 2]], buckets: usize) {
    let out = min_max_downsample(pts, buckets);
    assert!(out.len() <= 4 * buckets, "{} > 4·{buckets}", out.len());
    assert!(out.windows(2).all(|w| w[0][0] <= w[1][0]), "x not sorted");
    let min = pts.iter().map(|p| p[1]).fold(f64::INFINITY, f64::min);
    let max = pts.iter().map(|p| p[1]).fold(f64::NEG_INFINITY, f64::max);
    assert!(out.iter().any(|p| p[1] == min), "global min lost");
    assert!(out.iter().any(|p| p[1] == max), "global max lost");
    assert_eq!(out.first(), pts.first(), "first point lost");
    assert_eq!(out.last(), pts.last(), "last point lost");
    // Every output point is an input point: nothing invented.
    let mut j = 0;
    for p in &out {
        while j < pts.len() && pts[j] != *p {
            j += 1;
        }
        assert!(
            j < pts.len(),
            "{p:?} is not an input point (or out of order)"
        );
    }
    // Deterministic.
    assert_eq!(out, min_max_downsample(pts, buckets));
}

#[test]
fn downsample_a_million_points() {
    let mut rng = Lcg(1);
    let pts: Vec<[f64; 2]> = (0..1_000_000)
        .map(|i| [i as f64, (i as f64 / 1e5).sin() + rng.next()])
        .collect();
    for buckets in [1, 7, 500, 2000] {
        assert_downsample_ok(&pts, buckets);
    }
}

#[test]
fn downsample_property_over_random_series() {
    let mut rng = Lcg(2024);
    for case in 0..40 {
        let n = 1 + (rng.next() * 5000.0) as usize;
        let buckets = 1 + (rng.next() * 300.0) as usize;
        // Irregular, strictly increasing x; heavy-tailed y with spikes.
        let mut x = rng.next() * 100.0 - 50.0;
        let pts: Vec<[f64; 2]> = (0..n)
            .map(|_| {
                x += rng.next().powi(3) * 10.0 + 1e-9;
                let spike = if rng.next() < 0.001 { 1e3 } else { 0.0 };
                [x, (rng.next() - 0.5) * 10.0 + spike]
            })
            .collect();
        assert_downsample_ok(&pts, buckets);
        let _ = case;
    }
}

fn bad_values_spec() -> FigureSpec {
    FigureSpec {
        kind: FigureKind::Waterfall,
        title: "Bad values".into(),
        caption: "σ_i/σ_1 with a zero, a negative, NaN and ∞".into(),
        x: Axis::log("index i"),
        y: Axis::log("σ_i / σ_1"),
        series: vec![
            SeriesSpec::new(
                "run with bad values",
                vec![
                    [1.0, 1.0],
                    [2.0, 0.5],
                    [3.0, 0.0],
                    [4.0, -0.1],
                    [5.0, f64::NAN],
                    [6.0, f64::INFINITY],
                    [7.0, 0.01],
                    [0.0, 0.2],
                    [-1.0, 0.2],
                ],
                Style::LineMarkers,
                0,
            ),
            SeriesSpec {
                band: Some(vec![
                    [1.0, 0.5, 1.5],
                    [2.0, f64::NAN, 1.0],
                    [3.0, -1.0, 1.0],
                    [7.0, 0.005, 0.02],
                ]),
                error_bars: Some(vec![[2.0, 0.0, 0.6], [7.0, 0.008, 0.012]]),
                ..SeriesSpec::new(
                    "second run",
                    vec![[1.0, 1.0], [2.0, 0.3], [7.0, 0.01]],
                    Style::LineMarkers,
                    1,
                )
            },
        ],
        sources: vec![],
    }
}

#[test]
fn log_axes_drop_bad_values_and_say_so() {
    let spec = bad_values_spec();
    let d = spec.dropped();
    // points: y = 0, y = -0.1, x = 0, x = -1 (≤ 0); NaN, ∞ (non-finite); band: NaN (non-finite), -1 (≤ 0);
    // error bars: lo = 0 (≤ 0).
    assert_eq!(d.non_finite, 3, "{d:?}");
    assert_eq!(d.non_positive_on_log, 6, "{d:?}");
    let caption = spec.drawn_caption();
    assert!(
        caption.contains("6 point(s) with values ≤ 0 omitted on the log axis"),
        "{caption}"
    );
    assert!(caption.contains("3 non-finite point(s)"), "{caption}");
    let svg = to_svg(&spec, W, H).expect("svg");
    assert!(svg.contains("omitted on the log axis"));
    render_and_check(&spec, "log_bad_values.png");

    // Everything bad: still draws, and says there is nothing to draw.
    let mut all_bad = spec.clone();
    all_bad.series.truncate(1);
    all_bad.series[0].points = vec![[1.0, 0.0], [f64::NAN, 1.0], [2.0, -3.0]];
    all_bad.series[0].band = None;
    let svg = to_svg(&all_bad, W, H).expect("svg");
    assert!(svg.contains("no drawable data"));
    // Non-finite fixed ranges are ignored rather than trusted.
    let mut weird_range = spec;
    weird_range.x.range = Some((f64::NAN, 3.0));
    weird_range.y.range = Some((-1.0, 1.0));
    to_png(&weird_range, W, H, 1.0).expect("png");
}

/// The legend names what the plot draws: a run whose values are all NaN, or all ≤ 0 on a log
/// axis, is left out of it (and comes back when the axis can draw it).
#[test]
fn the_legend_lists_only_drawn_series() {
    let mut spec = bad_values_spec();
    spec.series = vec![
        SeriesSpec::new("drawn", vec![[1.0, 1.0], [2.0, 0.5]], Style::LineMarkers, 0),
        SeriesSpec::new("all NaN", vec![[1.0, f64::NAN]], Style::LineMarkers, 1),
        SeriesSpec::new("no points", vec![], Style::LineMarkers, 2),
        SeriesSpec::new(
            "non-positive",
            vec![[1.0, 0.0], [2.0, -1.0]],
            Style::LineMarkers,
            3,
        ),
        SeriesSpec::new("flagged", vec![[1.0, f64::INFINITY]], Style::VSpan, 4),
    ];
    assert_eq!(legend_names(&spec), ["drawn", "flagged"]);
    spec.y = Axis::linear("σ_i / σ_1");
    assert_eq!(legend_names(&spec), ["drawn", "non-positive", "flagged"]);
    let svg = to_svg(&spec, 900, 560).unwrap();
    assert!(!svg.contains("all NaN") && !svg.contains("no points"));
}

#[test]
fn empty_figure_says_no_data() {
    let spec = build::trajectory("PR", "training tokens", &[], "no runs loaded", vec![]);
    let svg = to_svg(&spec, W, H).expect("svg");
    assert!(svg.contains("no data"));
    let png_bytes = to_png(&spec, W, H, 1.0).expect("png");
    let (_, _, rgba) = decode(&png_bytes);
    assert!(palette_counts(&rgba).iter().all(|&c| c < 40));
}

#[test]
fn fixed_ranges_clip_and_2x_scale_works() {
    let mut spec = trajectory_spec();
    spec.x.range = Some((1e9, 2.2e9));
    spec.y.range = Some((15.0, 30.0));
    let png_bytes = to_png(&spec, W, H, 2.0).expect("png");
    let (w, h, _) = decode(&png_bytes);
    assert_eq!((w, h), (2 * W, 2 * H));
    assert!(to_png(&spec, W, H, 0.0).is_err());
    assert!(to_png(&spec, W, H, f32::NAN).is_err());
    assert!(to_svg(&spec, 10, 10).is_err());
}

/// A band on bars is a per-bar range box (e.g. min–max over heads), drawn
/// on top of each bar next to its error bar; bars without one are unchanged.
#[test]
fn bar_ranges_draw_a_box_per_bar() {
    let plain = bars_spec();
    let mut boxed = plain.clone();
    for s in &mut boxed.series {
        s.band = Some(
            (0..4)
                .map(|l| [l as f64, 9.0 + l as f64, 12.5 + l as f64])
                .collect(),
        );
    }
    let count = |spec: &FigureSpec| to_svg(spec, W, H).expect("svg").matches("<rect").count();
    // Two rectangles (translucent fill + outline) per bar: 2 runs × 4 layers.
    assert_eq!(count(&boxed), count(&plain) + 2 * 2 * 4);
    render_and_check(&boxed, "layer_bars_ranges.png");
}
