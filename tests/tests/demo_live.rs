//! The README's live demo (demo/live.sh) keeps working: on real kube-apiservers it runs the
//! commands it prints with the expected exit status and output, the instructions it prints work
//! from another shell, and it leaves no server and no temporary directory behind, after `--check`
//! and after Ctrl-C.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use support::real::{plugin_binary, workspace};

/// `bash demo/live.sh ARGS` with the binaries the tests use (nothing is built by the script).
fn demo(args: &[&str]) -> Command {
    let cluster = credential_e2e::cluster::binary().expect("kube-test-cluster builds");
    let mut cmd = Command::new("bash");
    cmd.arg("demo/live.sh")
        .args(args)
        .current_dir(workspace())
        .env("KUBE_TEST_CLUSTER", cluster)
        .env("KUBECTL_CREDENTIAL", plugin_binary())
        .env_remove("KUBECONFIG")
        .env_remove("COLUMNS");
    cmd
}

/// The value after `prefix` on the line that starts with it.
fn after<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.trim_start().strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} in:\n{text}"))
}

/// The work directory and the apiserver pids the script announced.
fn announced(text: &str) -> (PathBuf, Vec<u32>) {
    let work = PathBuf::from(after(text, "work dir: "));
    let pids = after(text, "apiserver pids: ").split_whitespace().map(|p| p.parse().unwrap()).collect();
    (work, pids)
}

fn assert_cleaned_up(work: &Path, pids: &[u32]) {
    assert!(!work.exists(), "{} was left behind", work.display());
    for pid in pids {
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "apiserver {pid} still runs");
    }
}

#[test]
fn check_mode_runs_every_printed_command_and_cleans_up() {
    let out = demo(&["--check"]).output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("demo check: all 7 commands as expected"), "{stdout}");
    assert!(!stdout.contains("FAILED"), "{stdout}");
    for server in ["mgmt", "region1", "region2"] {
        assert!(after(&stdout, &format!("{server} ")).trim().starts_with("https://127.0.0.1:"), "{stdout}");
    }
    // kubectl shows the printer columns of tests/crds/ and the status written through /status.
    let header = stdout.lines().find(|l| l.starts_with("NAME ") && l.contains("DESCRIPTION")).expect("kubectl get");
    assert_eq!(header.split_whitespace().collect::<Vec<_>>(), ["NAME", "READY", "REGION", "DESCRIPTION"]);
    let row = stdout.lines().find(|l| l.starts_with("aws-region1-cred ")).expect("a row for aws-region1-cred");
    assert_eq!(row.split_whitespace().take(3).collect::<Vec<_>>(), ["aws-region1-cred", "true", "region1"]);
    // The plugin reached the regional server through the Region's kubeconfig Secret.
    assert!(
        stdout.contains(
            "Credential kcm-system/azure-region1-cred is NOT READY: provider Azure is not enabled in Region region1"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("region1: reachable"), "{stdout}");
    let (work, pids) = announced(&stdout);
    assert_eq!(pids.len(), 3);
    assert_cleaned_up(&work, &pids);
}

#[test]
fn the_printed_instructions_work_and_ctrl_c_cleans_up() {
    let mut child: Child = demo(&[]).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    let mut printed = String::new();
    while !printed.contains("Press Ctrl-C") {
        // A guard against a hung start, not a speed assertion.
        match rx.recv_timeout(Duration::from_secs(300)) {
            Ok(line) => {
                printed.push_str(&line);
                printed.push('\n');
            }
            Err(e) => {
                let _ = child.kill();
                panic!("the demo did not get ready ({e}); it printed:\n{printed}");
            }
        }
    }
    // What the user pastes in another terminal.
    let exports = after(&printed, "export ");
    let kubeconfig = exports.split_whitespace().find_map(|w| w.strip_prefix("KUBECONFIG=")).unwrap();
    let path_dir = exports.split_whitespace().find_map(|w| w.strip_prefix("PATH=")).unwrap();
    let path_dir = path_dir.strip_suffix(":$PATH").unwrap();
    let path = format!("{path_dir}:{}", std::env::var("PATH").unwrap_or_default());
    let run = Command::new("kubectl")
        .args(["credential", "list", "-A"])
        .env("KUBECONFIG", kubeconfig)
        .env("PATH", path)
        .current_dir(workspace())
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{list}{}", String::from_utf8_lossy(&run.stderr));
    assert!(list.lines().any(|l| l.starts_with("kcm-system   aws-stale-cred ")), "{list}");

    let (work, pids) = announced(&printed);
    assert!(work.exists());
    let sent = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(sent.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "exit status after Ctrl-C");
    assert_cleaned_up(&work, &pids);
}
