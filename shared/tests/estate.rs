//! Loading an offline estate from files: layout, multi-document files, and hostile input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use credential_core::estate::{
    LoadError, LoadOptions, LoadWarning, load_dir, load_dir_with_report, load_files, load_files_with_report,
};
use credential_core::{Cluster, Estate, Gvk, Served};

fn write(root: &Path, rel: &str, text: &str) -> PathBuf {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    path
}

const SECRET_A: &str = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: a\n  namespace: kcm-system\n";
const REGION_R1: &str = "apiVersion: k0rdent.mirantis.com/v1beta1\nkind: Region\nmetadata:\n  name: r1\nspec:\n  kubeConfig: {name: r1-kc}\n";
const CRD_AWS_STATIC: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: awsclusterstaticidentities.infrastructure.cluster.x-k8s.io
spec:
  group: infrastructure.cluster.x-k8s.io
  scope: Cluster
  names: {kind: AWSClusterStaticIdentity, plural: awsclusterstaticidentities}
  versions:
  - {name: v1beta2, served: true, storage: true}
";

#[test]
fn regions_directories_become_regional_clusters() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "mgmt.yaml", SECRET_A);
    write(dir.path(), "regions/regions.yaml", REGION_R1); // directly in regions/: management
    write(dir.path(), "regions/r1/secrets.yml", "apiVersion: v1\nkind: Secret\nmetadata: {name: b, namespace: x}\n");
    write(
        dir.path(),
        "regions/r1/nested/deeper/crds.json",
        &serde_json::to_string(&yaml_to_json(CRD_AWS_STATIC)).unwrap(),
    );
    std::fs::create_dir_all(dir.path().join("regions/r2")).unwrap(); // empty region dir

    let (estate, report) = load_dir_with_report(dir.path(), &LoadOptions::default()).unwrap();
    let r1 = Cluster::Region("r1".into());
    let r2 = Cluster::Region("r2".into());
    assert_eq!(estate.clusters(), vec![Cluster::Management, r1.clone(), r2.clone()]);
    assert!(estate.knows_cluster(&r2));
    assert!(estate.get(&Cluster::Management, &Gvk::secret(), Some("kcm-system"), "a").is_some());
    assert!(estate.get(&Cluster::Management, &Gvk::region(), None, "r1").is_some());
    assert!(estate.get(&r1, &Gvk::secret(), Some("x"), "b").is_some());
    assert!(estate.get(&Cluster::Management, &Gvk::secret(), Some("x"), "b").is_none());
    let aws = Gvk::new("infrastructure.cluster.x-k8s.io", "v1beta2", "AWSClusterStaticIdentity");
    assert_eq!(estate.served(&r1, &aws), Served::Yes);
    assert_eq!(estate.served(&Cluster::Management, &aws), Served::Unknown);

    // Deterministic: sorted paths.
    let rel: Vec<String> =
        report.files.iter().map(|p| p.strip_prefix(dir.path()).unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(
        rel,
        ["mgmt.yaml", "regions/r1/nested/deeper/crds.json", "regions/r1/secrets.yml", "regions/regions.yaml"]
    );
    assert_eq!(report.objects.get(&r1), Some(&2));

    // Served-checks are skipped where no CRDs were loaded, and the report says so.
    let no_crds: Vec<String> =
        report.warnings.iter().filter(|w| matches!(w, LoadWarning::NoCrds { .. })).map(ToString::to_string).collect();
    assert_eq!(no_crds.len(), 2, "{no_crds:?}");
    assert!(no_crds[0].starts_with("served-checks skipped for management: no CRDs in its files"), "{}", no_crds[0]);
    assert!(no_crds[1].starts_with("served-checks skipped for region r2: no CRDs in its files"), "{}", no_crds[1]);
    // r2 has a directory but no Region object.
    assert!(report.warnings.contains(&LoadWarning::RegionWithoutObject { region: "r2".into() }));
    assert!(!report.warnings.contains(&LoadWarning::RegionWithoutObject { region: "r1".into() }));
}

fn yaml_to_json(text: &str) -> serde_json::Value {
    credential_core::yaml::parse_documents(text, "inline").unwrap().remove(0)
}

#[test]
fn multi_document_and_list_files() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{SECRET_A}---\n---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: \
         {{name: c1, namespace: ns}}\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {{name: c2, namespace: ns}}\n"
    );
    let f = write(dir.path(), "all.yaml", &text);
    let estate = load_files(&[f], &LoadOptions::default()).unwrap();
    let cms = estate.list(&Cluster::Management, &Gvk::core("ConfigMap"), Some("ns"));
    assert_eq!(cms.len(), 2);
    assert_eq!(estate.all(&Cluster::Management).len(), 3);
}

#[test]
fn load_files_with_a_directory_uses_the_directory_layout() {
    let dir = tempfile::tempdir().unwrap();
    let single = write(dir.path(), "one/secret.yaml", SECRET_A);
    write(dir.path(), "tree/regions/r1/s.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: r, namespace: ns1}\n");
    let estate = load_files(&[single, dir.path().join("tree")], &LoadOptions::default()).unwrap();
    assert!(estate.get(&Cluster::Region("r1".into()), &Gvk::secret(), Some("ns1"), "r").is_some());
    assert!(estate.get(&Cluster::Management, &Gvk::secret(), Some("kcm-system"), "a").is_some());
}

