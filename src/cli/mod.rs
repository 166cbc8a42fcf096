//! One-shot subcommands: `sync` (a reconcile without a cluster), `sandbox` (every vendor simulator
//! on one port), `demo` (both, end to end, over the manifests in `examples/`) and `activity` (a
//! sync's activity log in the cluster).
//! `src/main.rs` parses these argument structs and calls each module's `main`.

pub mod activity;
pub mod crd_check;
pub mod demo;
pub mod manifest;
pub mod report;
pub mod sandbox;
pub mod state;
pub mod sync;

use std::net::SocketAddr;
use std::path::PathBuf;

/// `audience-operator sync -f FILE`: run the syncs of a manifest once, outside Kubernetes.
///
/// FILE is a multi-document YAML stream (what `kubectl apply -f` takes) holding AudienceSync and
/// SegmentSync objects and the Secrets they reference (`stringData` or base64 `data`). A Secret
/// that is not in FILE is read from the environment instead: key KEY of Secret NAME is the variable
/// `AUDIENCE_OPERATOR_SECRET_<NAME>_<KEY>` in upper snake case, e.g. key `apiKey` of Secret
/// `mailchimp-credentials` is `AUDIENCE_OPERATOR_SECRET_MAILCHIMP_CREDENTIALS_API_KEY`.
///
/// There is no status to keep a checkpoint in, so every run reads everything. The exit status is
/// 0 when every sync succeeded (or planned, with --dry-run) and 1 otherwise.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = SYNC_HELP)]
pub struct SyncArgs {
    /// The manifest: AudienceSync/SegmentSync objects and their Secrets (YAML, `-` for stdin).
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
    /// Plan only; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub output: OutputFormat,
    /// Send every vendor call to this sandbox (`audience-operator sandbox`) instead of the real APIs.
    #[arg(long)]
    pub sandbox: Option<url::Url>,
    /// Let the plan with this id go ahead although it removes more than the safety limit allows
    /// (the id a safety stop printed).
    #[arg(long, value_name = "PLAN_ID")]
    pub approve: Option<String>,
    /// Where OrderSyncs keep their order cursors between runs (JSON). Defaults to
    /// `.audience-operator-state` next to FILE (the current directory for stdin).
    #[arg(long, value_name = "STATE_FILE")]
    pub state: Option<PathBuf>,
}

const SYNC_HELP: &str = "\
FILE holds AudienceSync, SegmentSync and OrderSync objects and the Secrets they reference (stringData or
base64 data), as `kubectl apply -f` takes them. A Secret that is not in FILE is read from the
environment: key KEY of Secret NAME is AUDIENCE_OPERATOR_SECRET_<NAME>_<KEY> in upper snake case,
e.g. key apiKey of Secret mailchimp-credentials is AUDIENCE_OPERATOR_SECRET_MAILCHIMP_CREDENTIALS_API_KEY,
key token of Secret lightspeed-x-credentials is AUDIENCE_OPERATOR_SECRET_LIGHTSPEED_X_CREDENTIALS_TOKEN.

Without a cluster there is no status to keep a checkpoint in: every audience run reads the source
in full. An OrderSync keeps its order cursor (and the time of its first run: events before it are
sent as backfill, firing no flows), the ids of the events Klaviyo accepted and the time the promo
codes were last synced in the --state file, by default .audience-operator-state next to FILE
(the current directory for stdin): a second run sends only what is new. Delete the
file to start over; Klaviyo's dedupe by unique id still records no event twice.
Exit status: 0 when every sync succeeded (with --dry-run: planned), 1 otherwise. A run stopped by
the safety limit prints its plan id; run again with --approve PLAN_ID to let exactly that plan go
ahead.

Examples:
  audience-operator sandbox &
  audience-operator sync -f examples/lightspeed-x-to-mailchimp.yaml --sandbox http://127.0.0.1:8089
  audience-operator sync -f examples/retailcrm-segment-exact.yaml --sandbox http://127.0.0.1:8089 --dry-run --output json
  audience-operator sync -f examples/lightspeed-r-orders-to-klaviyo.yaml --sandbox http://127.0.0.1:8089 --state /tmp/orders-state.json";

/// Output formats of `sync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

/// `audience-operator sandbox`: serve the vendor simulators.
#[derive(Debug, Clone, clap::Args)]
pub struct SandboxArgs {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8089")]
    pub listen: SocketAddr,
    /// Demo customers generated per source vendor.
    #[arg(long, default_value_t = 300)]
    pub customers: usize,
}

/// `audience-operator demo`: a sandbox and the example syncs end to end.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Demo customers generated per source vendor.
    #[arg(long, default_value_t = 300)]
    pub customers: usize,
}
