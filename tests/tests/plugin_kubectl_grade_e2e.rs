//! `kubectl credential` through real kubectl against a real kube-apiserver (`KubeCluster`): the
//! three verdicts and their exit codes (a private Region is UNKNOWN, exit 3; a definite failure
//! outranks it), kubectl get conventions of `list` on objects the apiserver stored (READY `<none>`
//! before KCM writes a status, `-A` over `-n`, jsonpath, custom-columns, go-template (the same
//! output as `kubectl get` with the same template), --sort-by, --show-labels,
//! `-o name` fed back as names), NotFound exit 1 with the namespace where the Credential is.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use credential_e2e::{ClusterOptions, KubeCluster};

/// `target/<profile>/kubectl-credential`, next to this test's executable, brought up to date by
/// cargo (a no-op when `cargo test --workspace` has just built it).
fn plugin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.args(["build", "-q", "-p", "kubectl-credential", "--bin", "kubectl-credential"])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    assert!(cmd.status().unwrap().success(), "cargo build -p kubectl-credential failed");
    profile_dir.join("kubectl-credential")
}

struct Cli {
    cluster: KubeCluster,
    /// Holds the plugin link that puts `kubectl credential` on PATH.
    bin_dir: tempfile::TempDir,
}

#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Cli {
    async fn start() -> Self {
        let cluster = KubeCluster::start(ClusterOptions { controller_manager: false, ..ClusterOptions::new("plugin") })
            .await
            .unwrap();
        let bin_dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(plugin(), bin_dir.path().join("kubectl-credential")).unwrap();
        Cli { cluster, bin_dir }
    }

    /// `kubectl ARGS` with the plugin on PATH, the cluster's admin kubeconfig, fixed time and width.
    async fn kubectl(&self, args: &[&str]) -> Out {
        let path = format!("{}:{}", self.bin_dir.path().display(), std::env::var("PATH").unwrap_or_default());
        let program = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into());
        let child = tokio::process::Command::new(program)
            .args(args)
            .env("PATH", path)
            .env("KUBECONFIG", self.cluster.kubeconfig_path())
            .env("KUBECTL_CREDENTIAL_NOW", "2030-01-01T00:00:00Z")
            .env_remove("COLUMNS")
            .env_remove("NO_COLOR")
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(Duration::from_secs(60), child).await.expect("kubectl finished").unwrap();
        Out {
            code: out.status.code().expect("exited"),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    async fn apply(&self, yaml: &str) {
        self.cluster.apply(yaml).await.unwrap();
    }

    /// Writes `status` as KCM would (the status subresource).
    async fn status(&self, kind: &str, namespace: Option<&str>, name: &str, status: &str) {
        let mut args = vec!["patch", kind, name, "--subresource=status", "--type=merge", "-p", status];
        if let Some(ns) = namespace {
            args.extend(["-n", ns]);
        }
        self.cluster.kubectl_ok(&args, None).await.unwrap();
    }
}

const READY: &str = r#"{"status":{"ready":true,"conditions":[{"type":"CredentialReady","status":"True","reason":"Succeeded","message":"Credential is ready","lastTransitionTime":"2029-12-31T23:00:00Z"}]}}"#;

