//! Figures 1–3 over seed replicates: a condition with two or more runs in a figure is drawn as
//! the mean over its seeds with a band of ± one standard deviation across seeds (n − 1 in the
//! denominator), and, on request, each seed as a thin line. Works on any built [`FigureSpec`]
//! whose series are named by run (trajectory, waterfall, per-layer bars), so every figure
//! aggregates the same way and the caption says so.

use super::conditions::Condition;
use crate::figures::spec::{FigureSpec, SeriesSpec, Style};

/// Mean and sample standard deviation (0 for one value).
fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    if v.len() < 2 {
        return (mean, 0.0);
    }
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

/// `spec` with each condition of ≥ 2 runs among its series replaced by the mean over those runs
/// at the x values every one of them has, with a ± 1 SD band (error bars on bars); with
/// `show_seeds`, each run stays as a thin faint line (not on bars). Runs of one-run conditions
/// and series that name no run of `conditions` are kept as they are. The caption says which runs
/// each mean is over, what the band is and which points were left out.
pub fn by_condition(spec: FigureSpec, conditions: &[Condition], show_seeds: bool) -> FigureSpec {
    let mut spec = spec;
    let condition_of = |run: &str| {
        conditions
            .iter()
            .find(|c| c.runs.iter().any(|r| r.run == run))
    };
    // Conditions with at least two data series in this figure, in the order they first appear.
    let mut grouped: Vec<(&Condition, Vec<usize>)> = Vec::new();
    for (i, s) in spec.series.iter().enumerate() {
        if s.style.is_span() || s.faint {
            continue;
        }
        if let Some(c) = condition_of(&s.name) {
            match grouped.iter_mut().find(|(g, _)| g.name == c.name) {
                Some((_, members)) => members.push(i),
                None => grouped.push((c, vec![i])),
            }
        }
    }
    grouped.retain(|(_, members)| members.len() >= 2);
    if grouped.is_empty() {
        return spec;
    }
    let mut notes = Vec::new();
    let mut replaced: Vec<(usize, Vec<SeriesSpec>)> = Vec::new();
    for (condition, members) in &grouped {
        let series: Vec<&SeriesSpec> = members.iter().map(|&i| &spec.series[i]).collect();
        let first = series[0];
        let bars = first.style == Style::Bars;
        // x values every seed has (tokens, index, layer): a mean over fewer seeds would mix
        // seed-to-seed spread with missing checkpoints.
        let mut xs: Vec<f64> = first.points.iter().map(|p| p[0]).collect();
        xs.retain(|x| series.iter().all(|s| s.points.iter().any(|p| p[0] == *x)));
        let left_out: usize = series
            .iter()
            .map(|s| s.points.iter().filter(|p| !xs.contains(&p[0])).count())
            .sum();
        let mut points = Vec::new();
        let mut band = Vec::new();
        for &x in &xs {
            let ys: Vec<f64> = series
                .iter()
                .filter_map(|s| s.points.iter().find(|p| p[0] == x).map(|p| p[1]))
                .collect();
            let (m, sd) = mean_sd(&ys);
            points.push([x, m]);
            band.push([x, m - sd, m + sd]);
        }
        let runs: Vec<&str> = series.iter().map(|s| s.name.as_str()).collect();
        let mut mean = SeriesSpec::new(
            format!("{} (mean of {} seeds)", condition.name, series.len()),
            points,
            first.style,
            first.color,
        );
        if bars {
            mean.error_bars = Some(band);
        } else {
            mean.band = Some(band);
        }
        let mut out = vec![mean];
        if show_seeds && !bars {
            out.extend(series.iter().map(|s| {
                let mut thin =
                    SeriesSpec::new(s.name.clone(), s.points.clone(), Style::Line, s.color);
                thin.faint = true;
                thin.color = first.color;
                thin
            }));
        }
        notes.push(format!(
            "{} = mean of {} ({}){}",
            condition.name,
            runs.join(", "),
            if bars { "whisker" } else { "band" },
            if left_out > 0 {
                format!(", {left_out} point(s) not shared by every seed left out")
            } else {
                String::new()
            }
        ));
        replaced.push((members[0], out));
    }
    let drop: Vec<usize> = grouped
        .iter()
        .flat_map(|(_, m)| m.iter().copied())
        .collect();
    let mut series = Vec::new();
    for (i, s) in std::mem::take(&mut spec.series).into_iter().enumerate() {
        if let Some((_, out)) = replaced.iter_mut().find(|(at, _)| *at == i) {
            series.append(out);
        } else if !drop.contains(&i) {
            series.push(s);
        }
    }
    spec.series = series;
    let bars = spec.series.iter().any(|s| s.style == Style::Bars);
    spec.caption = format!(
        "{} Seed replicates: {}; {} = mean ± 1 standard deviation across seeds (n − 1 denominator){}.",
        spec.caption,
        notes.join("; "),
        if bars { "whisker" } else { "band" },
        match (show_seeds, bars) {
            (true, false) => "; thin lines: each seed",
            (true, true) => "; single seeds are not drawn on bars",
            _ => "",
        }
    );
    spec
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::conditions::{GroupedBy, Replicate, SeedSource};
    use crate::figures::spec::{Axis, FigureKind};

    fn condition(name: &str, runs: &[&str]) -> Condition {
        Condition {
            name: name.into(),
            runs: runs
                .iter()
                .map(|r| Replicate {
                    run: r.to_string(),
                    seed: None,
                    seed_from: SeedSource::Unknown,
                })
                .collect(),
            grouped_by: GroupedBy::Name,
        }
    }

    fn spec(series: Vec<SeriesSpec>) -> FigureSpec {
        FigureSpec {
            kind: FigureKind::Trajectory,
            title: "t".into(),
            caption: "c.".into(),
            x: Axis::linear("x"),
            y: Axis::linear("y"),
            series,
            sources: vec![],
        }
    }

    #[test]
    fn mean_and_sd_band_over_shared_points() {
        let s = spec(vec![
            SeriesSpec::new("A1", vec![[0.0, 1.0], [1.0, 4.0]], Style::LineMarkers, 0),
            SeriesSpec::new("B1", vec![[0.0, 9.0]], Style::LineMarkers, 1),
            SeriesSpec::new(
                "A1_seed43",
                vec![[0.0, 3.0], [1.0, 6.0], [2.0, 1.0]],
                Style::LineMarkers,
                2,
            ),
        ]);
        let conditions = [
            condition("A1", &["A1", "A1_seed43"]),
            condition("B1", &["B1"]),
        ];
        let out = by_condition(s, &conditions, true);
        let names: Vec<&str> = out.series.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["A1 (mean of 2 seeds)", "A1", "A1_seed43", "B1"]);
        let mean = &out.series[0];
        assert_eq!(mean.points, vec![[0.0, 2.0], [1.0, 5.0]]);
        // SD of {1, 3} and of {4, 6} with n − 1: √2.
        let sd = 2f64.sqrt();
        assert_eq!(mean.band.as_ref().unwrap()[0], [0.0, 2.0 - sd, 2.0 + sd]);
        assert!(out.series[1].faint && out.series[2].faint);
        assert!(
            out.caption.contains("1 point(s) not shared"),
            "{}",
            out.caption
        );
        assert!(out.caption.contains("mean ± 1 standard deviation"));
    }

    #[test]
    fn one_seed_conditions_are_untouched() {
        let s = spec(vec![SeriesSpec::new(
            "A1",
            vec![[0.0, 1.0]],
            Style::Line,
            0,
        )]);
        let out = by_condition(s.clone(), &[condition("A1", &["A1"])], true);
        assert_eq!(out, s);
    }

    #[test]
    fn bars_get_error_bars_and_no_thin_lines() {
        let s = spec(vec![
            SeriesSpec::new("A1", vec![[0.0, 1.0]], Style::Bars, 0),
            SeriesSpec::new("A1_s2", vec![[0.0, 3.0]], Style::Bars, 1),
        ]);
        let out = by_condition(s, &[condition("A1", &["A1", "A1_s2"])], true);
        assert_eq!(out.series.len(), 1);
        assert!(out.series[0].band.is_none());
        assert_eq!(out.series[0].error_bars.as_ref().unwrap().len(), 1);
    }
}
