//! `rankscope report` on the fixtures (A1 and A2 with three seeds each: main runs + replicates/):
//! the HTML refers to nothing outside itself, has an <svg> for every computed figure and a table
//! per comparison whose A1 vs A2 numbers are `replicates/stats.json`'s (SciPy), the parts not run
//! are listed with the reason, and the Markdown twin carries the same tables.

mod common;
use common::{rankscope, FIXTURES};
use serde_json::Value;
use std::path::PathBuf;

fn f(p: &str) -> String {
    format!("{FIXTURES}/{p}")
}

fn out_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rankscope_report_{name}_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn unescape_html(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// A table row: its anchor, and each cell's text and `data-value`.
type Row = (Option<String>, Vec<(String, Option<f64>)>);

/// The rows of the HTML table `id`.
fn html_table(html: &str, id: &str) -> Vec<Row> {
    let start = html
        .find(&format!("<table id=\"{id}\">"))
        .unwrap_or_else(|| panic!("no table {id}"));
    let end = start + html[start..].find("</table>").expect("table end");
    let body = &html[start..end];
    let body = &body[body.find("<tbody>").expect("tbody")..];
    body.split("<tr")
        .skip(1)
        .map(|row| {
            let row_id = row
                .strip_prefix(" id=\"")
                .and_then(|r| r.split('"').next())
                .map(String::from);
            let cells = row
                .split("<td")
                .skip(1)
                .map(|cell| {
                    let value = cell
                        .split("data-value=\"")
                        .nth(1)
                        .and_then(|v| v.split('"').next())
                        .map(|v| v.parse::<f64>().expect("data-value is a number"));
                    let text =
                        &cell[cell.find('>').expect("td") + 1..cell.find("</td>").expect("/td")];
                    (unescape_html(text), value)
                })
                .collect();
            (row_id, cells)
        })
        .collect()
}

/// The cells of the Markdown table after `<a id="id"></a>`, unescaped.
fn md_table(md: &str, id: &str) -> Vec<Vec<String>> {
    let start = md
        .find(&format!("<a id=\"{id}\"></a>"))
        .unwrap_or_else(|| panic!("no Markdown table {id}"));
    md[start..]
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2) // header and separator
        .map(|line| {
            let mut cells = vec![String::new()];
            let mut chars = line.trim().trim_matches('|').chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => cells.last_mut().unwrap().extend(chars.next()),
                    '|' => cells.push(String::new()),
                    c => cells.last_mut().unwrap().push(c),
                }
            }
            cells
                .into_iter()
                .map(|c| {
                    let c = c.trim();
                    let c = match c.strip_prefix("<a id=\"") {
                        Some(rest) => &rest[rest.find("</a>").expect("anchor") + 4..],
                        None => c,
                    };
                    c.replace("&lt;", "<")
                        .replace("&gt;", ">")
                        .replace("&amp;", "&")
                })
                .collect()
        })
        .collect()
}

#[track_caller]
fn close(what: &str, got: Option<f64>, want: &Value, rel: f64) {
    let (g, w) = (
        got.unwrap_or_else(|| panic!("{what}: no value")),
        want.as_f64().expect("reference"),
    );
    let r = (g - w).abs() / w.abs();
    assert!(
        r <= rel,
        "{what}: report {g}, stats.json {w}, relative {r:.2e}"
    );
}

