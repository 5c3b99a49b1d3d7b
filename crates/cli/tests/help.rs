//! The command line's conventions: `--help` on every command, `--opt=value`, shell completions.

mod common;
use common::{rankscope, FIXTURES};

#[test]
fn every_command_has_help() {
    let (ok, out, err) = rankscope(&["--help"]);
    assert!(ok, "{err}");
    let commands = [
        "inspect",
        "spectra",
        "figure",
        "probe",
        "surgery",
        "scatter",
        "residual",
        "health",
        "consolidation",
        "curves",
        "compare",
        "collapse",
        "merge",
        "completions",
    ];
    for c in commands {
        assert!(out.contains(&format!("\n  {c} ")), "{c} not listed: {out}");
    }
    let figures = [
        ["figure", "trajectory"],
        ["figure", "waterfall"],
        ["figure", "layers"],
    ];
    for args in commands
        .iter()
        .map(|c| vec![*c])
        .chain(figures.iter().map(|f| f.to_vec()))
    {
        for flag in ["--help", "-h"] {
            let (ok, out, err) = rankscope(&[&args[..], &[flag]].concat());
            assert!(ok, "{args:?} {flag}: {err}");
            assert!(
                out.contains(&format!("Usage: rankscope {}", args.join(" "))),
                "{args:?}: {out}"
            );
        }
    }
    let (_, out, _) = rankscope(&["spectra", "--help"]);
    assert!(
        out.contains("--shard <I/N>") && out.contains("possible values: pr, pr_eig"),
        "{out}"
    );
}

#[test]
fn options_take_their_value_after_a_space_or_an_equals_sign() {
    let a2 = format!("{FIXTURES}/runs/A2/ckpt_tokens_0.safetensors");
    let (ok, spaced, err) = rankscope(&["spectra", &a2, "--metric", "r90", "--matrix", "q"]);
    assert!(ok, "{err}");
    let (ok, joined, err) =
        rankscope(&["spectra", &a2, "--metric=r90", "--matrix=q", "--threads=1"]);
    assert!(ok, "{err}");
    assert!(
        spaced == joined && spaced.contains(" r90 per layer ["),
        "{spaced}"
    );
    let (ok, _, err) = rankscope(&["spectra", &a2, "--metric=nope"]);
    assert!(
        !ok && err.contains("unknown metric `nope`; --metric takes pr, pr_eig"),
        "{err}"
    );
}

#[test]
fn completions_for_each_shell() {
    for (shell, marker) in [
        ("bash", "_rankscope()"),
        ("zsh", "#compdef rankscope"),
        ("fish", "complete -c rankscope"),
    ] {
        let (ok, out, err) = rankscope(&["completions", shell]);
        assert!(ok && out.contains(marker), "{shell}: {err}");
        // Subcommands, flags and the named values of --metric are completed.
        assert!(
            out.contains("probe") && out.contains("shard") && out.contains("stable_rank"),
            "{shell}"
        );
    }
    let (ok, _, err) = rankscope(&["completions", "tcsh"]);
    assert!(!ok && err.contains("invalid value 'tcsh'"), "{err}");
}
