//! `rankscope inspect`: the inventory of files and folders.

use crate::text::outln;
use anyhow::{Context, Result};
use rankscope_core::analysis::pipeline::{run_blocking, Plan, Results};
use rankscope_core::inventory::{
    add_file, inspect_file, scan_checkpoint_values, Content, FileEntry, Inventory, Status,
};
use rankscope_core::source::{block_on, FileSource};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Recognise every file and print the inventory
///
/// Recognise every file (checkpoints, run logs, token batches, configs) and print the inventory
/// the page shows after a drop: each file's kind, run, training point, dtype, tensors,
/// architecture and status
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Files or folders (folders are walked recursively)
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Print the inventory as JSON
    #[arg(long)]
    json: bool,
    /// Also read every float tensor of every checkpoint and count its NaN/±Inf values
    /// (inspection reads headers only; the analysing commands check what they read)
    #[arg(long)]
    values: bool,
}

pub fn run(a: Args) -> Result<()> {
    let (mut inventory, real) = inventory_of(&a.paths)?;
    if a.values {
        scan_values(&mut inventory, &real);
    }
    if a.json {
        crate::text::print_json(&inventory)?;
    } else {
        print_table(&inventory);
    }
    Ok(())
}

/// Inspects every file under `roots` and links them. Paths are shown relative
/// to each root's parent, as a dropped folder shows them in the page; the real
/// paths come back too, in the order of `Inventory::files`. What the walk
/// skipped (FIFOs, sockets, devices, symbolic links to folders) is listed
/// with the reason, never opened.
pub fn inventory_of(roots: &[PathBuf]) -> Result<(Inventory, Vec<PathBuf>)> {
    let mut files = Vec::new();
    let mut real: Vec<PathBuf> = Vec::new();
    for root in roots {
        let base = root.parent().unwrap_or(Path::new("")).to_path_buf();
        let mut walked = walk(root).with_context(|| format!("cannot read {}", root.display()))?;
        // A checkpoint given alone brings the config.json beside it, as a
        // Hugging Face folder is meant to be read (`model.safetensors` says
        // its shapes, `config.json` its heads).
        let beside = root.with_file_name("config.json");
        if root.is_file() && beside.is_file() && !roots.contains(&beside) && beside != *root {
            walked.push((beside, None));
        }
        for (path, skipped) in walked {
            if real.contains(&path) {
                continue;
            }
            let shown = path
                .strip_prefix(&base)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            let entry = match skipped {
                Some(why) => {
                    let mut entry = FileEntry::new(&shown, 0);
                    entry.status = Status::Warning;
                    entry.messages.push(format!("skipped: {why}"));
                    entry
                }
                None => match FileSource::open(&path) {
                    Ok(src) => block_on(inspect_file(&shown, &src, &mut |_| {})),
                    Err(e) => {
                        let mut entry = FileEntry::new(&shown, 0);
                        entry.status = Status::Error;
                        entry.messages.push(format!("cannot open: {e}"));
                        entry
                    }
                },
            };
            add_file(&mut files, entry);
            real.push(path);
        }
    }
    Ok((Inventory::link(files), real))
}

/// `--values`: each checkpoint's tensors read once more, for their NaN/±Inf counts, shown as
/// the page shows what its analysis found.
fn scan_values(inv: &mut Inventory, real: &[PathBuf]) {
    for (entry, path) in inv.files.iter_mut().zip(real) {
        let Content::Checkpoint { header } = &entry.content else {
            continue;
        };
        let found = FileSource::open(path)
            .map_err(|e| format!("cannot open: {e}"))
            .and_then(|src| {
                block_on(scan_checkpoint_values(header, &src)).map_err(|e| e.to_string())
            });
        match found {
            Ok(tensors) => entry.note_non_finite(&tensors),
            Err(e) => {
                entry.status = Status::Error;
                entry.messages.push(e);
            }
        }
    }
}

/// The error for a command that was given files but found no checkpoint to
/// analyse: every input file with why it gives nothing.
pub fn nothing_to_analyse(inv: &Inventory) -> anyhow::Error {
    let reasons = inv.why_no_checkpoints();
    if reasons.is_empty() {
        return anyhow::anyhow!("nothing to analyse: no files among the inputs");
    }
    let lines: Vec<String> = reasons
        .iter()
        .map(|(path, why)| format!("  {path}: {why}"))
        .collect();
    anyhow::anyhow!(
        "nothing to analyse: no recognised checkpoint among the inputs\n{}",
        lines.join("\n")
    )
}

