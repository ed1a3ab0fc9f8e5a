//! Runs one emulated Kubernetes API server until Ctrl-C; prints the kubeconfig path on stdout.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use credential_e2e::Emulator;

/// Kubernetes API emulator for end-to-end tests (test equipment, not a real API server).
#[derive(Parser)]
#[command(name = "kube-emulator")]
struct Args {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// YAML files whose objects are stored at start (namespaces and CRDs first).
    #[arg(long, num_args = 1..)]
    seed: Vec<PathBuf>,
    /// Also store the built-in minimal CRDs for the k0rdent and CAPI identity kinds.
    #[arg(long)]
    crds: bool,
    /// Context (and cluster/user) name in the kubeconfig.
    #[arg(long)]
    context: Option<String>,
    /// Write the kubeconfig here instead of a temporary directory.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut builder = Emulator::builder().port(args.port).crds(args.crds);
    if let Some(c) = &args.context {
        builder = builder.context_name(c);
    }
    for f in &args.seed {
        let text = std::fs::read_to_string(f).with_context(|| format!("cannot read seed file {}", f.display()))?;
        builder = builder.seed_yaml(text);
    }
    let emulator = builder.start().await?;
    let path = match &args.kubeconfig {
        Some(p) => {
            std::fs::write(p, emulator.kubeconfig_yaml())
                .with_context(|| format!("cannot write kubeconfig {}", p.display()))?;
            p.clone()
        }
        None => emulator.kubeconfig_path().to_path_buf(),
    };
    println!("{}", path.display());
    eprintln!("kube-emulator listening on {} (context {}); Ctrl-C stops it", emulator.url(), emulator.context_name());
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
    emulator.stop().await;
    Ok(())
}
