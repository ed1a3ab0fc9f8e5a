//! Shell completion.
//!
//! kubectl (1.26+) completes `kubectl credential ...` by running `kubectl_complete-credential`
//! with the words typed after the plugin name plus the word being completed (`""` for a new
//! one), and reads Cobra's protocol: one candidate a line (`value\tdescription`), then
//! `:<directive>`. The same binary answers when called by that name (a symlink) or as the hidden
//! `__complete` subcommand. Credential names and namespaces come from the cluster; any error
//! there completes quietly to nothing.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Arg, Command, CommandFactory};
use credential_core::Gvk;
use serde_json::Value;

use super::live::{self, Kind};
use crate::cli::{Cli, ConnectArgs};

/// Cobra's ShellCompDirective values.
const DIRECTIVE_DEFAULT: u8 = 0;
const DIRECTIVE_NO_FILE_COMP: u8 = 4;
const DIRECTIVE_FILTER_DIRS: u8 = 16;
/// Completion must feel instant: a slow cluster yields no candidates instead of a hang.
const LIVE_TIMEOUT: Duration = Duration::from_secs(3);

/// Answers one completion request; always exits 0 (errors just mean no candidates).
pub fn run(words: &[String], out: &mut dyn Write) -> std::io::Result<()> {
    let (candidates, directive) = complete(words);
    for c in candidates {
        writeln!(out, "{c}")?;
    }
    writeln!(out, ":{directive}")
}

fn complete(words: &[String]) -> (Vec<String>, u8) {
    let (to_complete, before) = match words.split_last() {
        Some((last, rest)) => (last.as_str(), rest),
        None => ("", &[][..]),
    };
    let root = Cli::command();
    let parsed = Parsed::new(&root, before);
    let cmd = parsed.command.as_ref().unwrap_or(&root);

    // The value of an option: `-n <TAB>` or `--namespace=<TAB>`.
    if let Some(arg) = parsed.pending_value.as_ref() {
        return option_values(arg, &parsed, to_complete, "");
    }
    if let Some((flag, value)) = to_complete.strip_prefix("--").and_then(|f| f.split_once('='))
        && let Some(arg) = cmd.get_arguments().find(|a| a.get_long() == Some(flag))
    {
        return option_values(arg, &parsed, value, &format!("--{flag}="));
    }
    if to_complete.starts_with('-') {
        return (filter(flags(cmd), to_complete), DIRECTIVE_NO_FILE_COMP);
    }
    let Some(sub) = &parsed.command else {
        let subs = root
            .get_subcommands()
            .filter(|s| !s.is_hide_set())
            .map(|s| format!("{}\t{}", s.get_name(), first_line(s.get_about().map(|a| a.to_string()))))
            .collect();
        return (filter(subs, to_complete), DIRECTIVE_NO_FILE_COMP);
    };
    match sub.get_name() {
        "explain" | "plan" if parsed.positionals.is_empty() => {
            (filter(credential_names(&parsed), to_complete), DIRECTIVE_NO_FILE_COMP)
        }
        "list" => (filter(credential_names(&parsed), to_complete), DIRECTIVE_NO_FILE_COMP),
        "completion" if parsed.positionals.is_empty() => {
            (filter(vec!["bash".into(), "zsh".into(), "fish".into()], to_complete), DIRECTIVE_NO_FILE_COMP)
        }
        "provider" if parsed.nested.is_none() => {
            let subs = sub.get_subcommands().map(|s| s.get_name().to_string()).collect();
            (filter(subs, to_complete), DIRECTIVE_NO_FILE_COMP)
        }
        _ => (Vec::new(), DIRECTIVE_NO_FILE_COMP),
    }
}

/// What the words typed so far say.
struct Parsed {
    /// The subcommand (explain, list...), once typed.
    command: Option<Command>,
    /// A nested subcommand (provider validate|match).
    nested: Option<String>,
    /// The option whose value is being typed (the last word was `-n`, `--context`...).
    pending_value: Option<Arg>,
    positionals: Vec<String>,
    /// Option values given, by long name.
    values: Vec<(String, String)>,
    /// Flags given, by long name.
    switches: Vec<String>,
}

