//! Past one machine: `--shard I/N` and `--session FILE` on the analysing commands (`spectra`,
//! `probe`), and `rankscope merge`, which joins their session files into the one a single
//! machine would have written (the core's [`merge_sessions`]); the page opens either.

use crate::text::{errln, outln};
use anyhow::{Context, Result};
use rankscope_core::analysis::shard::{shard_inventory, Shard};
use rankscope_core::inventory::Inventory;
use rankscope_core::session::merge::merge_sessions;
use rankscope_core::session::{load_session_bytes, Session, ShardRecord};
use rankscope_core::share::SourceFile;
use std::path::{Path, PathBuf};

/// Which checkpoints to analyse and where the session file goes.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct SessionArgs {
    /// Analyse only shard I of N of the checkpoints (1 ≤ I ≤ N): the checkpoints in order (runs
    /// by name, each in training order) cut into N contiguous slices; `rankscope merge` joins
    /// the shards' session files
    #[arg(long, value_name = "I/N")]
    pub shard: Option<Shard>,
    /// Write the results as a session file (the page opens it; `rankscope merge` joins several)
    #[arg(long, value_name = "FILE")]
    pub session: Option<PathBuf>,
}

/// The checkpoints a command analyses: the inventory cut to the shard.
pub struct Selected {
    pub inv: Inventory,
    /// The shard's checkpoints (all of them without `--shard`).
    pub checkpoints: usize,
    pub shard: Option<ShardRecord>,
}

impl SessionArgs {
    /// `inv` with only the shard's checkpoints (all of them without `--shard`). A shard with
    /// none is not an error: N may exceed the checkpoints.
    pub fn select(&self, inv: Inventory) -> Selected {
        let count = |inv: &Inventory| inv.runs.iter().map(|r| r.checkpoints.len()).sum();
        let Some(shard) = self.shard else {
            return Selected {
                checkpoints: count(&inv),
                inv,
                shard: None,
            };
        };
        let (part, total) = shard_inventory(&inv, shard);
        let checkpoints = count(&part);
        errln!("shard {shard}: {checkpoints} of the {total} checkpoints");
        Selected {
            inv: part,
            checkpoints,
            shard: Some(ShardRecord {
                shard,
                of_checkpoints: total,
            }),
        }
    }

    /// Writes the session file when `--session` was given: the inventory's files (names and
    /// sizes), the shard, and what `fill` puts in.
    pub fn write(&self, sel: &Selected, fill: impl FnOnce(&mut Session)) -> Result<()> {
        let Some(path) = &self.session else {
            return Ok(());
        };
        let files = sel
            .inv
            .files
            .iter()
            .map(|f| SourceFile {
                name: f.path.clone(),
                size: f.size,
                digest: None,
                url: None,
            })
            .collect();
        let mut session = Session::new(files);
        session.shard = sel.shard;
        fill(&mut session);
        std::fs::write(path, session.to_json())
            .with_context(|| format!("writing {}", path.display()))
    }
}

/// Join session files (the shards of one analysis) into one the page opens
///
/// Join session files (shards of one analysis, or sessions of different folders) into one that
/// the page opens; refuses sessions whose numbers disagree where they overlap, were computed on
/// different eval batches, or by different versions
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Session files (`spectra`/`probe --session`, or saved by the page)
    #[arg(required = true, value_name = "SESSION")]
    sessions: Vec<PathBuf>,
    /// Where the joined session goes
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
}

fn read(path: &Path) -> Result<Session> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    load_session_bytes(&bytes)
        .with_context(|| format!("{}: not a session to merge", path.display()))
}

/// `rankscope merge a.session.json b.session.json … -o all.session.json`
pub fn run(a: Args) -> Result<()> {
    let inputs = a
        .sessions
        .iter()
        .map(|p| Ok((p.display().to_string(), read(p)?)))
        .collect::<Result<Vec<_>>>()?;
    let merged = merge_sessions(inputs)?;
    let s = &merged.session;
    std::fs::write(&a.output, s.to_json())
        .with_context(|| format!("writing {}", a.output.display()))?;
    let mut runs: Vec<&str> = s.weights.iter().map(|r| r.run.as_str()).collect();
    runs.extend(s.activations.iter().map(|r| r.run.as_str()));
    runs.sort_unstable();
    runs.dedup();
    let weights: usize = s.weights.iter().map(|r| r.checkpoints.len()).sum();
    let activations: usize = s.activations.iter().map(|r| r.checkpoints.len()).sum();
    outln!(
        "{}: {} session(s) joined: {} run(s); {weights} checkpoint(s) with weight spectra, {activations} with activation spectra, {} failure(s)",
        a.output.display(),
        a.sessions.len(),
        runs.len(),
        s.failures.len()
    );
    for n in &merged.notes {
        errln!("note: {n}");
    }
    Ok(())
}
