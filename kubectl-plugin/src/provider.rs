//! `kubectl credential provider ...`: validate kubelet `CredentialProviderConfig` files (a file or,
//! as kubelet 1.34 reads it, a directory) and explain which image credential providers the
//! kubelet runs for an image. The rules live in `kubelet_providers`; this module only
//! reads files and renders.
//!
//! Every problem is reported once, naming its file and provider (name and `providers[i]`), with a
//! stable code: errors (`KCP0xx`, the kubelet would refuse the config) and lint-level warnings
//! (`KCP1xx`/`KCP2xx`, it accepts a config that does not do what it seems to). Warnings never
//! change the exit status: 0 valid / evaluated, 1 the kubelet would reject the config (or the
//! image name), 2 the input could not be read.

use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use kubelet_providers::config::MAX_CONFIG_FILE_BYTES;
use kubelet_providers::gofmt::quote;
use kubelet_providers::lint::image_argument_warning;
use kubelet_providers::report::KCP_UNREADABLE;
use kubelet_providers::{
    ConfigFinding, ConfigReport, CredentialProviderConfig, LoadError, MatchReport, ValidationOptions, check_files,
    config_files_in_dir, providers_for,
};
use serde::Serialize;
use serde_json::json;

use crate::cli::ReportOutput;

/// Exit status: the config is valid (validate) or was evaluated (match).
pub const EXIT_OK: u8 = 0;
/// Exit status: the kubelet would refuse the config, or the image name.
pub const EXIT_INVALID: u8 = 1;
/// Exit status: the config path could not be read.
pub const EXIT_UNREADABLE: u8 = 2;

/// `kubectl credential provider <command>`.
#[derive(Debug, Args)]
pub struct ProviderArgs {
    #[command(subcommand)]
    pub command: ProviderCommand,
}

#[derive(Debug, Subcommand)]
pub enum ProviderCommand {
    /// Check a kubelet CredentialProviderConfig (file or directory) exactly as kubelet 1.34 does,
    /// and warn about matchImages entries that never match what they seem to.
    ///
    /// Exit status: 0 valid (warnings allowed), 1 invalid, 2 unreadable.
    #[command(after_help = "Examples:
  # Check the file the kubelet reads with --image-credential-provider-config
  kubectl credential provider validate --config /etc/kubernetes/credential-providers.yaml

  # The same for a directory of configs, as JSON for a script (errors and warnings with codes)
  kubectl credential provider validate --config /etc/kubernetes/providers.d/ -o json")]
    Validate(ValidateArgs),
    /// Show which credential providers the kubelet runs for an image, in the order it runs them.
    ///
    /// Exit status: 0 evaluated (whether or not a provider matched), 1 invalid config or image
    /// name, 2 unreadable config.
    #[command(after_help = "Examples:
  # Which providers the kubelet runs for an ECR image
  kubectl credential provider match 123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:v1 --config providers.yaml

  # Match the image exactly as written (no docker.io/library normalisation)
  kubectl credential provider match nginx:1.25 --config providers.yaml --raw")]
    Match(MatchArgs),
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The kubelet's --image-credential-provider-config: a file, or a directory whose *.json,
    /// *.yaml and *.yml files are read in name order.
    #[arg(long, value_name = "PATH")]
    pub config: PathBuf,

    /// Output format: text, or json|yaml for scripts (`valid`, `errors`, `warnings`).
    #[arg(short = 'o', long, value_enum, default_value_t = ReportOutput::Text)]
    pub output: ReportOutput,
}

#[derive(Debug, Args)]
pub struct MatchArgs {
    /// Image as written in a Pod spec, e.g. nginx:1.25 or registry.example.com:5000/team/app@sha256:...
    pub image: String,

    /// The kubelet's --image-credential-provider-config (file or directory).
    #[arg(long, value_name = "PATH")]
    pub config: PathBuf,

    /// Match IMAGE verbatim instead of normalising it as the kubelet does
    /// (nginx:1.25 -> docker.io/library/nginx).
    #[arg(long)]
    pub raw: bool,

    /// Output format: text, or json|yaml for scripts.
    #[arg(short = 'o', long, value_enum, default_value_t = ReportOutput::Text)]
    pub output: ReportOutput,
}

/// What a provider command prints and how it exits. The caller writes `stdout` and `stderr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub stdout: String,
    pub stderr: String,
    pub exit: u8,
}

