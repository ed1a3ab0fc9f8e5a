//! Builds test equipment from Go sources once per checkout: a build script writes the binary, a
//! file lock next to it makes parallel test processes wait for one build, and the build is redone
//! only when one of the listed sources is newer than the binary (Go's own cache makes a rebuild
//! with no change take seconds).

use std::path::Path;
use std::process::Command;

/// Runs `bash <src>/<script> <args..>` unless `out` is newer than every `sources` file in `src`.
/// Holds `lock` (created if missing) meanwhile. Errors carry the command and its stderr.
pub fn build_if_stale(
    src: &Path,
    sources: &[&str],
    script: &str,
    args: &[&str],
    out: &Path,
    lock: &Path,
) -> Result<(), String> {
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    }
    let lock = std::fs::File::create(lock).map_err(|e| format!("create build lock {}: {e}", lock.display()))?;
    lock.lock().map_err(|e| format!("take build lock: {e}"))?;
    let newest_source =
        sources.iter().filter_map(|f| std::fs::metadata(src.join(f)).and_then(|m| m.modified()).ok()).max();
    let fresh = match (std::fs::metadata(out).and_then(|m| m.modified()), newest_source) {
        (Ok(built), Some(source)) => built >= source,
        _ => false,
    };
    if fresh {
        return Ok(());
    }
    let command = format!("bash {} {}", src.join(script).display(), args.join(" "));
    let output = Command::new("bash")
        .arg(src.join(script))
        .args(args)
        .output()
        .map_err(|e| format!("{command}: {e} (is Go installed?)"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!("{command} failed:\n{}", String::from_utf8_lossy(&output.stderr)))
    }
}
