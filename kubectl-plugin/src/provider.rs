//! `kubectl credential provider ...`: validate kubelet `CredentialProviderConfig` files (a file or,
//! as kubelet 1.34 reads it, a directory) and explain which image credential providers the
//! kubelet runs for an image. The rules live in `credential_core::kubelet`; this module only
//! reads files and renders.
//!
//! Exit status: 0 valid / matched or not, 1 the kubelet would reject the config (or the image
//! name), 2 the input could not be read.

use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use credential_core::kubelet::config::MAX_CONFIG_FILE_BYTES;
use credential_core::kubelet::{
    CredentialProviderConfig, LoadError, MatchReport, ValidationOptions, Verdict, config_files_in_dir, decode_files,
    providers_for, verdict,
};
use serde_json::json;

use crate::cli::Output;

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
    /// Check a kubelet CredentialProviderConfig (file or directory) exactly as kubelet 1.34 does.
    ///
    /// Exit status: 0 valid, 1 invalid, 2 unreadable.
    #[command(after_help = "Examples:
  # Check the file the kubelet reads with --image-credential-provider-config
  kubectl credential provider validate --config /etc/kubernetes/credential-providers.yaml

  # The same for a directory of configs, as JSON for a script
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

    /// Output format: text, or json for scripts.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
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

    /// Output format: text, or json for scripts.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
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

/// `provider validate --config PATH`: JSON `{"valid": bool, "errors": [...]}`.
pub fn run_validate(config: &Path, output: Output) -> Outcome {
    let label = config.to_string_lossy();
    match load(config) {
        Err(e) if e.is_unreadable() => {
            failure(output, json!({"valid": false, "errors": [e.to_string()]}), &e.to_string(), EXIT_UNREADABLE)
        }
        loaded => match verdict(loaded, &ValidationOptions::default()) {
            Verdict::Valid(c) => {
                let stdout = match output {
                    Output::Json => pretty(&json!({"valid": true, "errors": []})),
                    Output::Text => valid_text(&label, &c),
                };
                Outcome { stdout, stderr: String::new(), exit: EXIT_OK }
            }
            Verdict::Invalid { errors, message } => {
                let stdout = match output {
                    Output::Json => pretty(&json!({"valid": false, "errors": errors})),
                    Output::Text => invalid_text(&label, &errors, &message),
                };
                Outcome { stdout, stderr: String::new(), exit: EXIT_INVALID }
            }
        },
    }
}

/// `provider match IMAGE --config PATH [--raw]`: JSON
/// `{"image", "normalized", "providers": [{"name", "matched", "matchImage"}]}` in config order.
/// An invalid config prints the validate JSON; an invalid image name prints
/// `{"image", "normalized": null, "providers": [], "error"}`.
pub fn run_match(image: &str, config: &Path, raw: bool, output: Output) -> Outcome {
    let label = config.to_string_lossy();
    let loaded = match load(config) {
        Err(e) if e.is_unreadable() => {
            return failure(
                output,
                json!({"valid": false, "errors": [e.to_string()]}),
                &e.to_string(),
                EXIT_UNREADABLE,
            );
        }
        loaded => loaded,
    };
    let config = match verdict(loaded, &ValidationOptions::default()) {
        Verdict::Valid(c) => c,
        Verdict::Invalid { errors, message } => {
            let stdout = match output {
                Output::Json => pretty(&json!({"valid": false, "errors": errors})),
                Output::Text => invalid_text(&label, &errors, &message),
            };
            return Outcome { stdout, stderr: String::new(), exit: EXIT_INVALID };
        }
    };
    match providers_for(&config, image, raw) {
        Ok(report) => {
            let stdout = match output {
                Output::Json => pretty(&serde_json::to_value(&report).unwrap_or_default()),
                Output::Text => match_text(&report, &config),
            };
            Outcome { stdout, stderr: String::new(), exit: EXIT_OK }
        }
        Err(e) => {
            let body = json!({"image": image, "normalized": null, "providers": [], "error": e.to_string()});
            let text = format!(
                "{e}\nThe kubelet fails this pull with InvalidImageName before any credential provider runs.\n"
            );
            match output {
                Output::Json => Outcome { stdout: pretty(&body), stderr: String::new(), exit: EXIT_INVALID },
                Output::Text => Outcome { stdout: String::new(), stderr: text, exit: EXIT_INVALID },
            }
        }
    }
}

