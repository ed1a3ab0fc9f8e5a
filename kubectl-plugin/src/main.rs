//! `kubectl-credential`: a kubectl plugin (`kubectl credential ...`) that explains k0rdent
//! Credential readiness, lints manifests with the admission webhook's rules and previews cluster
//! identity distribution.
//!
//! Exit statuses: 0 ready / nothing denied / no problems, 1 not ready / denied / problems / the
//! object does not exist, 2 usage, input and API errors (`list`: 1, as kubectl get), 3 unknown
//! (explain: something could not be checked from here, nothing failed).

mod cli;
mod cmd;
mod error;
mod gotemplate;
mod jsonpath;
mod provider;
mod style;
mod term;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

use crate::cli::{Cli, Command, CompletionShell};
use crate::error::CliError;
use crate::style::Style;

/// Exit status for usage and input errors (clap uses the same for usage errors).
const EXIT_ERROR: u8 = 2;

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // kubectl completes plugins by running `kubectl_complete-credential WORDS... TO_COMPLETE`.
    if invoked_as_completer(args.first()) {
        let words: Vec<String> = args.iter().skip(1).map(|a| a.to_string_lossy().into_owned()).collect();
        let _ = cmd::complete::run(&words, &mut std::io::stdout().lock());
        return ExitCode::SUCCESS;
    }
    let mut command = Cli::command();
    // Invoked as a kubectl plugin (`kubectl credential`): kubectl runs the `kubectl-credential`
    // binary, so usage should show what the user typed.
    if invoked_as_plugin(args.first()) {
        command = command.bin_name("kubectl credential");
    }
    let args = cli::hoist_global_flags(args);
    let cli = match command.try_get_matches_from(&args).and_then(|m| Cli::from_arg_matches(&m)) {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version print to stdout and exit 0; real usage errors exit 2.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_ERROR } else { 0 });
        }
    };
    if let Command::Provider(a) = &cli.command {
        // The provider commands render into strings and pick their own exit status.
        let outcome = provider::run(a);
        let _ = std::io::stdout().lock().write_all(outcome.stdout.as_bytes());
        let _ = std::io::stderr().lock().write_all(outcome.stderr.as_bytes());
        return ExitCode::from(outcome.exit);
    }
    match &cli.command {
        Command::Complete(a) => {
            let _ = cmd::complete::run(&a.words, &mut std::io::stdout().lock());
            return ExitCode::SUCCESS;
        }
        Command::Completion(a) => {
            let shell = match a.shell {
                CompletionShell::Bash => clap_complete::Shell::Bash,
                CompletionShell::Zsh => clap_complete::Shell::Zsh,
                CompletionShell::Fish => clap_complete::Shell::Fish,
            };
            clap_complete::generate(shell, &mut Cli::command(), "kubectl-credential", &mut std::io::stdout().lock());
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    // kubectl get exits 1 on errors; explain, plan and lint keep 1 for "not ready/problems".
    // kubectl get and wait exit 1 on errors; explain, plan and lint keep 1 for "not ready/problems".
    let error_exit = if matches!(cli.command, Command::List(_) | Command::Wait(_)) { 1 } else { EXIT_ERROR };
    let stdout = std::io::stdout();
    let tty = stdout.is_terminal();
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let style = |c: &cli::ColorArgs| Style::detect(c.color, tty, no_color);
    let mut out = std::io::BufWriter::new(stdout.lock());
    let result = match &cli.command {
        Command::Explain(a) => cmd::explain::run(a, style(&a.color), &mut out),
        Command::Lint(a) => cmd::lint::run(a, style(&a.color), &mut out),
        Command::Plan(a) => cmd::plan::run(a, style(&a.color), &mut out),
        Command::List(a) => cmd::list::run(a, &mut out),
        Command::Wait(a) => cmd::wait::run(a, &mut out),
        Command::Orphans(a) => cmd::orphans::run(a, &mut out),
        // handled above
        Command::Provider(_) | Command::Complete(_) | Command::Completion(_) => return ExitCode::from(EXIT_ERROR),
    };
    let result = result.and_then(|exit| out.flush().map(|()| exit).map_err(CliError::from));
    match result {
        Ok(exit) => ExitCode::from(exit as u8),
        Err(CliError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::from(error_exit),
        Err(e) => {
            drop(out);
            report_error(&e);
            // NotFound exits 1 in every command, as kubectl; usage errors 2.
            ExitCode::from(if e.is_not_found() {
                1
            } else if e.is_usage() {
                EXIT_ERROR
            } else {
                error_exit
            })
        }
    }
}

fn report_error(e: &CliError) {
    let mut err = std::io::stderr().lock();
    let text = e.to_string();
    // kubectl prints "Error from server (...)" and "Unable to connect ..." as they are; the rest gets "error: ".
    let _ = if text.starts_with("Error") || text.starts_with("Unable to connect") {
        writeln!(err, "{text}")
    } else {
        writeln!(err, "error: {text}")
    };
    if let Some(hint) = e.hint() {
        let _ = writeln!(err, "{hint}");
    }
}

fn invoked_as_completer(argv0: Option<&std::ffi::OsString>) -> bool {
    argv0
        .and_then(|a| std::path::Path::new(a).file_name().map(|f| f.to_string_lossy().into_owned()))
        .is_some_and(|name| name.starts_with("kubectl_complete-"))
}

fn invoked_as_plugin(argv0: Option<&std::ffi::OsString>) -> bool {
    argv0
        .and_then(|a| std::path::Path::new(a).file_name().map(|f| f.to_string_lossy().into_owned()))
        .is_some_and(|name| name.starts_with("kubectl-"))
}
