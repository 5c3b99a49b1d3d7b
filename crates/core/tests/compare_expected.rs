//! The comparison pipeline (conditions → effects → Holm → verdicts) on the fixtures' expected values
//! (`expected/*.json`, `replicates/expected/*.json`) as inputs: A1 vs A2 with three seeds per side
//! reproduces `replicates/stats.json` at 1e-6 relative; with one seed per side it says which test it
//! used and why, and the paired test across (layer, kv-head) units reproduces its Wilcoxon.

use rankscope_core::analysis::compare::{
    compare_all, CompareOptions, MetricInfo, MetricPoint, MetricValues, Pair, RunMetric,
    Uncertainty, VerdictKind,
};
use rankscope_core::analysis::conditions::{group_conditions, RunSeed, SeedSource, UserGroup};
use serde_json::Value;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures");
const REL: f64 = 1e-6;

fn load(path: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}")))
        .expect("JSON")
}

fn expected(run: &str) -> Value {
    match run {
        "A1" | "A2" => load(&format!("{FIXTURES}/expected/{run}.json")),
        _ => load(&format!("{FIXTURES}/replicates/expected/{run}.json")),
    }
}

const RUNS: [&str; 6] = [
    "A1",
    "A1_seed43",
    "A1_seed44",
    "A2",
    "A2_seed43",
    "A2_seed44",
];

/// Mean K PR (per layer, per kv-head unit) and the held-out loss of every checkpoint, as stored.
fn tables() -> (MetricValues, MetricValues) {
    let (mut pr, mut loss) = (Vec::new(), Vec::new());
    for run in RUNS {
        let e = expected(run);
        let (mut p, mut l) = (Vec::new(), Vec::new());
        for c in e["checkpoints"].as_array().expect("checkpoints") {
            let tokens = c["tokens"].as_u64();
            let layers = c["layers"].as_array().expect("layers");
            p.push(MetricPoint {
                tokens,
                step: c["step"].as_u64(),
                value: c["mean_k_pr"].as_f64().expect("mean_k_pr"),
                layers: layers
                    .iter()
                    .map(|l| l["k_pr_mean"].as_f64().expect("k_pr_mean"))
                    .collect(),
                units: layers
                    .iter()
                    .flat_map(|l| {
                        l["k_heads"]
                            .as_array()
                            .expect("k_heads")
                            .iter()
                            .map(|h| h["pr"].as_f64().expect("pr"))
                    })
                    .collect(),
                resamples: None,
            });
            l.push(MetricPoint {
                tokens,
                step: c["step"].as_u64(),
                value: c["val_loss"].as_f64().expect("val_loss"),
                layers: Vec::new(),
                units: Vec::new(),
                resamples: None,
            });
        }
        pr.push(RunMetric {
            run: run.into(),
            points: p,
        });
        loss.push(RunMetric {
            run: run.into(),
            points: l,
        });
    }
    let info = |key: &str, short: &str, rank_like: bool| MetricInfo {
        key: key.into(),
        label: short.into(),
        short: short.into(),
        rank_like,
        trajectory: rank_like,
    };
    (
        MetricValues {
            metric: info("k_pr_post_norm", "K PR", true),
            runs: pr,
            resampling: None,
        },
        MetricValues {
            metric: info("heldout_loss", "held-out loss", false),
            runs: loss,
            resampling: None,
        },
    )
}

fn seeds() -> Vec<RunSeed> {
    RUNS.iter()
        .map(|r| RunSeed {
            run: r.to_string(),
            seed: None,
            seed_from: SeedSource::Unknown,
        })
        .collect()
}

#[track_caller]
fn close(what: &str, got: f64, want: &Value) {
    let want = want
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: not a number"));
    assert!(
        (got - want).abs() <= REL * want.abs(),
        "{what}: got {got}, stats.json {want}"
    );
}