/// What the walk does with a directory entry.
enum Found {
    File,
    Folder,
    Skip(&'static str),
}

/// Classifies `path` without following a symbolic link to a folder (two
/// links to `.` would make the walk endless) and without opening anything
/// that is not a regular file (opening a FIFO blocks until a writer comes).
fn classify(path: &Path) -> std::io::Result<Found> {
    let meta = std::fs::symlink_metadata(path)?;
    let target = if meta.file_type().is_symlink() {
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => {
                return Ok(Found::Skip("a symbolic link to a folder (not followed)"))
            }
            Ok(m) => m,
            Err(_) => return Ok(Found::Skip("a broken symbolic link")),
        }
    } else {
        meta
    };
    let t = target.file_type();
    Ok(if t.is_dir() {
        Found::Folder
    } else if t.is_file() {
        Found::File
    } else {
        Found::Skip(special_kind(&t))
    })
}

#[cfg(unix)]
fn special_kind(t: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_fifo() {
        "a FIFO (named pipe), not a regular file"
    } else if t.is_socket() {
        "a socket, not a regular file"
    } else if t.is_block_device() || t.is_char_device() {
        "a device, not a regular file"
    } else {
        "not a regular file"
    }
}

#[cfg(not(unix))]
fn special_kind(_: &std::fs::FileType) -> &'static str {
    "not a regular file"
}

/// Files under `root` (or `root` itself), sorted, hidden files skipped; with
/// each, why it is not read (`None`: read it). A root given by the user is
/// followed even when it is a symbolic link.
fn walk(root: &Path) -> std::io::Result<Vec<(PathBuf, Option<&'static str>)>> {
    let meta = std::fs::metadata(root)?;
    if !meta.is_dir() {
        let skip = match classify(root)? {
            Found::Skip(why) => Some(why),
            _ => None,
        };
        return Ok(vec![(root.to_path_buf(), skip)]);
    }
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            let hidden = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'));
            if hidden {
                continue;
            }
            match classify(&path)? {
                Found::Folder => stack.push(path),
                Found::File => out.push((path, None)),
                Found::Skip(why) => out.push((path, Some(why))),
            }
        }
    }
    out.sort();
    Ok(out)
}

fn print_table(inv: &Inventory) {
    outln!(
        "{:<48} {:<12} {:<12} {:>9} {:>10} {:<9} {:>7}  {:<7} architecture / detail",
        "file",
        "kind",
        "run",
        "tokens",
        "size",
        "dtype",
        "tensors",
        "status"
    );
    for f in &inv.files {
        let opt = |v: Option<u64>| v.map(|x| x.to_string()).unwrap_or_default();
        outln!(
            "{:<48} {:<12} {:<12} {:>9} {:>10} {:<9} {:>7}  {:<7} {}",
            f.path,
            f.kind.label(),
            f.run.clone().unwrap_or_default(),
            opt(f.tokens.or(f.step)),
            f.size,
            f.dtype.clone().unwrap_or_default(),
            f.n_tensors.map(|n| n.to_string()).unwrap_or_default(),
            format!("{:?}", f.overall_status()).to_lowercase(),
            f.architecture
                .clone()
                .or(f.detail.clone())
                .unwrap_or_default(),
        );
        // A checkpoint's own line says what its container held (a PyTorch
        // file's state dict, pickled config, metrics).
        if let (Some(_), Some(detail)) = (&f.architecture, &f.detail) {
            outln!("    ↳ {detail}");
        }
        for m in f.all_messages() {
            outln!("    ↳ {m}");
        }
    }
    outln!();
    for run in &inv.runs {
        let points: Vec<String> = run
            .checkpoints
            .iter()
            .map(|c| {
                c.tokens
                    .or(c.step)
                    .map(|x| x.to_string())
                    .unwrap_or("?".into())
            })
            .collect();
        outln!(
            "run {:<14} {} checkpoint(s) [{}], {} log(s){}",
            run.name,
            run.checkpoints.len(),
            points.join(", "),
            run.logs.len(),
            run.architecture
                .as_deref()
                .map(|a| format!(" · {a}"))
                .unwrap_or_default()
        );
    }
}

/// Runs `plan` (the page's planner, `rankscope_core::analysis::pipeline`) over the files on
/// disk (`real[i]` is `inv.files[i]`'s path) on the `--threads` pool; `finished(done, total)` as
/// each checkpoint's job ends.
pub fn run_plan(
    inv: &Inventory,
    real: &[PathBuf],
    plan: &Plan,
    finished: &(dyn Fn(usize, usize) + Sync),
) -> Results {
    let on_disk: HashMap<&str, &PathBuf> = inv
        .files
        .iter()
        .map(|f| f.path.as_str())
        .zip(real)
        .collect();
    run_blocking(
        plan,
        &|path| on_disk.get(path).and_then(|p| FileSource::open(p).ok()),
        finished,
    )
}

/// A run's name by its index in `inv` (what assembled results are labelled with).
pub fn run_name(inv: &Inventory) -> impl Fn(usize) -> String + '_ {
    |i| inv.runs.get(i).map(|r| r.name.clone()).unwrap_or_default()
}
