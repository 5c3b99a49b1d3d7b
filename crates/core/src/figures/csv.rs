//! The plotted data of a figure as CSV: one row per drawn point, with the
//! band and error-bar values at the same x when the series has them.

use super::spec::FigureSpec;

fn field(text: &str) -> String {
    // RFC 4180 quoting; a leading = + - @ TAB or CR is prefixed with ' so a
    // spreadsheet never runs a run name as a formula (OWASP's CSV-injection list).
    let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

fn number(v: Option<f64>) -> String {
    v.map(|v| {
        if v.is_finite() {
            format!("{v}")
        } else {
            v.to_string()
        }
    })
    .unwrap_or_default()
}

/// `series,x,y,band_lo,band_hi,err_lo,err_hi` with the axis labels in a
/// comment-free header (`x` and `y` columns are named after the axes).
pub fn to_csv(spec: &FigureSpec) -> String {
    let mut out = format!(
        "series,{},{},band_lo,band_hi,error_lo,error_hi\n",
        field(&format!("x: {}", spec.x.label)),
        field(&format!("y: {}", spec.y.label))
    );
    for s in &spec.series {
        // x → (lo, hi), first row per x wins; a lookup per point, not a scan.
        let by_x = |list: &Option<Vec<[f64; 3]>>| {
            let mut m = std::collections::HashMap::new();
            for b in list.iter().flatten() {
                m.entry(b[0].to_bits()).or_insert((b[1], b[2]));
            }
            m
        };
        let (bands, errs) = (by_x(&s.band), by_x(&s.error_bars));
        for p in &s.points {
            let band = bands.get(&p[0].to_bits()).copied();
            let err = errs.get(&p[0].to_bits()).copied();
            out.push_str(&format!(
                "{},{},{},{},{},{},{}\n",
                field(&s.name),
                number(Some(p[0])),
                number(Some(p[1])),
                number(band.map(|b| b.0)),
                number(band.map(|b| b.1)),
                number(err.map(|b| b.0)),
                number(err.map(|b| b.1)),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::figures::spec::{Axis, FigureKind, SeriesSpec, Style};

    #[test]
    fn rows_per_point_with_bands_and_safe_names() {
        let mut a = SeriesSpec::new(
            "A1, \"muon\"",
            vec![[0.0, 1.5], [10.0, f64::NAN]],
            Style::Line,
            0,
        );
        a.band = Some(vec![[0.0, 1.0, 2.0]]);
        let b = SeriesSpec::new("=cmd()", vec![[1.0, 2.0]], Style::Markers, 1);
        let tab = SeriesSpec::new("\tcmd", vec![[1.0, 2.0]], Style::Markers, 2);
        let cr = SeriesSpec::new("\r=1", vec![[1.0, 2.0]], Style::Markers, 3);
        let spec = FigureSpec {
            kind: FigureKind::Surgery,
            title: String::new(),
            caption: String::new(),
            x: Axis::linear("% pruned"),
            y: Axis::linear("held-out loss"),
            series: vec![a, b, tab, cr],
            sources: vec![],
        };
        assert_eq!(
            to_csv(&spec),
            "series,x: % pruned,y: held-out loss,band_lo,band_hi,error_lo,error_hi\n\
             \"A1, \"\"muon\"\"\",0,1.5,1,2,,\n\
             \"A1, \"\"muon\"\"\",10,NaN,,,,\n\
             '=cmd(),1,2,,,,\n\
             '\tcmd,1,2,,,,\n\
             \"'\r=1\",1,2,,,,\n"
        );
    }
}