#[test]
fn three_seeds_per_side_reproduce_stats_json() {
    let s = load(&format!("{FIXTURES}/replicates/stats.json"));
    let conditions = group_conditions(&seeds(), &[]).expect("by name");
    assert_eq!(conditions.len(), 2);
    assert_eq!(conditions[0].run_names(), ["A1", "A1_seed43", "A1_seed44"]);
    let (pr, loss) = tables();
    let pair = Pair {
        x: "A1".into(),
        y: "A2".into(),
    };
    let set = compare_all(&conditions, &[pr, loss], &[pair], CompareOptions::default());
    assert!(set.failed.is_empty(), "{:?}", set.failed);
    assert_eq!(set.holm_family.len(), 3, "{:?}", set.holm_family);
    let (k, l) = (&set.comparisons[0], &set.comparisons[1]);
    let trajectory = k.trajectory.as_ref().expect("K PR has a trajectory");
    assert!(l.trajectory.is_none());
    for (name, e) in [
        ("final_mean_k_pr_welch", &k.final_effect),
        ("trajectory_mean_k_pr_welch", trajectory),
        ("final_val_loss_welch", &l.final_effect),
    ] {
        let want = &s[name];
        assert_eq!(
            e.uncertainty,
            Uncertainty::Seeds { n_x: 3, n_y: 3 },
            "{name}"
        );
        for (got, w) in e.values_x.iter().chain(&e.values_y).zip(
            want["x"]
                .as_array()
                .expect("x")
                .iter()
                .chain(want["y"].as_array().expect("y")),
        ) {
            close(&format!("{name} value"), *got, w);
        }
        let w = e.welch.expect("Welch");
        close(
            &format!("{name} difference"),
            e.difference,
            &want["difference"],
        );
        close(&format!("{name} t"), w.t, &want["t"]);
        close(&format!("{name} df"), w.df, &want["df"]);
        close(&format!("{name} p"), w.p, &want["p_two_sided"]);
    }
    let perm = k.final_effect.permutation.expect("permutation");
    assert_eq!(perm.relabelings, 20);
    close(
        "permutation p",
        perm.p,
        &s["final_mean_k_pr_exact_permutation"]["p_two_sided"],
    );
    let holm = s["holm"]["p_holm"].as_array().expect("p_holm");
    close("Holm final", k.final_effect.p_holm.expect("Holm"), &holm[0]);
    close(
        "Holm trajectory",
        trajectory.p_holm.expect("Holm"),
        &holm[1],
    );
    close(
        "Holm val loss",
        l.final_effect.p_holm.expect("Holm"),
        &holm[2],
    );
    // With three seeds nothing survives Holm at 0.05, and no interval lies within ±5%: inconclusive,
    // saying why (the trajectory's own interval excludes 0; its corrected p does not pass).
    for e in [&k.final_effect, trajectory, &l.final_effect] {
        assert_eq!(e.verdict.kind, VerdictKind::Inconclusive, "{:?}", e.verdict);
    }
    assert!(
        k.final_effect.verdict.reason.contains("includes 0"),
        "{}",
        k.final_effect.verdict.reason
    );
    assert!(
        k.final_effect
            .verdict
            .reason
            .contains("cannot go below 0.1"),
        "{}",
        k.final_effect.verdict.reason
    );
    assert!(
        trajectory
            .verdict
            .reason
            .contains("Holm-corrected p = 0.06019"),
        "{}",
        trajectory.verdict.reason
    );
    // No units test with seeds; per-layer effects carry Welch intervals.
    assert!(k.units.is_none());
    assert_eq!(k.layers.len(), 4);
    assert!(k.layers.iter().all(|l| l.interval.is_some()));
}

#[test]
fn one_seed_per_side_says_which_test_and_why() {
    let s = load(&format!("{FIXTURES}/replicates/stats.json"));
    let user = [
        UserGroup {
            name: "QK".into(),
            runs: vec!["A1".into()],
        },
        UserGroup {
            name: "noQK".into(),
            runs: vec!["A2".into()],
        },
    ];
    let conditions = group_conditions(&seeds(), &user).expect("by hand");
    let (pr, _) = tables();
    let set = compare_all(
        &conditions,
        &[pr],
        &[Pair {
            x: "QK".into(),
            y: "noQK".into(),
        }],
        CompareOptions::default(),
    );
    let c = &set.comparisons[0];
    assert!(c.question.is_none(), "QK/noQK is not a pair the plan names");
    let Uncertainty::None { reason } = &c.final_effect.uncertainty else {
        panic!("{:?}", c.final_effect.uncertainty)
    };
    assert!(
        reason.contains("fewer than 2 seeds on a side (1 and 1 runs)"),
        "{reason}"
    );
    assert_eq!(c.final_effect.verdict.kind, VerdictKind::Inconclusive);
    assert!(set.holm_family.is_empty());
    let u = c.units.as_ref().expect("units test with one seed per side");
    let want = &s["units_wilcoxon_seed42"];
    assert_eq!(
        u.test.statistic,
        want["statistic"].as_f64().expect("statistic")
    );
    close("units Wilcoxon p", u.test.p, &want["p_two_sided_exact"]);
    assert!(u.caveat.contains("not independent"), "{}", u.caveat);
}

#[test]
fn missing_values_and_unshared_checkpoints_are_named() {
    let conditions = group_conditions(&seeds(), &[]).expect("by name");
    let (mut pr, _) = tables();
    // A2_seed44 without values; the other A2 runs without their shared milestones.
    pr.runs[5].points.clear();
    let set = compare_all(
        &conditions,
        &[pr.clone()],
        &[Pair {
            x: "A1".into(),
            y: "A2".into(),
        }],
        CompareOptions::default(),
    );
    assert!(set.comparisons.is_empty());
    assert!(
        set.failed[0]
            .message
            .contains("run `A2_seed44` has no K PR values"),
        "{}",
        set.failed[0].message
    );
    let (mut pr, _) = tables();
    for r in &mut pr.runs[3..] {
        for p in &mut r.points {
            p.tokens = p.tokens.map(|t| t + 1);
        }
    }
    let set = compare_all(
        &conditions,
        &[pr],
        &[
            Pair {
                x: "A1".into(),
                y: "A3".into(),
            },
            Pair {
                x: "A1".into(),
                y: "A2".into(),
            },
        ],
        CompareOptions::default(),
    );
    assert!(
        set.failed[0].message.contains("no condition `A3`"),
        "{}",
        set.failed[0].message
    );
    assert!(
        set.failed[1].message.contains("share no checkpoint")
            && set.failed[1].message.contains("A2 has 1 tokens"),
        "{}",
        set.failed[1].message
    );
}