/// Runs a `provider` subcommand.
pub fn run(args: &ProviderArgs) -> Outcome {
    match &args.command {
        ProviderCommand::Validate(a) => run_validate(&a.config, a.output),
        ProviderCommand::Match(a) => run_match(&a.image, &a.config, a.raw, a.output),
    }
}

/// `validate -o json|yaml`: `{"valid", "kubeletMessage", "errors": [finding], "warnings": [finding]}`,
/// a finding being `{"code", "severity", "file", "provider": {"name", "index", "file"}, "field",
/// "message", "hint", "firstDeclared"}` (empty parts left out).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ValidateBody<'a> {
    valid: bool,
    /// The one line the kubelet logs when it refuses the config.
    kubelet_message: Option<&'a str>,
    errors: Vec<&'a ConfigFinding>,
    warnings: Vec<&'a ConfigFinding>,
}

impl<'a> ValidateBody<'a> {
    fn of(report: &'a ConfigReport) -> Self {
        ValidateBody {
            valid: report.valid(),
            kubelet_message: report.kubelet_message.as_deref(),
            errors: report.errors().collect(),
            warnings: report.warnings().collect(),
        }
    }
}

/// `provider validate --config PATH`.
pub fn run_validate(config: &Path, output: ReportOutput) -> Outcome {
    let label = config.to_string_lossy();
    let report = match check(config) {
        Ok(r) => r,
        Err(e) => return unreadable(output, &e),
    };
    let stdout = match output {
        ReportOutput::Text => validate_text(&label, &report),
        ReportOutput::Json | ReportOutput::Yaml => structured(&ValidateBody::of(&report), output),
    };
    Outcome { stdout, stderr: String::new(), exit: if report.valid() { EXIT_OK } else { EXIT_INVALID } }
}

/// `provider match IMAGE --config PATH [--raw]`: JSON
/// `{"image", "normalized", "providers": [{"name", "matched", "matchImage"}], "warnings"}` in
/// config order. An invalid config prints the validate output; an invalid image name prints
/// `{"image", "normalized": null, "providers": [], "error"}`.
pub fn run_match(image: &str, config: &Path, raw: bool, output: ReportOutput) -> Outcome {
    let label = config.to_string_lossy();
    let report = match check(config) {
        Ok(r) => r,
        Err(e) => return unreadable(output, &e),
    };
    if !report.valid() {
        let stdout = match output {
            ReportOutput::Text => validate_text(&label, &report),
            ReportOutput::Json | ReportOutput::Yaml => structured(&ValidateBody::of(&report), output),
        };
        return Outcome { stdout, stderr: String::new(), exit: EXIT_INVALID };
    }
    // The image argument first: it is what this command was asked about.
    let mut warnings: Vec<ConfigFinding> = if raw { None } else { image_argument_warning(image) }.into_iter().collect();
    warnings.extend(report.warnings().cloned());
    match providers_for(&report.config, image, raw) {
        Ok(matched) => {
            let (stdout, stderr) = match output {
                ReportOutput::Text => (match_text(&matched, &report.config), findings_text(&warnings)),
                ReportOutput::Json | ReportOutput::Yaml => {
                    #[derive(Serialize)]
                    struct Body<'a> {
                        #[serde(flatten)]
                        matched: &'a MatchReport,
                        warnings: &'a [ConfigFinding],
                    }
                    (structured(&Body { matched: &matched, warnings: &warnings }, output), String::new())
                }
            };
            Outcome { stdout, stderr, exit: EXIT_OK }
        }
        Err(e) => match output {
            ReportOutput::Text => Outcome {
                stdout: String::new(),
                stderr: format!(
                    "error: {e}\nThe kubelet fails this pull with InvalidImageName before any credential provider \
                     runs.\n"
                ),
                exit: EXIT_INVALID,
            },
            ReportOutput::Json | ReportOutput::Yaml => {
                let body = json!({"image": image, "normalized": null, "providers": [], "error": e.to_string()});
                Outcome { stdout: structured(&body, output), stderr: String::new(), exit: EXIT_INVALID }
            }
        },
    }
}

/// Reads and checks the config at `path`; `Err` only when it cannot be read at all.
pub fn check(path: &Path) -> Result<ConfigReport, LoadError> {
    match read_config_files(path) {
        Ok(files) => Ok(check_files(&files, &ValidationOptions::default())),
        Err(e) if e.is_unreadable() => Err(e),
        Err(e) => Ok(ConfigReport::from_load_error(&e)),
    }
}

