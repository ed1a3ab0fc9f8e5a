//! The engine against Go's own text/template: every template of the table runs here and in
//! `tests/gotemplate-oracle` (Go, standard library only, kubectl's printer setup) on the same data,
//! and the output, parse error and execution error must be identical. Templates this engine
//! refuses must be ones Go accepts (refusing is for what is not reproduced, never for Go's errors).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use super::{ExecError, GoTemplate, ParseError};

fn credential() -> Value {
    json!({
        "apiVersion": "k0rdent.mirantis.com/v1beta1",
        "kind": "Credential",
        "metadata": {
            "name": "aws-cred",
            "namespace": "kcm-system",
            "creationTimestamp": "2025-01-01T00:00:00Z",
            "generation": 3,
            "labels": {"k0rdent.mirantis.com/region": "region1", "team": "a&b <x>"},
            "annotations": {},
            "finalizers": [],
            "deletionTimestamp": null
        },
        "spec": {
            "description": "AWS \"prod\"\tcredential\nsecond line é → ✓",
            "identityRef": {"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta2", "kind": "AWSClusterStaticIdentity", "name": "aws-id"},
            "region": "region1",
            "weights": [1, 2.5, -3, 1e6, 1234567.5, 0.00001, 1e21, 12345678901234567890u64],
            "mixed": ["a", 1, true, null, {"k": "v"}, [1, 2]],
            "secretB64": "aGVsbG8gd29ybGQ=",
            "bad64": "aGVsbG8=x",
            "short64": "aGVsbG8",
            "empty": "",
            "zero": 0,
            "no": false
        },
        "status": {
            "ready": true,
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "Succeeded", "lastTransitionTime": "2025-01-01T00:00:10Z"},
                {"type": "ClusterIdentitiesDistributed", "status": "False", "message": "region1: <denied> & retried"}
            ]
        }
    })
}

fn list() -> Value {
    let mut second = credential();
    second["metadata"]["name"] = json!("azure-cred");
    second["status"] = json!({});
    json!({"apiVersion": "v1", "kind": "List", "items": [credential(), second], "metadata": {"resourceVersion": ""}})
}

