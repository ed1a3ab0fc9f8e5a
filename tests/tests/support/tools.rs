//! Upstream command-line tools built from their Go modules (tests/tools/go.mod pins them): `helm`
//! and krew's `validate-krew-manifest`. Each is built once per checkout into
//! `$CARGO_TARGET_DIR/tools/` (default `target/tools/`) by tests/tools/build.sh; a file lock makes
//! parallel test binaries wait for one build, and a build is redone only when go.mod, go.sum or
//! build.sh is newer than the binary. `HELM=/path` or `VALIDATE_KREW_MANIFEST=/path` skip the build.
//! Included with `#[path = "support/tools.rs"] mod tools;`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| repo_root().join("target"))
}

/// The path of `tool` (helm or validate-krew-manifest), built if missing or stale. Panics with the
/// build command and Go's output when the build fails.
pub fn tool(tool: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<std::collections::BTreeMap<String, PathBuf>>> = OnceLock::new();
    let built = BUILT.get_or_init(Default::default);
    let mut built = built.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(path) = built.get(tool) {
        return path.clone();
    }
    let env = tool.to_uppercase().replace('-', "_");
    let path = match std::env::var_os(&env) {
        Some(path) => PathBuf::from(path),
        None => build(tool),
    };
    built.insert(tool.to_string(), path.clone());
    path
}

fn build(tool: &str) -> PathBuf {
    let out_dir = target_dir().join("tools");
    let out = out_dir.join(tool);
    let started = Instant::now();
    let src = repo_root().join("tests/tools");
    let lock = out_dir.join(format!(".{tool}.lock"));
    credential_e2e::gobuild::build_if_stale(
        &src,
        &["go.mod", "go.sum", "build.sh"],
        "build.sh",
        &[tool, out.to_str().unwrap()],
        &out,
        &lock,
    )
    .unwrap_or_else(|e| {
        panic!("{e}\n(Go and the module proxy are needed, or set {}=/path)", tool.to_uppercase().replace('-', "_"))
    });
    eprintln!("{tool} ready in {:.1}s", started.elapsed().as_secs_f64());
    out
}

/// Output of one tool run.
pub struct Run {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `program args` with `envs`, returning its output (never panics on a failed exit).
pub fn run(program: &Path, args: &[&str], envs: &[(&str, &Path)]) -> Run {
    let mut cmd = Command::new(program);
    cmd.args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap_or_else(|e| panic!("run {} {args:?}: {e}", program.display()));
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
