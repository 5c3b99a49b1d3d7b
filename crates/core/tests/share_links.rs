//! Figure links end to end on the user's fixture study: spectra → Figure 1/2
//! specs → link → spec, drawn before and after. A link must draw the same
//! picture (quantisation below what a figure can show) and stay short.

use rankscope_core::analysis::trajectory::{
    trajectory_figure, waterfall_figure, CheckpointSel, CheckpointSpectra, LayerSel, Matrix,
    Metric, RunSpectra, TrainingAxis,
};
use rankscope_core::analysis::weights::{weight_spectra, Shards};
use rankscope_core::figures::{to_png, Axis, FigureKind, FigureSpec, SeriesSpec, Style};
use rankscope_core::formats::safetensors::read_header;
use rankscope_core::model::arch::{recognise, Recognition};
use rankscope_core::share::{
    decode_link, encode_link, quantise_spec, SharedFigure, SourceFile, RECOMMENDED_MAX_LINK_CHARS,
};
use rankscope_core::source::{block_on, FileSource};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures");

fn study() -> Vec<RunSpectra> {
    ["A1", "A2", "B1", "B2", "C1", "C2"]
        .iter()
        .enumerate()
        .map(|(color, run)| {
            let mut checkpoints: Vec<CheckpointSpectra> =
                std::fs::read_dir(format!("{FIXTURES}/runs/{run}"))
                    .unwrap()
                    .filter_map(|e| {
                        let path = e.unwrap().path();
                        let name = path.file_name()?.to_str()?.to_string();
                        let tokens: u64 = name
                            .strip_prefix("ckpt_tokens_")?
                            .strip_suffix(".safetensors")?
                            .parse()
                            .ok()?;
                        let src = FileSource::open(&path).unwrap();
                        let header = read_header(&src).unwrap();
                        let tensors: Vec<_> = header
                            .tensors
                            .iter()
                            .map(|t| (t.name.clone(), t.shape.clone()))
                            .collect();
                        let Recognition::Known(arch) = recognise(&tensors, &header.metadata, None)
                        else {
                            panic!("{name}")
                        };
                        let spectra = block_on(weight_spectra(
                            &Shards::single(&header, &src),
                            &arch,
                            &mut |_| {},
                        ))
                        .unwrap();
                        Some(CheckpointSpectra {
                            path: format!("runs/{run}/{name}"),
                            step: None,
                            tokens: Some(tokens),
                            spectra,
                        })
                    })
                    .collect();
            checkpoints.sort_by_key(|c| c.tokens);
            RunSpectra {
                run: run.to_string(),
                color,
                checkpoints,
            }
        })
        .collect()
}

fn shared(spec: FigureSpec) -> SharedFigure {
    let files = spec
        .sources
        .iter()
        .map(|s| SourceFile {
            name: s.clone(),
            size: 0,
            digest: None,
            url: None,
        })
        .collect();
    SharedFigure::new(spec, files)
}

/// Fraction of pixels that differ between two renders.
fn pixel_difference(a: &FigureSpec, b: &FigureSpec) -> f64 {
    let (pa, pb) = (
        to_png(a, 800, 500, 1.0).unwrap(),
        to_png(b, 800, 500, 1.0).unwrap(),
    );
    let decode = |bytes: &[u8]| {
        let mut reader = png::Decoder::new(bytes).read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        buf.truncate(info.buffer_size());
        buf
    };
    let (da, db) = (decode(&pa), decode(&pb));
    assert_eq!(da.len(), db.len());
    let differing = da
        .chunks(4)
        .zip(db.chunks(4))
        .filter(|(x, y)| x != y)
        .count();
    differing as f64 / (da.len() / 4) as f64
}

#[test]
fn study_figures_survive_a_link_unchanged_to_the_eye() {
    let runs = study();
    let mut figures = Vec::new();
    for metric in [Metric::Pr, Metric::R90, Metric::Cond, Metric::Alpha] {
        figures.push(trajectory_figure(
            &runs,
            LayerSel::Mean,
            Matrix::K,
            metric,
            TrainingAxis::Tokens,
        ));
    }
    figures.push(trajectory_figure(
        &runs,
        LayerSel::Layer(2),
        Matrix::Q,
        Metric::Pr,
        TrainingAxis::Tokens,
    ));
    figures.push(waterfall_figure(
        &runs,
        CheckpointSel::Final,
        LayerSel::Mean,
        Matrix::K,
        None,
        true,
    ));
    for spec in figures {
        let link = encode_link(&shared(spec.clone()));
        assert!(
            link.len() < RECOMMENDED_MAX_LINK_CHARS,
            "{}: link of {} characters",
            spec.title,
            link.len()
        );
        eprintln!("{}: link {} characters", spec.title, link.len());
        let back = decode_link(&link).unwrap_or_else(|e| panic!("{}: {e}", spec.title));
        assert_eq!(back.spec, quantise_spec(&spec), "{}", spec.title);
        // Same picture: not one pixel moves at 800×500.
        assert_eq!(pixel_difference(&spec, &back.spec), 0.0, "{}", spec.title);
    }
}

