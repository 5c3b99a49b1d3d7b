//! Collapse timing marked on Figure 1 ([`super::collapse`]): for every drawn line of a trajectory
//! (a run, or a condition's mean over seeds), the onset as a thin vertical line and the steepest
//! drop as a shaded interval, both in the line's colour, with the rule and each line's timing in
//! the caption. Timed on the figure's own points, so the marks sit on what is drawn.

use super::collapse::{collapse_timing, CollapseRule};
use super::compare::{MetricPoint, RunMetric};
use crate::figures::spec::{FigureSpec, SeriesSpec, Style};

/// `spec` (a trajectory of a rank metric, x = training tokens when `x_is_tokens`, else steps)
/// with the collapse marks of each solid line added and the rule and timings in the caption.
/// Lines that cannot be timed say why in the caption.
pub fn with_collapse_marks(spec: FigureSpec, rule: CollapseRule, x_is_tokens: bool) -> FigureSpec {
    let mut spec = spec;
    let mut marks = Vec::new();
    let mut summaries = Vec::new();
    for s in spec
        .series
        .iter()
        .filter(|s| !s.faint && matches!(s.style, Style::Line | Style::LineMarkers))
    {
        let mut pts = s.points.clone();
        pts.sort_by(|a, b| a[0].total_cmp(&b[0]));
        let at = |x: f64| (x >= 0.0 && x.fract() == 0.0).then_some(x as u64);
        let run = RunMetric {
            run: s.name.clone(),
            points: pts
                .iter()
                .map(|p| MetricPoint {
                    tokens: if x_is_tokens { at(p[0]) } else { None },
                    step: if x_is_tokens { None } else { at(p[0]) },
                    value: p[1],
                    layers: Vec::new(),
                    units: Vec::new(),
                    resamples: None,
                })
                .collect(),
        };
        match collapse_timing(&run, rule) {
            Ok(t) => {
                let x = |i: usize| pts[i][0];
                if let Some(o) = t.onset {
                    marks.push(SeriesSpec::new(
                        format!("{}: collapse onset", s.name),
                        vec![[x(o.index), x(o.index)]],
                        Style::VSpan,
                        s.color,
                    ));
                }
                if let Some(d) = t.steepest {
                    marks.push(SeriesSpec::new(
                        format!("{}: steepest drop", s.name),
                        vec![[x(d.from.index), x(d.to.index)]],
                        Style::VSpan,
                        s.color,
                    ));
                }
                summaries.push(t.summary);
            }
            Err(e) => summaries.push(format!("{}: not timed: {e}", s.name)),
        }
    }
    if summaries.is_empty() {
        return spec;
    }
    spec.series.extend(marks);
    spec.caption = format!(
        "{} Collapse timing (thin vertical line = onset, shaded = steepest drop): {}. {}",
        spec.caption,
        rule.describe(),
        summaries.join(" ")
    );
    spec
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::figures::spec::{Axis, FigureKind};

    #[test]
    fn onset_and_steepest_drop_are_marked() {
        let spec = FigureSpec {
            kind: FigureKind::Trajectory,
            title: "t".into(),
            caption: "c.".into(),
            x: Axis::linear("training tokens"),
            y: Axis::linear("PR"),
            // 10 → 9 → 5 → 4: onset (≤ 7) at 200 tokens, steepest 100→200 (4 of 6: sudden).
            series: vec![SeriesSpec::new(
                "A1",
                vec![[0.0, 10.0], [100.0, 9.0], [200.0, 5.0], [300.0, 4.0]],
                Style::LineMarkers,
                3,
            )],
            sources: vec![],
        };
        let out = with_collapse_marks(spec, CollapseRule::default(), true);
        assert_eq!(out.series.len(), 3);
        assert_eq!(out.series[1].points, vec![[200.0, 200.0]]);
        assert_eq!(out.series[2].points, vec![[100.0, 200.0]]);
        assert!(out.series[1..]
            .iter()
            .all(|s| s.style == Style::VSpan && s.color == 3));
        assert!(
            out.caption.contains("onset at 200 tokens"),
            "{}",
            out.caption
        );
    }
}
