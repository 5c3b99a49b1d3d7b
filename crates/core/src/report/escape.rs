//! Escaping for the report's two formats. Everything in a report that came from a file — run and
//! condition names, file names, figure captions that quote them — goes through these, so a name
//! like `<img src=x onerror=…>` or `A1](http://x)` is shown as text and never becomes markup, a
//! link or a request.

/// `text` safe as HTML text and inside a double- or single-quoted attribute.
pub fn html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // C0 controls are not allowed in HTML text; show them rather than drop them.
            c if c.is_control() && !matches!(c, '\n' | '\t') => {
                out.push_str(&format!("\\u{{{:x}}}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

/// `text` safe as Markdown inline text, also inside a table cell: the characters that open
/// emphasis, code, links, images or table cells are backslash-escaped, `<` and `&` (raw HTML and
/// entities) are written as entities, bare `http://`/`www.` are broken so no renderer turns them
/// into links, and line breaks become spaces (a newline would end the table row). Periods and
/// hyphens stay as they are, so numbers and sentences read normally in the raw file; what they
/// mean at the start of a line is handled by [`markdown_line`].
pub fn markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '~' | '!' | '$' => {
                out.push('\\');
                out.push(c);
            }
            // `http://x` and `www.x` would become links under GitHub's autolink extension.
            ':' if chars.peek() == Some(&'/') => out.push_str("\\:"),
            '.' if out.ends_with("www") => out.push_str("\\."),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\n' | '\r' | '\t' => out.push(' '),
            c if c.is_control() => out.push_str(&format!("\\\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// [`markdown`] for text that starts a line (a paragraph or a list item): a leading `-`, `+`, `#`,
/// `=` or `1.` would make it a list, heading or rule, so it is escaped too.
pub fn markdown_line(text: &str) -> String {
    let escaped = markdown(text);
    let digits = escaped.chars().take_while(|c| c.is_ascii_digit()).count();
    let after_digits = escaped[digits..].chars().next();
    match escaped.chars().next() {
        Some('-' | '+' | '#' | '=') => format!("\\{escaped}"),
        _ if digits > 0 && matches!(after_digits, Some('.' | ')')) => {
            format!("{}\\{}", &escaped[..digits], &escaped[digits..])
        }
        _ => escaped,
    }
}

/// An id for an anchor: ASCII letters, digits and `-` only (built from indices, never from names,
/// but checked here so no caller can put a name into an attribute or a link by accident).
pub fn anchor(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// A file name safe to link to from Markdown and to write beside the report: ASCII letters,
/// digits, `-`, `_` and `.`, never starting with `.`.
pub fn file_stem(stem: &str) -> String {
    let s: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let s = s.trim_start_matches('.').to_string();
    if s.is_empty() {
        "report".to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_shows_markup_as_text() {
        assert_eq!(
            html(r#"<img src=x onerror="a()">&'"#),
            "&lt;img src=x onerror=&quot;a()&quot;&gt;&amp;&#39;"
        );
        assert_eq!(html("A1\u{1b}[2J"), "A1\\u{1b}[2J");
    }

    #[test]
    fn markdown_breaks_links_tables_and_html() {
        let e = markdown("A1](http://evil)|<script>\nnext www.x.org");
        assert_eq!(e, "A1\\](http\\://evil)\\|&lt;script&gt; next www\\.x.org");
        // `\]` is a literal bracket: no `](` is left to open a link.
        assert!(!e.replace("\\]", "").contains("](") && !e.contains("http://"));
        assert_eq!(
            markdown("*x* `y` 0.6021 [-1, 2]"),
            "\\*x\\* \\`y\\` 0.6021 \\[-1, 2\\]"
        );
        assert_eq!(markdown_line("- a"), "\\- a");
        assert_eq!(markdown_line("12. b"), "12\\. b");
        assert_eq!(markdown_line("12 b."), "12 b.");
    }

    #[test]
    fn anchors_and_file_stems_keep_only_safe_characters() {
        assert_eq!(anchor("cmp-1-final"), "cmp-1-final");
        assert_eq!(anchor("a\"b c"), "a-b-c");
        assert_eq!(file_stem("../my report"), "_my_report");
        assert_eq!(file_stem("..."), "report");
    }
}
