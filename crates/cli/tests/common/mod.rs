//! What the CLI's integration tests share: where the fixtures are and how the built binary runs.
// Each test file uses the part it needs.
#![allow(dead_code)]

use std::process::Command;

/// `../shared/fixtures`, beside the checkout.
pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures");

/// Runs `rankscope ARGS…`: whether it succeeded, its stdout and its stderr.
pub fn rankscope(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rankscope"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run rankscope");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}
