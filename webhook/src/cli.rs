//! Command line: `credential-webhook serve` and `credential-webhook certs`.
//!
//! Every flag can also be set through an environment variable `CREDENTIAL_WEBHOOK_<FLAG>` (upper
//! case, `-` as `_`), which is how the Deployment in deploy/ configures it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use credential_core::distribution::{Mode, ModeSetting};

use crate::distribution::{Backoff, DistributionConfig};
use crate::server::ServerConfig;
use crate::tls::TlsFiles;

#[derive(Debug, Parser)]
#[command(
    name = "credential-webhook",
    version,
    about = "Admission webhook for k0rdent Credentials, Regions, ProviderInterfaces and ClusterDeployments"
)]
pub struct Cli {
    /// Log format: `json` (one object per line, for clusters) or `text`.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Json, env = "CREDENTIAL_WEBHOOK_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `credential_webhook=debug,kube=warn`.
    #[arg(long, global = true, default_value = "info", env = "CREDENTIAL_WEBHOOK_LOG_LEVEL")]
    pub log_level: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the validating (/validate) and mutating (/mutate) webhooks over HTTPS.
    Serve(Box<ServeArgs>),
    /// Write a throwaway CA and a serving certificate (ca.crt, tls.crt, tls.key) for local runs.
    Certs(CertsArgs),
    /// Check a management cluster for what the webhook needs (cert-manager, CA injection, RBAC,
    /// regional clusters); print what is wrong with the fix. Exit 0 when nothing fails, else 1.
    Preflight(PreflightArgs),
}

#[derive(Debug, Args)]
pub struct PreflightArgs {
    /// Kubeconfig of the management cluster (default: in-cluster config, else $KUBECONFIG / ~/.kube/config).
    #[arg(long, env = "CREDENTIAL_WEBHOOK_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Namespace the webhook is (or will be) installed in: its ServiceAccount, serving Secret, Lease.
    #[arg(long, default_value = credential_core::DEFAULT_SYSTEM_NAMESPACE, env = "CREDENTIAL_WEBHOOK_NAMESPACE")]
    pub namespace: String,
    /// Namespace KCM runs in (Region kubeconfig Secrets).
    #[arg(long, default_value = credential_core::DEFAULT_SYSTEM_NAMESPACE, env = "CREDENTIAL_WEBHOOK_SYSTEM_NAMESPACE")]
    pub system_namespace: String,
    /// The webhook's ServiceAccount, whose permissions are checked.
    #[arg(long, default_value = crate::preflight::WEBHOOK_NAME)]
    pub service_account: String,
    /// How long each regional API server has to answer.
    #[arg(long, default_value = "5s", value_parser = parse_positive_duration)]
    pub region_timeout: Duration,
}

