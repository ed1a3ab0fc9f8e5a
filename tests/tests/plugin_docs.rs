//! The command-line reference documents every flag of every `kubectl credential` subcommand: the
//! flags are read from the plugin's own `--help` (so a new flag without documentation fails here).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::real::{plugin_binary, workspace};

/// The `--long` flags of a `--help` text.
fn flags(help: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in help.lines().map(str::trim_start).filter(|l| l.starts_with('-')) {
        for word in line.split([' ', ',', '=', '<']) {
            if let Some(name) = word.strip_prefix("--").filter(|n| !n.is_empty()) {
                out.push(name.to_string());
            }
        }
    }
    out
}

#[test]
fn the_cli_reference_names_every_plugin_flag() {
    let cli = std::fs::read_to_string(workspace().join("docs/src/reference/cli.md")).unwrap();
    let start = cli.find("## `kubectl credential`").unwrap();
    let end = cli.find("## `credential-webhook`").unwrap();
    let reference = &cli[start..end];
    let plugin = std::fs::read_to_string(workspace().join("docs/src/user/plugin.md")).unwrap();
    let mut missing = Vec::new();
    for sub in ["explain", "list", "wait", "plan", "orphans", "lint", "completion"] {
        let out = std::process::Command::new(plugin_binary()).args([sub, "--help"]).output().unwrap();
        assert!(out.status.success(), "{sub} --help");
        let help = String::from_utf8(out.stdout).unwrap();
        assert!(help.contains("Examples:"), "{sub} --help has no Examples:");
        for flag in flags(&help).into_iter().filter(|f| f != "help" && f != "version") {
            let written = format!("--{flag}");
            // Connection flags are documented once, in the user guide's Cluster access table.
            if !reference.contains(&written) && !plugin.contains(&written) {
                missing.push(format!("{sub} {written}"));
            }
        }
    }
    assert!(missing.is_empty(), "flags documented nowhere: {missing:?}");
}