/// Reads `path` the way the kubelet's readCredentialProviderConfig does (stat, then the file or
/// the directory's config files in sorted order) and decodes it; duplicates across files are
/// rejected here. Validation is separate ([`credential_core::kubelet::validate`]).
pub fn load(path: &Path) -> Result<CredentialProviderConfig, LoadError> {
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
    decode_files(&contents)
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

fn failure(output: Output, body: serde_json::Value, message: &str, exit: u8) -> Outcome {
    match output {
        Output::Json => Outcome { stdout: pretty(&body), stderr: String::new(), exit },
        Output::Text => Outcome { stdout: String::new(), stderr: format!("error: {message}\n"), exit },
    }
}

fn pretty(value: &serde_json::Value) -> String {
    let mut s = serde_json::to_string_pretty(value).unwrap_or_default();
    s.push('\n');
    s
}

fn valid_text(label: &str, config: &CredentialProviderConfig) -> String {
    let mut s = String::new();
    let n = config.providers.len();
    let _ = writeln!(s, "{label}: valid ({n} provider{})", if n == 1 { "" } else { "s" });
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
    let _ =
        writeln!(s, "Each provider's binary must exist as <--image-credential-provider-bin-dir>/<name> on every node.");
    s
}

fn invalid_text(label: &str, errors: &[String], message: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{label}: INVALID: the kubelet would refuse to start with:");
    let _ = writeln!(s, "  {message}");
    if errors.len() > 1 {
        let _ = writeln!(s, "Errors ({}):", errors.len());
        for e in errors {
            let _ = writeln!(s, "  - {e}");
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

    #[test]
    fn validate_valid_file_and_directory() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), "config.yaml", VALID.as_bytes());
        let o = run_validate(&file, Output::Json);
        assert_eq!((o.exit, json_of(&o)), (EXIT_OK, json!({"valid": true, "errors": []})));
        let text = run_validate(&file, Output::Text);
        assert_eq!(text.exit, EXIT_OK);
        assert!(text.stdout.contains(": valid (2 providers)"), "{}", text.stdout);

        let d = dir.path().join("conf.d");
        std::fs::create_dir(&d).unwrap();
        write(&d, "10-hub.yaml", VALID.replace("- name: private", "- name: other").as_bytes());
        write(&d, "README.md", b"not read");
        let o = run_validate(&d, Output::Json);
        assert_eq!(o.exit, EXIT_OK, "{}", o.stdout);
        // A second file repeating a provider name.
        write(
            &d,
            "20-dup.json",
            serde_json::to_string(&serde_json::json!({
            "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "CredentialProviderConfig",
            "providers": [{"name": "hub", "matchImages": ["x"], "defaultCacheDuration": "1m",
                           "apiVersion": "credentialprovider.kubelet.k8s.io/v1"}]}))
            .unwrap()
            .as_bytes(),
        );
        let o = run_validate(&d, Output::Json);
        assert_eq!(o.exit, EXIT_INVALID);
        assert_eq!(json_of(&o)["errors"][0], r#"duplicate provider name "hub" found in configuration file(s)"#);
    }

    #[test]
    fn validate_invalid_and_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        let bad =
            write(dir.path(), "bad.yaml", VALID.replace("1h", "-1m").replace("name: private", "name: a/b").as_bytes());
        let o = run_validate(&bad, Output::Json);
        assert_eq!(o.exit, EXIT_INVALID);
        assert_eq!(
            json_of(&o)["errors"],
            json!([
                r#"providers.defaultCacheDuration: Invalid value: "-1m0s": must be greater than or equal to 0"#,
                r#"providers.name: Invalid value: "a/b": provider name cannot contain '/'"#,
            ])
        );
        let text = run_validate(&bad, Output::Text);
        assert!(text.stdout.contains("failed to validate credential provider config: ["), "{}", text.stdout);

        let missing = dir.path().join("missing.yaml");
        let o = run_validate(&missing, Output::Json);
        assert_eq!(o.exit, EXIT_UNREADABLE);
        let want = format!("unable to access path \"{0}\": stat {0}: no such file or directory", missing.display());
        assert_eq!(json_of(&o)["errors"][0], want.as_str());
        let text = run_validate(&missing, Output::Text);
        assert_eq!((text.exit, text.stdout.as_str()), (EXIT_UNREADABLE, ""));
        assert!(text.stderr.contains("unable to access path"));

        assert_eq!(run_validate(Path::new(""), Output::Json).exit, EXIT_UNREADABLE);
        let empty_dir = tempfile::tempdir().unwrap();
        let o = run_validate(empty_dir.path(), Output::Json);
        assert_eq!(o.exit, EXIT_INVALID);
        assert!(json_of(&o)["errors"][0].as_str().unwrap().starts_with("no configuration files found in directory"));

        let garbage = write(dir.path(), "garbage.yaml", &[0xff, 0x00, 0x13, 0x37]);
        let o = run_validate(&garbage, Output::Json);
        assert_eq!(o.exit, EXIT_INVALID);
        assert!(json_of(&o)["errors"][0].as_str().unwrap().starts_with("error decoding config"));

        let huge = write(dir.path(), "huge.yaml", &vec![b'#'; MAX_CONFIG_FILE_BYTES + 10]);
        assert_eq!(run_validate(&huge, Output::Json).exit, EXIT_UNREADABLE);
    }

    #[test]
    fn match_reports_providers_in_config_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), "config.yaml", VALID.as_bytes());
        let o = run_match("nginx:1.25", &file, false, Output::Json);
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
            })
        );
        let o = run_match("registry.example.com:5000/team/app:v1", &file, false, Output::Text);
        assert!(o.stdout.contains("The kubelet runs, in this order: private."), "{}", o.stdout);
        let token = write(dir.path(), "token.yaml", VALID.replace(
            "defaultCacheDuration: 10m\n",
            "defaultCacheDuration: 10m\n  tokenAttributes: {serviceAccountTokenAudience: aud, cacheType: Token, \
             requireServiceAccount: true, requiredServiceAccountAnnotationKeys: [example.com/role]}\n",
        ).as_bytes());
        let o = run_match("registry.example.com:5000/app", &token, false, Output::Text);
        assert_eq!(o.exit, EXIT_OK, "{}", o.stdout);
        assert!(
            o.stdout.contains(
                "private gets a service account token (audience aud) and runs only if the pod has \
            a service account and that service account has the annotations example.com/role."
            ),
            "{}",
            o.stdout
        );
        let o = run_match("quay.io/x", &file, false, Output::Text);
        assert!(o.stdout.contains("No provider runs for quay.io/x"), "{}", o.stdout);
        // --raw: verbatim.
        let o = run_match("docker.io", &file, true, Output::Json);
        assert_eq!(json_of(&o)["providers"][0]["matched"], true);
        assert_eq!(json_of(&o)["normalized"], "docker.io");
        // Invalid image name.
        let o = run_match("Nginx", &file, false, Output::Json);
        assert_eq!(o.exit, EXIT_INVALID);
        assert_eq!(json_of(&o)["normalized"], serde_json::Value::Null);
        assert!(json_of(&o)["error"].as_str().unwrap().contains("must be lowercase"));
        // Unreadable / invalid config.
        assert_eq!(run_match("nginx", &dir.path().join("nope"), false, Output::Json).exit, EXIT_UNREADABLE);
        let bad =
            write(dir.path(), "bad.yaml", b"apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\n");
        let o = run_match("nginx", &bad, false, Output::Json);
        assert_eq!(o.exit, EXIT_INVALID);
        assert_eq!(json_of(&o)["valid"], false);
    }
}
