//! rankscope's core: everything that is not the web page.
//!
//! Data flows one way (see `shared/DESIGN.md`):
//! bytes ([`source`]) → [`formats`] (safetensors by byte range, run logs, token
//! batches) → [`model`] (architecture recognition) → [`inventory`] (what each
//! dropped file is) → analysis and figures.

pub mod analysis;
pub mod figures;
pub mod formats;
pub mod inventory;
mod json_f64;
pub mod model;
pub mod parallel;
pub mod report;
pub mod session;
pub mod share;
pub mod source;
pub mod view_link;

pub use source::{AsyncByteSource, ByteSource};

/// The layers of the core, read from the source: a module may name (`crate::x`) only modules
/// of a lower layer. ARCHITECTURE.md draws the same table; this test keeps the two true.
#[cfg(test)]
mod layers {
    use std::collections::BTreeSet;
    use std::path::Path;

    /// Bottom first. `figures` (specs, drawing, CSV) names nothing else in the crate, so the
    /// analysis builds `FigureSpec`s and the inventory names batches in them.
    const LAYERS: &[&[&str]] = &[
        &["source", "parallel", "json_f64"],
        &["formats"],
        &["model", "figures"],
        &["inventory"],
        &["analysis"],
        &["share"],
        &["session", "report", "view_link"],
    ];

    fn layer(module: &str) -> usize {
        LAYERS
            .iter()
            .position(|l| l.contains(&module))
            .unwrap_or_else(|| {
                panic!("module `{module}` is in no layer: add it to LAYERS and ARCHITECTURE.md")
            })
    }

    /// Every `crate::x` a line names outside comments.
    fn named(line: &str) -> Vec<String> {
        let code = line.trim_start();
        if code.starts_with("//") {
            return Vec::new();
        }
        let code = match code.find(" //") {
            Some(i) => &code[..i],
            None => code,
        };
        code.match_indices("crate::")
            .filter(|(i, _)| !code[..*i].ends_with(|c: char| c.is_alphanumeric() || c == '_'))
            .map(|(i, m)| {
                code[i + m.len()..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect()
            })
            .collect()
    }

    fn walk(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, files);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }

    #[test]
    fn imports_point_down_only() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        walk(&src, &mut files);
        let mut wrong = BTreeSet::new();
        let mut seen = 0;
        for file in &files {
            let rel = file.strip_prefix(&src).unwrap();
            let first = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy();
            let module = first.trim_end_matches(".rs");
            if module == "lib" {
                continue;
            }
            let own = layer(module);
            for (n, line) in std::fs::read_to_string(file).unwrap().lines().enumerate() {
                for target in named(line) {
                    seen += 1;
                    if target == module || target.is_empty() {
                        continue;
                    }
                    // Re-exports at the crate root (`crate::ByteSource`) belong to `source`.
                    let target = if target.starts_with(char::is_uppercase) {
                        "source".to_string()
                    } else {
                        target
                    };
                    if target != module && layer(&target) >= own {
                        wrong.insert(format!(
                            "{}:{} names crate::{target} (layer {} ≥ {own})",
                            rel.display(),
                            n + 1,
                            layer(&target)
                        ));
                    }
                }
            }
        }
        assert!(
            seen > 100,
            "the scan found only {seen} crate:: paths; is it reading the sources?"
        );
        assert!(
            wrong.is_empty(),
            "imports that do not point down:\n{}",
            wrong.into_iter().collect::<Vec<_>>().join("\n")
        );
    }

    #[test]
    fn comments_and_other_crates_are_not_imports() {
        assert_eq!(named("use crate::model::arch;"), ["model"]);
        assert_eq!(named("    // see crate::analysis"), Vec::<String>::new());
        assert_eq!(
            named("let x = crate::figures::f(); // crate::session"),
            ["figures"]
        );
        assert_eq!(named("use rankscope_crate::x;"), Vec::<String>::new());
    }
}