impl Parsed {
    fn new(root: &Command, words: &[String]) -> Self {
        let mut p = Parsed {
            command: None,
            nested: None,
            pending_value: None,
            positionals: Vec::new(),
            values: Vec::new(),
            switches: Vec::new(),
        };
        for w in words {
            let cmd = p.command.clone().unwrap_or_else(|| root.clone());
            if let Some(arg) = p.pending_value.take() {
                p.values.push((long_of(&arg), w.clone()));
                continue;
            }
            if let Some(flag) = w.strip_prefix("--") {
                let (name, inline) = match flag.split_once('=') {
                    Some((n, v)) => (n, Some(v)),
                    None => (flag, None),
                };
                if let Some(arg) = find_arg(&cmd, root, |a| a.get_long() == Some(name)) {
                    match (takes_value(&arg), inline) {
                        (true, Some(v)) => p.values.push((long_of(&arg), v.to_string())),
                        (true, None) => p.pending_value = Some(arg),
                        (false, _) => p.switches.push(long_of(&arg)),
                    }
                }
                continue;
            }
            if let Some(shorts) = w.strip_prefix('-').filter(|s| !s.is_empty()) {
                // `-n ns`, `-nns`, `-A`.
                let mut chars = shorts.chars();
                if let Some(c) = chars.next()
                    && let Some(arg) = find_arg(&cmd, root, |a| a.get_short() == Some(c))
                {
                    let rest: String = chars.collect();
                    match (takes_value(&arg), rest.is_empty()) {
                        (true, true) => p.pending_value = Some(arg),
                        (true, false) => p.values.push((long_of(&arg), rest)),
                        (false, _) => p.switches.push(long_of(&arg)),
                    }
                }
                continue;
            }
            match &p.command {
                None => {
                    if let Some(sub) = root.find_subcommand(w) {
                        p.command = Some(sub.clone());
                    }
                }
                Some(c) if c.has_subcommands() && p.nested.is_none() => {
                    if let Some(sub) = c.find_subcommand(w) {
                        p.nested = Some(sub.get_name().to_string());
                        p.command = Some(sub.clone());
                    }
                }
                Some(_) => p.positionals.push(w.clone()),
            }
        }
        p
    }

    fn value(&self, long: &str) -> Option<&str> {
        self.values.iter().rev().find(|(k, _)| k == long).map(|(_, v)| v.as_str())
    }

    fn connect(&self) -> ConnectArgs {
        ConnectArgs {
            kubeconfig: self.value("kubeconfig").map(PathBuf::from),
            context: self.value("context").map(str::to_string),
            cluster: self.value("cluster").map(str::to_string),
            user: self.value("user").map(str::to_string),
        }
    }
}

/// An argument of the subcommand or a global one of the root.
fn find_arg(cmd: &Command, root: &Command, pred: impl Fn(&Arg) -> bool) -> Option<Arg> {
    cmd.get_arguments().find(|a| pred(a)).or_else(|| root.get_arguments().find(|a| pred(a))).cloned()
}

fn takes_value(arg: &Arg) -> bool {
    arg.get_action().takes_values()
}

fn long_of(arg: &Arg) -> String {
    arg.get_long().map(str::to_string).unwrap_or_else(|| arg.get_id().to_string())
}

/// The first sentence of a help text, as a short description.
fn first_line(s: Option<String>) -> String {
    let s = s.unwrap_or_default();
    let line = s.lines().next().unwrap_or_default();
    line.split(". ").next().unwrap_or_default().trim_end_matches('.').to_string()
}

fn filter(candidates: Vec<String>, prefix: &str) -> Vec<String> {
    candidates.into_iter().filter(|c| c.starts_with(prefix)).collect()
}

/// `--long`, and `-s` where there is a short form, with their help.
fn flags(cmd: &Command) -> Vec<String> {
    let mut out = Vec::new();
    for a in cmd.get_arguments().filter(|a| !a.is_positional() && !a.is_hide_set()) {
        let help = first_line(a.get_help().map(|h| h.to_string()));
        if let Some(l) = a.get_long() {
            out.push(format!("--{l}\t{help}"));
        }
        if let Some(s) = a.get_short() {
            out.push(format!("-{s}\t{help}"));
        }
    }
    out
}

fn option_values(arg: &Arg, parsed: &Parsed, to_complete: &str, prefix: &str) -> (Vec<String>, u8) {
    let with_prefix = |v: Vec<String>| v.into_iter().map(|c| format!("{prefix}{c}")).collect::<Vec<_>>();
    match long_of(arg).as_str() {
        "namespace" | "system-namespace" => {
            (with_prefix(filter(namespaces(parsed), to_complete)), DIRECTIVE_NO_FILE_COMP)
        }
        "context" => (with_prefix(filter(contexts(parsed), to_complete)), DIRECTIVE_NO_FILE_COMP),
        "from" => (Vec::new(), DIRECTIVE_FILTER_DIRS),
        "kubeconfig" | "filename" | "config" => (Vec::new(), DIRECTIVE_DEFAULT),
        _ => {
            let values: Vec<String> = arg
                .get_possible_values()
                .iter()
                .filter(|v| !v.is_hide_set())
                .map(|v| v.get_name().to_string())
                .collect();
            (with_prefix(filter(values, to_complete)), DIRECTIVE_NO_FILE_COMP)
        }
    }
}

