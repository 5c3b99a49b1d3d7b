//! Figure 3's bootstrap from per-sequence Gram matrices against the brute force it replaces
//! (`benches/bootstrap_oracle.rs`: every resample's stacked K rows through the tall SVD), on
//! every fixture run's final checkpoint and on a layer with a collapsed head that the Gram
//! route's trust test must refuse. The same seeded resamples, so the intervals agree to
//! rounding; asserted at the fixtures' 1e-4 relative on PR.

#[path = "../benches/bootstrap_oracle.rs"]
mod oracle;

use rankscope_core::analysis::importance::{layer_pr_of_heads, layer_pr_with_ci, LayerPr};
use rankscope_core::analysis::weights::Shards;
use rankscope_core::formats::safetensors::read_header;
use rankscope_core::formats::tokens::parse_tokens_safetensors;
use rankscope_core::model::arch::{recognise, Recognition};
use rankscope_core::model::forward::ModelWeights;
use rankscope_core::source::{block_on, FileSource};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures");
const TOL: f64 = 1e-4;

fn load(path: &str) -> ModelWeights {
    let src = FileSource::open(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let header = read_header(&src).expect("header");
    let tensors: Vec<_> = header
        .tensors
        .iter()
        .map(|t| (t.name.clone(), t.shape.clone()))
        .collect();
    let Recognition::Known(arch) = recognise(&tensors, &header.metadata, None) else {
        panic!("{path} not recognised")
    };
    block_on(ModelWeights::load(
        &Shards::single(&header, &src),
        &arch,
        &mut |_| {},
    ))
    .expect("load weights")
}

/// Largest relative difference of the two layers' numbers (value, bounds, head range).
fn worst(got: &LayerPr, want: &LayerPr) -> f64 {
    let pairs = [
        (got.pr.value, want.pr.value),
        (got.pr.lo, want.pr.lo),
        (got.pr.hi, want.pr.hi),
        (got.head_min, want.head_min),
        (got.head_max, want.head_max),
    ];
    pairs
        .iter()
        .map(|(a, b)| (a - b).abs() / b.abs())
        .fold(0.0, f64::max)
}

#[test]
fn gram_bootstrap_equals_the_brute_force_on_every_fixture_run() {
    let src = FileSource::open(format!("{FIXTURES}/eval_tokens.safetensors")).expect("eval tokens");
    let eval = parse_tokens_safetensors(&src).expect("parse");
    assert!(eval.batch >= 2, "the bootstrap needs several sequences");
    let (mut max_err, mut routes): (f64, (usize, usize)) = (0.0, (0, 0));
    for run in ["A1", "A2", "B1", "B2", "C1", "C2"] {
        let model = load(&format!(
            "{FIXTURES}/runs/{run}/ckpt_tokens_327680.safetensors"
        ));
        let keys = model.collect_keys(&eval, None).expect("keys");
        let a = model.arch();
        let got = layer_pr_with_ci(&keys, a.n_layers, a.n_kv_heads, eval.seq_len, 200, 0)
            .expect("gram route");
        let want = oracle::layer_pr_with_ci_brute_force(
            &keys,
            a.n_layers,
            a.n_kv_heads,
            eval.seq_len,
            200,
            0,
        );
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.layer, w.layer);
            let err = worst(g, w);
            assert!(
                err < TOL,
                "{run} layer {}: {g:?} vs brute force {w:?}",
                g.layer
            );
            max_err = max_err.max(err);
            let heads: Vec<&[f32]> = (0..a.n_kv_heads).map(|h| keys.keys(g.layer, h)).collect();
            let (same, r) =
                layer_pr_of_heads(g.layer, &heads, a.d_k, eval.seq_len, 200, g.layer as u64)
                    .expect("layer");
            assert_eq!(&same, g);
            routes = (routes.0 + r.from_gram, routes.1 + r.from_block);
        }
    }
    eprintln!("largest relative difference from the brute force: {max_err:.2e}; spectra by Gram, by block: {routes:?}");
}

/// Deterministic values in [-1, 1) (a 64-bit LCG's top bits).
fn noise(seed: u64, n: usize) -> Vec<f32> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

#[test]
fn a_collapsed_head_falls_back_to_the_block_and_still_equals_the_brute_force() {
    let (n_seq, seq_len, d_k) = (6, 40, 8);
    let rows = n_seq * seq_len;
    let healthy = noise(1, rows * d_k);
    // Head 1: column 7 repeats column 6 up to 1e-6, so κ ≈ 1e6 in every resample (λ_min/λ_max
    // ≈ 1e-12, far under the trust test's 1e-8): the Gram route must refuse it.
    let mut collapsed = noise(2, rows * d_k);
    let tiny = noise(3, rows);
    for r in 0..rows {
        collapsed[r * d_k + 7] = collapsed[r * d_k + 6] + 1e-6 * tiny[r];
    }
    let heads: Vec<&[f32]> = vec![&healthy, &collapsed];
    let (got, routes) = layer_pr_of_heads(3, &heads, d_k, seq_len, 300, 7).expect("layer PR");
    let want = oracle::layer_pr_brute_force(3, &heads, d_k, seq_len, 300, 7);
    assert!(worst(&got, &want) < TOL, "{got:?} vs brute force {want:?}");
    // 301 spectra per head (all sequences, then 300 resamples): head 0 by Gram, head 1 by block.
    assert_eq!(
        (routes.from_gram, routes.from_block),
        (301, 301),
        "{routes:?}"
    );
    // (Not value ≤ hi: duplicated rows lower PR, so resamples sit below the full batch's PR.)
    assert!(
        got.head_min < got.head_max && got.pr.lo < got.pr.hi,
        "{got:?}"
    );

    // Malformed input is refused with an error, not a panic.
    assert!(layer_pr_of_heads(0, &[&healthy[..10]], d_k, seq_len, 10, 0).is_err());
    assert!(layer_pr_of_heads(
        0,
        &[&healthy, &healthy[..d_k * seq_len]],
        d_k,
        seq_len,
        10,
        0
    )
    .is_err());
    assert!(layer_pr_of_heads(0, &heads, d_k, 0, 10, 0).is_err());
}
