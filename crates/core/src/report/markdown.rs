//! The Markdown twin: the same blocks as the HTML (same tables, numbers, claims and links), with
//! figures as image links ([`MarkdownFigures`]). Anchors are `<a id>` tags (CommonMark passes
//! them through; GitHub keeps them), since heading slugs differ between renderers.

use super::doc::{Block, DrawnFigure, Span, Table};
use super::escape::{anchor, markdown as esc, markdown_line};
use super::{MarkdownFigures, ReportOptions};
use base64::Engine;

/// A paragraph or list item (its first text is escaped as the start of a line).
fn spans(spans: &[Span]) -> String {
    let mut out = String::new();
    for (i, s) in spans.iter().enumerate() {
        match s {
            Span::Text(t) if i == 0 => out.push_str(&markdown_line(t)),
            Span::Text(t) => out.push_str(&esc(t)),
            Span::Strong(t) => out.push_str(&format!("**{}**", esc(t))),
            Span::Link { text, to } => out.push_str(&format!("[{}](#{})", esc(text), anchor(to))),
        }
    }
    out
}

fn table(out: &mut String, t: &Table) {
    out.push_str(&format!("<a id=\"{}\"></a>\n\n", anchor(&t.id)));
    let header: Vec<String> = t.header.iter().map(|h| esc(h)).collect();
    out.push_str(&format!("| {} |\n", header.join(" | ")));
    out.push_str(&format!("|{}\n", " --- |".repeat(t.header.len())));
    for r in &t.rows {
        let cells: Vec<String> = r
            .cells
            .iter()
            .enumerate()
            .map(|(i, c)| match (&r.id, i) {
                (Some(id), 0) => format!("<a id=\"{}\"></a>{}", anchor(id), esc(&c.text)),
                _ => esc(&c.text),
            })
            .collect();
        out.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    out.push('\n');
}

fn figure(out: &mut String, f: &DrawnFigure, options: &ReportOptions) {
    out.push_str(&format!(
        "<a id=\"{}\"></a>\n\n### {}\n\n",
        anchor(&f.id),
        esc(&f.title)
    ));
    match &f.svg {
        Ok(svg) => {
            let target = match (&options.markdown_figures, &f.file) {
                (MarkdownFigures::Files { .. }, Some(file)) => file.clone(),
                _ => format!(
                    "data:image/svg+xml;base64,{}",
                    base64::engine::general_purpose::STANDARD.encode(svg.as_bytes())
                ),
            };
            out.push_str(&format!("![{}]({target})\n\n", esc(&f.title)));
            out.push_str(&format!("{}\n\n", esc(&f.caption)));
        }
        Err(why) => out.push_str(&format!("> **{}**\n\n", esc(why))),
    }
}

/// The whole Markdown document.
pub(super) fn write(
    title: &str,
    blocks: &[Block],
    figures: &[DrawnFigure],
    options: &ReportOptions,
) -> String {
    let mut out = format!("# {}\n\n", esc(title));
    for b in blocks {
        match b {
            Block::Heading { level, text, id } => out.push_str(&format!(
                "<a id=\"{}\"></a>\n\n{} {}\n\n",
                anchor(id),
                "#".repeat(usize::from(*level)),
                esc(text)
            )),
            Block::Para(s) => out.push_str(&format!("{}\n\n", spans(s))),
            Block::List(items) => {
                for item in items {
                    out.push_str(&format!("- {}\n", spans(item)));
                }
                out.push('\n');
            }
            Block::Table(t) => table(&mut out, t),
            Block::Figure(i) => {
                if let Some(f) = figures.get(*i) {
                    figure(&mut out, f, options)
                }
            }
        }
    }
    out
}
