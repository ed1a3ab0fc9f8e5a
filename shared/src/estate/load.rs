//! Loading an offline estate from YAML/JSON files (`lint -f`, `explain --from DIR`, the demo, tests).
//!
//! Layout of a directory: every `*.yaml`, `*.yml` and `*.json` file under it (recursively, in
//! sorted path order, hidden files and directories skipped) belongs to the management cluster,
//! except files under `<dir>/regions/<name>/`, which belong to the regional cluster of Region
//! `<name>`. Every such region directory makes that cluster known, even when it holds no file.
//! Files directly in `<dir>/regions/` (e.g. the Region objects themselves) are management files.
//!
//! Input is untrusted: files are size-capped before they are read, only regular files are read,
//! directory symlink loops are cut, YAML goes through [`crate::yaml`] (alias bombs, depth and
//! document count bounded), and every problem is a [`LoadError`] naming the file, the document
//! and the field, with what to do. Nothing here panics on bad input.
//!
//! Scope normalisation (what `kubectl apply` would store): a namespaced object without
//! `metadata.namespace` lands in `default`; a cluster-scoped one loses a stray namespace. Scope is
//! known for built-in kinds, k0rdent kinds and kinds whose CRD is among the loaded files; objects
//! of unknown scope are stored as written. Each normalisation is reported as a [`LoadWarning`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use super::{Cluster, MemoryEstate};
use crate::gvk::{Gvk, builtin_scope};
use crate::yaml::{self, Document, YamlError, YamlLimits};

/// Name of the directory whose subdirectories are regional clusters.
pub const REGIONS_DIR: &str = "regions";

#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub system_namespace: String,
    /// Largest file read, in bytes.
    pub max_file_bytes: u64,
    /// Most files read in one load (a directory of millions of files is refused, not walked).
    pub max_files: usize,
    /// Limits for each YAML stream.
    pub yaml: YamlLimits,
    /// Skip empty files and files holding only comments, as `kubectl apply -f dir/` does (lint),
    /// instead of rejecting them (an offline estate).
    pub skip_empty: bool,
    /// Keep each object only as [`super::trim::trim`] shapes it (what admission reads: no Secret
    /// values, CRDs without schemas, identity objects as metadata), trimmed as it is parsed so the
    /// whole files are never held (the webhook's `--estate`). Explain and lint need whole objects.
    pub trim: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            system_namespace: crate::DEFAULT_SYSTEM_NAMESPACE.to_string(),
            max_file_bytes: 16 << 20,
            max_files: 10_000,
            yaml: YamlLimits::default(),
            skip_empty: false,
            trim: false,
        }
    }
}

/// Where in a file an object came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocPos {
    /// 1-based document index (non-empty documents only).
    pub index: usize,
    /// 1-based line of the document; 0 when unknown.
    pub line: u64,
    /// Position in `items` for an item of a `kind: List`.
    pub list_item: Option<usize>,
}

impl fmt::Display for DocPos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "document {}", self.index)?;
        if let Some(i) = self.list_item {
            write!(f, " items[{i}]")?;
        }
        if self.line > 0 {
            write!(f, " (line {})", self.line)?;
        }
        Ok(())
    }
}

/// Why an estate could not be loaded. Messages never quote object values.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file or directory itself is the problem (missing, unreadable, too large, empty...).
    #[error("{path}: {message}", path = path.display())]
    File { path: PathBuf, message: String },
    /// The text is not valid YAML/JSON, a limit was hit, or a document is not an object.
    #[error("{0}")]
    Parse(#[from] YamlError),
    /// A document is an object but lacks what every Kubernetes object needs.
    #[error("{path}: {pos}: {field} {problem}: {fix}", path = path.display())]
    Object { path: PathBuf, pos: DocPos, field: &'static str, problem: &'static str, fix: &'static str },
}

impl LoadError {
    fn file(path: &Path, message: impl Into<String>) -> Self {
        LoadError::File { path: path.to_path_buf(), message: message.into() }
    }
}

/// Something worth telling the user that did not stop the load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadWarning {
    /// No CRD was loaded for this cluster, so "is this kind served here" cannot be answered.
    NoCrds { cluster: Cluster },
    /// `regions/<name>/` exists but the management files hold no Region of that name.
    RegionWithoutObject { region: String },
    /// The same object appears twice in one cluster; the later one was kept.
    Duplicate { cluster: Cluster, object: String, first: (PathBuf, DocPos), second: (PathBuf, DocPos) },
    /// A namespaced object without namespace was put in `default`, as kubectl would.
    NamespaceDefaulted { path: PathBuf, pos: DocPos, object: String },
    /// A cluster-scoped object carried a namespace, which was dropped.
    NamespaceDropped { path: PathBuf, pos: DocPos, object: String },
    /// A document that is not a cluster object (e.g. a kustomize `Kustomization`) was skipped.
    Skipped { path: PathBuf, pos: DocPos, kind: String },
}

