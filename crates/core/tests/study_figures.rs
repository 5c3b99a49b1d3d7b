//! Figures 3–5 built from the fixture runs by the library (sweep, importance,
//! bootstrap) and rendered to `tests/figures_out/study_*.png` for a person to look at.

use rankscope_core::analysis::importance::{gamma_vs_svd, layer_pr_with_ci};
use rankscope_core::analysis::study_figures::{
    layer_pr_figure, scatter_figure, surgery_figure, LayerPrRun,
};
use rankscope_core::analysis::surgery::{run_sweep, SweepOptions};
use rankscope_core::analysis::weights::Shards;
use rankscope_core::figures::{to_png, to_svg, FigureKind, FigureSpec, Style};
use rankscope_core::formats::safetensors::read_header;
use rankscope_core::formats::tokens::{parse_tokens_safetensors, TokenBatch};
use rankscope_core::model::arch::{recognise, Recognition};
use rankscope_core::model::forward::ModelWeights;
use rankscope_core::source::{block_on, FileSource};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures");
const FINAL: &str = "ckpt_tokens_327680.safetensors";

fn load(run: &str) -> ModelWeights {
    let path = format!("{FIXTURES}/runs/{run}/{FINAL}");
    let src = FileSource::open(&path).expect("open");
    let header = read_header(&src).expect("header");
    let tensors: Vec<_> = header
        .tensors
        .iter()
        .map(|t| (t.name.clone(), t.shape.clone()))
        .collect();
    let Recognition::Known(arch) = recognise(&tensors, &header.metadata, None) else {
        panic!("not recognised")
    };
    block_on(ModelWeights::load(
        &Shards::single(&header, &src),
        &arch,
        &mut |_| {},
    ))
    .expect("load")
}

fn tokens(name: &str) -> TokenBatch {
    parse_tokens_safetensors(&FileSource::open(format!("{FIXTURES}/{name}")).expect("open"))
        .expect("tokens")
}

fn write(spec: &FigureSpec, file: &str) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/figures_out");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join(file), to_png(spec, 900, 560, 1.0).expect("png")).expect("write");
    let svg = to_svg(spec, 900, 560).expect("svg");
    for s in &spec.series {
        assert!(
            svg.contains(&s.name.replace('&', "&amp;")) || s.name.is_empty(),
            "{file}: legend lacks {}",
            s.name
        );
    }
}

#[test]
fn figure3_layer_pr_bars_of_two_runs() {
    let eval = tokens("eval_tokens.safetensors");
    let runs: Vec<LayerPrRun> = ["C1", "C2"]
        .iter()
        .enumerate()
        .map(|(i, run)| {
            let model = load(run);
            let keys = model.collect_keys(&eval, None).expect("keys");
            let a = model.arch();
            LayerPrRun {
                run: (*run).into(),
                color: 4 + i,
                checkpoint: "final (327,680 tokens)".into(),
                layers: layer_pr_with_ci(&keys, a.n_layers, a.n_kv_heads, eval.seq_len, 1000, 0)
                    .expect("ci"),
            }
        })
        .collect();
    let spec = layer_pr_figure(&runs, 1000, vec![]);
    assert_eq!(spec.kind, FigureKind::LayerBars);
    assert!(spec
        .series
        .iter()
        .all(|s| s.style == Style::Bars && s.band.is_some() && s.error_bars.is_some()));
    write(&spec, "study_fig3_layer_pr.png");
}

#[test]
fn figure4_and_5_surgery_and_scatter() {
    let eval = tokens("eval_tokens.safetensors");
    let heldout = tokens("heldout_tokens.safetensors");
    for run in ["B1", "A2"] {
        let model = load(run);
        let result = run_sweep(
            &model,
            &eval,
            &heldout,
            &SweepOptions::for_model(&model),
            &mut |_| {},
            &|| false,
        )
        .expect("sweep");
        let spec = surgery_figure(run, &result, vec![format!("runs/{run}/{FINAL}")]);
        assert_eq!(spec.series.len(), if run == "A2" { 2 } else { 3 });
        assert_eq!(spec.caption.contains("no key norm"), run == "A2");
        // x is the fraction actually removed (m/d_k), not the nominal one.
        for series in &spec.series {
            for (p, m) in series.points.iter().zip(&result.removed) {
                assert!((p[0] - *m as f64 / result.d_k as f64 * 100.0).abs() < 1e-12);
            }
        }
        assert!(
            spec.series.last().unwrap().band.is_some(),
            "random has its band"
        );
        write(&spec, &format!("study_fig4_surgery_{run}.png"));

        let keys = model.collect_keys(&eval, None).expect("keys");
        let imp = gamma_vs_svd(&model, &keys, 10_000, 0).expect("importance");
        let spec = scatter_figure(run, &imp, vec![]);
        if run == "A2" {
            assert!(!spec.has_data() && spec.caption.contains("no key norm"));
        } else {
            assert_eq!(spec.series.len(), 4);
            assert!(spec.caption.contains("ρ ="), "{}", spec.caption);
            write(&spec, &format!("study_fig5_scatter_{run}.png"));
        }
    }
}
