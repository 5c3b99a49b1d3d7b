//! Canonical tensor names: wrapper prefixes that carry no meaning are removed
//! before a checkpoint's names are matched against a known layout.
//!
//! Training code wraps a model before saving it, and every wrapper leaves its
//! attribute name at the front of every key of `state_dict()`:
//!
//! | prefix       | left by                                                        |
//! | ------------ | -------------------------------------------------------------- |
//! | `_orig_mod.` | `torch.compile(model)` (the `OptimizedModule` keeps the model as `_orig_mod`) |
//! | `module.`    | `DistributedDataParallel` / `DataParallel` (keeps it as `module`) |
//!
//! Wrappers nest (a compiled DDP model saves `module._orig_mod.x`, a DDP-wrapped
//! compiled one `_orig_mod.module.x`), so the prefixes are removed repeatedly,
//! in any order, from the front only. A family's own prefixes (`model.` of
//! Hugging Face Llama, `transformer.` of GPT-2) are *not* wrappers: they are
//! part of that family's layout and are handled in [`super::arch`].
//! A wrapper in the middle of a name (`blocks.0._orig_mod.attn`, from compiling
//! one submodule) is left alone: such a name matches no layout and is reported.

/// The wrapper prefixes removed by [`canonical_name`], in the order they are tried.
pub const WRAPPER_PREFIXES: [&str; 2] = ["_orig_mod.", "module."];

/// `name` without its leading wrapper prefixes (see the module docs).
///
/// A name that is nothing but a prefix (`"module."`) is kept as it is, so a
/// canonical name is never empty unless `name` was.
pub fn canonical_name(name: &str) -> &str {
    let mut rest = name;
    'strip: loop {
        for prefix in WRAPPER_PREFIXES {
            if let Some(stripped) = rest.strip_prefix(prefix) {
                if stripped.is_empty() {
                    break 'strip;
                }
                rest = stripped;
                continue 'strip;
            }
        }
        break;
    }
    rest
}

/// The wrapper prefix removed from `name` by [`canonical_name`]: `""` when none,
/// `"module._orig_mod."` for nested wrappers.
pub fn removed_prefix(name: &str) -> &str {
    let canonical = canonical_name(name);
    name.get(..name.len() - canonical.len()).unwrap_or("")
}

/// Canonical names of `names` (same order), and the distinct wrapper prefixes
/// found among them, in the order first seen (`["module.", "_orig_mod."]` for
/// `module._orig_mod.x`), so an inventory can say "prefix `_orig_mod.` removed".
pub fn strip_prefixes<S: AsRef<str>>(names: &[S]) -> (Vec<String>, Vec<&'static str>) {
    let mut found: Vec<&'static str> = Vec::new();
    let canonical = names
        .iter()
        .map(|name| {
            let mut rest = removed_prefix(name.as_ref());
            while !rest.is_empty() {
                let Some(prefix) = WRAPPER_PREFIXES.iter().find(|p| rest.starts_with(**p)) else {
                    break;
                };
                if !found.contains(prefix) {
                    found.push(prefix);
                }
                rest = &rest[prefix.len()..];
            }
            canonical_name(name.as_ref()).to_string()
        })
        .collect();
    (canonical, found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_are_unchanged() {
        assert_eq!(canonical_name("norm.weight"), "norm.weight");
        assert_eq!(
            canonical_name("model.layers.0.self_attn.k_proj.weight"),
            "model.layers.0.self_attn.k_proj.weight"
        );
        assert_eq!(canonical_name(""), "");
    }

    #[test]
    fn torch_compile_and_ddp_prefixes_are_removed() {
        assert_eq!(canonical_name("_orig_mod.norm.weight"), "norm.weight");
        assert_eq!(canonical_name("module.norm.weight"), "norm.weight");
    }

    #[test]
    fn nested_and_repeated_prefixes_are_removed() {
        assert_eq!(
            canonical_name("module._orig_mod.norm.weight"),
            "norm.weight"
        );
        assert_eq!(
            canonical_name("_orig_mod.module.norm.weight"),
            "norm.weight"
        );
        assert_eq!(
            canonical_name("_orig_mod._orig_mod.norm.weight"),
            "norm.weight"
        );
        assert_eq!(canonical_name("module.module._orig_mod.x"), "x");
    }

    #[test]
    fn only_leading_whole_prefixes_are_removed() {
        // In the middle: left alone.
        assert_eq!(
            canonical_name("blocks.0._orig_mod.attn"),
            "blocks.0._orig_mod.attn"
        );
        // Not a whole segment.
        assert_eq!(canonical_name("modules.0.weight"), "modules.0.weight");
        assert_eq!(canonical_name("_orig_modx.weight"), "_orig_modx.weight");
        // Family prefixes are not wrappers.
        assert_eq!(
            canonical_name("transformer.h.0.attn.c_attn.weight"),
            "transformer.h.0.attn.c_attn.weight"
        );
        // A name that is only a prefix keeps it rather than becoming empty.
        assert_eq!(canonical_name("module."), "module.");
        assert_eq!(canonical_name("_orig_mod.module."), "module.");
    }

    #[test]
    fn removed_prefix_is_the_difference() {
        assert_eq!(removed_prefix("_orig_mod.norm.weight"), "_orig_mod.");
        assert_eq!(
            removed_prefix("module._orig_mod.norm.weight"),
            "module._orig_mod."
        );
        assert_eq!(removed_prefix("norm.weight"), "");
    }

    #[test]
    fn strip_prefixes_reports_what_it_found() {
        let (names, found) = strip_prefixes(&["_orig_mod.a.weight", "_orig_mod.b", "c"]);
        assert_eq!(names, ["a.weight", "b", "c"]);
        assert_eq!(found, ["_orig_mod."]);
        let (names, found) = strip_prefixes(&["module._orig_mod.a", "module.b"]);
        assert_eq!(names, ["a", "b"]);
        assert_eq!(found, ["module.", "_orig_mod."]);
        let (_, found) = strip_prefixes(&["a", "b"]);
        assert!(found.is_empty());
    }
}