impl fmt::Display for LoadWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadWarning::NoCrds { cluster } => write!(
                f,
                "served-checks skipped for {cluster}: no CRDs in its files (add the cluster's \
                 CustomResourceDefinitions, e.g. `kubectl get crd -o yaml`, to check which kinds it serves)"
            ),
            LoadWarning::RegionWithoutObject { region } => write!(
                f,
                "{REGIONS_DIR}/{region}/ holds regional files but the management files have no Region {region:?}: \
                 add the Region object or rename the directory"
            ),
            LoadWarning::Duplicate { cluster, object, first, second } => write!(
                f,
                "{object} is defined twice in {cluster} ({} {}, {} {}): the later one is used",
                first.0.display(),
                first.1,
                second.0.display(),
                second.1
            ),
            LoadWarning::NamespaceDefaulted { path, pos, object } => write!(
                f,
                "{}: {pos}: {object} has no metadata.namespace; loaded into \"default\" as kubectl would \
                 (set metadata.namespace to be explicit)",
                path.display()
            ),
            LoadWarning::NamespaceDropped { path, pos, object } => {
                write!(f, "{}: {pos}: {object} is cluster-scoped; its metadata.namespace is ignored", path.display())
            }
            LoadWarning::Skipped { path, pos, kind } => {
                write!(f, "{}: {pos}: {kind} is not a cluster object; skipped", path.display())
            }
        }
    }
}

/// What a load read and what it noticed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Files read, in load order.
    pub files: Vec<PathBuf>,
    /// Objects stored per cluster.
    pub objects: BTreeMap<Cluster, usize>,
    pub warnings: Vec<LoadWarning>,
    /// Where each stored object came from (its first occurrence), by cluster and `Kind ns/name`.
    pub origins: BTreeMap<(Cluster, String), (PathBuf, DocPos)>,
}

/// Loads `dir`: files under it (recursively) are the management cluster, except files under
/// `regions/<name>/`, which are that Region's cluster.
pub fn load_dir(dir: &Path, opts: &LoadOptions) -> Result<MemoryEstate, LoadError> {
    load_dir_with_report(dir, opts).map(|(estate, _)| estate)
}

/// Loads individual files, all into the management cluster (`lint -f`). A directory among them is
/// loaded like [`load_dir`] (its `regions/<name>/` subdirectories are regional clusters).
pub fn load_files(files: &[PathBuf], opts: &LoadOptions) -> Result<MemoryEstate, LoadError> {
    load_files_with_report(files, opts).map(|(estate, _)| estate)
}

/// [`load_dir`], also returning what was read and the warnings to print.
pub fn load_dir_with_report(dir: &Path, opts: &LoadOptions) -> Result<(MemoryEstate, LoadReport), LoadError> {
    let mut loader = Loader::new(opts);
    loader.add_dir(dir)?;
    Ok(loader.finish())
}

/// [`load_files`], also returning what was read and the warnings to print.
pub fn load_files_with_report(files: &[PathBuf], opts: &LoadOptions) -> Result<(MemoryEstate, LoadReport), LoadError> {
    load_inputs_with_report(files, &[], opts)
}

/// [`load_files_with_report`] plus streams already read (standard input), each named by the path
/// given with it; all go to the management cluster, after the files.
pub fn load_inputs_with_report(
    files: &[PathBuf],
    texts: &[(PathBuf, String)],
    opts: &LoadOptions,
) -> Result<(MemoryEstate, LoadReport), LoadError> {
    let mut loader = Loader::new(opts);
    for (path, text) in texts {
        loader.add_text(path, text, &Cluster::Management)?;
    }
    for path in files {
        let meta = std::fs::metadata(path).map_err(|e| io_error(path, &e))?;
        if meta.is_dir() {
            loader.add_dir(path)?;
        } else {
            loader.add_file(path, &Cluster::Management)?;
        }
    }
    Ok(loader.finish())
}

