//! Shards of an analysis: `--shard i/n` analyses one of n contiguous slices of a folder's
//! checkpoints, so n machines (a Slurm job array, Ray tasks) share a study and
//! [`crate::session::merge`] joins their session files into the one a single machine writes.

use crate::inventory::Inventory;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Shard `index` of `count` (1 ≤ index ≤ count), written `index/count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

/// Why a `--shard` value is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    #[error("a shard is written I/N (shard I of N, 1 ≤ I ≤ N, e.g. 3/8), not `{0}`")]
    Syntax(String),
    #[error("shard {index}/{count} does not exist: I runs from 1 to N")]
    OutOfRange { index: usize, count: usize },
}

impl FromStr for Shard {
    type Err = ShardError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let syntax = || ShardError::Syntax(s.to_string());
        let (i, n) = s.split_once('/').ok_or_else(syntax)?;
        let index: usize = i.trim().parse().map_err(|_| syntax())?;
        let count: usize = n.trim().parse().map_err(|_| syntax())?;
        if index == 0 || index > count {
            return Err(ShardError::OutOfRange { index, count });
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// The positions `[start, end)` of this shard's checkpoints among `total`: contiguous
    /// slices whose sizes differ by at most one, so that the shards' results put end to end
    /// in shard order are the unsharded results in their order.
    pub fn range(self, total: usize) -> std::ops::Range<usize> {
        let at = |k: usize| k * total / self.count;
        at(self.index - 1)..at(self.index)
    }
}

/// `inv` with only the checkpoints of `shard`, counted in the order the collectors analyse them
/// (runs in inventory order, each run's checkpoints in training order). Every run and file
/// stays, so palette colours (a run's place) and the session's file list are those of the
/// whole folder. Returns the inventory and how many checkpoints the whole folder has.
pub fn shard_inventory(inv: &Inventory, shard: Shard) -> (Inventory, usize) {
    let total: usize = inv.runs.iter().map(|r| r.checkpoints.len()).sum();
    let keep = shard.range(total);
    let mut out = inv.clone();
    let mut k = 0;
    for run in &mut out.runs {
        run.checkpoints.retain(|_| {
            k += 1;
            keep.contains(&(k - 1))
        });
    }
    (out, total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        assert_eq!("3/8".parse(), Ok(Shard { index: 3, count: 8 }));
        assert_eq!(Shard { index: 3, count: 8 }.to_string(), "3/8");
        assert!(matches!(
            "0/8".parse::<Shard>(),
            Err(ShardError::OutOfRange { .. })
        ));
        assert!(matches!(
            "9/8".parse::<Shard>(),
            Err(ShardError::OutOfRange { .. })
        ));
        for bad in ["3", "a/8", "3/", "-1/8", ""] {
            assert!(
                matches!(bad.parse::<Shard>(), Err(ShardError::Syntax(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn shards_cover_every_checkpoint_once_in_order() {
        for total in [0, 1, 5, 36] {
            for count in 1..=7 {
                let all: Vec<usize> = (1..=count)
                    .flat_map(|index| Shard { index, count }.range(total))
                    .collect();
                assert_eq!(all, (0..total).collect::<Vec<_>>(), "{total} in {count}");
                let sizes: Vec<usize> = (1..=count)
                    .map(|index| Shard { index, count }.range(total).len())
                    .collect();
                let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
                assert!(hi - lo <= 1, "{sizes:?}");
            }
        }
    }
}
