#!/usr/bin/env python3
"""Reference cases for rankscope's statistics (crates/core/src/analysis/stats), computed with SciPy
(and statsmodels for Holm), written to crates/core/tests/data/stats_cases.json.

Run from the repository root:  python3 scripts/reference/make_stats_cases.py
Needs: pip install scipy statsmodels. The Rust tests read the JSON; they never run Python.

Definitions (METRICS.md "Statistics across runs"):
- Welch: scipy.stats.ttest_ind(x, y, equal_var=False), two-sided; its confidence_interval(level).
- TOST at margin d: p_lower = Welch one-sided p of H0 diff <= -d (ttest_ind(x + d, y, alternative='greater')),
  p_upper = of H0 diff >= d (ttest_ind(x - d, y, alternative='less')), p = max of both.
- Exact permutation: scipy.stats.permutation_test over every relabeling ('independent', n_resamples=inf),
  statistic |mean x - mean y|, alternative 'greater' (p = share of relabelings, identity included,
  at least as extreme).
- Wilcoxon signed-rank, paired, two-sided, zero_method='wilcox' (zeros dropped): method='exact' where
  |x - y| has no ties; with ties, the exact conditional distribution over all sign flips of the
  average ranks (method=PermutationMethod(n_resamples=inf)); both are recorded where both apply.
- Holm: statsmodels.stats.multitest.multipletests(p, method='holm').
"""
import json
import pathlib

import numpy as np
import scipy
import scipy.stats as st
from statsmodels.stats.multitest import multipletests
import statsmodels

OUT = pathlib.Path("crates/core/tests/data/stats_cases.json")


def welch_case(name, x, y, margin):
    r = st.ttest_ind(x, y, equal_var=False)
    ci95 = r.confidence_interval(0.95)
    ci90 = r.confidence_interval(0.90)
    p_lower = st.ttest_ind(np.add(x, margin), y, equal_var=False, alternative="greater").pvalue
    p_upper = st.ttest_ind(np.subtract(x, margin), y, equal_var=False, alternative="less").pvalue
    return {
        "name": name,
        "x": list(map(float, x)),
        "y": list(map(float, y)),
        "difference": float(np.mean(x) - np.mean(y)),
        "t": float(r.statistic),
        "df": float(r.df),
        "p": float(r.pvalue),
        "ci95": [float(ci95.low), float(ci95.high)],
        "ci90": [float(ci90.low), float(ci90.high)],
        "tost": {"margin": float(margin), "p_lower": float(p_lower), "p_upper": float(p_upper),
                 "p": float(max(p_lower, p_upper))},
    }


def permutation_case(name, x, y):
    r = st.permutation_test((x, y), lambda a, b: abs(np.mean(a) - np.mean(b)), permutation_type="independent",
                            n_resamples=np.inf, alternative="greater", vectorized=False)
    return {"name": name, "x": list(map(float, x)), "y": list(map(float, y)),
            "statistic": float(r.statistic), "relabelings": int(len(r.null_distribution)), "p": float(r.pvalue)}


def wilcoxon_case(name, x, y):
    d = np.subtract(x, y)
    nz = np.abs(d[d != 0])
    ties = len(np.unique(nz)) < len(nz)
    perm = st.wilcoxon(x, y, method=st.PermutationMethod(n_resamples=np.inf))
    case = {"name": name, "x": list(map(float, x)), "y": list(map(float, y)), "n_nonzero": int(len(nz)),
            "ties": bool(ties), "zeros": int(np.sum(d == 0)), "statistic": float(perm.statistic),
            "p": float(perm.pvalue), "scipy_method": "PermutationMethod(n_resamples=inf)"}
    if not ties and case["zeros"] == 0:
        exact = st.wilcoxon(x, y, method="exact")
        assert exact.statistic == perm.statistic and abs(exact.pvalue - perm.pvalue) < 1e-12, name
        case["scipy_method"] = "exact (= PermutationMethod(n_resamples=inf))"
    return case