/// One object waiting for scope normalisation (which needs every CRD first), as compact JSON text:
/// a fraction of a parsed tree's size, and the objects kept are then built after every file's
/// parse is freed, side by side in the heap instead of scattered between the parse's leftovers.
struct Pending {
    cluster: Cluster,
    path: PathBuf,
    pos: DocPos,
    crd: bool,
    text: String,
}

impl Pending {
    fn value(&self) -> Value {
        // Cannot fail: serde_json wrote the text from a Value. Null would be skipped as kindless.
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
}

struct Loader<'a> {
    opts: &'a LoadOptions,
    estate: MemoryEstate,
    report: LoadReport,
    pending: Vec<Pending>,
    /// Region directories seen (for the RegionWithoutObject warning).
    region_dirs: BTreeSet<String>,
    /// Canonical directories already walked: cuts symlink loops and double loads.
    visited: BTreeSet<PathBuf>,
}

/// Deepest directory nesting walked.
const MAX_DIR_DEPTH: usize = 32;

impl<'a> Loader<'a> {
    fn new(opts: &'a LoadOptions) -> Self {
        Loader {
            opts,
            estate: MemoryEstate::new(opts.system_namespace.clone()),
            report: LoadReport::default(),
            pending: Vec::new(),
            region_dirs: BTreeSet::new(),
            visited: BTreeSet::new(),
        }
    }

    fn add_dir(&mut self, dir: &Path) -> Result<(), LoadError> {
        let meta = std::fs::metadata(dir).map_err(|e| io_error(dir, &e))?;
        if !meta.is_dir() {
            return Err(LoadError::file(dir, "is not a directory: pass files with -f, or a directory of YAML files"));
        }
        for entry in sorted_entries(dir)? {
            let name = entry.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
            if name == REGIONS_DIR && entry.is_dir() {
                for sub in sorted_entries(&entry)? {
                    if sub.is_dir() {
                        let region = sub.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
                        if !is_valid_name(&region) {
                            return Err(LoadError::file(
                                &sub,
                                "is not a valid Region name (lowercase letters, digits, '-' and '.'): \
                                 name the directory after the Region object",
                            ));
                        }
                        let cluster = Cluster::Region(region.clone());
                        self.estate.add_cluster(cluster.clone());
                        self.region_dirs.insert(region);
                        self.walk(&sub, &cluster, 1)?;
                    } else {
                        self.add_entry_file(&sub, &Cluster::Management)?;
                    }
                }
            } else if entry.is_dir() {
                self.walk(&entry, &Cluster::Management, 1)?;
            } else {
                self.add_entry_file(&entry, &Cluster::Management)?;
            }
        }
        Ok(())
    }

    fn walk(&mut self, dir: &Path, cluster: &Cluster, depth: usize) -> Result<(), LoadError> {
        if depth > MAX_DIR_DEPTH {
            return Err(LoadError::file(dir, format!("is nested more than {MAX_DIR_DEPTH} directories deep")));
        }
        let canonical = std::fs::canonicalize(dir).map_err(|e| io_error(dir, &e))?;
        if !self.visited.insert(canonical) {
            return Ok(()); // a symlink back to a directory already read
        }
        for entry in sorted_entries(dir)? {
            if entry.is_dir() {
                self.walk(&entry, cluster, depth + 1)?;
            } else {
                self.add_entry_file(&entry, cluster)?;
            }
        }
        Ok(())
    }

    /// A file found while walking: only manifest extensions are read.
    fn add_entry_file(&mut self, path: &Path, cluster: &Cluster) -> Result<(), LoadError> {
        if is_manifest(path) { self.add_file(path, cluster) } else { Ok(()) }
    }

    fn add_file(&mut self, path: &Path, cluster: &Cluster) -> Result<(), LoadError> {
        if self.report.files.len() >= self.opts.max_files {
            return Err(LoadError::file(
                path,
                format!("more than {} files to load: point at a smaller directory", self.opts.max_files),
            ));
        }
        let text = read_capped(path, self.opts.max_file_bytes)?;
        self.add_text(path, &text, cluster)
    }

