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
mod spectra;
mod surgery;
mod text;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser, Subcommand};
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

/// The parsed command line. `residual --reference A B -- RUNS…` takes every log up to `--` as a
/// reference (the old interface, kept); without a `--` on the line `--reference` takes one value
/// per use, so `--reference A B` leaves B a run.
fn parse(argv: impl IntoIterator<Item = std::ffi::OsString>) -> Result<Cli, clap::Error> {
    let argv: Vec<_> = argv.into_iter().collect();
    let mut cmd = Cli::command();
    if argv.iter().any(|a| a == "--") {
        cmd = cmd.mut_subcommand("residual", |c| {
            c.mut_arg("reference", |a| a.num_args(1..).value_terminator("--"))
        });
    }
    let matches = cmd.try_get_matches_from(argv)?;
    <Cli as clap::FromArgMatches>::from_arg_matches(&matches)
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
        Command::Completions(c) => {
            clap_complete::generate(c.shell, &mut Cli::command(), "rankscope", &mut std::io::stdout());
            Ok(())
        }
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
        assert_eq!((a.reference, a.runs), (vec!["a", "b", "c"], vec!["d"]));
        let a = residual(&["--reference", "a", "c", "--reference=b", "--json"]);
        assert_eq!((a.reference, a.runs), (vec!["a", "b"], vec!["c"]));
    }
}