/// Templates Go and this engine must agree on (output, parse error or execution error).
const SAME: &[&str] = &[
    // Text, fields, missing keys, nil.
    "plain text",
    "",
    "{{.metadata.name}}",
    "{{ .metadata.name }}",
    "{{.metadata.missing}}|{{.nope.deeper.still}}",
    "{{.metadata.deletionTimestamp}}",
    "{{.metadata.deletionTimestamp.x}}",
    "{{.metadata.name.x}}",
    "{{$n := .metadata.name}}{{$n.x}}",
    "{{.spec.weights.x}}",
    "{{.}}",
    "{{.metadata}}",
    "{{.metadata.labels}}{{.metadata.annotations}}{{.metadata.finalizers}}",
    "{{.spec.weights}}",
    "{{.spec.mixed}}",
    "{{.status.ready}} {{.spec.zero}} {{.spec.no}} {{.spec.empty}}|",
    "{{.metadata.generation}}",
    "{{.spec.description}}",
    "{{.metadata.name \"x\"}}",
    "{{\"x\" | .metadata.name}}",
    "{{.items}}",
    // Trim markers and comments.
    "a  {{- .metadata.name -}}  b",
    "a\n\t{{- .metadata.name}}\n  {{- /* a comment */ -}}\n  c",
    "{{/* only a comment */}}x",
    "x {{- /* c */}} y",
    // Variables.
    "{{$x := .metadata.name}}{{$x}}",
    "{{$x := 1}}{{$x = 2}}{{$x}}",
    "{{$}}",
    "{{$.metadata.namespace}}",
    "{{with .metadata}}{{$.kind}}/{{.name}}{{end}}",
    "{{$x := \"outer\"}}{{if true}}{{$x := \"inner\"}}{{$x}}{{end}}{{$x}}",
    "{{$x := \"outer\"}}{{if true}}{{$x = \"set\"}}{{end}}{{$x}}",
    // if / else if / else, with, range.
    "{{if .status.ready}}ready{{else}}not{{end}}",
    "{{if .spec.no}}a{{else if .spec.zero}}b{{else if .spec.empty}}c{{else}}d{{end}}",
    "{{if .missing}}a{{else}}b{{end}}",
    "{{if .metadata.finalizers}}f{{else}}none{{end}}{{if .metadata.annotations}}a{{else}}none{{end}}",
    "{{with .spec.identityRef}}{{.kind}}/{{.name}}{{end}}",
    "{{with .missing}}x{{else}}empty{{end}}",
    "{{with .missing}}x{{else with .spec.region}}{{.}}{{end}}",
    "{{range .status.conditions}}{{.type}}={{.status}};{{end}}",
    "{{range $i, $c := .status.conditions}}{{$i}}:{{$c.type}} {{end}}",
    "{{range $c := .status.conditions}}{{$c.reason}},{{end}}",
    "{{range $k, $v := .metadata.labels}}{{$k}}={{$v}};{{end}}",
    "{{range .metadata.labels}}{{.}};{{end}}",
    "{{range .metadata.finalizers}}x{{else}}no finalizers{{end}}",
    "{{range .missing}}x{{else}}nothing{{end}}",
    "{{range .spec.region}}x{{end}}",
    "{{range .status.ready}}x{{end}}",
    "{{range .spec.mixed}}[{{.}}]{{end}}",
    "{{range .spec.mixed}}{{if not .}}{{break}}{{end}}{{.}},{{end}}",
    "{{range .spec.mixed}}{{if eq (printf \"%v\" .) \"1\"}}{{continue}}{{end}}{{.}},{{end}}",
    "{{range .items}}{{.metadata.name}}{{\"\\n\"}}{{end}}",
    "{{range .items}}{{.metadata.name}}: {{.status.ready}}{{\"\\n\"}}{{end}}",
    "{{range .items}}{{range .status.conditions}}{{.type}} {{end}}|{{end}}",
    "{{$x := 0}}{{range $x = .spec.weights}}{{end}}{{$x}}",
    "{{range $i, $e := .spec.weights}}{{$i}}{{end}}",
    // Literals.
    "{{\"a\\tb\\n\\\"c\\\" \\u00e9 \\x41 \\101\"}}",
    "{{`raw \\n text`}}",
    "{{1}} {{-2}} {{1.5}} {{1e3}} {{0x1F}} {{'a'}} {{true}} {{false}}",
    "{{nil}}",
    "{{print nil}}",
    "{{printf \"%v\" nil}}",
    // Functions.
    "{{len .status.conditions}} {{len .metadata.labels}} {{len .metadata.name}}",
    "{{len .metadata.generation}}",
    "{{len .metadata.deletionTimestamp}}",
    "{{len .missing}}",
    "{{index .status.conditions 0}}",
    "{{(index .status.conditions 1).type}}",
    "{{index .status.conditions 1 \"message\"}}",
    "{{index .metadata.labels \"k0rdent.mirantis.com/region\"}}",
    "{{index .metadata.labels \"nope\"}}",
    "{{index .metadata.name 0}}",
    "{{index .status.conditions 5}}",
    "{{index .status.conditions 2}}",
    "{{index .status.conditions -1}}",
    "{{index .status.conditions \"x\"}}",
    "{{index .metadata.labels 1}}",
    "{{index .missing 0}}",
    "{{index .metadata.deletionTimestamp 0}}",
    "{{index .metadata.generation 0}}",
    "{{index .status.conditions}}",
    "{{index .spec.mixed 3 0}}",
    "{{print .metadata.name .metadata.generation .spec.zero \"s\" 1 2 .missing}}",
    "{{println .metadata.name 1 2}}",
    "{{printf \"%s/%s\" .metadata.namespace .metadata.name}}",
    "{{printf \"%d %v %t %q\" .metadata.generation .spec.weights .status.ready .spec.description}}",
    "{{printf \"%-12s|%12s|%5d|%-5d|%05d|%.3s|%8.2s|\" .kind .kind .metadata.generation .metadata.generation -42 .kind .kind}}",
    "{{printf \"%d %s %t\" .kind .metadata.generation .kind}}",
    "{{printf \"%s %d\" .metadata.labels .metadata.labels}}",
    "{{printf \"%v %s\" .spec.mixed .spec.mixed}}",
    "{{printf \"%s\"}} {{printf \"%s\" 1 2 \"x\"}} {{printf \"100%%\"}} {{printf \"%\"}}",
    "{{printf \"%5v|%-6v|\" .spec.mixed true}}",
    "{{printf \"%v\" .missing}} {{printf \"%s\" .missing}}",
    "{{printf \"%q\" \"é → ✓ \\u00a0 \\u200b \\x01\"}}",
    "{{printf .kind}}",
    "{{printf 1}}",
    "{{printf .metadata.generation}}",
    "{{printf .missing}}",
    "{{.metadata.name | printf \"%s!\"}}",
    "{{.metadata.name | printf \"%s-%s\" \"x\"}}",
    "{{.metadata.name | len}}",
    "{{.metadata.name | print \"a\" | printf \"%q\"}}",
    "{{eq .kind \"Credential\"}} {{eq .kind \"x\" \"Credential\"}} {{ne .kind \"x\"}}",
    "{{eq .metadata.generation 3}} {{eq .metadata.generation 3.0}}",
    "{{eq .status.ready true}} {{eq .missing \"x\"}} {{eq .missing nil}} {{eq .missing .nothing}}",
    "{{eq .kind 1}}",
    "{{eq .kind}}",
    "{{eq .metadata.labels nil}}",
    "{{lt 1 2}} {{le 2 2}} {{gt .metadata.generation 2}} {{ge 1 2}} {{lt \"a\" \"b\"}} {{lt 1.5 2.5}}",
    "{{lt .missing 1}}",
    "{{lt true false}}",
    "{{lt 1 \"a\"}}",
    "{{lt (index .metadata.name 0) 100}} {{eq (index .metadata.name 0) 97}}",
    "{{and 1 0 2}} {{and 1 2}} {{or 0 \"\" .kind}} {{or 0 .missing}} {{not .status.ready}} {{not .missing}}",
    "{{and .status.ready .metadata.name}}",
    "{{.kind | and 1}} {{.kind | or 0}}",
    "{{and}}",
    "{{not 1 2}}",
    "{{if and .status.ready (eq .spec.region \"region1\")}}yes{{end}}",
    "{{html .metadata.labels.team}} {{html \"'q'\" 1}} {{html .missing}}",
    "{{js .spec.description}} {{js \"a=b\"}}",
    "{{urlquery .metadata.labels.team \"x y/z\"}}",
    "{{base64decode .spec.secretB64}}",
    "{{base64decode .spec.bad64}}",
    "{{base64decode .spec.short64}}",
    "{{base64decode \"!!!!\"}}",
    "{{base64decode .metadata.generation}}",
    "{{base64decode .missing}}",
    "{{base64decode .metadata.deletionTimestamp}}",
    "{{base64decode 1}}",
    "{{exists . \"metadata\" \"name\"}} {{exists . \"metadata\" \"nope\"}} {{exists . \"metadata\" \"deletionTimestamp\"}}",
    "{{exists .status \"conditions\" 1 \"type\"}} {{exists .status \"conditions\" 2}} {{exists .kind 0}} {{exists .missing}} {{exists .missing \"x\"}}",
    // Parenthesized pipelines and chains.
    "{{(.metadata).name}}",
    "{{(index .items 0).metadata.name}}",
    "{{(len .status.conditions)}}",
    "{{(print \"x\") 1}}",
    // Errors Go reports at parse time.
    "{{.metadata.name",
    "{{.metadata.name}",
    "{{end}}",
    "{{else}}",
    "{{if .x}}",
    "{{if .x}}a{{else}}b{{else}}c{{end}}",
    "{{range .x}}{{else if .y}}{{end}}",
    "{{upper .kind}}",
    "{{$y}}",
    "{{.a | 1}}",
    "{{}}",
    "{{(}}",
    "{{)}}",
    "{{\"unterminated}}",
    "{{`raw",
    "{{'ab'}}",
    "{{1a}}",
    "{{.x.}}",
    "{{break}}",
    "{{range .x}}{{break 1}}{{end}}",
    "{{\"x\".y}}",
    "{{$x, $y := 1}}",
    "{{range $a, $b, $c := .x}}{{end}}",
    "{{if}}{{end}}",
    "{{/* unclosed comment",
    "{{/* c */ .x}}",
    "{{.x # y}}",
    "{{\"\\q\"}}",
    "line1\nline2 {{.x\n.y",
    "a\n{{if .x}}\nb\n{{end}\n",
    "{{.a \u{e9}}}",
    // Errors Go reports at execution time, with partial output before them.
    "before {{.metadata.name.x}} after",
    "line1\n  line2 {{index .status.conditions 9}}",
    "{{.metadata.name | .spec}}",
    "{{3 | printf \"%d\"}}",
    "{{$x := 1}}{{$x 2}}",
    "{{. 1}}",
];