def main():
    rng = np.random.default_rng(20261203)
    welch = [
        welch_case("stats.json final mean K PR", [7.256908205213666, 7.544797367862183, 7.219004746979174],
                   [6.737810677449248, 6.3970662429750575, 7.079443726540974], 0.35),
        welch_case("n=2 per side", [1.0, 2.0], [3.5, 3.0], 0.5),
        welch_case("equal variances, equal n", [1.0, 2.0, 3.0, 4.0], [2.0, 3.0, 4.0, 5.0], 0.2),
        welch_case("identical samples", [1.0, 2.0, 4.0], [1.0, 2.0, 4.0], 1.5),
        welch_case("x has zero variance", [5.0, 5.0, 5.0], [4.0, 4.5, 6.0, 4.2], 0.5),
        welch_case("unequal n and spread", list(rng.normal(10, 1, 3)), list(rng.normal(9, 3, 7)), 0.5),
        welch_case("large n, small effect", list(rng.normal(0, 1, 40)), list(rng.normal(0.1, 1, 25)), 0.3),
        welch_case("equivalent within margin", list(rng.normal(100, 0.5, 6)), list(rng.normal(100.1, 0.5, 6)), 5.0),
        welch_case("tiny df, big effect", [1.0, 1.1], [10.0, 30.0, 20.0], 1.0),
    ]
    permutation = [
        permutation_case("stats.json final mean K PR 3 vs 3", [7.256908205213666, 7.544797367862183, 7.219004746979174],
                         [6.737810677449248, 6.3970662429750575, 7.079443726540974]),
        permutation_case("2 vs 2 separated", [1.0, 2.0], [3.0, 4.0]),
        permutation_case("2 vs 3", [1.0, 5.0], [2.0, 3.0, 4.5]),
        permutation_case("4 vs 4 overlapping", list(rng.normal(0, 1, 4)), list(rng.normal(0.5, 1, 4))),
        permutation_case("5 vs 6", list(rng.normal(0, 1, 5)), list(rng.normal(1.0, 1, 6))),
        permutation_case("ties in the pooled values", [1.0, 1.0, 2.0], [2.0, 3.0, 3.0]),
    ]
    units = json.loads(pathlib.Path("../shared/fixtures/replicates/stats.json").read_text())["units_wilcoxon_seed42"]
    wilcoxon = [
        wilcoxon_case("stats.json units seed 42", units["x"], units["y"]),
        wilcoxon_case("n=2", [1.0, 2.0], [0.5, 2.75]),
        wilcoxon_case("all positive n=6", [2.0, 3.0, 4.5, 5.0, 7.0, 9.5], [1.0, 1.5, 2.0, 2.5, 3.0, 3.2]),
        wilcoxon_case("random n=12", list(rng.normal(0, 1, 12)), list(rng.normal(0.3, 1, 12))),
        wilcoxon_case("random n=20", list(rng.normal(0, 1, 20)), list(rng.normal(0.5, 1, 20))),
        wilcoxon_case("ties in |d|", [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [0.0, 1.0, 2.0, 6.0, 3.0, 4.0]),
        wilcoxon_case("ties and zeros", [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0], [1.5, 2.0, 2.5, 3.0, 6.0, 6.5, 7.0, 8.0]),
    ]
    holm = []
    for p in ([0.0727891022577843, 0.020063984935840003, 0.029885717754312334], [0.01, 0.04, 0.03, 0.005],
              [0.5], [0.2, 0.2, 0.01], [0.04, 0.9, 0.03, 0.02, 0.5]):
        holm.append({"p": p, "p_holm": [float(v) for v in multipletests(p, method="holm")[1]]})
    out = {"what": "reference statistics for rankscope's stats module; see scripts/reference/make_stats_cases.py",
           "scipy": scipy.__version__, "numpy": np.__version__, "statsmodels": statsmodels.__version__,
           "welch": welch, "permutation": permutation, "wilcoxon": wilcoxon, "holm": holm}
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
