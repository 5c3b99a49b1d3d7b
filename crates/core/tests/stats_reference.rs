//! The statistics module against SciPy: `tests/data/stats_cases.json` (written by
//! `scripts/reference/make_stats_cases.py`: Welch, its intervals and TOST, exact permutation, exact
//! Wilcoxon signed-rank, Holm via statsmodels) and the fixtures' `replicates/stats.json`, with the
//! expected values themselves as inputs. Tolerance 1e-6 relative (the fixtures README's).

use rankscope_core::analysis::stats::{exact_permutation, holm, signed_rank, welch, StatsError};
use serde_json::Value;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures");
const CASES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/stats_cases.json");
const REL: f64 = 1e-6;

fn load(path: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}")))
        .expect("JSON")
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[track_caller]
fn close(what: &str, got: f64, want: f64) {
    // Values that are zero in the reference (t of identical samples) get an absolute floor.
    let ok = (got - want).abs() <= REL * want.abs().max(1e-12);
    assert!(
        ok,
        "{what}: got {got}, SciPy {want} (relative {:.2e})",
        (got - want).abs() / want.abs()
    );
}

#[test]
fn welch_interval_and_tost_match_scipy() {
    let cases = load(CASES);
    for c in cases["welch"].as_array().expect("welch cases") {
        let name = c["name"].as_str().expect("name");
        let w = welch(&floats(&c["x"]), &floats(&c["y"])).unwrap_or_else(|e| panic!("{name}: {e}"));
        close(
            &format!("{name} difference"),
            w.difference,
            f(&c["difference"]),
        );
        close(&format!("{name} t"), w.t, f(&c["t"]));
        close(&format!("{name} df"), w.df, f(&c["df"]));
        close(&format!("{name} p"), w.p, f(&c["p"]));
        for (level, key) in [(0.95, "ci95"), (0.90, "ci90")] {
            let [lo, hi] = w.interval(level).expect("level");
            let want = floats(&c[key]);
            close(&format!("{name} {key} low"), lo, want[0]);
            close(&format!("{name} {key} high"), hi, want[1]);
        }
        let t = w.tost(f(&c["tost"]["margin"])).expect("margin");
        close(
            &format!("{name} TOST p_lower"),
            t.p_lower,
            f(&c["tost"]["p_lower"]),
        );
        close(
            &format!("{name} TOST p_upper"),
            t.p_upper,
            f(&c["tost"]["p_upper"]),
        );
        close(&format!("{name} TOST p"), t.p, f(&c["tost"]["p"]));
    }
}

/// Both samples constant: SciPy says t = −∞, p = 0, df = 1; we refuse instead.
#[test]
fn welch_of_two_constant_samples_is_undefined() {
    assert_eq!(
        welch(&[1.0, 1.0, 1.0], &[2.0, 2.0, 2.0]),
        Err(StatsError::ZeroVariance)
    );
}

#[test]
fn exact_permutation_matches_scipy() {
    let cases = load(CASES);
    for c in cases["permutation"].as_array().expect("permutation cases") {
        let name = c["name"].as_str().expect("name");
        let p = exact_permutation(&floats(&c["x"]), &floats(&c["y"]))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            p.relabelings,
            c["relabelings"].as_u64().expect("count"),
            "{name}"
        );
        close(
            &format!("{name} statistic"),
            p.statistic,
            f(&c["statistic"]),
        );
        close(&format!("{name} p"), p.p, f(&c["p"]));
    }
}

#[test]
fn wilcoxon_matches_scipy_with_and_without_ties() {
    let cases = load(CASES);
    let mut tied = 0;
    for c in cases["wilcoxon"].as_array().expect("wilcoxon cases") {
        let name = c["name"].as_str().expect("name");
        let r = signed_rank(&floats(&c["x"]), &floats(&c["y"]))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(r.n as u64, c["n_nonzero"].as_u64().expect("n"), "{name}");
        assert_eq!(
            r.zeros as u64,
            c["zeros"].as_u64().expect("zeros"),
            "{name}"
        );
        assert_eq!(r.ties, c["ties"].as_bool().expect("ties"), "{name}");
        tied += usize::from(r.ties);
        assert_eq!(r.statistic, f(&c["statistic"]), "{name} statistic");
        close(&format!("{name} p"), r.p, f(&c["p"]));
    }
    assert!(tied >= 2, "the reference cases must include ties");
}

#[test]
fn holm_matches_statsmodels() {
    let cases = load(CASES);
    for c in cases["holm"].as_array().expect("holm cases") {
        let got = holm(&floats(&c["p"])).expect("p-values");
        for (g, w) in got.iter().zip(floats(&c["p_holm"])) {
            close("Holm", *g, w);
        }
    }
}

/// `replicates/stats.json`, every statistic from its own inputs.
#[test]
fn replicate_statistics_match_stats_json() {
    let s = load(&format!("{FIXTURES}/replicates/stats.json"));
    let mut welch_p = Vec::new();
    for key in [
        "final_mean_k_pr_welch",
        "trajectory_mean_k_pr_welch",
        "final_val_loss_welch",
    ] {
        let c = &s[key];
        let w = welch(&floats(&c["x"]), &floats(&c["y"])).expect(key);
        close(&format!("{key} mean_x"), w.mean_x, f(&c["mean_x"]));
        close(&format!("{key} mean_y"), w.mean_y, f(&c["mean_y"]));
        close(
            &format!("{key} difference"),
            w.difference,
            f(&c["difference"]),
        );
        close(&format!("{key} t"), w.t, f(&c["t"]));
        close(&format!("{key} df"), w.df, f(&c["df"]));
        close(&format!("{key} p"), w.p, f(&c["p_two_sided"]));
        welch_p.push(w.p);
    }
    let c = &s["final_mean_k_pr_welch"];
    let perm = exact_permutation(&floats(&c["x"]), &floats(&c["y"])).expect("permutation");
    let want = &s["final_mean_k_pr_exact_permutation"];
    assert_eq!(
        perm.relabelings,
        want["relabelings"].as_u64().expect("count")
    );
    close("permutation p", perm.p, f(&want["p_two_sided"]));
    let u = &s["units_wilcoxon_seed42"];
    let r = signed_rank(&floats(&u["x"]), &floats(&u["y"])).expect("wilcoxon");
    assert_eq!(r.statistic, f(&u["statistic"]));
    close("Wilcoxon p", r.p, f(&u["p_two_sided_exact"]));
    let h = &s["holm"];
    assert_eq!(floats(&h["p"]).len(), welch_p.len());
    for (got, want) in holm(&welch_p)
        .expect("holm")
        .iter()
        .zip(floats(&h["p_holm"]))
    {
        close("Holm", *got, want);
    }
}
