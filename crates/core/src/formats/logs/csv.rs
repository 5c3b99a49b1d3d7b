//! CSV logs: a header row, then one row per record.
//!
//! - Plain CSV ([`LogFormat::Csv`]): the `Step`/`step`/`global_step`/`_step`/
//!   `iter`/`iteration` column (any case) is the step, `tokens`/`tokens_seen`/
//!   `num_tokens` the token count; every column with at least one number is a
//!   metric; empty or non-numeric cells are missing.
//! - W&B panel export ([`LogFormat::WandbCsv`]): columns `RUN - metric`,
//!   `RUN - metric__MIN`, `RUN - metric__MAX` give one [`Series`] per `RUN`
//!   (split at the last `" - "`), with metrics `metric`, `metric__min`,
//!   `metric__max`: the min/max envelope W&B draws around a smoothed or
//!   sampled line is kept, lower-cased, so a figure can show it. Each run keeps
//!   only the rows where it has at least one value (runs logged on different
//!   step grids share one export).
//! - A row with a different number of fields than the header is an error naming its line.
//! - The delimiter is the one the header line uses most of `,` `;` TAB
//!   (spreadsheets in many locales write `;`); with `;` or TAB, a decimal
//!   comma (`2,5`) is read as a decimal point.

use super::{utf8, LogError, LogFormat, Series};

/// Column names (compared without case) read as the step.
const STEP_COLUMNS: [&str; 6] = [
    "step",
    "global_step",
    "_step",
    "iter",
    "iteration",
    "trainer/global_step",
];
/// Column names (compared without case) read as the token count.
const TOKEN_COLUMNS: [&str; 3] = ["tokens", "tokens_seen", "num_tokens"];
/// What separates the run name from the metric in a W&B export column.
const WANDB_SEPARATOR: &str = " - ";

/// Whether `text` starts with a CSV header (at least two fields) followed by a
/// row with as many fields; [`LogFormat::WandbCsv`] when its columns are `RUN - metric`.
pub fn detect_header(text: &str) -> Option<LogFormat> {
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter(text))
        .from_reader(text.as_bytes());
    let mut records = reader.records();
    let header = records.next()?.ok()?;
    if header.len() < 2 {
        return None;
    }
    let row = records.next()?.ok()?;
    // The head may end mid-row; a complete second row must match the header.
    if row.len() != header.len() && records.next().is_some() {
        return None;
    }
    let has_step = header.iter().any(|h| is_one_of(h, &STEP_COLUMNS));
    if has_step && header.iter().any(|h| h.contains(WANDB_SEPARATOR)) {
        Some(LogFormat::WandbCsv)
    } else {
        Some(LogFormat::Csv)
    }
}

/// The delimiter of a CSV text: whichever of `,` `;` TAB its first line holds
/// most of, outside quotes (`,` on a tie or when there is none).
pub fn delimiter(text: &str) -> u8 {
    let first = text.lines().next().unwrap_or("");
    let mut counts = [(b',', 0usize), (b';', 0), (b'\t', 0)];
    let mut quoted = false;
    for b in first.bytes() {
        if b == b'"' {
            quoted = !quoted;
        } else if !quoted {
            if let Some(c) = counts.iter_mut().find(|c| c.0 == b) {
                c.1 += 1;
            }
        }
    }
    counts
        .iter()
        .fold((b',', 0), |best, c| if c.1 > best.1 { *c } else { best })
        .0
}

fn is_one_of(name: &str, names: &[&str]) -> bool {
    names.iter().any(|n| n.eq_ignore_ascii_case(name.trim()))
}

/// The table as read: header and one `Option<f64>` per cell.
struct Table {
    header: Vec<String>,
    /// Column-major: `cells[c][r]`.
    cells: Vec<Vec<Option<f64>>>,
    rows: usize,
    /// How the fields were separated (other than `,`) and how many decimal
    /// commas were read, for a warning that says so.
    note: Option<String>,
}

fn read_table(bytes: &[u8]) -> Result<Table, LogError> {
    let text = utf8(bytes)?;
    let delimiter = delimiter(text);
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| LogError::Csv(e.to_string()))?
        .iter()
        .map(|h| h.trim().to_owned())
        .collect();
    let mut cells: Vec<Vec<Option<f64>>> = vec![Vec::new(); header.len()];
    let mut rows = 0usize;
    let mut decimal_commas = 0usize;
    let mut record = ::csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = e
                    .position()
                    .map_or(String::new(), |p| format!("line {}: ", p.line()));
                return Err(LogError::Csv(format!("{line}{e}")));
            }
        }
        if record.len() == 1 && record.get(0).is_some_and(|c| c.trim().is_empty()) {
            continue; // a blank line
        }
        if record.len() != header.len() {
            return Err(LogError::CsvFieldCount {
                line: record.position().map_or(0, |p| p.line()),
                found: record.len(),
                expected: header.len(),
                delimiter: delimiter as char,
            });
        }
        for (col, cell) in cells.iter_mut().zip(record.iter()) {
            let (value, comma) = parse_cell(cell, delimiter != b',');
            decimal_commas += usize::from(comma);
            col.push(value);
        }
        rows += 1;
    }
    let note = (delimiter != b',').then(|| {
        let commas = if decimal_commas > 0 {
            format!("; {decimal_commas} decimal comma(s) read as decimal points")
        } else {
            String::new()
        };
        format!(
            "read as fields separated by {:?}{commas}",
            delimiter as char
        )
    });
    Ok(Table {
        header,
        cells,
        rows,
        note,
    })
}