/// Runs a live lookup with a deadline; nothing on any error.
fn live_names(f: impl AsyncFnOnce() -> Option<Vec<String>>) -> Vec<String> {
    super::block_on(async { tokio::time::timeout(LIVE_TIMEOUT, f()).await.ok().flatten() })
        .ok()
        .flatten()
        .unwrap_or_default()
}

fn names_of(items: &[Value]) -> Vec<String> {
    items.iter().filter_map(|i| i.pointer("/metadata/name").and_then(Value::as_str).map(str::to_string)).collect()
}

fn credential_names(parsed: &Parsed) -> Vec<String> {
    if parsed.switches.iter().any(|s| s == "all-namespaces") || parsed.value("from").is_some() {
        return Vec::new();
    }
    let connect = parsed.connect();
    let namespace = parsed.value("namespace").map(str::to_string);
    live_names(async move || {
        let conn = live::connect(&connect).await.ok()?;
        let ns = namespace.unwrap_or(conn.namespace.clone());
        let (items, _) = conn.rest.list(&Kind::credential().ok()?, Some(&ns), &Default::default()).await.ok()?;
        Some(names_of(&items))
    })
}

fn namespaces(parsed: &Parsed) -> Vec<String> {
    let connect = parsed.connect();
    live_names(async move || {
        let conn = live::connect(&connect).await.ok()?;
        let kind = Kind::of(&Gvk::namespace()).ok()?;
        let (items, _) = conn.rest.list(&kind, None, &Default::default()).await.ok()?;
        Some(names_of(&items))
    })
}

fn contexts(parsed: &Parsed) -> Vec<String> {
    let kc = match parsed.value("kubeconfig") {
        Some(p) => kube::config::Kubeconfig::read_from(p).ok(),
        None => kube::config::Kubeconfig::read().ok(),
    };
    kc.map(|k| k.contexts.into_iter().map(|c| c.name).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn subcommands_then_flags_then_values() {
        let (c, d) = complete(&words(&[""]));
        assert_eq!(d, DIRECTIVE_NO_FILE_COMP);
        let names: Vec<&str> = c.iter().map(|l| l.split('\t').next().unwrap()).collect();
        for want in ["explain", "list", "lint", "plan", "provider", "completion"] {
            assert!(names.contains(&want), "{names:?}");
        }
        assert!(!names.contains(&"__complete"), "hidden subcommand offered: {names:?}");
        let (c, _) = complete(&words(&["ex"]));
        assert_eq!(c.len(), 1);
        assert!(c[0].starts_with("explain\t"), "{c:?}");

        let (c, _) = complete(&words(&["list", "--no"]));
        assert_eq!(c.iter().map(|l| l.split('\t').next().unwrap()).collect::<Vec<_>>(), ["--no-headers"]);
        let (c, _) = complete(&words(&["list", "-o", ""]));
        assert_eq!(c, ["wide", "json", "yaml", "name"]);
        let (c, _) = complete(&words(&["explain", "x", "--output=j"]));
        assert_eq!(c, ["--output=json"]);
        let (c, d) = complete(&words(&["explain", "--from", ""]));
        assert!(c.is_empty());
        assert_eq!(d, DIRECTIVE_FILTER_DIRS);
        let (c, _) = complete(&words(&["completion", "z"]));
        assert_eq!(c, ["zsh"]);
        let (c, _) = complete(&words(&["provider", ""]));
        assert_eq!(c, ["validate", "match"]);
    }

    #[test]
    fn option_values_are_not_positionals() {
        let p = Parsed::new(&Cli::command(), &words(&["explain", "-n", "ns1", "--context=c", "name"]));
        assert_eq!(p.command.as_ref().map(|c| c.get_name()), Some("explain"));
        assert_eq!(p.value("namespace"), Some("ns1"));
        assert_eq!(p.value("context"), Some("c"));
        assert_eq!(p.positionals, ["name"]);
        let p = Parsed::new(&Cli::command(), &words(&["list", "-A", "-nfoo"]));
        assert_eq!(p.switches, ["all-namespaces"]);
        assert_eq!(p.value("namespace"), Some("foo"));
    }
}