/// Reads `path` the way the kubelet's readCredentialProviderConfig does: stat, then the file or
/// the directory's config files in sorted order, as `(path, contents)`. Decoding and validation
/// are the core's ([`check_files`]).
fn read_config_files(path: &Path) -> Result<Vec<(String, Vec<u8>)>, LoadError> {
    let label = path.to_string_lossy().into_owned();
    if label.is_empty() {
        return Err(LoadError::EmptyPath);
    }
    let meta = std::fs::metadata(path)
        .map_err(|e| LoadError::Access { path: label.clone(), reason: format!("stat {label}: {}", io_reason(&e)) })?;
    let files = if meta.is_dir() {
        let listing = std::fs::read_dir(path)
            .and_then(|it| {
                it.map(|entry| {
                    let entry = entry?;
                    let is_dir = entry.file_type()?.is_dir();
                    Ok((entry.file_name().to_string_lossy().into_owned(), is_dir))
                })
                .collect::<std::io::Result<Vec<_>>>()
            })
            .map_err(|e| LoadError::ReadDir {
                path: label.clone(),
                reason: format!("open {label}: {}", io_reason(&e)),
            })?;
        config_files_in_dir(&label, &listing)?
    } else {
        vec![label]
    };
    let mut contents = Vec::with_capacity(files.len());
    for file in files {
        let data = read_limited(Path::new(&file))?;
        contents.push((file, data));
    }
    Ok(contents)
}

/// Reads at most [`MAX_CONFIG_FILE_BYTES`]; a larger file is refused rather than loaded.
fn read_limited(path: &Path) -> Result<Vec<u8>, LoadError> {
    let label = path.to_string_lossy().into_owned();
    let read_err = |e: std::io::Error, op: &str| LoadError::ReadFile {
        path: label.clone(),
        reason: format!("{op} {label}: {}", io_reason(&e)),
    };
    let file = std::fs::File::open(path).map_err(|e| read_err(e, "open"))?;
    let mut data = Vec::new();
    file.take(MAX_CONFIG_FILE_BYTES as u64 + 1).read_to_end(&mut data).map_err(|e| read_err(e, "read"))?;
    if data.len() > MAX_CONFIG_FILE_BYTES {
        return Err(LoadError::TooLarge { path: label, limit: MAX_CONFIG_FILE_BYTES });
    }
    Ok(data)
}

/// An io::Error in Go's words (`no such file or directory`), without Rust's `(os error N)`.
fn io_reason(e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::NotFound => "no such file or directory".into(),
        ErrorKind::PermissionDenied => "permission denied".into(),
        ErrorKind::IsADirectory => "is a directory".into(),
        ErrorKind::NotADirectory => "not a directory".into(),
        _ => {
            let text = e.to_string();
            let text = text.split(" (os error").next().unwrap_or_default();
            let mut chars = text.chars();
            chars.next().map(|c| c.to_lowercase().chain(chars).collect()).unwrap_or_default()
        }
    }
}

/// The path cannot be read: text on stderr, or the validate shape with one `KCP000` error.
fn unreadable(output: ReportOutput, e: &LoadError) -> Outcome {
    let message = e.to_string();
    match output {
        ReportOutput::Text => {
            Outcome { stdout: String::new(), stderr: format!("error: {message}\n"), exit: EXIT_UNREADABLE }
        }
        ReportOutput::Json | ReportOutput::Yaml => {
            let finding = ConfigFinding { message: message.clone(), ..ConfigFinding::bare(KCP_UNREADABLE, "") };
            let body = ValidateBody {
                valid: false,
                kubelet_message: Some(&message),
                errors: vec![&finding],
                warnings: vec![],
            };
            Outcome { stdout: structured(&body, output), stderr: String::new(), exit: EXIT_UNREADABLE }
        }
    }
}

fn structured(value: &impl Serialize, output: ReportOutput) -> String {
    let mut buf = Vec::new();
    match crate::cmd::write_structured(&mut buf, value, output == ReportOutput::Yaml) {
        Ok(()) => String::from_utf8_lossy(&buf).into_owned(),
        Err(e) => format!("error: {e}\n"),
    }
}

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

