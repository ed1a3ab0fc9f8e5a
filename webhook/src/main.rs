//! `credential-webhook`: wiring only; everything else lives in the library.

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use credential_webhook::cache::ServingEstate;
use credential_webhook::cli::{Cli, Command, LogFormat, PreflightArgs, ServeArgs};
use credential_webhook::live::{LiveOptions, LiveWebhook};
use credential_webhook::metrics::Metrics;
use credential_webhook::server::{ServerBuilder, shutdown_on_signals};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let filter = EnvFilter::try_new(&cli.log_level).with_context(|| format!("--log-level {:?}", cli.log_level))?;
    // `serve` writes its lines on a writer thread through a buffer: a request never waits for
    // write(2), and lines that pile up under load leave in one write. Nothing is dropped (not lossy: a
    // full queue waits); the guard flushes what is queued when main returns. The one-shot commands
    // write straight to stdout, in order with what they print.
    let (writer, _log_guard) = if matches!(cli.command, Command::Serve(_)) {
        let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
            .lossy(false)
            // The default queue (128,000 lines) is allocated up front: about 4 MiB of RSS for nothing.
            .buffered_lines_limit(4096)
            .thread_name("log-writer")
            .finish(std::io::BufWriter::new(std::io::stdout()));
        (BoxMakeWriter::new(writer), Some(guard))
    } else {
        (BoxMakeWriter::new(std::io::stdout), None)
    };
    match cli.log_format {
        // Our JSON lines: list fields (finding codes) are arrays, not strings.
        LogFormat::Json => tracing_subscriber::fmt()
            .event_format(credential_webhook::logjson::JsonLines)
            .with_env_filter(filter)
            .with_writer(writer)
            .init(),
        // Colour only on a terminal: piped text logs (kubectl logs, files) stay plain.
        LogFormat::Text => tracing_subscriber::fmt()
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .with_env_filter(filter)
            .with_writer(writer)
            .init(),
    }
    match cli.command {
        Command::Certs(args) => {
            let w = credential_webhook::certs::write_dir(&args.out, &args.hosts)?;
            println!(
                "wrote {} {} {} for {}",
                w.ca_cert.display(),
                w.tls_cert.display(),
                w.tls_key.display(),
                args.hosts.join(", ")
            );
            Ok(())
        }
        Command::Preflight(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            let code = runtime.block_on(preflight(&args));
            std::process::exit(code)
        }
        Command::Serve(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(serve(*args))
        }
    }
}

/// Runs the checks, prints the report; the exit status (0 nothing failed, 1 otherwise).
async fn preflight(args: &PreflightArgs) -> i32 {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let report = match credential_webhook::cache::live::client(args.kubeconfig.as_deref()).await {
        Ok(client) => credential_webhook::preflight::run(client, &args.options()).await,
        Err(e) => {
            println!("[FAIL] management API server: {e}\n       fix: give --kubeconfig or set $KUBECONFIG");
            return 1;
        }
    };
    print!("{}", report.render());
    report.exit_code()
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    // The kube client and our server both use ring; make it the process default explicitly.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let metrics = Arc::new(Metrics::new());
    let shutdown = CancellationToken::new();
    shutdown_on_signals(shutdown.clone());

    let (setting, deprecated) = args.distribution_setting().map_err(anyhow::Error::msg)?;
    if let Some(warning) = deprecated {
        tracing::warn!("{warning}");
    }
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        source = if args.estate.is_some() { "offline estate" } else { "cluster" },
        distribution_mode = %setting,
        system_namespace = %args.system_namespace,
        listen = %args.listen,
        admin_listen = %args.admin_listen,
        "credential-webhook starting"
    );
    let mut running: Option<LiveWebhook> = None;
    let mut readiness = None;
    let estate: Arc<dyn ServingEstate> = match &args.estate {
        Some(dir) => {
            let opts = credential_core::estate::LoadOptions {
                system_namespace: args.system_namespace.clone(),
                // Admission reads what the live cache keeps; trimmed as parsed, the load peaks low.
                trim: true,
                ..Default::default()
            };
            let estate =
                credential_core::estate::load_dir(dir, &opts).with_context(|| format!("--estate {}", dir.display()))?;
            metrics.set_cache_synced("management", "estate", true);
            tracing::info!(dir = %dir.display(), "deciding from the offline estate");
            Arc::new(estate)
        }
        None => {
            let client = credential_webhook::cache::live::client(args.kubeconfig.as_deref()).await?;
            let options = LiveOptions {
                mode: setting,
                force_write_mode: args.force_write_mode,
                distribution: args.distribution_config(),
            };
            let live = credential_webhook::live::start(client, options, metrics.clone(), shutdown.clone())
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            readiness = Some(live.readiness_detail());
            let index = live.index.clone();
            running = Some(live);
            index
        }
    };

    tokio::spawn(credential_webhook::server::log_when_synced(estate.clone(), shutdown.clone()));
    let mut builder = ServerBuilder::new(args.server_config(), estate).metrics(metrics).shutdown_token(shutdown);
    if let Some(d) = running.as_ref().and_then(|l| l.distributor.as_ref()) {
        builder = builder.sink(Arc::new(d.handle()));
    }
    if let Some(detail) = readiness {
        builder = builder.readiness_detail(detail);
    }
    let server = builder.start().await?;
    server.wait().await;
    if let Some(live) = running {
        live.shutdown().await;
    }
    tracing::info!("stopped");
    Ok(())
}