impl PreflightArgs {
    pub fn options(&self) -> crate::preflight::PreflightOptions {
        crate::preflight::PreflightOptions {
            namespace: self.namespace.clone(),
            system_namespace: self.system_namespace.clone(),
            service_account: self.service_account.clone(),
            region_timeout: self.region_timeout,
        }
    }
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// HTTPS address for the admission endpoints.
    #[arg(long, default_value = "0.0.0.0:9443", env = "CREDENTIAL_WEBHOOK_LISTEN")]
    pub listen: SocketAddr,
    /// Serving certificate (PEM; the leaf first, then any chain). Reloaded when it changes.
    #[arg(long, env = "CREDENTIAL_WEBHOOK_TLS_CERT_FILE")]
    pub tls_cert_file: PathBuf,
    /// Private key of the serving certificate (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "CREDENTIAL_WEBHOOK_TLS_KEY_FILE")]
    pub tls_key_file: PathBuf,
    /// How often the certificate files are checked for changes.
    #[arg(long, default_value = "1s", value_parser = parse_positive_duration, env = "CREDENTIAL_WEBHOOK_TLS_RELOAD_INTERVAL")]
    pub tls_reload_interval: Duration,
    /// Plain-HTTP address for /livez, /readyz and /metrics. Loopback by default, so a run outside a
    /// cluster does not offer them to the network; the Deployment sets `0.0.0.0:8080` (kubelet
    /// probes and Prometheus arrive on the pod IP; the NetworkPolicy limits who reaches it).
    #[arg(long, default_value = "127.0.0.1:8080", env = "CREDENTIAL_WEBHOOK_ADMIN_LISTEN")]
    pub admin_listen: SocketAddr,
    /// Kubeconfig of the management cluster (default: in-cluster config, else $KUBECONFIG / ~/.kube/config).
    #[arg(long, env = "CREDENTIAL_WEBHOOK_KUBECONFIG", conflicts_with = "estate")]
    pub kubeconfig: Option<PathBuf>,
    /// Namespace KCM runs in (Region kubeconfig Secrets, default reference namespace).
    #[arg(long, default_value = credential_core::DEFAULT_SYSTEM_NAMESPACE, env = "CREDENTIAL_WEBHOOK_SYSTEM_NAMESPACE")]
    pub system_namespace: String,
    /// Who writes the copies of cluster identities in regional clusters: `auto` (trigger when
    /// the management cluster runs KCM 1.5 or later, which copies them itself; write otherwise;
    /// re-decided when KCM is upgraded), `trigger` (KCM copies; we make it copy on every source
    /// change and verify the copies, never writing to a regional cluster), `write` (we copy), or
    /// `off` (admission only). Needs a cluster: ignored with --estate.
    #[arg(long, value_parser = parse_mode_setting, env = "CREDENTIAL_WEBHOOK_DISTRIBUTION_MODE")]
    pub distribution_mode: Option<ModeSetting>,
    /// Run mode write even next to a KCM that copies cluster identities itself (only when KCM's
    /// own distribution is disabled): two writers of the same copies fight.
    #[arg(long, env = "CREDENTIAL_WEBHOOK_FORCE_WRITE_MODE")]
    pub force_write_mode: bool,
    /// Deprecated: use --distribution-mode. `false` is `--distribution-mode off`, `true` is `auto`.
    #[arg(long, action = clap::ArgAction::Set, env = "CREDENTIAL_WEBHOOK_DISTRIBUTION")]
    pub distribution: Option<bool>,
    /// How long a deleting Credential's release may keep failing (Region unreachable or
    /// unreadable) before its finalizer is removed anyway, with a Warning Event, a metric and a
    /// record of what may remain (ConfigMap credential-guard-orphaned-copies).
    #[arg(long, default_value = "5m", value_parser = parse_positive_duration, env = "CREDENTIAL_WEBHOOK_RELEASE_TIMEOUT")]
    pub release_timeout: Duration,
    /// This replica's name: the holder identity of the distribution Lease and the reporting
    /// instance of Events. The Deployment sets it to the pod name. Default: $HOSTNAME, else
    /// `credential-webhook-<pid>`.
    #[arg(long, env = "POD_NAME")]
    pub instance: Option<String>,
    /// Namespace of the distribution Lease (default: --system-namespace). The Deployment sets it to
    /// the pod's namespace, where its Role grants the Lease.
    #[arg(long, env = "POD_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// Credentials reconciled at once, overall.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..), env = "CREDENTIAL_WEBHOOK_DISTRIBUTION_WORKERS")]
    pub distribution_workers: u16,
    /// Credentials reconciled at once against one target cluster.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..), env = "CREDENTIAL_WEBHOOK_DISTRIBUTION_PER_CLUSTER")]
    pub distribution_per_cluster: u16,
    /// Every distributed Credential is reconciled again this often even without events (a safety
    /// net next to the watches).
    #[arg(long, default_value = "10m", value_parser = parse_positive_duration, env = "CREDENTIAL_WEBHOOK_RESYNC_PERIOD")]
    pub resync_period: Duration,
    /// Longest time one reconcile of a Credential may take; past it the target cluster is treated
    /// as unreachable (backoff, condition reason ClusterUnreachable).
    #[arg(long, default_value = "2m", value_parser = parse_positive_duration, env = "CREDENTIAL_WEBHOOK_RECONCILE_TIMEOUT")]
    pub reconcile_timeout: Duration,
    /// First retry delay of a Credential that did not reconcile; each further failure doubles it,
    /// up to --credential-backoff-max.
    #[arg(long, default_value = "500ms", value_parser = parse_positive_duration, env = "CREDENTIAL_WEBHOOK_CREDENTIAL_BACKOFF_INITIAL")]
    pub credential_backoff_initial: Duration,
    /// Longest retry delay of a Credential that keeps failing.
    #[arg(long, default_value = "5m", value_parser = parse_positive_duration, env = "CREDENTIAL_WEBHOOK_CREDENTIAL_BACKOFF_MAX")]
    pub credential_backoff_max: Duration,
    /// First delay before a target cluster that did not answer (or its failed watch) is tried
    /// again; each further failure doubles it, up to --cluster-backoff-max.
    #[arg(long, default_value = "1s", value_parser = parse_positive_duration, env = "CREDENTIAL_WEBHOOK_CLUSTER_BACKOFF_INITIAL")]
    pub cluster_backoff_initial: Duration,
    /// Longest delay before a target cluster that keeps failing is tried again.
    #[arg(long, default_value = "1m", value_parser = parse_positive_duration, env = "CREDENTIAL_WEBHOOK_CLUSTER_BACKOFF_MAX")]
    pub cluster_backoff_max: Duration,
    /// How long a reconcile waits for a target cluster's first ProviderInterface list before it
    /// treats the cluster as unreachable.
    #[arg(long, default_value = "10s", value_parser = parse_positive_duration, env = "CREDENTIAL_WEBHOOK_CLUSTER_SYNC_TIMEOUT")]
    pub cluster_sync_timeout: Duration,
    /// TCP connect timeout of the clients of regional clusters.
    #[arg(long, default_value = "5s", value_parser = parse_positive_duration, env = "CREDENTIAL_WEBHOOK_REGION_CONNECT_TIMEOUT")]
    pub region_connect_timeout: Duration,
    /// Read timeout of one request to a regional cluster (watches excepted): a server that accepts
    /// the connection and never answers fails the request instead of holding a worker.
    #[arg(long, default_value = "30s", value_parser = parse_positive_duration, env = "CREDENTIAL_WEBHOOK_REGION_REQUEST_TIMEOUT")]
    pub region_request_timeout: Duration,
    /// Trigger mode: how often copies not in sync are read again besides their watch events, and
    /// how long after a trigger a copy KCM has not rewritten yet counts as KCM at work.
    #[arg(long, default_value = "1m", value_parser = parse_positive_duration, env = "CREDENTIAL_WEBHOOK_VERIFY_INTERVAL")]
    pub verify_interval: Duration,
    /// Decide from YAML files instead of a cluster (offline estate layout: management objects at the
    /// top, `regions/<name>/` per regional cluster). For demos, tests and benchmarks.
    #[arg(long, env = "CREDENTIAL_WEBHOOK_ESTATE")]
    pub estate: Option<PathBuf>,
    /// Budget for one request, headers to reply (keep below the webhook's timeoutSeconds).
    #[arg(long, default_value = "8s", value_parser = parse_positive_duration, env = "CREDENTIAL_WEBHOOK_REQUEST_TIMEOUT")]
    pub request_timeout: Duration,
    /// Budget for the TLS handshake and the request headers.
    #[arg(long, default_value = "5s", value_parser = parse_positive_duration, env = "CREDENTIAL_WEBHOOK_HEADER_READ_TIMEOUT")]
    pub header_read_timeout: Duration,
    /// Largest AdmissionReview accepted, in bytes (an UPDATE carries two objects of up to 1.5 MiB).
    #[arg(long, default_value_t = 4 << 20, env = "CREDENTIAL_WEBHOOK_MAX_BODY_BYTES")]
    pub max_body_bytes: usize,
    /// Admission requests handled at once; further requests wait.
    #[arg(long, default_value_t = 1024, env = "CREDENTIAL_WEBHOOK_MAX_CONCURRENT_REQUESTS")]
    pub max_concurrent_requests: usize,
    /// On SIGTERM: keep serving this long with readiness false (lets endpoints drop the pod), then drain.
    #[arg(long, default_value = "2s", value_parser = parse_duration, env = "CREDENTIAL_WEBHOOK_SHUTDOWN_DELAY")]
    pub shutdown_delay: Duration,
    /// Longest wait for in-flight requests during the drain.
    #[arg(long, default_value = "20s", value_parser = parse_duration, env = "CREDENTIAL_WEBHOOK_SHUTDOWN_TIMEOUT")]
    pub shutdown_timeout: Duration,
}

