//! `kubectl credential list` (alias `get`): Credentials as kubectl prints resources.
//!
//! Columns NAME READY REGION IDENTITY DISTRIBUTED AGE (`-A`: NAMESPACE first; `-o wide`: plus
//! IDENTITY-API and DESCRIPTION), padded like cli-runtime's tabwriter; `-o json|yaml` (a List
//! when several), `-o name`, `--no-headers`, `-l`, `-w`. One LIST request.

use std::io::Write;

use credential_core::Gvk;
use credential_core::model::labels;
use futures_util::TryStreamExt;
use kube::core::WatchEvent;
use serde_json::{Value, json};

use super::live::{self, Rest, RestError, credentials_path, encode};
use super::{Exit, block_on, write_structured};
use crate::cli::{ListArgs, ListOutput};
use crate::error::CliError;
use crate::style::clean;

/// cli-runtime's printer: tabwriter.NewWriter(out, 6, 4, 3, ' ', 0).
const MIN_WIDTH: usize = 6;
const PADDING: usize = 3;
/// What kubectl prints for an empty cell.
const NONE: &str = "<none>";

pub fn run(args: &ListArgs, out: &mut dyn Write) -> Result<Exit, CliError> {
    block_on(run_live(args, out))?
}

async fn run_live(args: &ListArgs, out: &mut dyn Write) -> Result<Exit, CliError> {
    if args.all_namespaces && !args.names.is_empty() {
        return Err(CliError::Invalid("a resource cannot be retrieved by name across all namespaces".to_string()));
    }
    let conn = live::connect(&args.connect).await?;
    let rest = &conn.rest;
    let namespace = args.namespace.clone().unwrap_or_else(|| conn.namespace.clone());
    let ns = (!args.all_namespaces).then_some(namespace.as_str());
    let mut exit = Exit::Ok;
    let (mut items, rv) = if args.names.is_empty() {
        let mut path = credentials_path(ns);
        if let Some(sel) = &args.selector {
            path.push_str(&format!("?labelSelector={}", encode(sel)));
        }
        rest.list(&Gvk::credential(), &path).await.map_err(|e| e.into_cli(&rest.server))?
    } else {
        let gets = args.names.iter().map(|name| {
            let path = live::path(&Gvk::credential(), "credentials", ns, Some(name));
            async move { rest.get_json(&path).await }
        });
        let mut items = Vec::new();
        for result in futures_util::future::join_all(gets).await {
            match result {
                Ok(v) => items.push(v),
                // kubectl prints what it found and an error line for each name it did not.
                Err(e) => {
                    eprintln!("{}", e.into_cli(&rest.server));
                    exit = Exit::Problems;
                }
            }
        }
        (items, String::new())
    };
    items.sort_by_key(key);
    if !args.show_managed_fields {
        for i in &mut items {
            if let Some(m) = i.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("managedFields");
            }
        }
    }
    if items.is_empty() && args.names.is_empty() {
        match ns {
            Some(ns) => eprintln!("No resources found in {ns} namespace."),
            None => eprintln!("No resources found"),
        }
    }
    let now = jiff::Timestamp::now();
    let wide = args.output == Some(ListOutput::Wide);
    let header = header(args.all_namespaces, wide);
    match args.output {
        Some(ListOutput::Json) | Some(ListOutput::Yaml) => {
            let yaml = args.output == Some(ListOutput::Yaml);
            if args.names.len() == 1 && items.len() == 1 {
                write_structured(out, &items[0], yaml)?;
            } else if !items.is_empty() || args.names.is_empty() {
                let list = json!({"apiVersion": "v1", "kind": "List", "items": items,
                                  "metadata": {"resourceVersion": ""}});
                write_structured(out, &list, yaml)?;
            }
        }
        Some(ListOutput::Name) => {
            for i in &items {
                writeln!(out, "credential.k0rdent.mirantis.com/{}", clean(&key(i).1))?;
            }
        }
        None | Some(ListOutput::Wide) => {
            if !items.is_empty() {
                let rows: Vec<Vec<String>> = items.iter().map(|i| row(i, args.all_namespaces, wide, now)).collect();
                out.write_all(table(&header, &rows, args.no_headers).as_bytes())?;
            }
        }
    }
    out.flush()?;
    if args.watch {
        watch(rest, args, ns, rv, &header, &items, out).await?;
    }
    Ok(exit)
}

