//! `kubectl credential wait NAME...|--all|-l SELECTOR --for=ready|distributed --timeout=30s`,
//! kubectl wait's idiom. `--all` and `-l` select the Credentials of the namespace once, when the
//! command starts, as kubectl wait resolves its objects.
//!
//! `ready`: explain's verdict is READY. `distributed`: every planned copy in its target cluster
//! holds the current content of its source, judged on content only
//! ([`credential_core::distribution::verify_copy`]), so it holds in every distribution mode
//! (credential-guard's copies in write mode, KCM's in trigger mode). Each round reads the estate
//! again (sources included); rounds are spaced with a doubling delay up to [`MAX_DELAY`].

use std::io::Write;
use std::time::{Duration, Instant};

use credential_core::Estate;
use credential_core::distribution::{self, Mode, VerifyReason};
use credential_core::identity;
use credential_core::readiness::{self, ExplainOptions, Verdict};
use kube::api::ListParams;
use serde_json::Value;

use super::list::Selector;
use super::live::{self, Kind};
use super::{Exit, Loaded, Scope, block_on, load_estate};
use crate::cli::{EstateArgs, WaitArgs, WaitFor};
use crate::error::CliError;
use crate::style::clean;

/// First delay between two rounds.
const FIRST_DELAY: Duration = Duration::from_millis(250);
/// Longest delay between two rounds: a round costs a handful of GETs per cluster.
pub const MAX_DELAY: Duration = Duration::from_secs(2);

/// How a Credential stands against the condition waited for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    Met,
    /// Not met: which Region and object lag, and how (never a value).
    Lagging(String),
    /// Could not be told from here (e.g. the Region's API is unreachable).
    Unknown(String),
}

pub fn run(args: &WaitArgs, out: &mut dyn Write) -> Result<Exit, CliError> {
    let names = selected(args)?;
    let lagging = until(&args.estate, args.namespace.as_deref(), &names, args.for_, args.timeout, &mut |name| {
        // kubectl wait's line, printed as each one is met.
        writeln!(out, "credential.k0rdent.mirantis.com/{} condition met", clean(name))?;
        out.flush().map_err(CliError::from)
    })?;
    if lagging.is_empty() {
        return Ok(Exit::Ok);
    }
    let mut err = std::io::stderr().lock();
    for (name, why) in &lagging {
        writeln!(err, "error: timed out waiting for the condition on credentials/{}", clean(name))?;
        let line = match why {
            Judgement::Lagging(text) => text.clone(),
            Judgement::Unknown(text) => format!("UNKNOWN: {text}"),
            Judgement::Met => continue,
        };
        writeln!(err, "  {}", clean(&line))?;
    }
    Ok(Exit::Problems)
}

/// The Credentials to wait for: the names given, or those `--all` or `-l` select now, by name.
fn selected(args: &WaitArgs) -> Result<Vec<String>, CliError> {
    let selecting = args.all || args.selector.is_some();
    if !selecting {
        return args.names.iter().map(|n| super::credential_name(n)).collect();
    }
    // kubectl's words for the same mistakes (cli-runtime's resource builder).
    if args.all && args.selector.is_some() {
        return Err(CliError::Invalid("setting 'all' parameter but found a non empty selector.".to_string()));
    }
    if !args.names.is_empty() {
        let what = if args.all { "--all is specified" } else { "a selector is specified" };
        return Err(CliError::Invalid(format!("name cannot be provided when {what}")));
    }
    let mut names = match &args.estate.from {
        Some(_) => {
            let selector = args.selector.as_deref().map(Selector::parse).transpose()?;
            let loaded = load_estate(&args.estate, args.namespace.as_deref(), Scope::Namespace)?;
            loaded
                .credentials
                .iter()
                .filter(|c| selector.as_ref().is_none_or(|s| s.matches(c)))
                .map(|c| name_of(c))
                .collect()
        }
        None => block_on(list_live(args))??,
    };
    if names.is_empty() {
        return Err(CliError::Invalid("no matching resources found".to_string()));
    }
    names.sort();
    Ok(names)
}

fn name_of(cred: &Value) -> String {
    meta(cred, "name").to_string()
}

/// The names of the Credentials of the namespace the selector matches (the server selects).
async fn list_live(args: &WaitArgs) -> Result<Vec<String>, CliError> {
    let conn = live::connect(&args.estate.connect).await?;
    let rest = &conn.rest;
    let namespace = args.namespace.clone().unwrap_or_else(|| conn.namespace.clone());
    let mut params = ListParams::default();
    if let Some(sel) = &args.selector {
        params = params.labels(sel);
    }
    let kind = Kind::credential().map_err(|e| e.into_cli(&rest.server))?;
    let (items, _) = rest.list(&kind, Some(&namespace), &params).await.map_err(|e| e.into_cli(&rest.server))?;
    Ok(items.iter().map(name_of).collect())
}