impl ServeArgs {
    /// The distribution mode asked for, and a deprecation warning when it came from the old
    /// `--distribution` flag. Contradicting flags are an error.
    pub fn distribution_setting(&self) -> Result<(ModeSetting, Option<String>), String> {
        const DEPRECATED: &str = "--distribution (CREDENTIAL_WEBHOOK_DISTRIBUTION) is deprecated";
        match (self.distribution_mode, self.distribution) {
            (Some(m), Some(false)) if m != ModeSetting::Fixed(Mode::Off) => Err(format!(
                "--distribution=false (CREDENTIAL_WEBHOOK_DISTRIBUTION) contradicts --distribution-mode {m}: drop the \
                 deprecated --distribution"
            )),
            (Some(m), None) => Ok((m, None)),
            (Some(m), Some(_)) => Ok((m, Some(format!("{DEPRECATED} and ignored: --distribution-mode {m} is set")))),
            (None, Some(false)) => Ok((
                ModeSetting::Fixed(Mode::Off),
                Some(format!("{DEPRECATED}: --distribution=false means --distribution-mode off; set that instead")),
            )),
            (None, Some(true)) => Ok((
                ModeSetting::Auto,
                Some(format!("{DEPRECATED}: --distribution=true means --distribution-mode auto; set that instead")),
            )),
            (None, None) => Ok((ModeSetting::Auto, None)),
        }
    }