fn validate_text(label: &str, report: &ConfigReport) -> String {
    let mut s = String::new();
    let (errors, warnings) = (report.errors().count(), report.warnings().count());
    let warned = if warnings > 0 { format!(", {}", plural(warnings, "warning")) } else { String::new() };
    if report.valid() {
        let config = &report.config;
        let _ = writeln!(s, "{label}: valid ({}){warned}", plural(config.providers.len(), "provider"));
        if config.files.len() > 1 || config.files.first().is_some_and(|(f, _)| f != label) {
            for (file, version) in &config.files {
                let _ = writeln!(s, "  file {file} ({})", version.api_version());
            }
        }
        for p in &config.providers {
            let _ = writeln!(
                s,
                "  {}  matchImages: {}  defaultCacheDuration: {}",
                p.name,
                p.match_images.join(", "),
                p.default_cache_duration.map(|d| d.to_string()).unwrap_or_default()
            );
        }
        s.push_str(&findings_text(&report.findings));
        let _ = writeln!(
            s,
            "Each provider's binary must exist as <--image-credential-provider-bin-dir>/<name> on every node."
        );
    } else {
        let _ =
            writeln!(s, "{label}: INVALID: the kubelet would refuse to start ({}{warned})", plural(errors, "error"));
        s.push_str(&findings_text(&report.findings));
    }
    s
}

/// One block per finding, like `lint`'s text:
/// `FILE: ERROR  provider "NAME"  FIELD  [CODE]`, the message, the hint.
fn findings_text<'a>(findings: impl IntoIterator<Item = &'a ConfigFinding>) -> String {
    let mut s = String::new();
    for f in findings {
        let mut head = String::new();
        if !f.file.is_empty() {
            let _ = write!(head, "{}: ", f.file);
        }
        head.push_str(if f.is_error() { "ERROR" } else { "WARN" });
        if let Some(p) = &f.provider {
            let _ = write!(head, "  provider {}", quote(&p.name));
        }
        if !f.field.is_empty() {
            let _ = write!(head, "  {}", f.field);
        }
        let _ = writeln!(s, "{head}  [{}]", f.code);
        let _ = writeln!(s, "    {}", f.message);
        if !f.hint.is_empty() {
            let _ = writeln!(s, "    hint: {}", f.hint);
        }
    }
    s
}

