//! The krew manifest (kubectl-plugin/krew/credential.yaml) as kubectl-plugin/release.sh fills it,
//! validated by krew's own `validate-krew-manifest` (built from sigs.k8s.io/krew, tests/tools).
//! Archives here hold a stand-in binary: what is checked is the manifest and the checksums, not a
//! release build (`release.sh build` makes that). The validator's install step needs the archives
//! downloadable from the release, so it runs with -skip-install.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/tools.rs"]
mod tools;

use std::collections::BTreeMap;
use std::path::Path;

use credential_core::yaml::parse_documents;
use tools::{repo_root, run, tool};

const TAG: &str = "v0.1.0";
const PLATFORMS: &[(&str, &str)] =
    &[("linux", "amd64"), ("linux", "arm64"), ("darwin", "amd64"), ("darwin", "arm64"), ("windows", "amd64")];

/// Archives named as the manifest expects, each with the binary and LICENSE, in `dist`.
fn make_archives(dist: &Path) {
    let stage = dist.join("stage");
    std::fs::create_dir_all(&stage).unwrap();
    for (os, arch) in PLATFORMS {
        let exe = if *os == "windows" { "kubectl-credential.exe" } else { "kubectl-credential" };
        std::fs::write(stage.join(exe), format!("stand-in for {os}/{arch}")).unwrap();
        std::fs::write(stage.join("LICENSE"), "license").unwrap();
        let out = if *os == "windows" {
            let archive = dist.join(format!("kubectl-credential_{TAG}_{os}_{arch}.zip"));
            run(
                Path::new("zip"),
                &[
                    "-q",
                    "-j",
                    archive.to_str().unwrap(),
                    stage.join(exe).to_str().unwrap(),
                    stage.join("LICENSE").to_str().unwrap(),
                ],
                &[],
            )
        } else {
            let archive = dist.join(format!("kubectl-credential_{TAG}_{os}_{arch}.tar.gz"));
            run(
                Path::new("tar"),
                &["-C", stage.to_str().unwrap(), "-czf", archive.to_str().unwrap(), exe, "LICENSE"],
                &[],
            )
        };
        assert!(out.ok, "packing {os}/{arch}: {}", out.stderr);
    }
    std::fs::remove_dir_all(&stage).unwrap();
}

fn fill(dist: &Path) -> String {
    let script = repo_root().join("kubectl-plugin/release.sh");
    let out = run(Path::new("bash"), &[script.to_str().unwrap(), "manifest", TAG, dist.to_str().unwrap()], &[]);
    assert!(out.ok, "kubectl-plugin/release.sh manifest {TAG}: {}", out.stderr);
    std::fs::read_to_string(dist.join("credential.yaml")).unwrap()
}

fn validate(manifest: &Path) -> tools::Run {
    run(&tool("validate-krew-manifest"), &["-manifest", manifest.to_str().unwrap(), "-skip-install"], &[])
}

#[test]
fn filled_manifest_passes_krews_validator_with_the_archives_checksums() {
    let dist = tempfile::tempdir().unwrap();
    make_archives(dist.path());
    let text = fill(dist.path());
    let out = validate(&dist.path().join("credential.yaml"));
    assert!(
        out.ok,
        "validate-krew-manifest rejected the filled manifest; fix kubectl-plugin/krew/credential.yaml:\n{}{}",
        out.stdout, out.stderr
    );

    let manifest = &parse_documents(&text, "credential.yaml").unwrap()[0];
    assert_eq!(manifest["spec"]["version"], TAG, "spec.version");
    let homepage = manifest["spec"]["homepage"].as_str().unwrap();
    assert!(
        homepage.starts_with("https://github.com/") && !homepage.contains("OWNER"),
        "spec.homepage placeholder: {homepage}"
    );
    // SHA256SUMS (sha256sum) and the manifest (release.sh's own hashing) agree on every archive.
    let sums: BTreeMap<String, String> = std::fs::read_to_string(dist.path().join("SHA256SUMS"))
        .unwrap()
        .lines()
        .map(|l| {
            let (sum, file) = l.split_once("  ").unwrap();
            (file.to_string(), sum.to_string())
        })
        .collect();
    let platforms = manifest["spec"]["platforms"].as_array().unwrap();
    assert_eq!(platforms.len(), PLATFORMS.len(), "every platform with an archive is in the manifest");
    for p in platforms {
        let uri = p["uri"].as_str().unwrap();
        assert!(
            uri.starts_with(&format!("{homepage}/releases/download/{TAG}/")),
            "{uri}: not the homepage's release {TAG}"
        );
        let file = uri.rsplit('/').next().unwrap();
        assert_eq!(p["sha256"].as_str(), sums.get(file).map(String::as_str), "{file}: manifest sha256 vs SHA256SUMS");
        let (os, arch) = (&p["selector"]["matchLabels"]["os"], &p["selector"]["matchLabels"]["arch"]);
        assert!(
            file.ends_with(&format!(
                "_{}_{}.{}",
                os.as_str().unwrap(),
                arch.as_str().unwrap(),
                if os == "windows" { "zip" } else { "tar.gz" }
            )),
            "{file} vs selector {os}/{arch}"
        );
    }
}

#[test]
fn platforms_without_an_archive_are_left_out_and_the_validator_bites() {
    let dist = tempfile::tempdir().unwrap();
    make_archives(dist.path());
    std::fs::remove_file(dist.path().join(format!("kubectl-credential_{TAG}_windows_amd64.zip"))).unwrap();
    let text = fill(dist.path());
    let manifest = &parse_documents(&text, "credential.yaml").unwrap()[0];
    let oses: Vec<&str> = manifest["spec"]["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["selector"]["matchLabels"]["os"].as_str().unwrap())
        .collect();
    assert!(!oses.contains(&"windows") && oses.len() == 4, "windows has no archive: {oses:?}");
    assert!(validate(&dist.path().join("credential.yaml")).ok, "a manifest with four platforms is valid");

    // The validator is not a rubber stamp: a file name that is not the plugin name, and a
    // version that is not semver with a leading v, are both refused.
    let renamed = dist.path().join("k0rdent-credential.yaml");
    std::fs::write(&renamed, &text).unwrap();
    assert!(!validate(&renamed).ok, "validate-krew-manifest accepted a manifest whose file name is not metadata.name");
    let bad_version = dist.path().join("bad").join("credential.yaml");
    std::fs::create_dir_all(bad_version.parent().unwrap()).unwrap();
    std::fs::write(&bad_version, text.replace(&format!("version: \"{TAG}\""), "version: \"0.1\"")).unwrap();
    assert_ne!(std::fs::read_to_string(&bad_version).unwrap(), text, "the version line was not found to break");
    assert!(!validate(&bad_version).ok, "validate-krew-manifest accepted version 0.1");
}
