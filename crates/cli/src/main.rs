//! `rankscope`: the page's numbers from the command line.
//!
//! `rankscope inspect <files or folders…> [--json]` prints the inventory the
//! page shows after a drop: what each file is, its run, training point, dtype,
//! tensors, architecture and status.

mod inspect;

use anyhow::{bail, Result};

const USAGE: &str = "\
rankscope — rank-collapse and loss-curve analysis of training runs

USAGE:
    rankscope inspect <files or folders…> [--json]

COMMANDS:
    inspect    recognise every file (checkpoints, run logs, token batches,
               configs) and print the inventory; folders are walked recursively
";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("inspect") => inspect::run(&args[1..]),
        Some("-h") | Some("--help") | None => {
            print!("{USAGE}");
            Ok(())
        }
        Some("--version") | Some("-V") => {
            println!("rankscope {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Some(other) => bail!("unknown command `{other}`\n\n{USAGE}"),
    }
}