/// Templates Go accepts and this engine refuses (by name, before printing anything).
const REFUSED: &[&str] = &[
    "{{define \"x\"}}a{{end}}{{template \"x\"}}",
    "{{template \"x\"}}",
    "{{block \"x\" .}}a{{end}}",
    "{{call .x}}",
    "{{slice .spec.weights 1 2}}",
    "{{1i}}",
    "{{0b101}}",
    "{{1_000}}",
    "{{range 3}}x{{end}}",
    "{{range .metadata.generation}}x{{end}}",
    "{{printf \"%x\" 255}}",
    "{{printf \"%+d\" 5}}",
    "{{printf \"%*d\" 5 1}}",
    "{{printf \"%[1]s\" \"a\"}}",
    "{{printf \"%f\" 1.5}}",
    "{{printf \"%05s\" \"a\"}}",
    "{{printf \"%q\" 65}}",
    "{{eq .metadata.labels .metadata.labels}}",
    "{{\"\\xff\"}}",
];

#[derive(serde::Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
struct GoResult {
    parse_error: String,
    output: String,
    exec_error: String,
    dump: String,
    json: String,
}

fn run_go(cases: &[(&str, &Value)]) -> Vec<GoResult> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/gotemplate-oracle");
    let input = json!({"cases": cases.iter().map(|(t, d)| json!({"template": t, "data": d})).collect::<Vec<_>>()});
    let mut child = Command::new("go")
        .args(["run", "."])
        .current_dir(&dir)
        .env("GOFLAGS", "-mod=mod")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("Go is needed to run Go's text/template next to this engine (tests/gotemplate-oracle)");
    child.stdin.take().unwrap().write_all(input.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "gotemplate-oracle failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// What this engine did with a template, in the oracle's terms; None when it refused.
fn ours(template: &str, data: &Value) -> Option<(String, String, String)> {
    match GoTemplate::parse(template) {
        Err(ParseError::Go(e)) => Some((e, String::new(), String::new())),
        Err(ParseError::Unsupported(_)) => None,
        Ok(t) => {
            let run = t.execute(data);
            match run.error {
                Some(ExecError::Unsupported(_)) => None,
                Some(ExecError::Go(e)) => Some((String::new(), run.output, e)),
                None => Some((String::new(), run.output, String::new())),
            }
        }
    }
}

#[test]
fn the_engine_prints_what_go_text_template_prints() {
    let (cred, items) = (credential(), list());
    let mut cases: Vec<(&str, &Value)> = Vec::new();
    for t in SAME {
        cases.push((t, &cred));
        cases.push((t, &items));
    }
    for t in REFUSED {
        cases.push((t, &cred));
    }
    let go = run_go(&cases);
    assert_eq!(go.len(), cases.len());
    let mut failures = Vec::new();
    for ((template, data), want) in cases.iter().zip(&go) {
        let refused = REFUSED.contains(template);
        match ours(template, data) {
            None if refused => {
                assert!(want.parse_error.is_empty(), "refused {template:?}, which Go rejects: {}", want.parse_error)
            }
            None => failures.push(format!("{template:?}: refused, Go printed {:?}", want.output)),
            Some(got) if refused => failures.push(format!("{template:?}: expected a refusal, got {got:?}")),
            Some((parse_error, output, exec_error)) => {
                let want_tuple = (want.parse_error.clone(), want.output.clone(), want.exec_error.clone());
                if (parse_error.clone(), output.clone(), exec_error.clone()) != want_tuple {
                    failures.push(format!(
                        "{template:?}\n   go: {want_tuple:?}\n  ours: {:?}",
                        (parse_error, output, exec_error)
                    ));
                }
            }
        }
    }
    // What kubectl prints about the data when a template fails.
    for (data, want) in [(&cred, &go[0]), (&items, &go[1])] {
        if super::go_dump(data) != want.dump {
            failures.push(format!("%+v dump\n   go: {}\n  ours: {}", want.dump, super::go_dump(data)));
        }
        if super::go_json(data) != want.json {
            failures.push(format!("json\n   go: {}\n  ours: {}", want.json, super::go_json(data)));
        }
    }
    assert!(failures.is_empty(), "{} differences from Go:\n{}", failures.len(), failures.join("\n"));
}