#[test]
fn report_on_three_seeds_per_side() {
    let dir = out_dir("seeds");
    let html_path = dir.join("study.html");
    let (ok, stdout, stderr) = rankscope(&[
        "report",
        "--eval",
        &f("eval_tokens.safetensors"),
        "--heldout",
        &f("heldout_tokens.safetensors"),
        &f("runs/A1"),
        &f("runs/A2"),
        &f("replicates/runs"),
        "--boot",
        "20",
        "-o",
        html_path.to_str().expect("path"),
    ]);
    assert!(ok, "{stdout}\n{stderr}");
    let html = std::fs::read_to_string(&html_path).expect("report.html");
    let md = std::fs::read_to_string(dir.join("study.md")).expect("report.md");

    // Nothing outside the file: no src at all, every href an anchor inside it.
    for bad in ["src=", "url(", "@import", "<script", "<link", "<iframe"] {
        assert!(!html.contains(bad), "{bad} in the HTML");
    }
    for href in html.split("href=\"").skip(1) {
        assert!(
            href.starts_with('#'),
            "external link: {}",
            &href[..60.min(href.len())]
        );
        let anchor = &href[1..href.find('"').expect("quote")];
        assert!(
            html.contains(&format!("id=\"{anchor}\"")),
            "dangling link #{anchor}"
        );
    }

    // An <svg> in every computed figure; the surgery's two say why they are absent.
    let figures: Vec<&str> = html.split("<figure id=").skip(1).collect();
    assert_eq!(figures.len(), 5, "five figure slots");
    for (i, fig) in figures.iter().enumerate() {
        let fig = &fig[..fig.find("</figure>").expect("figure end")];
        if i < 3 {
            assert!(
                fig.contains("<svg") && fig.contains("<figcaption>"),
                "figure {}",
                i + 1
            );
        } else {
            assert!(
                !fig.contains("<svg")
                    && fig.contains("class=\"missing\"")
                    && fig.contains("not run"),
                "figure {}: {fig}",
                i + 1
            );
        }
    }
    assert_eq!(html.matches("<svg").count(), 3);
    for n in 1..=3 {
        let svg =
            std::fs::read_to_string(dir.join(format!("study-figure-{n}.svg"))).expect("svg file");
        assert!(svg.contains("<svg"));
        assert!(
            md.contains(&format!("](study-figure-{n}.svg)")),
            "figure {n} linked in the Markdown"
        );
    }
    assert!(
        stdout.contains("not in the report: Surgery verdict: not computed: not run"),
        "{stdout}"
    );
    assert!(html.contains("Not in this report"));

    // One table per comparison: K PR and the held-out loss for A1 vs A2.
    assert!(html.contains("A1 vs A2: K PR — does QK-norm cause or only report collapse?"));
    assert!(html.contains("A1 vs A2: held-out loss"));
    assert!(!html.contains("cmp-3-table"));

    // The numbers are stats.json's (SciPy): run values to ~1e-5 (the forward pass), statistics
    // to 1e-4, as in the compare test.
    let s: Value =
        serde_json::from_str(&std::fs::read_to_string(f("replicates/stats.json")).expect("stats"))
            .expect("JSON");
    let k = html_table(&html, "cmp-1-table");
    let loss = html_table(&html, "cmp-2-table");
    let row = |t: &[Row], id: &str| {
        t.iter()
            .find(|(rid, _)| rid.as_deref() == Some(id))
            .unwrap_or_else(|| panic!("row {id}"))
            .1
            .clone()
    };
    for (name, cells, holm) in [
        ("final_mean_k_pr_welch", row(&k, "cmp-1-final"), 0),
        ("trajectory_mean_k_pr_welch", row(&k, "cmp-1-trajectory"), 1),
        ("final_val_loss_welch", row(&loss, "cmp-2-final"), 2),
    ] {
        let want = &s[name];
        close(&format!("{name} mean x"), cells[1].1, &want["mean_x"], 1e-5);
        close(&format!("{name} mean y"), cells[2].1, &want["mean_y"], 1e-5);
        close(
            &format!("{name} difference"),
            cells[3].1,
            &want["difference"],
            1e-4,
        );
        close(&format!("{name} p"), cells[7].1, &want["p_two_sided"], 1e-4);
        close(
            &format!("{name} Holm p"),
            cells[8].1,
            &s["holm"]["p_holm"][holm],
            1e-4,
        );
        assert_eq!(cells[6].0, "3 vs 3 seeds", "{name}");
        assert!(
            cells[5].0.starts_with("Welch t = "),
            "{name}: {}",
            cells[5].0
        );
        assert!(
            cells[9].0.starts_with("inconclusive"),
            "{name}: {}",
            cells[9].0
        );
    }
    let final_k = row(&k, "cmp-1-final");
    assert!(
        final_k[5]
            .0
            .contains("exact permutation p = 0.1000 (20 relabelings)"),
        "{}",
        final_k[5].0
    );
    // Inconclusive everywhere: the summary claims nothing about A1 vs A2, and says so.
    let summary = &html[html.find("id=\"summary\"").unwrap()..html.find("id=\"figures\"").unwrap()];
    assert!(
        summary.contains("The statistics do not answer it"),
        "{summary}"
    );
    assert!(
        !summary.contains("has lower") && !summary.contains("has higher"),
        "{summary}"
    );

    // The Markdown twin has the same tables, cell for cell.
    for id in [
        "conditions-table",
        "cmp-1-table",
        "cmp-2-table",
        "collapse-table",
    ] {
        let h: Vec<Vec<String>> = html_table(&html, id)
            .into_iter()
            .map(|(_, cells)| cells.into_iter().map(|(t, _)| t).collect())
            .collect();
        assert_eq!(md_table(&md, id), h, "{id}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_input_says_what_is_missing() {
    let dir = out_dir("bad");
    let out = dir.join("r.html");
    let out = out.to_str().expect("path");
    let (ok, _, stderr) = rankscope(&["report", &f("runs/A1"), "-o", out]);
    // clap names the missing option; `report --help` says why it is needed.
    assert!(
        !ok && stderr.contains("required arguments were not provided")
            && stderr.contains("--eval <TOKENS>"),
        "{stderr}"
    );
    let (ok, _, stderr) = rankscope(&[
        "report",
        "--eval",
        &f("eval_tokens.safetensors"),
        &f("runs/A1"),
        "--surgery",
        &f("runs/A1/ckpt_tokens_327680.safetensors"),
        "-o",
        out,
    ]);
    // The surgery measures the held-out loss: --surgery requires --heldout.
    assert!(
        !ok && stderr.contains("required arguments were not provided")
            && stderr.contains("--heldout <TOKENS>"),
        "{stderr}"
    );
    // One checkpoint, with a tiny surgery sweep: no pair to compare, nothing to time; the five
    // figures and the surgery verdict still render and the report lists each missing part with
    // the reason.
    let ckpt = f("runs/A1/ckpt_tokens_327680.safetensors");
    let (ok, stdout, stderr) = rankscope(&[
        "report",
        "--eval",
        &f("eval_tokens.safetensors"),
        "--heldout",
        &f("heldout_tokens.safetensors"),
        &ckpt,
        "--boot",
        "10",
        "--surgery",
        &ckpt,
        "--fractions",
        "0,0.5",
        "--seeds",
        "2",
        "--permutations",
        "100",
        "-o",
        out,
    ]);
    assert!(ok, "{stdout}\n{stderr}");
    let html = std::fs::read_to_string(dir.join("r.html")).expect("html");
    assert_eq!(html.matches("<svg").count(), 5, "every figure computed");
    assert!(!html.contains("class=\"missing\""));
    let verdict = html_table(&html, "surgery-table")
        .into_iter()
        .find(|(id, _)| id.as_deref() == Some("surgery-verdict"))
        .expect("verdict row");
    assert!(!verdict.1[1].0.is_empty(), "{verdict:?}");
    assert!(html.contains(
        "A1 (ckpt_tokens_327680.safetensors): held-out loss after removing key dimensions"
    ));
    assert!(
        stdout.contains("Comparisons: not computed: none of the plan's pairs"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Collapse timing of A1: not timed: run `A1` has 1 checkpoint(s)"),
        "{stdout}"
    );
    assert!(
        html.contains("none of the plan&#39;s pairs"),
        "the reason is in the report"
    );
    assert!(html.contains("<svg"));
    let _ = std::fs::remove_dir_all(&dir);
}