/// Rounds until every named Credential meets `what` or `timeout` passes; `on_met` is called once
/// per Credential as it meets it. Returns the Credentials still lagging at the deadline, and why.
pub fn until(
    estate: &EstateArgs,
    namespace: Option<&str>,
    names: &[String],
    what: WaitFor,
    timeout: Duration,
    on_met: &mut dyn FnMut(&str) -> Result<(), CliError>,
) -> Result<Vec<(String, Judgement)>, CliError> {
    let deadline = Instant::now() + timeout;
    let mut delay = FIRST_DELAY;
    let mut met: Vec<bool> = vec![false; names.len()];
    loop {
        let mut lagging = Vec::new();
        for (name, done) in names.iter().zip(met.iter_mut()) {
            if *done {
                continue;
            }
            let loaded = load_estate(estate, namespace, Scope::One(name))?;
            let Some(cred) = loaded.credentials.first() else {
                return Err(super::credential_not_found(name, &loaded.namespace, "the estate", &[], &[]));
            };
            match judge(what, cred, &loaded) {
                Judgement::Met => {
                    *done = true;
                    on_met(name)?;
                }
                other => lagging.push((name.clone(), other)),
            }
        }
        let now = Instant::now();
        if lagging.is_empty() || now >= deadline {
            return Ok(lagging);
        }
        std::thread::sleep(delay.min(deadline - now));
        delay = (delay * 2).min(MAX_DELAY);
    }
}

/// Judges one Credential of `loaded` against `what`.
pub fn judge(what: WaitFor, cred: &Value, loaded: &Loaded) -> Judgement {
    match what {
        WaitFor::Ready => ready(cred, loaded),
        WaitFor::Distributed => distributed(cred, loaded),
    }
}

fn meta<'a>(cred: &'a Value, field: &str) -> &'a str {
    cred.pointer(&format!("/metadata/{field}")).and_then(Value::as_str).unwrap_or_default()
}

fn ready(cred: &Value, loaded: &Loaded) -> Judgement {
    let (namespace, name) = (meta(cred, "namespace"), meta(cred, "name"));
    let opts = ExplainOptions {
        rerun_command: None,
        source: loaded.source.clone(),
        unreachable_regions: loaded.unreachable.clone(),
        invalid_kubeconfigs: loaded.invalid.clone(),
    };
    match readiness::explain_with(namespace, name, &loaded.estate, &opts) {
        Ok(r) => match r.verdict {
            Verdict::Ready => Judgement::Met,
            Verdict::NotReady => Judgement::Lagging(format!("NOT READY: {}", r.root_cause)),
            Verdict::Unknown => Judgement::Unknown(r.root_cause),
        },
        Err(e) => Judgement::Lagging(e.to_string()),
    }
}

/// Every planned copy holds its source's current content in the target cluster.
pub fn distributed(cred: &Value, loaded: &Loaded) -> Judgement {
    let plan = identity::plan(cred, &loaded.estate);
    let Some(target) = plan.target_cluster.clone() else { return Judgement::Met };
    let mode =
        super::distribution::mode(&loaded.estate, &loaded.webhook_namespace, &loaded.side_errors, &loaded.source);
    let nobody = match mode.mode {
        Some(Mode::Off) => " (distribution mode off: nobody copies the cluster identities)",
        _ => "",
    };
    if !loaded.estate.knows_cluster(&target) {
        let why = format!("{target}: {}", loaded.why_not_read(&target));
        return Judgement::Unknown(why);
    }
    let states: Vec<_> = plan
        .copies
        .iter()
        .map(|c| {
            let t = &c.target;
            let actual = loaded.estate.get(&target, &t.gvk, t.namespace.as_deref(), &t.name);
            (t.clone(), distribution::verify_copy(c, actual.as_deref()))
        })
        .collect();
    let v = distribution::verification(&plan, &states, None);
    match v.reason {
        VerifyReason::InSync => Judgement::Met,
        // The target was read, so NotVerifiable means the plan itself fails (a source is missing):
        // a definite lag, not an unknown.
        VerifyReason::NotVerifiable | VerifyReason::Drifted | VerifyReason::Missing => {
            Judgement::Lagging(format!("{}{nobody}", v.message))
        }
    }
}