fn credential(name: &str, namespace: &str, region: Option<&str>, secret: &str, labels: &str) -> String {
    let region = region.map(|r| format!("region: {r}, ")).unwrap_or_default();
    format!(
        "apiVersion: k0rdent.mirantis.com/v1beta1\nkind: Credential\nmetadata: {{name: {name}, namespace: {namespace}, \
         labels: {{{labels}}}}}\nspec: {{{region}identityRef: {{apiVersion: v1, kind: Secret, name: {secret}, \
         namespace: {namespace}}}}}\n---\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdicts_exit_codes_and_get_conventions_on_a_real_apiserver() {
    let cli = Cli::start().await;
    let sys = support::SYS;
    let down = support::b64(&support::unreachable_kubeconfig());
    cli.apply(&format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {sys}}}\n---\n\
         apiVersion: v1\nkind: Namespace\nmetadata: {{name: team-a}}\n---\n\
         apiVersion: v1\nkind: Secret\nmetadata: {{name: private-kubeconfig, namespace: {sys}}}\ndata: {{value: {down}}}\n---\n\
         apiVersion: v1\nkind: Secret\nmetadata: {{name: identity, namespace: {sys}}}\nstringData: {{k: EXAMPLE-NOT-A-SECRET}}\n---\n\
         apiVersion: k0rdent.mirantis.com/v1beta1\nkind: Region\nmetadata: {{name: private}}\n\
         spec: {{kubeConfig: {{name: private-kubeconfig, key: value}}}}\n---\n\
         {}{}{}{}",
        credential("private-cred", sys, Some("private"), "identity", "tier: a"),
        credential("missing-identity-cred", sys, Some("private"), "nope", "tier: b"),
        credential("fresh-cred", sys, None, "identity", ""),
        credential("team-cred", "team-a", None, "identity", "tier: c"),
    ))
    .await;
    cli.status("region", None, "private", r#"{"status":{"conditions":[{"type":"Ready","status":"True","reason":"Succeeded","message":"ready","lastTransitionTime":"2029-12-31T22:00:00Z"}]}}"#).await;
    for name in ["private-cred", "missing-identity-cred"] {
        cli.status("credential", Some(sys), name, READY).await;
    }

    // A Region this machine cannot reach: UNKNOWN, exit 3, nothing failed.
    let run = cli.kubectl(&["credential", "explain", "private-cred", "-n", sys]).await;
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stdout.starts_with(&format!(
            "Credential {sys}/private-cred is UNKNOWN: Region private: the regional API is unreachable from here"
        )),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("[FAIL]"), "{}", run.stdout);
    assert!(run.stdout.contains("[??]   Regional cluster"), "{}", run.stdout);
    // The condition row carries its age.
    assert!(run.stdout.contains("since 2029-12-31T23:00:00Z (60m ago)"), "{}", run.stdout);
    // A definite failure in the same Region outranks the unknown: NOT READY, exit 1.
    let run = cli.kubectl(&["credential", "explain", "missing-identity-cred", "-n", sys, "-o", "json"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["verdict"], "NotReady");
    assert_eq!(v["rootCause"], format!("identity Secret {sys}/nope does not exist in the management cluster"));
    assert_eq!(
        v["credential"],
        serde_json::json!({"apiVersion": "k0rdent.mirantis.com/v1beta1", "kind": "Credential",
        "namespace": sys, "name": "missing-identity-cred", "cluster": "management"})
    );
    let regional = v["checks"].as_array().unwrap().iter().find(|c| c["code"] == "regional-cluster").unwrap();
    assert_eq!(regional["verdict"], "unknown");
    // The summary: one token per verdict, not ready first, the worst exit status.
    let run = cli.kubectl(&["credential", "explain", "-n", sys]).await;
    assert_eq!(run.code, 1, "{run:?}");
    let verdicts: Vec<&str> = run.stdout.lines().skip(1).filter_map(|l| l.split_whitespace().nth(1)).collect();
    assert_eq!(verdicts, ["NotReady", "NotReady", "Unknown"], "{}", run.stdout);

    // list as kubectl get: READY <none> until KCM writes a status.
    let run = cli.kubectl(&["credential", "list", "-n", sys, "--no-headers"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let fresh = run.stdout.lines().find(|l| l.starts_with("fresh-cred ")).unwrap();
    assert_eq!(fresh.split_whitespace().nth(1), Some("<none>"), "{}", run.stdout);
    // -A wins over -n; --sort-by; --show-labels.
    let run =
        cli.kubectl(&["credential", "get", "-A", "-n", "nowhere", "--sort-by=.metadata.name", "--show-labels"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines[0].starts_with("NAMESPACE ") && lines[0].ends_with("LABELS"), "{}", run.stdout);
    let names: Vec<&str> = lines[1..].iter().filter_map(|l| l.split_whitespace().nth(1)).collect();
    assert_eq!(names, ["fresh-cred", "missing-identity-cred", "private-cred", "team-cred"], "{}", run.stdout);
    assert!(lines.iter().any(|l| l.starts_with("team-a ") && l.ends_with("tier=c")), "{}", run.stdout);
    // jsonpath and custom-columns read the stored objects.
    let run = cli
        .kubectl(&[
            "credential",
            "list",
            "-A",
            "-o",
            "jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name}{\"\\n\"}{end}",
        ])
        .await;
    assert!(run.stdout.contains(&format!("{sys}/private-cred\nteam-a/team-cred\n")), "{}", run.stdout);
    let run = cli
        .kubectl(&[
            "credential",
            "list",
            "-n",
            sys,
            "-o",
            "custom-columns=NAME:.metadata.name,READY:.status.ready",
            "-l",
            "tier",
        ])
        .await;
    assert_eq!(
        run.stdout, "NAME                    READY\nmissing-identity-cred   true\nprivate-cred            true\n",
        "{run:?}"
    );
    // -o name output is accepted back as names.
    let run = cli.kubectl(&["credential", "list", "-n", sys, "-o", "name", "-l", "tier=a"]).await;
    assert_eq!(run.stdout, "credential.k0rdent.mirantis.com/private-cred\n");
    let run = cli.kubectl(&["credential", "explain", run.stdout.trim(), "-n", sys]).await;
    assert_eq!(run.code, 3, "{run:?}");
    // NAME with -l is an error.
    let run = cli.kubectl(&["credential", "list", "private-cred", "-l", "tier=a"]).await;
    assert_eq!((run.code, run.stderr.as_str()), (1, "error: name cannot be provided when a selector is specified\n"));

    // Global flags before the subcommand, as `kubectl -n team get`.
    let run = cli.kubectl(&["credential", "-n", "team-a", "list", "--no-headers", "-o", "name"]).await;
    assert_eq!((run.code, run.stdout.as_str()), (0, "credential.k0rdent.mirantis.com/team-cred\n"), "{run:?}");
    let run = cli.kubectl(&["credential", "--namespace=team-a", "-A", "explain", "--show-only-failing"]).await;
    assert!(run.stdout.lines().next().is_some_and(|l| l.starts_with("NAMESPACE ")), "{run:?}");
    let run = cli.kubectl(&["credential", "-nteam-a", "explain", "team-cred", "-o", "json"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    // --context, --cluster and --user that the kubeconfig does not have: kubectl's words.
    for (flag, message) in [
        ("--context", "Error in configuration: context was not found for specified context: nope\n"),
        ("--cluster", "error: no server found for cluster \"nope\"\n"),
        ("--user", "error: auth info \"nope\" does not exist\n"),
    ] {
        let run = cli.kubectl(&["credential", flag, "nope", "explain", "team-cred"]).await;
        assert_eq!((run.code, run.stderr.as_str()), (2, message), "{flag}");
        let run = cli.kubectl(&["credential", "list", flag, "nope"]).await;
        assert_eq!((run.code, run.stderr.as_str()), (1, message), "{flag}: list exits 1 as kubectl get");
    }
    // go-template: the same stdout, stderr and exit status as `kubectl get credentials` with the same
    // template, over the objects the apiserver stored (a List for several, the object for one NAME).
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ready.tmpl");
    std::fs::write(&file, "{{range .items}}{{if .status.ready}}{{.metadata.name}}{{\"\\n\"}}{{end}}{{end}}").unwrap();
    let file_format = format!("go-template-file={}", file.display());
    let cases: &[&[&str]] = &[
        &[
            "-A",
            "-o",
            "go-template={{range .items}}{{.metadata.namespace}}/{{.metadata.name}} {{.status.ready}} {{.spec}}{{\"\\n\"}}{{end}}",
        ],
        &["-n", sys, "-l", "tier", "-o", "go-template={{.}}"],
        &[
            "private-cred",
            "-n",
            sys,
            "-o",
            "template={{.metadata.labels}} {{len .status.conditions}} {{index .status.conditions 0 \"type\"}} {{printf \"%-20s|%q\" .metadata.name .spec.region}} {{.metadata.missing}} {{print .status.nope}}",
        ],
        &[
            "-n",
            sys,
            "-o",
            "go-template={{range $i, $c := .items}}{{$i}}:{{with $c.status.conditions}}{{(index . 0).reason}}{{else}}none{{end}} {{end}}",
        ],
        &["-n", sys, "-o", &file_format],
        &["private-cred", "-n", sys, "-o", "go-template=before {{.metadata.name.x}} after"],
        &["-n", sys, "-o", "go-template={{range .items}}{{index .status.conditions 3}}{{end}}"],
        &["-n", sys, "-o", "go-template={{.x"],
        &["-n", sys, "-o", "go-template={{upper .kind}}"],
        &["-n", sys, "-o", "go-template-file=/nonexistent/t.tmpl"],
    ];
    for args in cases {
        let kubectl = cli.kubectl(&[&["get", "credentials"], *args].concat()).await;
        let ours = cli.kubectl(&[&["credential", "get"], *args].concat()).await;
        assert_eq!(
            (ours.code, &ours.stdout, &ours.stderr),
            (kubectl.code, &kubectl.stdout, &kubectl.stderr),
            "kubectl credential get {args:?} differs from kubectl get credentials"
        );
    }
    // A construct the plugin does not reproduce is refused (exit 2) before anything is printed.
    let run = cli.kubectl(&["credential", "list", "-o", "go-template={{define \"x\"}}{{end}}"]).await;
    assert_eq!((run.code, run.stdout.as_str()), (2, ""), "{run:?}");
    assert!(run.stderr.contains("use -o jsonpath=TEMPLATE") && run.stderr.contains("custom-columns"), "{}", run.stderr);
    // --color exists only where there is colour.
    let run = cli.kubectl(&["credential", "list", "--color=always"]).await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("unexpected argument '--color'"), "{}", run.stderr);
    let run = cli.kubectl(&["credential", "--color=never", "explain", "team-cred", "-n", "team-a"]).await;
    assert_eq!(run.code, 1, "{run:?}");

    // NotFound exits 1 and says where the Credential is.
    let run = cli.kubectl(&["credential", "explain", "team-cred", "-n", sys]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.starts_with("Error from server (NotFound): "), "{}", run.stderr);
    assert!(run.stderr.ends_with("found in team-a: add -n team-a\n"), "{}", run.stderr);
    let run = cli.kubectl(&["credential", "list", "nope", "-n", sys]).await;
    assert_eq!(run.code, 1, "{run:?}");
    for out in [&run.stdout, &run.stderr] {
        assert!(!out.contains("EXAMPLE-NOT-A-SECRET"), "{out}");
    }
}