/// Prints a line per change until interrupted; restarts the watch where it ended.
async fn watch(
    rest: &Rest,
    args: &ListArgs,
    ns: Option<&str>,
    mut rv: String,
    header: &[&str],
    shown: &[Value],
    out: &mut dyn Write,
) -> Result<(), CliError> {
    // Column widths stay those of what was printed first (kubectl does the same).
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    let now = jiff::Timestamp::now();
    for i in shown {
        for (w, c) in widths.iter_mut().zip(row(i, args.all_namespaces, args.output == Some(ListOutput::Wide), now)) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut printed_header = !shown.is_empty() || args.no_headers;
    loop {
        if rv.is_empty() {
            let (_, list_rv) =
                rest.list(&Gvk::credential(), &credentials_path(ns)).await.map_err(|e| e.into_cli(&rest.server))?;
            rv = list_rv;
        }
        let mut path = format!(
            "{}?watch=true&allowWatchBookmarks=true&timeoutSeconds={}&resourceVersion={}",
            credentials_path(ns),
            live::WATCH_SECONDS,
            encode(&rv)
        );
        if let Some(sel) = &args.selector {
            path.push_str(&format!("&labelSelector={}", encode(sel)));
        }
        let req = http::Request::get(path)
            .body(Vec::new())
            .map_err(|e| CliError::Invalid(format!("invalid watch request: {e}")))?;
        // Not rest's GET client: its read timeout would end an idle watch after seconds.
        let stream = rest.watch_client().await?.request_events::<Value>(req).await.map_err(|e| {
            let e = RestError::Transport(live::error_text(&e));
            e.into_cli(&rest.server)
        })?;
        let mut stream = std::pin::pin!(stream);
        loop {
            let event = match stream.try_next().await {
                Ok(Some(e)) => e,
                Ok(None) => break,
                Err(e) => return Err(RestError::Transport(live::error_text(&e)).into_cli(&rest.server)),
            };
            let obj = match event {
                WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o) => o,
                WatchEvent::Bookmark(b) => {
                    rv = b.metadata.resource_version;
                    continue;
                }
                WatchEvent::Error(status) if status.code == 410 => {
                    rv.clear(); // expired: list again
                    break;
                }
                WatchEvent::Error(status) => {
                    return Err(CliError::Server {
                        reason: status.reason.clone(),
                        message: status.message.clone(),
                        hint: None,
                    });
                }
            };
            if let Some(v) = obj.pointer("/metadata/resourceVersion").and_then(Value::as_str) {
                rv = v.to_string();
            }
            let wide = args.output == Some(ListOutput::Wide);
            match args.output {
                Some(ListOutput::Json) | Some(ListOutput::Yaml) => {
                    write_structured(out, &obj, args.output == Some(ListOutput::Yaml))?
                }
                Some(ListOutput::Name) => writeln!(out, "credential.k0rdent.mirantis.com/{}", clean(&key(&obj).1))?,
                None | Some(ListOutput::Wide) => {
                    if !printed_header {
                        writeln!(
                            out,
                            "{}",
                            aligned(&header.iter().map(|h| h.to_string()).collect::<Vec<_>>(), &widths)
                        )?;
                        printed_header = true;
                    }
                    let r = row(&obj, args.all_namespaces, wide, jiff::Timestamp::now());
                    // A cell wider than what was printed so far widens its column from here on.
                    for (w, c) in widths.iter_mut().zip(&r) {
                        *w = (*w).max(c.chars().count());
                    }
                    writeln!(out, "{}", aligned(&r, &widths))?;
                }
            }
            out.flush()?;
        }
    }
}

fn key(obj: &Value) -> (String, String) {
    let m = |f: &str| obj.pointer(&format!("/metadata/{f}")).and_then(Value::as_str).unwrap_or_default().to_string();
    (m("namespace"), m("name"))
}

fn header(all_namespaces: bool, wide: bool) -> Vec<&'static str> {
    let mut h = vec!["NAME", "READY", "REGION", "IDENTITY", "DISTRIBUTED", "AGE"];
    if wide {
        h.extend(["IDENTITY-API", "DESCRIPTION"]);
    }
    if all_namespaces {
        h.insert(0, "NAMESPACE");
    }
    h
}

