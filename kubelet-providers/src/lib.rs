//! Kubelet image credential providers, exactly as the kubelet (1.34+) sees them.
//!
//! - [`config`]: strict decoding of `CredentialProviderConfig` (kubelet.config.k8s.io v1alpha1,
//!   v1beta1, v1; YAML or JSON), single files and the 1.34 directory form, with the kubelet's
//!   error wording. Pure: callers read files and pass bytes in.
//! - [`validate`](mod@validate): `validateCredentialProviderConfig`, rule by rule, in emission order.
//! - [`image`]: the normalised image name the kubelet matches (`nginx` -> `docker.io/library/nginx`).
//! - [`url`]: `URLsMatchStr` and the Go `net/url` / `filepath.Match` behaviour it depends on.
//! - [`matching`]: which providers run for an image, and the order their credentials are tried.
//! - [`report`]: every error and warning of a config at once, each naming its file and provider,
//!   with stable codes; [`lint`]: the warnings (entries the kubelet accepts that never match what
//!   their author meant).
//!
//! Order of attempts for a pull (reference §7): pull-secret credentials first, then the node's
//! docker config, then credentials from providers. The kubelet executes every provider whose
//! `matchImages` match, in config order (directory: file order); their `auth` entries are merged
//! into one keyring whose keys are tried longest/most specific first (reverse lexicographic), and
//! for the same key in provider order. The first successful pull wins; with no credentials at all
//! the pull is anonymous. A provider can run and still contribute nothing if its auth keys do not
//! match the image.

pub mod config;
pub mod duration;
pub mod gofmt;
pub mod image;
pub mod lint;
pub mod matching;
mod node;
pub mod report;
pub mod url;
pub mod validate;

pub use config::{
    ConfigVersion, CredentialProvider, CredentialProviderConfig, ExecEnvVar, LoadError, TokenAttributes,
    config_files_in_dir, decode_config, decode_files, duplicate_names,
};
pub use duration::GoDuration;
pub use gofmt::FieldError;
pub use image::{ImageError, normalize_image};
pub use matching::{CredentialAttempt, MatchReport, ProviderMatch, credential_attempt_order, providers_for};
pub use report::{ConfigFinding, ConfigReport, ProviderRef, check_files};
pub use url::{matches, urls_match_str};
pub use validate::{ValidationOptions, validate, validate_located, validation_message};

/// Outcome of loading and validating a config: what `kubectl credential provider validate` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The kubelet would accept the config.
    Valid(CredentialProviderConfig),
    /// The kubelet would refuse to start. `errors` are the individual messages (de-duplicated, in
    /// emission order); `message` is the one line the kubelet logs.
    Invalid { errors: Vec<String>, message: String },
}

/// Validates already-decoded files: the decode/duplicate error, or the validation errors.
pub fn verdict(loaded: Result<CredentialProviderConfig, LoadError>, options: &ValidationOptions) -> Verdict {
    match loaded {
        Err(e) => {
            let message = e.to_string();
            Verdict::Invalid { errors: vec![message.clone()], message }
        }
        Ok(config) => {
            let errs = validate(&config, options);
            if errs.is_empty() {
                Verdict::Valid(config)
            } else {
                Verdict::Invalid { errors: gofmt::dedup_messages(&errs), message: validation_message(&errs) }
            }
        }
    }
}