    /// The distributor's settings these flags give (the mode follows the mode control).
    pub fn distribution_config(&self) -> DistributionConfig {
        let mut config = crate::distribution::serve_config(&self.system_namespace);
        // The CLI is the one place the environment is read: in a pod HOSTNAME is its name.
        config.instance = self
            .instance
            .clone()
            .filter(|i| !i.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
            .unwrap_or(config.instance);
        if let (Some(le), Some(ns)) =
            (&mut config.leader_election, self.lease_namespace.as_ref().filter(|n| !n.is_empty()))
        {
            le.namespace = ns.clone();
        }
        config.workers = usize::from(self.distribution_workers);
        config.per_cluster_concurrency = usize::from(self.distribution_per_cluster);
        config.resync_period = self.resync_period;
        config.reconcile_timeout = self.reconcile_timeout;
        config.connect_timeout = self.region_connect_timeout;
        config.request_timeout = self.region_request_timeout;
        config.release_timeout = self.release_timeout;
        config.verify_interval = self.verify_interval;
        config.credential_backoff = Backoff::new(self.credential_backoff_initial, self.credential_backoff_max);
        config.cluster_backoff = Backoff::new(self.cluster_backoff_initial, self.cluster_backoff_max);
        config.cluster_timeout = self.cluster_sync_timeout;
        config
    }

    pub fn server_config(&self) -> ServerConfig {
        ServerConfig {
            listen: self.listen,
            admin_listen: self.admin_listen,
            tls: TlsFiles {
                cert_file: self.tls_cert_file.clone(),
                key_file: self.tls_key_file.clone(),
                poll_interval: self.tls_reload_interval,
            },
            request_timeout: self.request_timeout,
            header_read_timeout: self.header_read_timeout,
            max_body_bytes: self.max_body_bytes,
            max_concurrent_requests: self.max_concurrent_requests,
            shutdown_delay: self.shutdown_delay,
            shutdown_timeout: self.shutdown_timeout,
        }
    }
}

#[derive(Debug, Args)]
pub struct CertsArgs {
    /// Directory to write ca.crt, tls.crt and tls.key into (created if missing).
    #[arg(long, env = "CREDENTIAL_WEBHOOK_CERTS_OUT")]
    pub out: PathBuf,
    /// DNS name or IP address the server is reached at; repeat for several.
    #[arg(long = "host", required = true, env = "CREDENTIAL_WEBHOOK_CERTS_HOST", value_delimiter = ',')]
    pub hosts: Vec<String>,
}

/// Longest duration any flag takes: a year. Far beyond any sane setting, and well inside what
/// timers can add to the current instant without overflowing.
const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// Parses `500ms`, `2s`, `1m`, `1h` (or a bare number of seconds), from 0 up to a year. clap
/// puts the flag's name in front of the error.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num.parse().map_err(|_| format!("{s:?} is not a duration (examples: 500ms, 2s, 1m)"))?;
    let secs = match unit {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use ms, s, m or h)")),
    };
    // try_from: a value too large for a Duration is an error here, not a panic.
    match Duration::try_from_secs_f64(secs) {
        Ok(d) if d <= MAX_DURATION => Ok(d),
        _ => Err(format!("{s:?} is not a valid duration (0 up to 365 days, e.g. 500ms, 2s, 1m)")),
    }
}