    fn add_text(&mut self, path: &Path, text: &str, cluster: &Cluster) -> Result<(), LoadError> {
        if text.len() as u64 > self.opts.max_file_bytes {
            return Err(LoadError::file(path, format!("is larger than {} bytes", self.opts.max_file_bytes)));
        }
        if self.opts.skip_empty && text.trim().is_empty() {
            return Ok(());
        }
        if text.trim().is_empty() {
            return Err(LoadError::file(path, "file is empty: add Kubernetes objects to it or remove it"));
        }
        let source = path.display().to_string();
        let is_json = path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("json"));
        let docs = if is_json {
            yaml::parse_json_documents(text, &source)?
        } else {
            yaml::parse_documents_with(text, &source, &self.opts.yaml)?
        };
        if docs.is_empty() && self.opts.skip_empty {
            return Ok(());
        }
        if docs.is_empty() {
            return Err(LoadError::file(
                path,
                "holds no objects (only comments or empty documents): add objects or remove the file",
            ));
        }
        self.report.files.push(path.to_path_buf());
        for Document { index, line, list_item, value } in docs {
            let pos = DocPos { index, line, list_item };
            if let Some(kind) = skipped_kind(&value) {
                self.report.warnings.push(LoadWarning::Skipped { path: path.to_path_buf(), pos, kind });
                continue;
            }
            check_object(&value, path, &pos)?;
            let value = if self.opts.trim { super::trim::trim(value) } else { value };
            let crd = Gvk::of(&value).is_some_and(|g| g == Gvk::crd());
            let text = value.to_string();
            self.pending.push(Pending { cluster: cluster.clone(), path: path.to_path_buf(), pos, crd, text });
        }
        Ok(())
    }

    fn finish(mut self) -> (MemoryEstate, LoadReport) {
        let pending = std::mem::take(&mut self.pending);
        // CRDs first, so scope is known for every object whatever the file order.
        for p in pending.iter().filter(|p| p.crd) {
            self.estate.insert(&p.cluster, p.value());
        }
        let mut shared = SameObjects::default();
        for p in pending {
            let mut value = p.value();
            let Pending { cluster, path, pos, .. } = p;
            let Some(gvk) = Gvk::of(&value) else { continue };
            let object = normalise_scope(&self.estate, &cluster, &gvk, &mut value, &path, &pos, &mut self.report);
            match self.report.origins.entry((cluster.clone(), object)) {
                std::collections::btree_map::Entry::Vacant(v) => {
                    v.insert((path.clone(), pos.clone()));
                }
                std::collections::btree_map::Entry::Occupied(o) => {
                    let ((cluster, object), first) = (o.key().clone(), o.get().clone());
                    let second = (path.clone(), pos.clone());
                    self.report.warnings.push(LoadWarning::Duplicate { cluster, object, first, second });
                }
            }
            // Packed objects are text in the store: sharing their parsed form would only keep it alive.
            let value =
                if super::store::held_packed(&gvk.group, &gvk.kind) { Arc::new(value) } else { shared.get(value) };
            if self.estate.insert_shared(&cluster, value) {
                *self.report.objects.entry(cluster).or_default() += 1;
            }
        }
        for cluster in self.estate.clusters() {
            if !self.estate.has_crds(&cluster) {
                self.report.warnings.push(LoadWarning::NoCrds { cluster });
            }
        }
        for region in &self.region_dirs {
            let gvk = Gvk::region();
            if crate::estate::Estate::get(&self.estate, &Cluster::Management, &gvk, None, region).is_none() {
                self.report.warnings.push(LoadWarning::RegionWithoutObject { region: region.clone() });
            }
        }
        (self.estate, self.report)
    }
}

/// One copy of objects that are equal (the same CRDs and ProviderInterfaces in every regional
/// cluster), found by a hash of their JSON text.
#[derive(Default)]
struct SameObjects(std::collections::HashMap<u64, Vec<Arc<Value>>>);

impl SameObjects {
    fn get(&mut self, value: Value) -> Arc<Value> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        value.to_string().hash(&mut h);
        let same = self.0.entry(h.finish()).or_default();
        if let Some(first) = same.iter().find(|o| ***o == value) {
            return Arc::clone(first);
        }
        let value = Arc::new(value);
        same.push(Arc::clone(&value));
        value
    }
}

