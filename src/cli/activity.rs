//! `audience-operator activity SYNC`: when was a customer last synced, and what changed — read
//! from the sync's activity log ConfigMap (`crate::activity`) through the kube client
//! (KUBECONFIG or in-cluster, as `run` finds the cluster).

use anyhow::Context;
use audience_core::activity::{ActivityEntry, lookup};
use kube::Client;

use super::OutputFormat;

/// The kind of sync whose log to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SyncKindArg {
    Audience,
    Segment,
    Order,
}

impl SyncKindArg {
    fn kind(self) -> &'static str {
        match self {
            SyncKindArg::Audience => "AudienceSync",
            SyncKindArg::Segment => "SegmentSync",
            SyncKindArg::Order => "OrderSync",
        }
    }
}

/// `audience-operator activity SYNC`: the recent record changes of a sync, newest first.
#[derive(Debug, Clone, clap::Args)]
pub struct ActivityArgs {
    /// The sync's name.
    pub sync: String,
    /// Its namespace (default: the kubeconfig context's).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// The sync's kind.
    #[arg(long, value_enum, default_value = "audience")]
    pub kind: SyncKindArg,
    /// Only the entries of this address (hashed first when the log holds hashes).
    #[arg(long, value_name = "ADDRESS")]
    pub email: Option<String>,
    /// At most this many entries.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// Output format (json: one entry per line, as stored).
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    pub output: OutputFormat,
}

/// What `activity` prints, and whether it found anything.
pub async fn answer(
    client: &Client,
    namespace: &str,
    args: &ActivityArgs,
) -> anyhow::Result<String> {
    let kind = args.kind.kind();
    let Some((entries, hashed)) = crate::activity::read(client, namespace, kind, &args.sync)
        .await
        .with_context(|| {
            format!(
                "reading the activity log of {kind} {namespace}/{}",
                args.sync
            )
        })?
    else {
        anyhow::bail!(
            "{kind} {namespace}/{} has no activity log (ConfigMap {} not found): no run has changed a record yet, or spec.activityLog.enabled is false",
            args.sync,
            crate::activity::configmap_name(kind, &args.sync)
        );
    };
    let found = lookup(&entries, args.email.as_deref(), hashed, args.limit);
    Ok(render(&found, args))
}

fn render(found: &[&ActivityEntry], args: &ActivityArgs) -> String {
    let mut out = String::new();
    match args.output {
        OutputFormat::Json => {
            for entry in found {
                out.push_str(&serde_json::to_string(entry).expect("entries serialise"));
                out.push('\n');
            }
        }
        OutputFormat::Text => {
            if found.is_empty() {
                match &args.email {
                    Some(email) => out.push_str(&format!("no activity for {email}\n")),
                    None => out.push_str("no activity\n"),
                }
            }
            if let (Some(email), Some(last)) = (&args.email, found.first()) {
                out.push_str(&format!(
                    "{email}: last synced {} (run {})\n",
                    last.time.to_rfc3339(),
                    last.run
                ));
            }
            for e in found {
                out.push_str(&format!(
                    "{}  {}  {}  {}\n",
                    e.time.to_rfc3339(),
                    e.side,
                    e.email,
                    e.describe()
                ));
            }
        }
    }
    out
}

pub async fn main(args: ActivityArgs) -> anyhow::Result<()> {
    let config = kube::Config::infer()
        .await
        .context("finding the cluster (KUBECONFIG or in-cluster)")?;
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = Client::try_from(config).context("connecting to Kubernetes")?;
    print!("{}", answer(&client, &namespace, &args).await?);
    Ok(())
}