#[test]
fn directory_recursion_skips_hidden_and_non_manifest_files_and_symlink_loops() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a/b/c/deep.yaml", SECRET_A);
    write(dir.path(), ".git/config.yaml", "not: [valid");
    write(dir.path(), "a/.hidden.yaml", "not: [valid");
    write(dir.path(), "a/README.md", "# not yaml: [");
    write(
        dir.path(),
        "a/kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [b]\n",
    );
    std::os::unix::fs::symlink(dir.path().join("a"), dir.path().join("a/b/loop")).unwrap();
    let (estate, report) = load_dir_with_report(dir.path(), &LoadOptions::default()).unwrap();
    assert_eq!(estate.all(&Cluster::Management).len(), 1);
    assert!(
        report
            .warnings
            .iter()
            .any(|w| matches!(w, LoadWarning::Skipped { kind, .. } if kind.ends_with("Kustomization")))
    );
}

#[test]
fn namespaces_are_normalised_like_kubectl() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "x.yaml",
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: nons}}\n---\n{CRD_AWS_STATIC}---\n\
             apiVersion: infrastructure.cluster.x-k8s.io/v1beta2\nkind: AWSClusterStaticIdentity\n\
             metadata: {{name: id, namespace: kcm-system}}\n"
        ),
    );
    let (estate, report) = load_dir_with_report(dir.path(), &LoadOptions::default()).unwrap();
    assert!(estate.get(&Cluster::Management, &Gvk::secret(), Some("default"), "nons").is_some());
    let aws = Gvk::new("infrastructure.cluster.x-k8s.io", "v1beta2", "AWSClusterStaticIdentity");
    assert!(estate.get(&Cluster::Management, &aws, None, "id").is_some());
    assert!(report.warnings.iter().any(|w| matches!(w, LoadWarning::NamespaceDefaulted { .. })));
    assert!(report.warnings.iter().any(|w| matches!(w, LoadWarning::NamespaceDropped { .. })));
}

#[test]
fn duplicates_are_reported_and_the_later_wins() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "1.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: ns1}\ndata: {v: first}\n",
    );
    write(
        dir.path(),
        "2.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: ns1}\ndata: {v: second}\n",
    );
    let (estate, report) = load_dir_with_report(dir.path(), &LoadOptions::default()).unwrap();
    let cm = estate.get(&Cluster::Management, &Gvk::core("ConfigMap"), Some("ns1"), "c").unwrap();
    assert_eq!(cm["data"]["v"], "second");
    let dup = report.warnings.iter().find(|w| matches!(w, LoadWarning::Duplicate { .. })).unwrap();
    let text = dup.to_string();
    assert!(
        text.contains("ConfigMap ns1/c is defined twice") && text.contains("1.yaml") && text.contains("2.yaml"),
        "{text}"
    );
}

// ---- hostile input: every case is a clear LoadError naming the file, never a panic ----

fn load_err(files: &[(&str, &str)], opts: &LoadOptions) -> (PathBuf, LoadError) {
    let dir = tempfile::tempdir().unwrap();
    for (rel, text) in files {
        write(dir.path(), rel, text);
    }
    let err = load_dir(dir.path(), opts).unwrap_err();
    (dir.path().to_path_buf(), err)
}

#[test]
fn hostile_inputs_table() {
    let opts = LoadOptions::default();
    // (file, content, expected fragments of the message)
    let cases: &[(&str, &str, &[&str])] = &[
        ("empty.yaml", "", &["empty.yaml", "file is empty"]),
        ("blank.yaml", "  \n\n", &["blank.yaml", "file is empty"]),
        ("comments.yaml", "# nothing\n---\n# more\n", &["comments.yaml", "holds no objects"]),
        ("garbage.yaml", "apiVersion: v1\nkind: [unclosed\n", &["garbage.yaml:", "not valid YAML"]),
        ("scalar.yaml", "hello world\n", &["scalar.yaml", "document 1", "is a string, not an object"]),
        ("seq.yml", "- a\n- b\n", &["seq.yml", "is a sequence"]),
        ("bad.json", "{\"apiVersion\": ", &["bad.json", "not valid JSON"]),
        ("nokind.yaml", "apiVersion: v1\nmetadata: {name: x}\n", &["nokind.yaml", "document 1", "kind is missing"]),
        ("noapi.yaml", "kind: Secret\nmetadata: {name: x}\n", &["noapi.yaml", "apiVersion is missing"]),
        ("nometa.yaml", "apiVersion: v1\nkind: Secret\n", &["nometa.yaml", "metadata is missing"]),
        (
            "noname.yaml",
            "apiVersion: v1\nkind: Secret\nmetadata: {namespace: a}\n",
            &["noname.yaml", "metadata.name is missing", "add metadata.name"],
        ),
        (
            "gen.yaml",
            "apiVersion: v1\nkind: Secret\nmetadata: {generateName: a-}\n",
            &["gen.yaml", "generateName is not enough offline"],
        ),
        (
            "second.yaml",
            "apiVersion: v1\nkind: Secret\nmetadata: {name: ok}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: 7}\n",
            &["second.yaml", "document 2 (line 5)", "metadata.name is not a non-empty string", "digits as a number"],
        ),
        (
            "norway.yaml",
            "apiVersion: v1\nkind: Secret\nmetadata: {name: a, namespace: no}\n",
            &["norway.yaml", "metadata.namespace is not a string", "quote the value"],
        ),
        (
            "listitem.yaml",
            "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Secret, metadata: {name: a}}\n- {kind: Secret}\n",
            &["listitem.yaml", "items[1]", "apiVersion is missing"],
        ),
        ("binary.yaml", "apiVersion: v1\n\u{0}\u{1}", &["binary.yaml"]),
    ];
    for (file, text, want) in cases {
        let (_dir, err) = load_err(&[(file, text)], &opts);
        let msg = err.to_string();
        eprintln!("{msg}");
        for frag in *want {
            assert!(msg.contains(frag), "{file}: {msg:?} lacks {frag:?}");
        }
    }
}