/// Kinds that are known to be namespaced (`Some(true)`) or cluster-scoped (`Some(false)`) without
/// a CRD in the files.
fn known_scope(estate: &MemoryEstate, cluster: &Cluster, gvk: &Gvk) -> Option<bool> {
    use crate::estate::Estate;
    if let Some(ns) = builtin_scope(gvk) {
        return Some(ns);
    }
    if gvk.group == crate::K0RDENT_GROUP {
        match gvk.kind.as_str() {
            "Credential" | "ClusterDeployment" | "ClusterTemplate" | "ServiceTemplate" => return Some(true),
            "Region" | "ProviderInterface" | "Management" | "AccessManagement" | "Release" => return Some(false),
            _ => {}
        }
    }
    // A regional cluster without its own CRD files: the management CRD says the same scope.
    estate.namespaced(cluster, gvk).or_else(|| estate.namespaced(&Cluster::Management, gvk))
}

/// Applies kubectl's namespace handling; returns the object's display name (`Kind ns/name`).
fn normalise_scope(
    estate: &MemoryEstate,
    cluster: &Cluster,
    gvk: &Gvk,
    value: &mut Value,
    path: &Path,
    pos: &DocPos,
    report: &mut LoadReport,
) -> String {
    let scope = known_scope(estate, cluster, gvk);
    let mut warning = None;
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        let has_ns = meta.get("namespace").and_then(Value::as_str).is_some_and(|s| !s.is_empty());
        match (scope, has_ns) {
            (Some(true), false) => {
                meta.insert("namespace".into(), Value::String("default".into()));
                warning = Some(true);
            }
            (Some(false), true) => {
                meta.remove("namespace");
                warning = Some(false);
            }
            _ => {}
        }
    }
    let object = format!("{} {}", gvk.kind, crate::model::display_name(value));
    let (path, pos) = (path.to_path_buf(), pos.clone());
    match warning {
        Some(true) => report.warnings.push(LoadWarning::NamespaceDefaulted { path, pos, object: object.clone() }),
        Some(false) => report.warnings.push(LoadWarning::NamespaceDropped { path, pos, object: object.clone() }),
        None => {}
    }
    object
}

/// Documents that are tooling configuration rather than cluster objects.
fn skipped_kind(value: &Value) -> Option<String> {
    let api_version = value.get("apiVersion").and_then(Value::as_str)?;
    let kind = value.get("kind").and_then(Value::as_str)?;
    (api_version.starts_with("kustomize.config.k8s.io/") && (kind == "Kustomization" || kind == "Component"))
        .then(|| format!("{api_version} {kind}"))
}

fn check_object(value: &Value, path: &Path, pos: &DocPos) -> Result<(), LoadError> {
    let err =
        |field, problem, fix| LoadError::Object { path: path.to_path_buf(), pos: pos.clone(), field, problem, fix };
    let non_empty_str = |v: Option<&Value>| v.and_then(Value::as_str).is_some_and(|s| !s.is_empty());
    let present = |v: Option<&Value>| v.is_some_and(|v| !v.is_null());
    for field in ["apiVersion", "kind"] {
        if !non_empty_str(value.get(field)) {
            let problem = if present(value.get(field)) { "is not a non-empty string" } else { "is missing" };
            return Err(err(
                field,
                problem,
                "every object needs apiVersion, kind and metadata.name: add it (e.g. `apiVersion: v1`, `kind: Secret`) or \
                 remove the document",
            ));
        }
    }
    let Some(meta) = value.get("metadata") else {
        return Err(err("metadata", "is missing", "every object needs metadata.name: add metadata with a name"));
    };
    if !meta.is_object() {
        return Err(err("metadata", "is not a mapping", "make metadata a mapping with a name"));
    }
    if !non_empty_str(meta.get("name")) {
        let (problem, fix) = if non_empty_str(meta.get("generateName")) {
            ("is missing (generateName is not enough offline)", "give the object a fixed metadata.name")
        } else if present(meta.get("name")) {
            ("is not a non-empty string", fix_for(meta.get("name")))
        } else {
            ("is missing", "every object needs a name: add metadata.name")
        };
        return Err(err("metadata.name", problem, fix));
    }
    if present(meta.get("namespace")) && !meta.get("namespace").is_some_and(Value::is_string) {
        return Err(err("metadata.namespace", "is not a string", fix_for(meta.get("namespace"))));
    }
    Ok(())
}