/// A cell's number, and whether it was written with a decimal comma;
/// `decimal_comma`: `2,5` is 2.5 (a `;`- or TAB-separated file from a locale
/// that writes decimal commas).
fn parse_cell(cell: &str, decimal_comma: bool) -> (Option<f64>, bool) {
    let cell = cell.trim();
    if cell.is_empty() {
        return (None, false);
    }
    match cell.parse() {
        Ok(v) => (Some(v), false),
        Err(_) if decimal_comma && cell.matches(',').count() == 1 && !cell.contains('.') => {
            let v = cell.replace(',', ".").parse().ok();
            (v, v.is_some())
        }
        Err(_) => (None, false),
    }
}

/// Reads a CSV log: one [`Series`] for plain CSV, one per run for a W&B export.
pub fn parse(bytes: &[u8]) -> Result<Vec<Series>, LogError> {
    let table = read_table(bytes)?;
    let step_col = table
        .header
        .iter()
        .position(|h| is_one_of(h, &STEP_COLUMNS));
    let token_col = table
        .header
        .iter()
        .position(|h| is_one_of(h, &TOKEN_COLUMNS));
    let wandb = step_col.is_some() && table.header.iter().any(|h| h.contains(WANDB_SEPARATOR));
    if table.rows == 0 {
        return Err(LogError::NoRows(" (only a header)"));
    }
    let numeric = |c: usize| table.cells[c].iter().any(Option::is_some);
    let metric_cols: Vec<usize> = (0..table.header.len())
        .filter(|&c| Some(c) != step_col && Some(c) != token_col && numeric(c))
        .collect();
    if metric_cols.is_empty() {
        return Err(LogError::NoNumeric {
            columns: table.header.join(", "),
        });
    }
    let column =
        |c: Option<usize>| c.map_or_else(|| vec![None; table.rows], |c| table.cells[c].clone());
    if !wandb {
        let mut s = Series::new(LogFormat::Csv);
        s.step = column(step_col);
        s.tokens = column(token_col);
        for c in metric_cols {
            s.metrics
                .insert(table.header[c].clone(), table.cells[c].clone());
        }
        s.warnings.extend(table.note.clone());
        return Ok(vec![s]);
    }
    // W&B: group the columns by run, in the order the runs first appear.
    let mut runs: Vec<(String, Vec<(String, usize)>)> = Vec::new();
    let mut run_index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let mut unprefixed = Vec::new();
    for c in metric_cols {
        let h = &table.header[c];
        let Some((run, metric)) = h.rsplit_once(WANDB_SEPARATOR) else {
            unprefixed.push(h.as_str());
            continue;
        };
        let metric = wandb_metric_name(metric);
        match run_index.get(run) {
            Some(&i) => runs[i].1.push((metric, c)),
            None => {
                run_index.insert(run, runs.len());
                runs.push((run.to_owned(), vec![(metric, c)]));
            }
        }
    }
    let steps = column(step_col);
    let tokens = column(token_col);
    let mut out = Vec::with_capacity(runs.len());
    for (run, cols) in runs {
        let keep: Vec<usize> = (0..table.rows)
            .filter(|&r| cols.iter().any(|&(_, c)| table.cells[c][r].is_some()))
            .collect();
        let mut s = Series::new(LogFormat::WandbCsv);
        s.run = Some(run);
        s.step = keep.iter().map(|&r| steps[r]).collect();
        s.tokens = keep.iter().map(|&r| tokens[r]).collect();
        for (metric, c) in cols {
            s.metrics
                .insert(metric, keep.iter().map(|&r| table.cells[c][r]).collect());
        }
        s.warnings.extend(table.note.clone());
        if !unprefixed.is_empty() {
            s.warnings.push(format!(
                "columns without a run prefix were left out: {}",
                unprefixed.join(", ")
            ));
        }
        out.push(s);
    }
    Ok(out)
}

/// `loss__MIN` → `loss__min`; other names unchanged.
fn wandb_metric_name(metric: &str) -> String {
    for (suffix, new) in [("__MIN", "__min"), ("__MAX", "__max")] {
        if let Some(base) = metric.strip_suffix(suffix) {
            return format!("{base}{new}");
        }
    }
    metric.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_csv() {
        let s = parse(b"step,loss,name\n1,2.5,a\n2,,b\n").unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].step, [Some(1.0), Some(2.0)]);
        assert_eq!(s[0].metric_names(), ["loss"]);
        assert_eq!(s[0].metric("loss").unwrap(), [Some(2.5), None]);
    }

    #[test]
    fn ragged_row_names_its_line() {
        let e = parse(b"step,loss\n1,2\n2,3,4\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 3: 3 fields, but the header has 2 (fields separated by ',')"
        );
    }

    #[test]
    fn semicolons_and_decimal_commas() {
        for text in [
            "step;loss\n1;2.5\n2;3\n",
            "step;loss\n1;2,5\n2;3\n",
            "step\tloss\n1\t2,5\n2\t3\n",
        ] {
            let s = parse(text.as_bytes()).unwrap();
            assert_eq!(
                s[0].metric("loss").unwrap(),
                [Some(2.5), Some(3.0)],
                "{text:?}"
            );
            assert!(
                s[0].warnings[0].starts_with("read as fields separated by"),
                "{:?}",
                s[0].warnings
            );
            assert_eq!(detect_header(text), Some(LogFormat::Csv));
        }
        // A quoted comma in a `,` file is not a decimal comma.
        let s = parse(b"step,loss,note\n1,2,\"3,5\"\n").unwrap();
        assert_eq!(s[0].metric_names(), ["loss"]);
        let e = parse(b"step;loss\n1;2\n2;3;4\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 3: 3 fields, but the header has 2 (fields separated by ';')"
        );
    }
}
