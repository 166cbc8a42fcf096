//! One-shot subcommands (`sync`, `sandbox`, `demo`). Minimal stubs: owned and replaced by the CLI
//! engineer. `src/main.rs` parses these argument structs and calls each module's `main`.

pub mod demo;
pub mod sandbox;
pub mod sync;

use std::net::SocketAddr;
use std::path::PathBuf;

/// `audience-operator sync -f FILE`: run one sync described by a manifest, outside Kubernetes.
#[derive(Debug, Clone, clap::Args)]
pub struct SyncArgs {
    /// An AudienceSync or SegmentSync manifest (YAML).
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
    /// Plan only; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub output: OutputFormat,
    /// Send every vendor call to this sandbox instead of the real APIs.
    #[arg(long)]
    pub sandbox: Option<url::Url>,
}

/// Output formats of `sync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

/// `audience-operator sandbox`: serve the vendor simulators.
#[derive(Debug, Clone, clap::Args)]
pub struct SandboxArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8089")]
    pub listen: SocketAddr,
    /// Demo customers generated per source vendor.
    #[arg(long, default_value_t = 100)]
    pub customers: usize,
}

/// `audience-operator demo`: a sandbox and a sync end to end.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {}