/// The fix for a name field holding a non-string: YAML 1.1 (what kubectl reads) turns unquoted
/// `yes`, `no`, `on`, `off`, `y`, `n` into booleans and digits into numbers.
fn fix_for(v: Option<&Value>) -> &'static str {
    match v {
        Some(Value::Bool(_)) => "quote the value: YAML reads unquoted yes/no/on/off/y/n as booleans",
        Some(Value::Number(_)) => "quote the value: YAML reads unquoted digits as a number",
        _ => "set it to a name string",
    }
}

/// Directory entries sorted by path, hidden ones (`.git`, editor swap files) skipped.
fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let rd = std::fs::read_dir(dir).map_err(|e| io_error(dir, &e))?;
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| io_error(dir, &e))?;
        let hidden = entry.file_name().to_str().is_none_or(|n| n.starts_with('.'));
        if !hidden {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

fn is_manifest(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| ["yaml", "yml", "json"].iter().any(|x| e.eq_ignore_ascii_case(x)))
}

/// DNS-1123 subdomain, the rule for Region names.
fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && name.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
}

/// Reads a regular file of at most `max` bytes as UTF-8.
fn read_capped(path: &Path, max: u64) -> Result<String, LoadError> {
    let meta = std::fs::metadata(path).map_err(|e| io_error(path, &e))?;
    if !meta.is_file() {
        return Err(LoadError::file(path, "is not a regular file (device, pipe or socket): pass a YAML file"));
    }
    let too_large = |size: String| {
        LoadError::file(
            path,
            format!("is {size} bytes, over the {max}-byte limit for one file: split it or raise the limit"),
        )
    };
    if meta.len() > max {
        return Err(too_large(meta.len().to_string()));
    }
    let file = std::fs::File::open(path).map_err(|e| io_error(path, &e))?;
    // The size can change between stat and read: never read more than the cap.
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(max.saturating_add(1)).read_to_end(&mut bytes).map_err(|e| io_error(path, &e))?;
    if bytes.len() as u64 > max {
        return Err(too_large(format!("more than {max}")));
    }
    String::from_utf8(bytes).map_err(|e| {
        LoadError::file(
            path,
            format!(
                "is not UTF-8 text (invalid byte at offset {}): is it a binary file?",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

fn io_error(path: &Path, e: &std::io::Error) -> LoadError {
    let hint = match e.kind() {
        std::io::ErrorKind::NotFound => "does not exist: check the path",
        std::io::ErrorKind::PermissionDenied => "cannot be read (permission denied): check its permissions",
        _ => "cannot be read",
    };
    LoadError::file(path, format!("{hint} ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::estate::Estate;

    fn example(trim: bool) -> MemoryEstate {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/estate");
        let opts = LoadOptions { trim, ..LoadOptions::default() };
        load_dir(&dir, &opts).unwrap()
    }

    #[test]
    fn a_trimmed_load_holds_each_object_as_the_trim_rule_shapes_it() {
        let (whole, trimmed) = (example(false), example(true));
        assert_eq!(whole.clusters(), trimmed.clusters());
        let mut secrets = 0;
        for cluster in whole.clusters() {
            let (w, t) = (whole.all(&cluster), trimmed.all(&cluster));
            assert_eq!(w.len(), t.len(), "{cluster}");
            for (w, t) in w.iter().zip(&t) {
                assert_eq!(super::super::trim::trim(Value::clone(w)), **t, "{cluster}");
                if Gvk::of(t).is_some_and(|g| g == Gvk::secret()) {
                    secrets += 1;
                    let values = ["data", "stringData"].map(|f| t.get(f).and_then(Value::as_object));
                    assert!(values.iter().flatten().flat_map(|m| m.values()).all(|v| v == ""), "{t}");
                }
            }
            assert_eq!(whole.has_crds(&cluster), trimmed.has_crds(&cluster));
        }
        assert!(secrets > 0, "the example holds Secrets");
    }

    #[test]
    fn equal_objects_of_different_clusters_are_held_once() {
        let trimmed = example(true);
        let (r1, r2) = (Cluster::Region("region1".into()), Cluster::Region("region2".into()));
        let shared = trimmed
            .list(&r1, &Gvk::crd(), None)
            .iter()
            .filter(|a| trimmed.list(&r2, &Gvk::crd(), None).iter().any(|b| Arc::ptr_eq(a, b)))
            .count();
        assert!(shared > 0, "the regional clusters of the example share CRDs");
    }
}
