//! Terminal-safe output. File, run and tensor names come from the files
//! themselves (a safetensors key, a JSONL run name, a folder name) and may
//! hold escape sequences that set the window title or clear the screen, or
//! bidirectional overrides that reorder what the line seems to say. Every
//! line the CLI prints goes through [`escape`].

use std::borrow::Cow;

/// Whether `c` is printed as an escape: control characters other than the
/// newline, and the Unicode bidirectional controls.
fn unsafe_char(c: char) -> bool {
    (c.is_control() && c != '\n')
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every unsafe character written as `\u{…}` (`\t` and `\r` as
/// such), so the terminal shows it rather than obeys it.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.contains(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if unsafe_char(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Prints `value` as pretty JSON. serde_json already writes control
/// characters in strings as `\u001b`; the bidirectional controls it leaves
/// raw are written as JSON escapes too, so the output stays valid JSON.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(value)?;
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c != '\n' && unsafe_char(c) {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    println!("{out}");
    Ok(())
}

/// `println!` through [`escape`].
macro_rules! outln {
    () => { println!() };
    ($($arg:tt)*) => { println!("{}", $crate::text::escape(&format!($($arg)*))) };
}

/// `eprintln!` through [`escape`].
macro_rules! errln {
    () => { eprintln!() };
    ($($arg:tt)*) => { eprintln!("{}", $crate::text::escape(&format!($($arg)*))) };
}

pub(crate) use {errln, outln};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_a_terminal_would_obey() {
        assert_eq!(escape("plain ↳ name\n"), "plain ↳ name\n");
        assert_eq!(escape("a\u{1b}]0;owned\u{7}b"), "a\\u{1b}]0;owned\\u{7}b");
        assert_eq!(escape("x\ty\rz\u{9b}2J"), "x\\ty\\rz\\u{9b}2J");
        assert_eq!(escape("abc\u{202e}gpj.exe"), "abc\\u{202e}gpj.exe");
    }
}
