//! The example estate served by real kube-apiservers (`examples/estate`: a management cluster and
//! one per Region, the Regions' kubeconfig Secrets rewritten to reach them) with the plugin on a
//! temporary PATH, for the suites that run `kubectl credential` through the real kubectl.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::time::Duration;

use credential_e2e::KubeCluster;
use serde_json::Value;

use super::real::{example_objects, plugin_binary, seed, set_kubeconfig_secret, start_cluster, workspace};

pub const SYS: &str = "kcm-system";
pub const REGIONS: &[&str] = &["region1", "region2"];

/// Fake Secret values of the examples: must never be printed (nor the clusters' tokens, see
/// [`Estate::assert_no_secrets`]).
pub const SECRET_MARKERS: &[&str] = &["RVhBTVBMRS1", "EXAMPLE-NOT-A-SECRET", "EXAMPLE-ROTATED"];

/// The example estate served by real clusters, and a PATH with the plugin on it.
pub struct Estate {
    pub mgmt: KubeCluster,
    pub regions: Vec<KubeCluster>,
    /// Holds the plugin links and the kubeconfig.
    pub dir: tempfile::TempDir,
}

impl Estate {
    pub async fn start() -> Self {
        // Three apiservers start at once; each is seeded with its part of the examples.
        let (region1, region2, mgmt) = tokio::join!(
            start_cluster(REGIONS[0], false, false),
            start_cluster(REGIONS[1], false, false),
            start_cluster("mgmt", false, false),
        );
        let regions = vec![region1, region2];
        let mut objects = example_objects("");
        for (r, c) in REGIONS.iter().zip(&regions) {
            set_kubeconfig_secret(&mut objects, SYS, &format!("{r}-kubeconfig"), &c.kubeconfig_yaml());
        }
        let (region1_objects, region2_objects) =
            (example_objects("regions/region1"), example_objects("regions/region2"));
        tokio::join!(seed(&regions[0], &region1_objects), seed(&regions[1], &region2_objects), seed(&mgmt, &objects),);
        let dir = tempfile::tempdir().unwrap();
        let bin = plugin_binary();
        for link in ["kubectl-credential", "kubectl_complete-credential"] {
            std::os::unix::fs::symlink(bin, dir.path().join(link)).unwrap();
        }
        // The context's namespace is kcm-system, so commands without -n look there (as kubectl does).
        let mut kubeconfig: Value = serde_saphyr::from_str(&mgmt.kubeconfig_yaml()).unwrap();
        kubeconfig["contexts"][0]["context"]["namespace"] = SYS.into();
        std::fs::write(dir.path().join("kubeconfig"), kubeconfig.to_string()).unwrap();
        Estate { mgmt, regions, dir }
    }

    /// Runs `kubectl ARGS` with the plugin on PATH and KUBECONFIG pointing at the management cluster.
    pub async fn kubectl(&self, args: &[&str]) -> Run {
        let path = format!("{}:{}", self.dir.path().display(), std::env::var("PATH").unwrap_or_default());
        let program = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into());
        let child = tokio::process::Command::new(program)
            .args(args)
            .env("PATH", path)
            .env("KUBECONFIG", self.dir.path().join("kubeconfig"))
            .env_remove("NO_COLOR")
            .env_remove("COLUMNS")
            // Condition ages are counted from a fixed instant, so snapshots do not age.
            .env("KUBECTL_CREDENTIAL_NOW", "2025-10-01T12:00:00Z")
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(Duration::from_secs(60), child).await.expect("kubectl finished").unwrap();
        Run {
            code: out.status.code().expect("exited"),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// The plugin on the offline copy of the same estate, for comparison.
    pub fn offline(&self, args: &[&str]) -> Run {
        let out = std::process::Command::new(plugin_binary())
            .args(args)
            .args(["--from", "examples/estate"])
            .current_dir(workspace())
            .env_remove("COLUMNS")
            .output()
            .unwrap();
        Run {
            code: out.status.code().unwrap(),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Neither the examples' fake Secret values nor any cluster's token in `text`.
    pub fn assert_no_secrets(&self, text: &str) {
        for m in SECRET_MARKERS.iter().copied().chain(self.clusters().map(KubeCluster::admin_token)) {
            assert!(!text.contains(m), "secret data {m} in output:\n{text}");
        }
    }

    pub fn clusters(&self) -> impl Iterator<Item = &KubeCluster> {
        std::iter::once(&self.mgmt).chain(&self.regions)
    }
}

#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// `127.0.0.1:<port>` in error texts varies per run.
pub fn without_ports(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("127.0.0.1:") {
        out.push_str(&rest[..i + 10]);
        rest = rest[i + 10..].trim_start_matches(|c: char| c.is_ascii_digit());
        out.push_str("PORT");
    }
    out.push_str(rest);
    out
}