fn match_text(report: &MatchReport, config: &CredentialProviderConfig) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "image:      {}", report.image);
    let _ = writeln!(s, "normalized: {}", report.normalized);
    let width = report.providers.iter().map(|p| p.name.len()).max().unwrap_or(0).max("PROVIDER".len());
    let _ = writeln!(s, "{:<width$}  MATCHED  MATCH IMAGE", "PROVIDER");
    for p in &report.providers {
        let matched = if p.matched { "yes" } else { "no" };
        let _ = writeln!(s, "{:<width$}  {matched:<7}  {}", p.name, p.match_image.as_deref().unwrap_or("-"));
    }
    let invoked = report.invoked();
    if invoked.is_empty() {
        let _ = writeln!(
            s,
            "No provider runs for {}: the kubelet uses only pull secrets and the node's docker config, or \
             pulls anonymously.",
            report.normalized
        );
    } else {
        let _ = writeln!(s, "The kubelet runs, in this order: {}.", invoked.join(", "));
        // Service-account token providers can still be skipped per pod (reference §9).
        for p in config.providers.iter().filter(|p| invoked.contains(&p.name.as_str())) {
            let Some(t) = &p.token_attributes else { continue };
            let mut conditions = Vec::new();
            if t.require_service_account == Some(true) {
                conditions.push("the pod has a service account".to_string());
            }
            if !t.required_service_account_annotation_keys.is_empty() {
                conditions.push(format!(
                    "that service account has the annotations {}",
                    t.required_service_account_annotation_keys.join(", ")
                ));
            }
            if !conditions.is_empty() {
                let _ = writeln!(
                    s,
                    "{} gets a service account token (audience {}) and runs only if {}.",
                    p.name,
                    t.service_account_token_audience,
                    conditions.join(" and ")
                );
            }
        }
        let _ = writeln!(
            s,
            "Credentials are tried after pull secrets and the node's docker config; among providers, the most \
             specific auth key first, then provider order. The first successful pull wins."
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\nproviders:\n\
        - name: hub\n  matchImages: [docker.io]\n  defaultCacheDuration: 1h\n  \
        apiVersion: credentialprovider.kubelet.k8s.io/v1\n\
        - name: private\n  matchImages: ['*.example.com', 'registry.example.com:5000']\n  \
        defaultCacheDuration: 10m\n  apiVersion: credentialprovider.kubelet.k8s.io/v1\n";

    fn write(dir: &Path, name: &str, body: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        p
    }

    fn json_of(o: &Outcome) -> serde_json::Value {
        serde_json::from_str(&o.stdout).unwrap()
    }

    fn messages(v: &serde_json::Value, key: &str) -> Vec<String> {
        v[key].as_array().unwrap().iter().map(|f| f["message"].as_str().unwrap().to_string()).collect()
    }

    #[test]
    fn validate_valid_file_and_directory() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), "config.yaml", VALID.as_bytes());
        let o = run_validate(&file, ReportOutput::Json);
        assert_eq!(
            (o.exit, json_of(&o)),
            (EXIT_OK, json!({"valid": true, "kubeletMessage": null, "errors": [], "warnings": []}))
        );
        let text = run_validate(&file, ReportOutput::Text);
        assert_eq!(text.exit, EXIT_OK);
        assert!(text.stdout.contains(": valid (2 providers)\n"), "{}", text.stdout);

        let d = dir.path().join("conf.d");
        std::fs::create_dir(&d).unwrap();
        write(&d, "10-hub.yaml", VALID.replace("- name: private", "- name: other").as_bytes());
        write(&d, "README.md", b"not read");
        let o = run_validate(&d, ReportOutput::Json);
        assert_eq!(o.exit, EXIT_OK, "{}", o.stdout);
        // A second file repeating a provider name: both files are named.
        let dup = write(
            &d,
            "20-dup.json",
            serde_json::to_string(&serde_json::json!({
            "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "CredentialProviderConfig",
            "providers": [{"name": "hub", "matchImages": ["x.io"], "defaultCacheDuration": "1m",
                           "apiVersion": "credentialprovider.kubelet.k8s.io/v1"}]}))
            .unwrap()
            .as_bytes(),
        );
        let o = run_validate(&d, ReportOutput::Json);
        assert_eq!(o.exit, EXIT_INVALID);
        let v = json_of(&o);
        assert_eq!(v["kubeletMessage"], r#"duplicate provider name "hub" found in configuration file(s)"#);
        assert_eq!(v["errors"][0]["code"], "KCP003");
        assert_eq!(v["errors"][0]["file"], dup.to_str().unwrap());
        assert_eq!(v["errors"][0]["provider"], json!({"name": "hub", "index": 0, "file": dup.to_str().unwrap()}));
        assert_eq!(v["errors"][0]["firstDeclared"]["file"], d.join("10-hub.yaml").to_str().unwrap());
    }

    #[test]
    fn validate_invalid_and_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        let bad =
            write(dir.path(), "bad.yaml", VALID.replace("1h", "-1m").replace("name: private", "name: a/b").as_bytes());
        let o = run_validate(&bad, ReportOutput::Json);
        assert_eq!(o.exit, EXIT_INVALID);
        let v = json_of(&o);
        assert_eq!(
            messages(&v, "errors"),
            vec![
                r#"providers.defaultCacheDuration: Invalid value: "-1m0s": must be greater than or equal to 0"#,
                r#"providers.name: Invalid value: "a/b": provider name cannot contain '/'"#,
            ]
        );
        assert_eq!(v["errors"][0]["provider"]["name"], "hub");
        assert_eq!(v["errors"][0]["field"], "providers[0].defaultCacheDuration");
        assert_eq!(v["errors"][1]["provider"]["index"], 1);
        assert!(v["kubeletMessage"].as_str().unwrap().starts_with("failed to validate credential provider config: ["));
        // Text: each error once (the kubelet's aggregated line is not repeated).
        let text = run_validate(&bad, ReportOutput::Text);
        assert_eq!(text.stdout.matches("provider name cannot contain '/'").count(), 1, "{}", text.stdout);
        assert!(text.stdout.contains("INVALID: the kubelet would refuse to start (2 errors)"), "{}", text.stdout);

        let missing = dir.path().join("missing.yaml");
        let o = run_validate(&missing, ReportOutput::Json);
        assert_eq!(o.exit, EXIT_UNREADABLE);
        let want = format!("unable to access path \"{0}\": stat {0}: no such file or directory", missing.display());
        assert_eq!(json_of(&o)["errors"][0]["message"], want.as_str());
        assert_eq!(json_of(&o)["errors"][0]["code"], "KCP000");
        let text = run_validate(&missing, ReportOutput::Text);
        assert_eq!((text.exit, text.stdout.as_str()), (EXIT_UNREADABLE, ""));
        assert!(text.stderr.contains("unable to access path"));

        assert_eq!(run_validate(Path::new(""), ReportOutput::Json).exit, EXIT_UNREADABLE);
        let empty_dir = tempfile::tempdir().unwrap();
        let o = run_validate(empty_dir.path(), ReportOutput::Json);
        assert_eq!(o.exit, EXIT_INVALID);
        assert_eq!(json_of(&o)["errors"][0]["code"], "KCP001");
        assert!(messages(&json_of(&o), "errors")[0].starts_with("no configuration files found in directory"));

        let garbage = write(dir.path(), "garbage.yaml", &[0xff, 0x00, 0x13, 0x37]);
        let o = run_validate(&garbage, ReportOutput::Json);
        assert_eq!(o.exit, EXIT_INVALID);
        assert!(messages(&json_of(&o), "errors")[0].starts_with("error decoding config"));

        let huge = write(dir.path(), "huge.yaml", &vec![b'#'; MAX_CONFIG_FILE_BYTES + 10]);
        assert_eq!(run_validate(&huge, ReportOutput::Json).exit, EXIT_UNREADABLE);
    }

    #[test]
    fn match_reports_providers_in_config_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), "config.yaml", VALID.as_bytes());
        let o = run_match("nginx:1.25", &file, false, ReportOutput::Json);
        assert_eq!(o.exit, EXIT_OK);
        assert_eq!(
            json_of(&o),
            json!({
                "image": "nginx:1.25",
                "normalized": "docker.io/library/nginx",
                "providers": [
                    {"name": "hub", "matched": true, "matchImage": "docker.io"},
                    {"name": "private", "matched": false, "matchImage": null},
                ],
                "warnings": [],
            })
        );
        let o = run_match("registry.example.com:5000/team/app:v1", &file, false, ReportOutput::Text);
        assert!(o.stdout.contains("The kubelet runs, in this order: private."), "{}", o.stdout);
        assert_eq!(o.stderr, "");
        let token = write(dir.path(), "token.yaml", VALID.replace(
            "defaultCacheDuration: 10m\n",
            "defaultCacheDuration: 10m\n  tokenAttributes: {serviceAccountTokenAudience: aud, cacheType: Token, \
             requireServiceAccount: true, requiredServiceAccountAnnotationKeys: [example.com/role]}\n",
        ).as_bytes());
        let o = run_match("registry.example.com:5000/app", &token, false, ReportOutput::Text);
        assert_eq!(o.exit, EXIT_OK, "{}", o.stdout);
        assert!(
            o.stdout.contains(
                "private gets a service account token (audience aud) and runs only if the pod has \
            a service account and that service account has the annotations example.com/role."
            ),
            "{}",
            o.stdout
        );
        let o = run_match("quay.io/x", &file, false, ReportOutput::Text);
        assert!(o.stdout.contains("No provider runs for quay.io/x"), "{}", o.stdout);
        // --raw: verbatim, and no warning about the image argument.
        let o = run_match("docker.io", &file, true, ReportOutput::Json);
        assert_eq!(json_of(&o)["providers"][0]["matched"], true);
        assert_eq!(json_of(&o)["normalized"], "docker.io");
        let o = run_match("registry:5000", &file, true, ReportOutput::Json);
        assert_eq!(json_of(&o)["warnings"], json!([]));
        // Without --raw, host:port is an image with a tag: said so.
        let o = run_match("registry:5000", &file, false, ReportOutput::Yaml);
        assert_eq!(o.exit, EXIT_OK);
        assert!(o.stdout.contains("normalized: docker.io/library/registry\n"), "{}", o.stdout);
        assert!(o.stdout.contains("code: KCP201\n"), "{}", o.stdout);
        // Invalid image name.
        let o = run_match("Nginx", &file, false, ReportOutput::Json);
        assert_eq!(o.exit, EXIT_INVALID);
        assert_eq!(json_of(&o)["normalized"], serde_json::Value::Null);
        assert!(json_of(&o)["error"].as_str().unwrap().contains("must be lowercase"));
        // Unreadable / invalid config.
        assert_eq!(run_match("nginx", &dir.path().join("nope"), false, ReportOutput::Json).exit, EXIT_UNREADABLE);
        let bad =
            write(dir.path(), "bad.yaml", b"apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\n");
        let o = run_match("nginx", &bad, false, ReportOutput::Json);
        assert_eq!(o.exit, EXIT_INVALID);
        assert_eq!(json_of(&o)["valid"], false);
    }
}
