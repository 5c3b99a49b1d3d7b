//! How a number reads in a table cell or a sentence: the page's tables (files, a figure's
//! data, the comparison cards, the surgery verdict) all print through [`format_number`], so the
//! same value reads the same everywhere. Exports (CSV, links, sessions) keep every digit.

/// Significant digits of a measured value: what the fixtures' tolerances support, and short
/// enough to compare down a column.
pub const SIGNIFICANT_DIGITS: i32 = 4;

/// `v` with [`SIGNIFICANT_DIGITS`] significant digits and no float noise: a whole number
/// prints whole (`81920`, not `81920.00`), `0.30000000000000004` prints `0.3`, trailing zeros
/// are dropped (`0.5`), and very small or large magnitudes use an exponent (`1.235e-7`,
/// `3.4e12`). NaN and the infinities print as `NaN`, `inf`, `-inf`.
pub fn format_number(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf" } else { "-inf" }.into();
    }
    if v == 0.0 {
        return "0".into(); // also −0
    }
    // Whole numbers (counts, steps, token counts) print whole, up to where f64 holds every integer.
    if v.fract() == 0.0 && v.abs() < 1e15 {
        return format!("{v:.0}");
    }
    let magnitude = v.abs().log10().floor() as i32;
    if (-4..6).contains(&magnitude) {
        let decimals = (SIGNIFICANT_DIGITS - 1 - magnitude).max(0) as usize;
        trim_zeros(format!("{v:.decimals$}"))
    } else {
        let text = format!("{v:.prec$e}", prec = (SIGNIFICANT_DIGITS - 1) as usize);
        match text.split_once('e') {
            Some((mantissa, exponent)) => format!("{}e{exponent}", trim_zeros(mantissa.into())),
            None => text,
        }
    }
}

/// `1.2300` → `1.23`, `2.000` → `2`; text without a decimal point is left alone.
fn trim_zeros(text: String) -> String {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::format_number as f;

    #[test]
    fn four_significant_digits_integers_whole_no_noise() {
        assert_eq!(f(0.1 + 0.2), "0.3");
        assert_eq!(f(7.256908237934112), "7.257");
        assert_eq!(f(-1.766109268553555), "-1.766");
        assert_eq!(f(0.000123456), "0.0001235");
        assert_eq!(f(12345.678), "12346");
        assert_eq!(f(81920.0), "81920");
        assert_eq!(f(327680.0), "327680");
        assert_eq!(f(2.0), "2");
        assert_eq!(f(0.5), "0.5");
        assert_eq!(f(9.99996), "10");
        assert_eq!(f(1.2345e-7), "1.235e-7");
        assert_eq!(f(1e-7), "1e-7");
        assert_eq!(f(3.4e15), "3.4e15");
        assert_eq!(f(1234567.5), "1.235e6");
        assert_eq!(f(-0.0), "0");
        assert_eq!(f(f64::NAN), "NaN");
        assert_eq!(f(f64::INFINITY), "inf");
        assert_eq!(f(f64::NEG_INFINITY), "-inf");
        assert_eq!(f(f64::MAX), "1.798e308");
    }

    #[test]
    fn parses_back_close_to_the_value() {
        for v in [0.0123456, 98.7654, 1.5e-9, 6.02e23, -42.125] {
            let back: f64 = f(v).parse().unwrap();
            assert!(((back - v) / v).abs() < 5e-4, "{v} → {}", f(v));
        }
    }
}
