//! Tensors by canonical name, with shape checks that name the tensor as stored,
//! and a record of which tensors a layout used.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::names::{canonical_name, removed_prefix};

/// A tensor as stored: its name in the file and its shape.
#[derive(Debug, Clone)]
pub(super) struct Stored {
    pub name: String,
    pub shape: Vec<usize>,
}

/// The checkpoint's tensors keyed by canonical name.
pub(super) struct Lookup {
    by_canonical: BTreeMap<String, Stored>,
    /// Distinct non-empty wrapper prefixes, first seen first.
    prefixes: Vec<String>,
    used: BTreeSet<String>,
}

impl Lookup {
    /// Fails when two stored names share a canonical name or a dimension does not fit in `usize`.
    pub fn new(tensors: &[(String, Vec<u64>)]) -> Result<Self, String> {
        let mut by_canonical = BTreeMap::new();
        let mut prefixes: Vec<String> = Vec::new();
        for (name, shape) in tensors {
            let shape = shape
                .iter()
                .map(|&d| {
                    usize::try_from(d)
                        .map_err(|_| format!("tensor `{name}` has dimension {d}, too large"))
                })
                .collect::<Result<Vec<usize>, String>>()?;
            let prefix = removed_prefix(name);
            if !prefix.is_empty() && !prefixes.iter().any(|p| p == prefix) {
                prefixes.push(prefix.to_string());
            }
            let stored = Stored {
                name: name.clone(),
                shape,
            };
            if let Some(previous) = by_canonical.insert(canonical_name(name).to_string(), stored) {
                return Err(format!(
                    "tensors `{}` and `{name}` are the same name once the wrapper prefix is removed",
                    previous.name
                ));
            }
        }
        Ok(Lookup {
            by_canonical,
            prefixes,
            used: BTreeSet::new(),
        })
    }

    /// Canonical names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_canonical.keys().map(String::as_str)
    }

    /// Whether a tensor of this canonical name exists (does not mark it used).
    pub fn has(&self, canonical: &str) -> bool {
        self.by_canonical.contains_key(canonical)
    }

    /// The tensor of this canonical name, marked used.
    pub fn get(&mut self, canonical: &str) -> Option<Stored> {
        let stored = self.by_canonical.get(canonical)?.clone();
        self.used.insert(canonical.to_string());
        Some(stored)
    }

    /// How a canonical name would read as stored (for messages about missing tensors).
    pub fn display(&self, canonical: &str) -> String {
        format!(
            "{}{canonical}",
            self.prefixes.first().map(String::as_str).unwrap_or("")
        )
    }

    /// The tensor, which must exist; its shape is not checked.
    pub fn require_any(&mut self, canonical: &str, what: &str) -> Result<Stored, String> {
        self.get(canonical)
            .ok_or_else(|| format!("tensor `{}` ({what}) is missing", self.display(canonical)))
    }

    /// The tensor's stored name; it must exist with exactly this shape.
    pub fn require(&mut self, canonical: &str, expected: &[usize]) -> Result<String, String> {
        match self.get(canonical) {
            None => Err(format!(
                "tensor `{}` is missing (expected shape {expected:?})",
                self.display(canonical)
            )),
            Some(stored) if stored.shape == expected => Ok(stored.name),
            Some(stored) => Err(format!(
                "tensor `{}` has shape {:?}, expected {expected:?}",
                stored.name, stored.shape
            )),
        }
    }

    /// The tensor's stored name if it exists, which must then have this shape.
    pub fn optional(
        &mut self,
        canonical: &str,
        expected: &[usize],
    ) -> Result<Option<String>, String> {
        if self.has(canonical) {
            self.require(canonical, expected).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Number of layers under `prefix` (`"model.layers."`): the indices `l` of
    /// names `{prefix}{l}.…` must be exactly `0..L`.
    pub fn layer_count(&self, prefix: &str) -> Result<usize, String> {
        let mut found = BTreeSet::new();
        for name in self.names() {
            let Some(rest) = name.strip_prefix(prefix) else {
                continue;
            };
            let index = rest.split('.').next().unwrap_or("");
            match index.parse::<usize>() {
                Ok(l) if l.to_string() == index => {
                    found.insert(l);
                }
                _ => {
                    return Err(format!(
                        "tensor `{}` has no layer number after `{prefix}`",
                        self.display(name)
                    ))
                }
            }
        }
        let count = found.len();
        if let Some(missing) = (0..count).find(|l| !found.contains(l)) {
            let list: Vec<String> = found.iter().map(usize::to_string).collect();
            return Err(format!(
                "layer {missing} is missing (no `{}{missing}.*` tensors; layers found: {})",
                self.display(prefix),
                list.join(", ")
            ));
        }
        Ok(count)
    }

    /// The block's tensors under `prefix` that no field took, marked used:
    /// those `allowed` (biases, buffers) are returned as stored; any other is an
    /// error naming it, since a tensor the layout has no place for means another model.
    pub fn layer_extras(
        &mut self,
        prefix: &str,
        allowed: impl Fn(&str) -> bool,
    ) -> Result<Vec<String>, String> {
        let names: Vec<String> = self
            .names()
            .filter(|n| n.starts_with(prefix) && !self.used.contains(*n))
            .map(str::to_string)
            .collect();
        let (kept, foreign): (Vec<String>, Vec<String>) =
            names.into_iter().partition(|n| allowed(n));
        if !foreign.is_empty() {
            let shown: Vec<String> = foreign
                .iter()
                .map(|n| format!("`{}`", self.display(n)))
                .collect();
            return Err(format!(
                "tensor(s) {} have no place in this layout",
                shown.join(", ")
            ));
        }
        Ok(kept
            .into_iter()
            .filter_map(|n| self.get(&n).map(|s| s.name))
            .collect())
    }

    /// The wrapper prefix(es) removed, e.g. `Some("_orig_mod.")`.
    pub fn prefix_removed(&self) -> Option<String> {
        if self.prefixes.is_empty() {
            None
        } else {
            Some(self.prefixes.join(", "))
        }
    }

    /// Stored names of the tensors no layout step used.
    pub fn unused(&self) -> Vec<String> {
        self.by_canonical
            .iter()
            .filter(|(canonical, _)| !self.used.contains(*canonical))
            .map(|(_, stored)| stored.name.clone())
            .collect()
    }
}

/// `a · b`, or an error naming what overflowed (sizes come from untrusted configs).
pub(super) fn mul(a: usize, b: usize, what: &str) -> Result<usize, String> {
    a.checked_mul(b)
        .ok_or_else(|| format!("{what} overflows ({a} × {b})"))
}

/// A 2-D shape `[rows, cols]`, or an error naming the tensor.
pub(super) fn matrix(stored: &Stored) -> Result<(usize, usize), String> {
    match stored.shape.as_slice() {
        [rows, cols] => Ok((*rows, *cols)),
        other => Err(format!(
            "tensor `{}` has shape {other:?}, expected a matrix",
            stored.name
        )),
    }
}

/// A 1-D shape `[n]`, or an error naming the tensor.
pub(super) fn vector(stored: &Stored) -> Result<usize, String> {
    match stored.shape.as_slice() {
        [n] => Ok(*n),
        other => Err(format!(
            "tensor `{}` has shape {other:?}, expected a vector",
            stored.name
        )),
    }
}
