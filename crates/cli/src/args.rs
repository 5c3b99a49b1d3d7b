//! What several commands' arguments share: a value parser for the core's named choices (metric,
//! matrix, key variant, x axis…) that lists them in `--help` and the shell completions, the
//! parsers of the other value shapes, and the figure files (`--svg`, `--png`).

use anyhow::{Context, Result};
use clap::builder::{PossibleValue, TypedValueParser};
use clap::error::ErrorKind;
use rankscope_core::analysis::activations::KeyVariant;
use rankscope_core::analysis::trajectory::{CheckpointSel, LayerSel, Matrix, Metric};
use rankscope_core::figures::FigureSpec;
use std::path::PathBuf;

/// One of a fixed set of named values, read by the core's own parser (`Metric::from_key`,
/// `KeyVariant::from_key`, with their aliases), so each name is spelled in one place. Unlike
/// clap's `ValueEnum` it takes the core's types; the names are listed in `--help`, in the shell
/// completions and, with the flag, when a value is unknown.
#[derive(Clone)]
pub struct Choice<T> {
    /// What a value is, for the message ("metric").
    what: &'static str,
    names: Vec<&'static str>,
    parse: fn(&str) -> Option<T>,
}

impl<T> Choice<T> {
    pub fn new(
        what: &'static str,
        names: impl IntoIterator<Item = &'static str>,
        parse: fn(&str) -> Option<T>,
    ) -> Self {
        Self {
            what,
            names: names.into_iter().collect(),
            parse,
        }
    }
}

/// `a, b or c`.
fn or_list(names: &[&str]) -> String {
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => names.join(""),
    }
}

impl<T: Clone + Send + Sync + 'static> TypedValueParser for Choice<T> {
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<T, clap::Error> {
        let v = value.to_string_lossy();
        if let Some(t) = (self.parse)(&v) {
            return Ok(t);
        }
        let flag = arg
            .and_then(|a| a.get_long())
            .map_or(String::new(), |l| format!("--{l} "));
        let message = format!(
            "unknown {} `{v}`; {flag}takes {}\n",
            self.what,
            or_list(&self.names)
        );
        Err(clap::Error::raw(ErrorKind::InvalidValue, message).with_cmd(cmd))
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(self.names.iter().map(|n| PossibleValue::new(*n))))
    }
}

/// `--metric`: every rank metric of METRICS.md by its key.
pub fn metric() -> Choice<Metric> {
    Choice::new("metric", Metric::ALL.map(Metric::key), Metric::from_key)
}

/// `--matrix k|q`.
pub fn matrix() -> Choice<Matrix> {
    Choice::new("matrix", ["k", "q"], |v| match v {
        "k" | "K" => Some(Matrix::K),
        "q" | "Q" => Some(Matrix::Q),
        _ => None,
    })
}

/// `--variant`: where K is taken (METRICS.md "Representations").
pub fn variant() -> Choice<KeyVariant> {
    Choice::new(
        "variant",
        KeyVariant::ALL.map(KeyVariant::key),
        KeyVariant::from_key,
    )
}

/// `--layer mean|N`.
pub fn layer(v: &str) -> Result<LayerSel, String> {
    match v {
        "mean" => Ok(LayerSel::Mean),
        n => n
            .parse()
            .map(LayerSel::Layer)
            .map_err(|_| format!("--layer takes `mean` or a layer index, not `{n}`")),
    }
}

/// `--checkpoint final|N`.
pub fn checkpoint(v: &str) -> Result<CheckpointSel, String> {
    match v {
        "final" => Ok(CheckpointSel::Final),
        n => n
            .parse()
            .map(CheckpointSel::Index)
            .map_err(|_| format!("--checkpoint takes `final` or an index, not `{n}`")),
    }
}

/// A count of at least one (`--threads`).
pub fn positive_count(v: &str) -> Result<usize, String> {
    v.parse()
        .ok()
        .filter(|&n: &usize| n > 0)
        .ok_or_else(|| format!("takes a count ≥ 1, not `{v}`"))
}

/// A number, with spaces around it allowed (a list item: `--fractions 0, 0.1`).
pub fn number(v: &str) -> Result<f64, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("`{v}` is not a number"))
}

/// Where a figure goes: `--svg FILE` and/or `--png FILE` (900 × 560, the PNG at 2×).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct FigureFiles {
    /// Write the figure as SVG to FILE
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
    /// Write the figure as PNG (2× pixels) to FILE
    #[arg(long, value_name = "FILE")]
    pub png: Option<PathBuf>,
}

impl FigureFiles {
    pub fn any(&self) -> bool {
        self.svg.is_some() || self.png.is_some()
    }

    /// Writes `spec` to the files asked for.
    pub fn write(&self, spec: &FigureSpec) -> Result<()> {
        let (w, h) = (900, 560);
        if let Some(path) = &self.svg {
            let svg = rankscope_core::figures::draw::to_svg(spec, w, h)?;
            std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))?;
        }
        if let Some(path) = &self.png {
            let png = rankscope_core::figures::render::to_png(spec, w, h, 2.0)?;
            std::fs::write(path, png).with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[arg(long, value_parser = metric(), default_value = "pr")]
        metric: Metric,
    }

    #[test]
    fn a_choice_takes_the_core_names_and_lists_them_when_wrong() {
        let t = T::try_parse_from(["t", "--metric=r90"]).unwrap();
        assert_eq!(t.metric, Metric::R90);
        assert_eq!(T::try_parse_from(["t"]).unwrap().metric, Metric::Pr);
        let e = T::try_parse_from(["t", "--metric", "nope"])
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("unknown metric `nope`; --metric takes pr, ") && e.contains(" or alpha"),
            "{e}"
        );
        assert_eq!(or_list(&["a", "b", "c"]), "a, b or c");
        assert_eq!(or_list(&["a"]), "a");
    }
}
