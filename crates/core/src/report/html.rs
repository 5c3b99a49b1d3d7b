//! The HTML file: one document with inline CSS and inline SVG figures. Its Content-Security-Policy
//! forbids every load (no fonts, scripts, images or frames from anywhere), so even a reader's
//! browser opening it online makes no request.

use super::doc::{Block, DrawnFigure, Span, Table};
use super::escape::html as esc;

const STYLE: &str = r#"
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  color: #1b1f24; background: #fff; margin: 0 auto; max-width: 1120px; padding: 24px 32px 48px;
  line-height: 1.45; font-size: 15px; }
h1 { font-size: 26px; margin: 8px 0 4px; }
h2 { font-size: 20px; margin: 32px 0 8px; border-bottom: 1px solid #d0d7de; padding-bottom: 4px; }
h3 { font-size: 16px; margin: 20px 0 6px; }
p { margin: 6px 0; }
a { color: #0a58ca; }
figure { margin: 16px 0 24px; }
figure svg { display: block; width: 100%; max-width: 900px; height: auto; border: 1px solid #e4e7eb; }
figcaption { font-size: 13px; color: #444c56; margin-top: 6px; max-width: 900px; }
.missing { background: #fff8e6; border: 1px solid #e8c66a; padding: 8px 12px; border-radius: 4px; }
table { border-collapse: collapse; margin: 8px 0 12px; font-size: 13px; width: 100%; }
th, td { border: 1px solid #d0d7de; padding: 4px 6px; vertical-align: top; text-align: left; }
th { background: #f3f5f7; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr:target { background: #fff3b0; }
ul { margin: 6px 0; padding-left: 22px; }
@media print {
  body { max-width: none; padding: 0; font-size: 10.5pt; }
  h2 { break-after: avoid; }
  h3 { break-after: avoid; }
  /* A comparison's heading, its sentence and its table stay together. */
  h3 + p, h3 + table, p + table { break-before: avoid; }
  figure, tr { break-inside: avoid; }
  thead { display: table-header-group; }
  table { font-size: 8.5pt; }
  a { color: inherit; text-decoration: none; }
  tr:target { background: none; }
  figure svg { max-width: 100%; border: none; }
}
@page { margin: 14mm; }
"#;

fn spans(out: &mut String, spans: &[Span]) {
    for s in spans {
        match s {
            Span::Text(t) => out.push_str(&esc(t)),
            Span::Strong(t) => {
                out.push_str("<strong>");
                out.push_str(&esc(t));
                out.push_str("</strong>");
            }
            Span::Link { text, to } => {
                out.push_str(&format!("<a href=\"#{}\">{}</a>", esc(to), esc(text)));
            }
        }
    }
}

fn table(out: &mut String, t: &Table) {
    out.push_str(&format!("<table id=\"{}\">\n<thead><tr>", esc(&t.id)));
    for h in &t.header {
        out.push_str(&format!("<th>{}</th>", esc(h)));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for r in &t.rows {
        match &r.id {
            Some(id) => out.push_str(&format!("<tr id=\"{}\">", esc(id))),
            None => out.push_str("<tr>"),
        }
        for c in &r.cells {
            match c.value {
                // `{:?}` writes the shortest text that reads back as the same f64.
                Some(v) => out.push_str(&format!(
                    "<td class=\"num\" data-value=\"{v:?}\">{}</td>",
                    esc(&c.text)
                )),
                None => out.push_str(&format!("<td>{}</td>", esc(&c.text))),
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table>\n");
}

fn figure(out: &mut String, f: &DrawnFigure) {
    out.push_str(&format!(
        "<figure id=\"{}\">\n<h3>{}</h3>\n",
        esc(&f.id),
        esc(&f.title)
    ));
    match &f.svg {
        // plotters escapes the text it writes into the SVG; the SVG is our own drawing.
        Ok(svg) => {
            out.push_str(svg.trim());
            out.push_str(&format!("\n<figcaption>{}</figcaption>\n", esc(&f.caption)));
        }
        Err(why) => out.push_str(&format!("<p class=\"missing\">{}</p>\n", esc(why))),
    }
    out.push_str("</figure>\n");
}

/// The whole HTML document.
pub(super) fn write(title: &str, blocks: &[Block], figures: &[DrawnFigure]) -> String {
    let mut out = String::with_capacity(64 * 1024 + figures.len() * 96 * 1024);
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    // Nothing may load: inline styles only, images only from data: (none are used today).
    out.push_str(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\n",
    );
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    out.push_str(&format!("<title>{}</title>\n", esc(title)));
    out.push_str(&format!("<style>{STYLE}</style>\n</head>\n<body>\n"));
    out.push_str(&format!("<h1>{}</h1>\n", esc(title)));
    for b in blocks {
        match b {
            Block::Heading { level, text, id } => out.push_str(&format!(
                "<h{level} id=\"{}\">{}</h{level}>\n",
                esc(id),
                esc(text)
            )),
            Block::Para(s) => {
                out.push_str("<p>");
                spans(&mut out, s);
                out.push_str("</p>\n");
            }
            Block::List(items) => {
                out.push_str("<ul>\n");
                for item in items {
                    out.push_str("<li>");
                    spans(&mut out, item);
                    out.push_str("</li>\n");
                }
                out.push_str("</ul>\n");
            }
            Block::Table(t) => table(&mut out, t),
            Block::Figure(i) => {
                if let Some(f) = figures.get(*i) {
                    figure(&mut out, f)
                }
            }
        }
    }
    out.push_str("</body>\n</html>\n");
    out
}