/// The size bar of the issue: Figure 1 of 6 runs × 10 checkpoints with 22
/// layers' worth of provenance stays under 8 KB.
#[test]
fn a_full_size_figure_1_link_is_under_8_kb() {
    let mut seed = 0x9e3779b97f4a7c15u64;
    let mut noise = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut sources = Vec::new();
    let series = (0..6)
        .map(|r| {
            let points = (0..10)
                .map(|c| {
                    let tokens = 1_000_000_000u64 * (c + 1) as u64;
                    sources.push(format!("runs/run_{r}/ckpt_tokens_{tokens}.safetensors"));
                    [
                        tokens as f64,
                        40.0 * (-(c as f64) / (3.0 + r as f64)).exp() + 8.0 + noise(),
                    ]
                })
                .collect();
            SeriesSpec::new(format!("run_{r}"), points, Style::LineMarkers, r)
        })
        .collect();
    let spec = FigureSpec {
        kind: FigureKind::Trajectory,
        title: "Participation ratio of K per kv-head vs training tokens".into(),
        caption: "PR = (Σσ)²/Σσ² of W_k (per kv-head), mean over 22 layers and 4 kv-heads".into(),
        x: Axis::linear("training tokens"),
        y: Axis::linear("PR"),
        series,
        sources,
    };
    let link = encode_link(&shared(spec));
    eprintln!("full-size Figure 1: link {} characters", link.len());
    assert!(link.len() < 8 * 1024, "link of {} characters", link.len());
}

/// A session file of the whole fixture study comes back equal (exact floats,
/// infinite condition numbers included), so its figures redraw identically.
#[test]
fn a_session_of_the_fixture_study_round_trips_exactly() {
    use rankscope_core::session::{load_session, Session};
    let mut session = Session::new(vec![]);
    session.weights = study();
    let text = session.to_json();
    let back = load_session(&text).expect("loads");
    assert_eq!(back, session);
    let fig = |s: &Session| {
        trajectory_figure(
            &s.weights,
            LayerSel::Mean,
            Matrix::K,
            Metric::Cond,
            TrainingAxis::Tokens,
        )
    };
    assert_eq!(fig(&back), fig(&session));
    eprintln!(
        "session of 36 checkpoints' weight spectra: {} KB",
        text.len() / 1024
    );
}

/// Deterministic pseudo-random numbers (Knuth's MMIX LCG).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() * n as f64) as usize % n.max(1)
    }
    /// Values as figures hold them: any magnitude, sometimes non-finite or ≤ 0.
    fn value(&mut self) -> f64 {
        match self.below(20) {
            0 => f64::NAN,
            1 => f64::INFINITY,
            2 => f64::NEG_INFINITY,
            3 => 0.0,
            4 => -self.next() * 10.0,
            _ => (self.next() * 30.0 - 15.0).exp() * if self.below(2) == 0 { 1.0 } else { 3.7 },
        }
    }
}

/// Property: for every figure kind and series style, with bands, error bars,
/// ranges and non-finite values, spec → link → spec is the quantised spec,
/// and every value is within the stated precision of the original.
#[test]
fn every_figure_kind_round_trips_through_a_link() {
    use rankscope_core::figures::Scale;
    use rankscope_core::share::quantise;
    let kinds = [
        FigureKind::Trajectory,
        FigureKind::Waterfall,
        FigureKind::LayerBars,
        FigureKind::Surgery,
        FigureKind::Scatter,
        FigureKind::LossCurve,
    ];
    let styles = [
        Style::Line,
        Style::LineMarkers,
        Style::Markers,
        Style::Bars,
        Style::HSpan,
        Style::VSpan,
    ];
    let mut rng = Lcg(42);
    for case in 0..300 {
        let kind = kinds[case % kinds.len()];
        let series = (0..1 + rng.below(5))
            .map(|i| {
                let n = rng.below(40);
                let mut s = SeriesSpec::new(
                    format!("run {i} — \"quoted\" <tag> & ü"),
                    (0..n).map(|_| [rng.value(), rng.value()]).collect(),
                    styles[rng.below(styles.len())],
                    rng.below(12),
                );
                if rng.below(3) == 0 {
                    s.band = Some(
                        (0..n)
                            .map(|_| [rng.value(), rng.value(), rng.value()])
                            .collect(),
                    );
                }
                if rng.below(3) == 0 {
                    s.error_bars = Some(
                        (0..n)
                            .map(|_| [rng.value(), rng.value(), rng.value()])
                            .collect(),
                    );
                }
                s.faint = rng.below(2) == 0;
                s.points_total = (rng.below(2) == 0).then(|| rng.below(1_000_000));
                s
            })
            .collect();
        let mut x = Axis::linear("x (unit)");
        if rng.below(2) == 0 {
            x.scale = Scale::Log;
            x.range = Some((rng.value(), rng.value()));
        }
        let spec = FigureSpec {
            kind,
            title: format!("case {case}"),
            caption: "caption, with\nnewline".into(),
            x,
            y: Axis::log("y"),
            series,
            sources: (0..rng.below(4))
                .map(|i| format!("runs/R{i}/ckpt.safetensors"))
                .collect(),
        };
        let back = decode_link(&encode_link(&shared(spec.clone())))
            .unwrap_or_else(|e| panic!("case {case}: {e}"));
        let q = quantise_spec(&spec);
        // NaN ≠ NaN: compare through the JSON both would write.
        assert_eq!(
            serde_json::to_string(&back.spec).unwrap(),
            serde_json::to_string(&q).unwrap(),
            "case {case}"
        );
        for (a, b) in spec.series.iter().zip(&back.spec.series) {
            for (p, r) in a.points.iter().zip(&b.points) {
                for (u, v) in p.iter().zip(r) {
                    assert!(
                        (u.is_nan() && v.is_nan()) || u == v || (u - v).abs() <= 5e-5 * u.abs(),
                        "case {case}: {u} came back as {v}"
                    );
                    assert_eq!(
                        quantise(*v).to_bits(),
                        v.to_bits(),
                        "quantised values are fixed points"
                    );
                }
            }
        }
    }
}
