//! `rankscope`: the page's numbers from the command line.
//!
//! Each command is a module with its arguments (a `clap::Args` struct) and its `run`; adding one
//! is a variant of [`Command`] and its struct. Every command takes `--threads N` (default: every
//! core): checkpoints, bootstrap resamples, layers and surgery passes are spread over a rayon pool
//! of that size; the results are the same, in the same order, for any N.

mod args;
mod collapse;
mod compare;
mod consolidation;
mod curves;
mod inspect;
mod losscurve;
mod merge;
mod probe;
mod report;
mod spectra;
mod surgery;
mod text;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser, Subcommand};
use std::ffi::OsString;
use std::process::ExitCode;
use text::errln;

/// rankscope — rank-collapse and loss-curve analysis of training runs
#[derive(Parser, Debug)]
#[command(
    name = "rankscope",
    version,
    after_help = "METRICS: pr, pr_eig, r90, cond, erank, stable_rank, spectral_norm, log10_fro2, alpha (METRICS.md)\n\
                  `rankscope COMMAND --help` tells what a command takes."
)]
struct Cli {
    /// Analyse on N threads (default: every core); results do not depend on N
    #[arg(long, global = true, value_name = "N", value_parser = args::positive_count)]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    Inspect(inspect::Args),
    Spectra(spectra::SpectraArgs),
    #[command(subcommand)]
    Figure(spectra::Figure),
    Probe(probe::Args),
    Surgery(surgery::SurgeryArgs),
    Scatter(surgery::ScatterArgs),
    Residual(losscurve::ResidualArgs),
    Health(losscurve::HealthArgs),
    Consolidation(consolidation::Args),
    Curves(curves::Args),
    Compare(compare::Args),
    Collapse(collapse::Args),
    Merge(merge::Args),
    Report(report::Args),
    Completions(Completions),
}

/// Print a shell completion script
///
/// bash: `source <(rankscope completions bash)`; zsh: save it as `_rankscope` in a folder of
/// your $fpath; fish: `rankscope completions fish > ~/.config/fish/completions/rankscope.fish`.
#[derive(clap::Args, Debug)]
struct Completions {
    /// The shell to complete in
    shell: clap_complete::Shell,
}

/// Runs the command; an error is printed (escaped, like all output) with its causes.
fn main() -> ExitCode {
    let cli = match parse(std::env::args_os()) {
        Ok(cli) => cli,
        // Usage errors, --help and --version, as clap prints them (exit code 2 for an error).
        Err(e) => e.exit(),
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            errln!("Error: {e:?}");
            ExitCode::FAILURE
        }
    }
}

/// The parsed command line.
fn parse(argv: impl IntoIterator<Item = OsString>) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(legacy_references(argv.into_iter().collect()))
}

/// `residual --reference A B -- RUNS… [options]`, the interface before clap, is kept: every log
/// from `--reference` up to `--` is a reference, and options still count after the `--`. clap
/// stops reading options at `--`, so the line is rewritten first as
/// `--reference A --reference B RUNS… [options]`. Any other line is left as it is.
fn legacy_references(argv: Vec<OsString>) -> Vec<OsString> {
    // The command: the first word that is not an option or the value of `--threads`.
    let mut words = argv.iter().enumerate().skip(1);
    let command = loop {
        match words.next() {
            Some((_, a)) if a == "--threads" => {
                words.next();
            }
            Some((_, a)) if a.to_string_lossy().starts_with('-') => {}
            other => break other,
        }
    };
    let (Some((at, name)), Some(end)) = (command, argv.iter().position(|a| a == "--")) else {
        return argv;
    };
    if name != "residual" || end < at {
        return argv;
    }
    let mut out: Vec<OsString> = argv[..=at].to_vec();
    let mut in_references = false;
    for (i, a) in argv.iter().enumerate().skip(at + 1) {
        let option = a.to_string_lossy().starts_with('-');
        if i == end {
            in_references = false;
            continue;
        }
        if i < end && in_references && !option && out.last().is_some_and(|l| l != "--reference") {
            out.push("--reference".into());
        }
        let flag = a == "--reference" || a.to_string_lossy().starts_with("--reference=");
        in_references = (in_references && !option) || (i < end && flag);
        out.push(a.clone());
    }
    out
}

/// Runs the command on a rayon pool of `--threads` threads.
fn run(cli: Cli) -> Result<()> {
    let Some(command) = cli.command else {
        // `rankscope` alone: the overview, as `--help` gives it.
        Cli::command().print_help()?;
        return Ok(());
    };
    let mut pool = rayon::ThreadPoolBuilder::new();
    if let Some(n) = cli.threads {
        pool = pool.num_threads(n);
    }
    pool.build()
        .context("cannot start the worker threads")?
        .install(|| dispatch(command))
}

fn dispatch(command: Command) -> Result<()> {
    match command {
        Command::Inspect(a) => inspect::run(a),
        Command::Spectra(a) => spectra::run_spectra(a),
        Command::Figure(f) => spectra::run_figure(f),
        Command::Probe(a) => probe::run(a),
        Command::Surgery(a) => surgery::run_surgery(a),
        Command::Scatter(a) => surgery::run_scatter(a),
        Command::Residual(a) => losscurve::run_residual(a),
        Command::Health(a) => losscurve::run_health(a),
        Command::Consolidation(a) => consolidation::run(a),
        Command::Curves(a) => curves::run(a),
        Command::Compare(a) => compare::run(a),
        Command::Collapse(a) => collapse::run(a),
        Command::Merge(a) => merge::run(a),
        Command::Report(a) => report::run(a),
        Command::Completions(c) => completions(c.shell),
    }
}

/// Prints the completion script. Through a buffer: clap_complete panics when its writer fails,
/// and a reader that stops early (`| head`) is no error.
fn completions(shell: clap_complete::Shell) -> Result<()> {
    use std::io::Write;
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "rankscope", &mut script);
    match std::io::stdout().write_all(&script) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    fn residual(args: &[&str]) -> losscurve::ResidualArgs {
        let argv = ["rankscope", "residual"].iter().chain(args).map(Into::into);
        match parse(argv).unwrap().command {
            Some(Command::Residual(a)) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn references_up_to_a_double_dash_and_options_after_it() {
        let a = residual(&["--reference", "a,b", "c", "--", "d", "--json"]);
        assert!(a.json);
        assert_eq!(a.reference, ["a", "b", "c"]);
        assert_eq!(a.runs, ["d"]);
        let a = residual(&["--reference", "a", "c", "--reference=b", "--json"]);
        assert!(a.json);
        assert_eq!(a.reference, ["a", "b"]);
        assert_eq!(a.runs, ["c"]);
        let a = residual(&[
            "x",
            "--json",
            "--reference",
            "a",
            "b",
            "--",
            "--metric",
            "m",
            "c",
        ]);
        assert_eq!(
            (a.reference, a.runs),
            (
                vec!["a".to_string(), "b".into()],
                vec!["x".to_string(), "c".into()]
            )
        );
        // Only residual's line is rewritten.
        let line: Vec<OsString> = ["rankscope", "--threads", "2", "inspect", "--", "x"]
            .map(Into::into)
            .to_vec();
        assert_eq!(legacy_references(line.clone()), line);
    }
}