/// Parses `auto`, `trigger`, `write` or `off`.
pub fn parse_mode_setting(s: &str) -> Result<ModeSetting, String> {
    s.parse::<ModeSetting>().map_err(|e| e.to_string())
}

/// Like [`parse_duration`], for intervals and timeouts where zero makes no sense (a zero poll
/// interval would stop certificate reloads; a zero timeout would refuse every request).
pub fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err(format!("{:?} is zero; give a positive duration such as 500ms or 2s", s.trim()));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert!(parse_duration("2 weeks").is_err());
        assert!(parse_duration("s").is_err());
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("365d").unwrap_err(), "\"365d\": unknown unit \"d\" (use ms, s, m or h)");
        // Too large for a Duration (from_secs_f64 would panic) and merely absurd: both refused.
        assert!(parse_duration(&"9".repeat(40)).unwrap_err().contains("not a valid duration"));
        assert!(parse_duration("9000000h").is_err());
        assert!(parse_duration("-1s").is_err());
        assert_eq!(parse_positive_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_positive_duration("0ms").unwrap_err().contains("zero"));
    }

    #[test]
    fn zero_intervals_and_timeouts_are_refused_naming_the_flag() {
        let base = ["credential-webhook", "serve", "--tls-cert-file", "c", "--tls-key-file", "k"];
        for flag in ["--tls-reload-interval", "--request-timeout", "--header-read-timeout"] {
            let err = Cli::try_parse_from(base.iter().copied().chain([flag, "0s"])).unwrap_err().to_string();
            assert!(err.contains(flag) && err.contains("zero"), "{flag}: {err}");
            let err = Cli::try_parse_from(base.iter().copied().chain([flag, "1e400"])).unwrap_err().to_string();
            assert!(err.contains(flag), "{flag}: {err}");
        }
        // A zero drain delay is a legitimate choice.
        let cli = Cli::try_parse_from(base.iter().copied().chain(["--shutdown-delay", "0s"])).unwrap();
        let Command::Serve(args) = cli.command else { panic!("serve expected") };
        assert_eq!(args.shutdown_delay, Duration::ZERO);
    }

    #[test]
    fn distribution_mode_flags_and_the_deprecated_bool() {
        let parse = |extra: &[&str]| {
            let base = ["credential-webhook", "serve", "--tls-cert-file", "c", "--tls-key-file", "k"];
            let cli = Cli::try_parse_from(base.iter().copied().chain(extra.iter().copied()))?;
            let Command::Serve(args) = cli.command else { panic!("serve expected") };
            Ok::<_, clap::Error>(args)
        };
        let args = parse(&[]).unwrap();
        assert_eq!(args.distribution_setting().unwrap(), (ModeSetting::Auto, None));
        assert!(!args.force_write_mode);
        let args = parse(&["--distribution-mode", "trigger"]).unwrap();
        assert_eq!(args.distribution_setting().unwrap().0, ModeSetting::Fixed(Mode::Trigger));
        let args = parse(&["--distribution=false"]).unwrap();
        let (setting, warning) = args.distribution_setting().unwrap();
        assert_eq!(setting, ModeSetting::Fixed(Mode::Off));
        assert!(warning.unwrap().contains("deprecated"));
        let err = parse(&["--distribution=false", "--distribution-mode", "write"]).unwrap().distribution_setting();
        assert!(err.unwrap_err().contains("contradicts"));
        let args = parse(&["--distribution-mode", "write", "--force-write-mode"]).unwrap();
        assert!(args.force_write_mode);
        // The distributor's knobs.
        let d = parse(&[]).unwrap().distribution_config();
        assert_eq!((d.workers, d.per_cluster_concurrency), (16, 4));
        assert_eq!((d.resync_period, d.reconcile_timeout), (Duration::from_secs(600), Duration::from_secs(120)));
        let defaults = DistributionConfig::default();
        assert_eq!((d.credential_backoff, d.cluster_backoff), (defaults.credential_backoff, defaults.cluster_backoff));
        assert_eq!(d.cluster_timeout, defaults.cluster_timeout);
        assert_eq!(d.leader_election.unwrap().namespace, "kcm-system", "the Lease follows the system namespace");
        let d = parse(&[
            "--instance",
            "pod-1",
            "--lease-namespace",
            "guard",
            "--distribution-workers",
            "2",
            "--region-request-timeout",
            "3s",
            "--verify-interval",
            "5s",
            "--credential-backoff-initial",
            "100ms",
            "--credential-backoff-max",
            "2s",
            "--cluster-backoff-initial",
            "200ms",
            "--cluster-backoff-max",
            "3s",
            "--cluster-sync-timeout",
            "4s",
        ])
        .unwrap()
        .distribution_config();
        assert_eq!((d.instance.as_str(), d.workers), ("pod-1", 2));
        assert_eq!(d.credential_backoff, Backoff::new(Duration::from_millis(100), Duration::from_secs(2)));
        assert_eq!(d.cluster_backoff, Backoff::new(Duration::from_millis(200), Duration::from_secs(3)));
        assert_eq!(d.cluster_timeout, Duration::from_secs(4));
        assert_eq!((d.request_timeout, d.verify_interval), (Duration::from_secs(3), Duration::from_secs(5)));
        assert_eq!(d.leader_election.unwrap().namespace, "guard");
        let err = parse(&["--distribution-workers", "0"]).unwrap_err().to_string();
        assert!(err.contains("--distribution-workers"), "{err}");
        let err = parse(&["--distribution-mode", "both"]).unwrap_err().to_string();
        assert!(err.contains("--distribution-mode") && err.contains("auto, trigger, write, off"), "{err}");
    }

    #[test]
    fn serve_defaults_and_env() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from(["credential-webhook", "serve", "--tls-cert-file", "c", "--tls-key-file", "k"])
            .unwrap();
        let Command::Serve(args) = cli.command else { panic!("serve expected") };
        let cfg = args.server_config();
        assert_eq!(cfg.listen.to_string(), "0.0.0.0:9443");
        assert_eq!(cfg.admin_listen.to_string(), "127.0.0.1:8080");
        assert_eq!(cfg.request_timeout, Duration::from_secs(8));
        assert_eq!(cfg.header_read_timeout, Duration::from_secs(5));
        assert_eq!(cfg.max_body_bytes, 4 << 20);
        assert_eq!(args.system_namespace, "kcm-system");
        assert!(Cli::try_parse_from(["credential-webhook", "certs", "--out", "d"]).is_err(), "--host is required");
        let cli =
            Cli::try_parse_from(["credential-webhook", "certs", "--out", "d", "--host", "a", "--host", "127.0.0.1"])
                .unwrap();
        let Command::Certs(c) = cli.command else { panic!("certs expected") };
        assert_eq!(c.hosts, ["a", "127.0.0.1"]);
        let cli = Cli::try_parse_from(["credential-webhook", "preflight", "--namespace", "guard"]).unwrap();
        let Command::Preflight(p) = cli.command else { panic!("preflight expected") };
        let o = p.options();
        assert_eq!((o.namespace.as_str(), o.system_namespace.as_str()), ("guard", "kcm-system"));
        assert_eq!((o.service_account.as_str(), o.region_timeout), ("credential-webhook", Duration::from_secs(5)));
    }
}
