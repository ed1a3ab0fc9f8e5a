//! `kubectl credential` live, through the real kubectl, against real kube-apiservers
//! (tests/kube-test-cluster) seeded from `examples/estate`: one management cluster and one per Region,
//! each its own process, the Regions' kubeconfig Secrets rewritten to hold the regional clusters'
//! kubeconfigs (CA inline, token). The plugin is installed as `kubectl-credential` (and
//! `kubectl_complete-credential`) on a temporary PATH, as a user would install it.
//!
//! The binary is `target/<profile>/kubectl-credential` next to this test's own executable. Under
//! `cargo test --workspace` it is already built; when it is missing or older than its sources (e.g.
//! `cargo test -p credential-e2e` on a clean clone) the first test that needs it runs
//! `cargo build -p kubectl-credential`. Needs Go (to build the cluster once) and `kubectl` on PATH.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::Value;
use support::plugin::{Estate, SYS, without_ports};
use support::real::{WAIT, WRITE_VERBS, documents, open_watches, requests_between, resource_requests, seed, seed_yaml};
use support::{b64, eventually_async};

/// Every example Credential: expected exit status and a phrase of the root cause.
const CREDENTIALS: &[(&str, i32, &str)] = &[
    ("aws-region1-cred", 0, ""),
    ("aws-role-region1-cred", 0, ""),
    ("azure-cred", 0, ""),
    ("aws-region9-cred", 1, "Region region9 does not exist"),
    ("aws-region2-cred", 1, "Region region2 is not Ready"),
    ("azure-region1-cred", 1, "provider Azure is not enabled in Region region1"),
    ("gcp-region1-cred", 1, "no ProviderInterface in Region region1 declares v1 Secret"),
    ("aws-missing-identity-cred", 1, "AWSClusterStaticIdentity aws-cluster-identity-prod does not exist"),
    ("aws-bad-path-cred", 1, "does not name its Secret"),
    ("aws-uncopied-cred", 1, "identity objects are missing in Region region1"),
    ("aws-stale-cred", 1, "is stale"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_gives_the_verdict_and_root_cause_of_every_example() {
    let estate = Estate::start().await;
    for (name, expected, cause) in CREDENTIALS {
        let run = estate.kubectl(&["credential", "explain", name, "-n", SYS]).await;
        assert_eq!(run.code, *expected, "{name}: {run:?}");
        assert!(run.stderr.is_empty(), "{name}: {}", run.stderr);
        estate.assert_no_secrets(&run.stdout);
        let first = run.stdout.lines().next().unwrap();
        if *expected == 0 {
            assert_eq!(first, format!("Credential {SYS}/{name} is READY"));
        } else {
            assert!(first.starts_with(&format!("Credential {SYS}/{name} is NOT READY: ")), "{first}");
            assert!(first.contains(cause), "{name}: {first}");
            assert!(
                run.stdout.contains(&format!("again:\n       kubectl credential explain {name} -n {SYS}\n")),
                "{}",
                run.stdout
            );
        }
        // Live and offline read the same estate: same verdict, same root cause, same checks.
        let offline = estate.offline(&["explain", name, "-n", SYS, "-o", "json"]);
        let live = estate.kubectl(&["credential", "explain", name, "-n", SYS, "-o", "json"]).await;
        let (o, l): (Value, Value) =
            (serde_json::from_str(&offline.stdout).unwrap(), serde_json::from_str(&live.stdout).unwrap());
        assert_eq!(l["verdict"], o["verdict"], "{name}");
        assert_eq!(l["rootCause"], o["rootCause"], "{name}");
        let statuses = |v: &Value| {
            v["checks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| (c["name"].clone(), c["verdict"].clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(statuses(&l), statuses(&o), "{name}");
        insta::assert_snapshot!(format!("live_explain_{name}"), without_ports(&run.stdout));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_json_and_yaml_carry_the_tree() {
    let estate = Estate::start().await;
    let run = estate.kubectl(&["credential", "explain", "aws-stale-cred", "-o", "json"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    let v: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        (v["credential"]["namespace"].as_str(), v["credential"]["name"].as_str()),
        (Some(SYS), Some("aws-stale-cred"))
    );
    assert_eq!(v["verdict"], "NotReady");
    let checks = v["checks"].as_array().unwrap();
    let names: Vec<&str> = checks.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "Credential",
            "Events",
            "identityRef",
            "Region",
            "Regional cluster",
            "CRD",
            "ProviderInterface",
            "Identity",
            "Distribution",
            "Copies",
            "ClusterDeployments"
        ]
    );
    let copies = &checks[9];
    assert_eq!(copies["verdict"], "fail");
    assert!(copies["children"].as_array().unwrap().iter().any(|c| c["summary"].as_str().unwrap().contains("stale")));
    assert_eq!(checks[4]["summary"], "region1: reachable");
    estate.assert_no_secrets(&run.stdout);

    let run = estate.kubectl(&["credential", "explain", "aws-stale-cred", "-o", "yaml"]).await;
    assert_eq!(run.code, 1);
    assert!(run.stdout.contains("verdict: NotReady") && run.stdout.contains("name: Copies"), "{}", run.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_errors_and_exit_codes() {
    let estate = Estate::start().await;
    let run = estate.kubectl(&["credential", "explain", "nope", "-n", SYS]).await;
    assert_eq!(run.code, 1, "NotFound exits 1, as kubectl: {run:?}");
    assert!(run.stdout.is_empty());
    assert!(
        run.stderr.starts_with("Error from server (NotFound): credentials.k0rdent.mirantis.com \"nope\" not found\n"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("Credentials in namespace kcm-system: aws-bad-path-cred, "), "{}", run.stderr);
    // Usage errors exit 2 and print usage as the plugin.
    let run = estate.kubectl(&["credential", "explain", "--bogus"]).await;
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("Usage: kubectl credential explain"), "{}", run.stderr);
    // A context that does not exist.
    let run = estate.kubectl(&["credential", "explain", "x", "--context", "nope"]).await;
    assert_eq!(run.code, 2);
    assert_eq!(run.stderr, "Error in configuration: context was not found for specified context: nope\n");
    // The management cluster unreachable.
    let bad = estate.dir.path().join("bad-kubeconfig");
    std::fs::write(
        &bad,
        std::fs::read_to_string(estate.dir.path().join("kubeconfig"))
            .unwrap()
            .replace(estate.mgmt.server(), "https://127.0.0.1:1"),
    )
    .unwrap();
    let run = estate.kubectl(&["credential", "explain", "x", "--kubeconfig", bad.to_str().unwrap()]).await;
    assert_eq!(run.code, 2);
    assert!(run.stderr.starts_with("Unable to connect to the server https://127.0.0.1:1"), "{}", run.stderr);
    // list exits 1 on errors, as kubectl get does.
    let run = estate.kubectl(&["credential", "list", "--kubeconfig", bad.to_str().unwrap()]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.starts_with("Unable to connect to the server https://127.0.0.1:1"), "{}", run.stderr);
    let run = estate.kubectl(&["credential", "get", "x", "-A"]).await;
    assert_eq!(run.code, 1);
    assert_eq!(run.stderr, "error: a resource cannot be retrieved by name across all namespaces\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_without_name_summarises_not_ready_first() {
    let estate = Estate::start().await;
    // The context's namespace (kcm-system) is the default, as with kubectl.
    let run = estate.kubectl(&["credential", "explain"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines[0].starts_with("NAME") && lines[0].contains("VERDICT") && lines[0].ends_with("ROOT CAUSE"));
    assert_eq!(lines.len(), CREDENTIALS.len() + 1, "{}", run.stdout);
    let verdicts: Vec<bool> = lines[1..].iter().map(|l| l.split_whitespace().nth(1) == Some("NotReady")).collect();
    let first_ready = verdicts.iter().position(|v| !v).unwrap();
    assert!(verdicts[..first_ready].iter().all(|v| *v) && verdicts[first_ready..].iter().all(|v| !v), "{}", run.stdout);
    assert_eq!(first_ready, 8);
    for (name, _, cause) in CREDENTIALS {
        let line = lines.iter().find(|l| l.starts_with(&format!("{name} "))).unwrap();
        assert!(line.contains(cause), "{line}");
    }
    insta::assert_snapshot!("live_explain_summary", run.stdout);

    let run = estate.kubectl(&["credential", "explain", "-A", "-o", "json"]).await;
    assert_eq!(run.code, 1);
    let v: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["credentials"].as_array().unwrap().len(), CREDENTIALS.len());

    let run = estate.kubectl(&["credential", "explain", "-n", "empty"]).await;
    assert_eq!(
        (run.code, run.stdout.as_str(), run.stderr.as_str()),
        (0, "", "No resources found in empty namespace.\n")
    );
}

/// Column start offsets of a kubectl-style table line.
fn columns(line: &str) -> Vec<usize> {
    let mut starts = vec![0];
    let b = line.as_bytes();
    for i in 1..b.len() {
        if b[i] != b' ' && b[i - 1] == b' ' && i >= 3 && &line[i - 3..i] == "   " {
            starts.push(i);
        }
    }
    starts
}

/// The AGE column (last) varies with the time the test runs.
fn without_age(table: &str) -> String {
    table
        .lines()
        .map(|l| match l.rfind(' ') {
            Some(i) if !l.ends_with("AGE") => format!("{}<age>", &l[..=i]),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_is_sorted_aligned_and_kubectl_like() {
    let estate = Estate::start().await;
    // A second namespace, to see -A sorting across namespaces.
    seed_yaml(
        &estate.mgmt,
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: team-a}\n---\n\
         apiVersion: k0rdent.mirantis.com/v1beta1\nkind: Credential\nmetadata: {name: a-team-cred, namespace: \
         team-a, labels: {k0rdent.mirantis.com/region: region1}}\nspec: {region: region1, identityRef: \
         {apiVersion: v1, kind: Secret, name: s, namespace: team-a}}\nstatus:\n  ready: true\n  conditions:\n  \
         - {type: ClusterIdentitiesDistributed, status: \"True\", reason: Distributed}\n",
    )
    .await;
    let run = estate.kubectl(&["credential", "list", "-A"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["NAMESPACE", "NAME", "READY", "REGION", "IDENTITY", "DISTRIBUTED", "AGE"]
    );
    let keys: Vec<(&str, &str)> = lines[1..]
        .iter()
        .map(|l| {
            let mut w = l.split_whitespace();
            (w.next().unwrap(), w.next().unwrap())
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert_eq!(keys.len(), CREDENTIALS.len() + 1);
    let header_cols = columns(lines[0]);
    for l in &lines[1..] {
        assert_eq!(columns(l), header_cols, "misaligned:\n{}", run.stdout);
    }
    let team = lines.iter().find(|l| l.starts_with("team-a")).unwrap();
    assert_eq!(team.split_whitespace().collect::<Vec<_>>()[2..6], ["true", "region1", "Secret/s", "True"]);
    assert!(lines.iter().any(|l| l.contains("aws-region9-cred") && l.contains("<none>")), "{}", run.stdout);
    insta::assert_snapshot!("live_list_all_namespaces", without_age(&run.stdout));

    // -l, --no-headers, -o name, the `get` alias.
    let run =
        estate.kubectl(&["credential", "get", "-A", "-l", "k0rdent.mirantis.com/region=region1", "--no-headers"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout.lines().count(), 1, "{}", run.stdout);
    assert!(run.stdout.starts_with("team-a "), "{}", run.stdout);
    let run = estate.kubectl(&["credential", "list", "-o", "name"]).await;
    assert!(run.stdout.starts_with("credential.k0rdent.mirantis.com/aws-bad-path-cred\n"), "{}", run.stdout);

    // -o json: a List without managedFields; one name: the object.
    let run = estate.kubectl(&["credential", "list", "-o", "json"]).await;
    let v: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!((v["kind"].as_str(), v["apiVersion"].as_str()), (Some("List"), Some("v1")));
    assert_eq!(v["items"].as_array().unwrap().len(), CREDENTIALS.len());
    assert!(!run.stdout.contains("managedFields"));
    let run = estate.kubectl(&["credential", "get", "azure-cred", "-o", "yaml"]).await;
    assert!(run.stdout.contains("kind: Credential") && run.stdout.contains("name: azure-cred"), "{}", run.stdout);
    let run = estate.kubectl(&["credential", "list", "-o", "wide", "-n", "team-a"]).await;
    assert!(run.stdout.lines().next().unwrap().ends_with("IDENTITY-API   DESCRIPTION"), "{}", run.stdout);

    // Empty and missing, with kubectl's wording and exit codes.
    let run = estate.kubectl(&["credential", "list", "-n", "nothing-here"]).await;
    assert_eq!(
        (run.code, run.stdout.as_str(), run.stderr.as_str()),
        (0, "", "No resources found in nothing-here namespace.\n")
    );
    let run = estate.kubectl(&["credential", "get", "x"]).await;
    assert_eq!(run.code, 1);
    assert_eq!(run.stderr, "Error from server (NotFound): credentials.k0rdent.mirantis.com \"x\" not found\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_watch_prints_changes() {
    let estate = Estate::start().await;
    estate.mgmt.apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: team-w}\n").await.unwrap();
    let watches_before = open_watches(&estate.mgmt, "credentials").await;
    let path = format!("{}:{}", estate.dir.path().display(), std::env::var("PATH").unwrap_or_default());
    let mut child = tokio::process::Command::new(std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into()))
        .args(["credential", "list", "-n", "team-w", "-w"])
        .env("PATH", path)
        .env("KUBECONFIG", estate.dir.path().join("kubeconfig"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // The apiserver serves the plugin's watch before the Credential is created.
    eventually_async("the plugin's watch of credentials", WAIT, || async {
        (open_watches(&estate.mgmt, "credentials").await > watches_before).then_some(())
    })
    .await;
    seed_yaml(
        &estate.mgmt,
        "apiVersion: k0rdent.mirantis.com/v1beta1\nkind: Credential\nmetadata: {name: watched, namespace: team-w}\n\
         spec: {identityRef: {apiVersion: v1, kind: Secret, name: s}}\n",
    )
    .await;
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        while !seen.contains("watched") {
            let n = tokio::io::AsyncReadExt::read(&mut stdout, &mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    })
    .await;
    child.kill().await.unwrap();
    let lines: Vec<&str> = seen.lines().collect();
    assert!(lines.len() >= 2 && lines[0].starts_with("NAME"), "{seen}");
    assert!(lines.iter().any(|l| l.starts_with("watched ") && l.contains("Secret/s")), "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_shows_what_would_change_without_writing() {
    let estate = Estate::start().await;
    let before: Vec<_> = futures_util::future::join_all(estate.clusters().map(resource_requests)).await;
    let run = estate.kubectl(&["credential", "plan", "aws-stale-cred"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("[update: data differs (keys: SecretAccessKey)]"), "{}", run.stdout);
    assert!(
        run.stdout.contains("Compared with region1: 0 to create, 1 to update, 1 unchanged, 0 in conflict"),
        "{}",
        run.stdout
    );
    estate.assert_no_secrets(&run.stdout);
    let run = estate.kubectl(&["credential", "plan", "aws-uncopied-cred", "-o", "json"]).await;
    let v: Value = serde_json::from_str(&run.stdout).unwrap();
    let actions: Vec<&str> =
        v["current"]["changes"].as_array().unwrap().iter().map(|c| c["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["create", "create"]);
    estate.assert_no_secrets(&run.stdout);
    // Nothing was written anywhere (the apiservers' own request counters).
    let after: Vec<_> = futures_util::future::join_all(estate.clusters().map(resource_requests)).await;
    for ((c, before), after) in estate.clusters().zip(&before).zip(&after) {
        let writes: Vec<_> = requests_between(before, after)
            .into_keys()
            .filter(|(verb, _)| WRITE_VERBS.contains(&verb.as_str()))
            .collect();
        assert!(writes.is_empty(), "plan wrote to {}: {writes:?}", c.name());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_region_is_unknown() {
    let estate = Estate::start().await;
    estate.regions[0].stop().await;
    let run = estate.kubectl(&["credential", "explain", "aws-region1-cred"]).await;
    assert_eq!(run.code, 3, "{run:?}");
    let first = run.stdout.lines().next().unwrap();
    assert!(
        first.starts_with(
            "Credential kcm-system/aws-region1-cred is UNKNOWN: Region region1: the regional API is unreachable from \
             here ("
        ),
        "{first}"
    );
    assert!(
        run.stdout.contains("[??]   Regional cluster    region1: not checked, regional API unreachable from here: "),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("connection refused") || run.stdout.contains("Connection refused"), "{}", run.stdout);
    insta::assert_snapshot!("live_explain_unreachable_region", without_ports(&run.stdout));
    // region2 still answers.
    let run = estate.kubectl(&["credential", "explain", "aws-region2-cred"]).await;
    assert!(run.stdout.contains("region2: reachable"), "{}", run.stdout);
    // plan says why it cannot compare.
    let run = estate.kubectl(&["credential", "plan", "aws-region1-cred"]).await;
    assert!(run.stdout.contains("Not compared with region1: regional API unreachable: "), "{}", run.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completion_through_kubectl() {
    let estate = Estate::start().await;
    let run = estate.kubectl(&["__complete", "credential", ""]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let names: Vec<&str> = run.stdout.lines().map(|l| l.split('\t').next().unwrap()).collect();
    for sub in ["explain", "list", "plan", "lint", "completion"] {
        assert!(names.contains(&sub), "{}", run.stdout);
    }
    assert_eq!(*names.last().unwrap(), ":4");

    // Credential names from the cluster, in the context's namespace or -n.
    let run = estate.kubectl(&["__complete", "credential", "explain", "aws-re"]).await;
    let names: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(names, ["aws-region1-cred", "aws-region2-cred", "aws-region9-cred", ":4"], "{run:?}");
    let run = estate.kubectl(&["__complete", "credential", "plan", "-n", "kcm-system", "azure"]).await;
    assert_eq!(run.stdout.lines().collect::<Vec<_>>(), ["azure-cred", "azure-region1-cred", ":4"]);
    // Namespaces and flags.
    let run = estate.kubectl(&["__complete", "credential", "list", "-n", "kcm"]).await;
    assert_eq!(run.stdout.lines().collect::<Vec<_>>(), ["kcm-system", ":4"], "{run:?}");
    let run = estate.kubectl(&["__complete", "credential", "list", "--all"]).await;
    assert!(run.stdout.starts_with("--all-namespaces\t"), "{}", run.stdout);
    // Errors complete quietly to nothing.
    let bad = estate.dir.path().join("nowhere");
    let run = estate.kubectl(&["__complete", "credential", "explain", "--kubeconfig", bad.to_str().unwrap(), ""]).await;
    assert_eq!((run.code, run.stdout.as_str()), (0, ":4\n"), "{run:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_is_a_few_requests() {
    let estate = Estate::start().await;
    let before: Vec<_> = futures_util::future::join_all(estate.clusters().map(resource_requests)).await;
    let run = estate.kubectl(&["credential", "explain", "aws-role-region1-cred"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let after: Vec<_> = futures_util::future::join_all(estate.clusters().map(resource_requests)).await;
    let used: Vec<_> = before.iter().zip(&after).map(|(b, a)| requests_between(b, a)).collect();
    let total = |counts: &std::collections::BTreeMap<(String, String), f64>| counts.values().sum::<f64>();
    let (mgmt, region) = (total(&used[0]), total(&used[1]));
    // Printed for kubectl-plugin/BENCH.md (`-- --nocapture explain_is_a_few_requests`). Counted by the
    // apiservers (apiserver_request_total), which do not count discovery.
    eprintln!("management: {mgmt} requests {:?}", used[0]);
    eprintln!("region1: {region} requests {:?}", used[1]);
    // Credential, Regions, ProviderInterfaces, ClusterDeployments, kubeconfig Secret, the role identity,
    // its controller identity; in region1: ProviderInterfaces, two copies. The emulator's bounds (10 and
    // 6) counted two discovery requests each, which the apiserver does not count: 8 and 4 here.
    assert!(mgmt <= 8.0, "management requests: {:?}", used[0]);
    assert!(region <= 4.0, "regional requests: {:?}", used[1]);
    assert_eq!(total(&used[2]), 0.0, "region2 is not needed: {:?}", used[2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regions_through_cluster_deployments_and_bad_kubeconfigs() {
    let estate = Estate::start().await;
    // region3 is reached through its ClusterDeployment's Secret (<cd>-kubeconfig, key value, in the CD's
    // namespace) and is region1's cluster; region4's Secret holds something that is not a kubeconfig.
    let yaml = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: infra}}\n---\n\
         apiVersion: v1\nkind: Secret\nmetadata: {{name: r3-cluster-kubeconfig, namespace: infra}}\ndata: {{value: {}}}\n\
         ---\napiVersion: v1\nkind: Secret\nmetadata: {{name: region4-kubeconfig, namespace: kcm-system}}\n\
         data: {{value: {}}}\n",
        b64(&estate.regions[0].kubeconfig_yaml()),
        b64("EXAMPLE-NOT-A-SECRET: [unclosed"),
    );
    seed_yaml(&estate.mgmt, &yaml).await;
    let mut regions = String::new();
    for (name, spec) in [
        ("region3", "{clusterDeployment: {name: r3-cluster, namespace: infra}}"),
        ("region4", "{kubeConfig: {name: region4-kubeconfig, key: value}}"),
    ] {
        regions.push_str(&format!(
            "apiVersion: k0rdent.mirantis.com/v1beta1\nkind: Region\nmetadata: {{name: {name}}}\nspec: {spec}\n\
             status: {{conditions: [{{type: Ready, status: \"True\"}}]}}\n---\n\
             apiVersion: k0rdent.mirantis.com/v1beta1\nkind: Credential\nmetadata: {{name: {name}-cred, namespace: kcm-system}}\n\
             spec: {{region: {name}, identityRef: {{apiVersion: infrastructure.cluster.x-k8s.io/v1beta2, kind: \
             AWSClusterStaticIdentity, name: aws-cluster-identity}}}}\nstatus: {{ready: true, conditions: [{{type: \
             CredentialReady, status: \"True\"}}]}}\n---\n"
        ));
    }
    seed(&estate.mgmt, &documents(&regions)).await;

    let run = estate.kubectl(&["credential", "explain", "region3-cred"]).await;
    assert!(run.stdout.contains("Regional cluster    region3: reachable"), "{}", run.stdout);
    assert!(run.stdout.contains("kubeconfig Secret infra/r3-cluster-kubeconfig[value]"), "{}", run.stdout);
    // region1's cluster holds the copies of aws-cluster-identity: it is ready through region3 too.
    assert_eq!(run.code, 0, "{run:?}");

    let run = estate.kubectl(&["credential", "explain", "region4-cred"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout.starts_with(
            "Credential kcm-system/region4-cred is NOT READY: Region region4: Secret \
             kcm-system/region4-kubeconfig[value] does not hold a valid kubeconfig"
        ),
        "{}",
        run.stdout
    );
    estate.assert_no_secrets(&run.stdout);
    estate.assert_no_secrets(&run.stderr);
}