/// One table row: what the Credential says, `<none>` for what is not set.
pub fn row(obj: &Value, all_namespaces: bool, wide: bool, now: jiff::Timestamp) -> Vec<String> {
    let s = |p: &str| obj.pointer(p).and_then(Value::as_str).filter(|s| !s.is_empty()).map(clean);
    let (namespace, name) = key(obj);
    let ready = obj.pointer("/status/ready").and_then(Value::as_bool).unwrap_or(false);
    let identity = match (s("/spec/identityRef/kind"), s("/spec/identityRef/name")) {
        (Some(k), Some(n)) => format!("{k}/{n}"),
        (None, Some(n)) => n,
        _ => NONE.to_string(),
    };
    let distributed = obj
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c.get("type").and_then(Value::as_str) == Some(labels::DISTRIBUTED_CONDITION)))
        .and_then(|c| c.get("status").and_then(Value::as_str))
        .map(clean)
        .unwrap_or_else(|| NONE.to_string());
    let age = s("/metadata/creationTimestamp")
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map(|t| human_duration(now.as_second() - t.as_second()))
        .unwrap_or_else(|| "<unknown>".to_string());
    let mut row = vec![
        clean(&name),
        ready.to_string(),
        s("/spec/region").unwrap_or_else(|| NONE.to_string()),
        identity,
        distributed,
        age,
    ];
    if wide {
        row.push(s("/spec/identityRef/apiVersion").unwrap_or_else(|| NONE.to_string()));
        row.push(s("/spec/description").unwrap_or_else(|| NONE.to_string()));
    }
    if all_namespaces {
        row.insert(0, clean(&namespace));
    }
    row
}

/// A table as kubectl prints it: every cell but the last of a line padded to its column's width
/// plus 3, at least 6.
pub fn table(header: &[&str], rows: &[Vec<String>], no_headers: bool) -> String {
    let mut all: Vec<Vec<String>> = Vec::new();
    if !no_headers {
        all.push(header.iter().map(|h| h.to_string()).collect());
    }
    all.extend(rows.iter().cloned());
    let cols = all.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; cols];
    for r in &all {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut s = String::new();
    for r in &all {
        // An empty last cell would leave the padding of the one before it dangling.
        s.push_str(aligned(r, &widths).trim_end());
        s.push('\n');
    }
    s
}

fn aligned(row: &[String], widths: &[usize]) -> String {
    let mut s = String::new();
    for (i, c) in row.iter().enumerate() {
        if i + 1 == row.len() {
            s.push_str(c);
        } else {
            let w = (widths.get(i).copied().unwrap_or(0) + PADDING).max(MIN_WIDTH);
            s.push_str(c);
            s.push_str(&" ".repeat(w.saturating_sub(c.chars().count())));
        }
    }
    s
}

/// kubectl's AGE (apimachinery's HumanDuration): `45s`, `5m3s`, `3h10m`, `5d3h`, `2y10d`.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 { format!("{minutes}m") } else { format!("{minutes}m{s}s") };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 { format!("{hours}h") } else { format!("{hours}h{m}m") };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 { format!("{}d", hours / 24) } else { format!("{}d{h}h", hours / 24) };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let d = (hours / 24) % 365;
        return if d == 0 { format!("{}y", hours / 24 / 365) } else { format!("{}y{d}d", hours / 24 / 365) };
    }
    format!("{}y", hours / 24 / 365)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_kubectl() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (45, "45s"),
            (119, "119s"),
            (120, "2m"),
            (303, "5m3s"),
            (600, "10m"),
            (3 * 3600 + 600, "3h10m"),
            (9 * 3600, "9h"),
            (5 * 86400 + 3 * 3600, "5d3h"),
            (10 * 86400, "10d"),
            (2 * 365 * 86400 + 10 * 86400, "2y10d"),
            (9 * 365 * 86400, "9y"),
        ];
        for (s, want) in cases {
            assert_eq!(human_duration(s), want, "{s}s");
        }
    }

    #[test]
    fn table_pads_like_tabwriter() {
        let t = table(&["NAME", "READY", "AGE"], &[vec!["a".into(), "true".into(), "5s".into()]], false);
        assert_eq!(t, "NAME   READY   AGE\na      true    5s\n");
        let t = table(&["NAME", "AGE"], &[vec!["a-long-name".into(), "5s".into()]], true);
        assert_eq!(t, "a-long-name   5s\n");
    }

    #[test]
    fn rows_show_none_for_unset_fields() {
        let c = json!({"metadata": {"name": "c", "namespace": "ns", "creationTimestamp": "2025-01-01T00:00:00Z"},
                       "spec": {"identityRef": {"kind": "Secret", "name": "s"}},
                       "status": {"ready": true, "conditions": [{"type": "ClusterIdentitiesDistributed", "status": "False"}]}});
        let now: jiff::Timestamp = "2025-01-06T03:00:00Z".parse().unwrap();
        assert_eq!(row(&c, true, false, now), ["ns", "c", "true", "<none>", "Secret/s", "False", "5d3h"]);
        let bare = json!({"metadata": {"name": "b"}});
        assert_eq!(
            row(&bare, false, true, now),
            ["b", "false", "<none>", "<none>", "<none>", "<unknown>", "<none>", "<none>"]
        );
    }
}