#[test]
fn non_utf8_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bin.yaml"), [0xff, 0xfe, 0x00, 0x41]).unwrap();
    let msg = load_dir(dir.path(), &LoadOptions::default()).unwrap_err().to_string();
    assert!(msg.contains("bin.yaml") && msg.contains("not UTF-8"), "{msg}");
}

#[test]
fn yaml_bomb_with_nested_aliases_is_rejected_fast() {
    let mut bomb = String::from(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\nx:\n  l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n",
    );
    for i in 1..=9 {
        let p = i - 1;
        bomb.push_str(&format!("  l{i}: &l{i} [*l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}]\n"));
    }
    let start = Instant::now();
    let (_dir, err) = load_err(&[("bomb.yaml", &bomb)], &LoadOptions::default());
    eprintln!("{err}");
    assert!(matches!(err, LoadError::Parse(_)), "{err:?}");
    assert!(err.to_string().contains("bomb.yaml"), "{err}");
    // Generous bound: the point is that it does not expand 9^10 nodes.
    assert!(start.elapsed() < Duration::from_secs(20), "took {:?}", start.elapsed());
}

#[test]
fn huge_file_over_the_limit_is_refused_before_reading() {
    let opts = LoadOptions { max_file_bytes: 1024, ..LoadOptions::default() };
    let big = format!("{SECRET_A}data:\n  k: {}\n", "A".repeat(4096));
    let (_dir, err) = load_err(&[("big.yaml", &big)], &opts);
    let msg = err.to_string();
    assert!(msg.contains("big.yaml") && msg.contains("over the 1024-byte limit"), "{msg}");
    assert!(!msg.contains("AAAA"), "{msg}");
}

#[test]
fn unreadable_paths_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.yaml");
    let msg = load_files(std::slice::from_ref(&missing), &LoadOptions::default()).unwrap_err().to_string();
    assert!(msg.contains("nope.yaml") && msg.contains("does not exist"), "{msg}");
    let msg = load_dir(&dir.path().join("nodir"), &LoadOptions::default()).unwrap_err().to_string();
    assert!(msg.contains("nodir") && msg.contains("does not exist"), "{msg}");
    let file = write(dir.path(), "f.yaml", SECRET_A);
    let msg = load_dir(&file, &LoadOptions::default()).unwrap_err().to_string();
    assert!(msg.contains("is not a directory"), "{msg}");
    // A device is not a regular file: refused rather than read forever.
    let msg = load_files(&[PathBuf::from("/dev/zero")], &LoadOptions::default()).unwrap_err().to_string();
    assert!(msg.contains("/dev/zero") && msg.contains("not a regular file"), "{msg}");
}

#[test]
fn invalid_region_directory_name_is_an_error() {
    let (_dir, err) = load_err(&[("regions/Bad_Name/s.yaml", SECRET_A)], &LoadOptions::default());
    let msg = err.to_string();
    assert!(msg.contains("Bad_Name") && msg.contains("not a valid Region name"), "{msg}");
}

#[test]
fn file_count_is_bounded() {
    let opts = LoadOptions { max_files: 2, ..LoadOptions::default() };
    let files: Vec<(String, String)> = (0..3)
        .map(|i| (format!("s{i}.yaml"), format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: s{i}}}\n")))
        .collect();
    let refs: Vec<(&str, &str)> = files.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let (_dir, err) = load_err(&refs, &opts);
    assert!(err.to_string().contains("more than 2 files"), "{err}");
}

#[test]
fn load_files_report_lists_files() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "s.yaml", SECRET_A);
    let (_, report) = load_files_with_report(std::slice::from_ref(&f), &LoadOptions::default()).unwrap();
    assert_eq!(report.files, vec![f]);
    assert_eq!(report.objects.get(&Cluster::Management), Some(&1));
}
