//! `audience-operator run`: leader election, the controllers, the HTTP endpoints and a graceful
//! shutdown. [`Operator::start`] runs it all in-process (the integration tests start two).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context as _;
use kube::Client;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use url::Url;

use crate::controller::{Context, Settings, run_controllers};
use crate::leader::{Leadership, LeaseSettings};
use crate::metrics::Metrics;
use crate::server::{Health, serve};
use crate::sync::connect::EndpointPolicy;
use crate::sync::{ConnectOptions, ConnectorFactory, DefaultConnectors};

/// Flags of `audience-operator run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Watch only this namespace (repeatable). Default: every namespace.
    #[arg(long = "namespace", short = 'n')]
    pub namespaces: Vec<String>,
    /// Runs under way at most at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: u16,
    /// Address of `/metrics`, `/healthz` and `/readyz`.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "audience-operator")]
    pub lease_name: String,
    /// Namespace of the Lease (default: `$POD_NAMESPACE`, else the client's default namespace).
    #[arg(long, env = "POD_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// Run without leader election (a single replica only).
    #[arg(long)]
    pub no_leader_election: bool,
    /// This replica's identity in the Lease and in Events (default: `$POD_NAME`, else host-pid).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Send every vendor call to the simulators served at this URL (see `audience-operator sandbox`).
    #[arg(long)]
    pub sandbox: Option<Url>,
    /// Allow a sync's `endpoint` (and RetailCRM `url`) to point at this host (repeatable; an
    /// exact name or `*.domain`). Without it only the vendors' own hosts are used; plain http
    /// only to a listed loopback address.
    #[arg(long = "allow-endpoint-host", value_name = "HOST")]
    pub allowed_endpoint_hosts: Vec<String>,
    /// Receive vendor webhooks here (Shopify, Mailchimp, Lightspeed X): a verified delivery runs
    /// the syncs of that account at once. Off unless given; see the README's "Webhooks".
    #[arg(long, env = "AUDIENCE_OPERATOR_WEBHOOK_ADDR")]
    pub webhook_addr: Option<SocketAddr>,
    /// Log as JSON lines.
    #[arg(long)]
    pub log_json: bool,
}

/// What an in-process operator runs with.
pub struct OperatorOptions {
    /// Empty: every namespace.
    pub namespaces: Vec<String>,
    pub settings: Settings,
    /// `None`: no leader election (always leader).
    pub lease: Option<LeaseSettings>,
    pub connectors: Arc<dyn ConnectorFactory>,
    /// Serve `/metrics`, `/healthz`, `/readyz` here (port 0 picks one).
    pub http_addr: Option<SocketAddr>,
    /// Receive vendor webhooks here (port 0 picks one); `None`: no receiver.
    pub webhook_addr: Option<SocketAddr>,
}

impl OperatorOptions {
    pub fn new(settings: Settings) -> Self {
        OperatorOptions {
            namespaces: Vec::new(),
            settings,
            lease: None,
            connectors: Arc::new(DefaultConnectors::default()),
            http_addr: None,
            webhook_addr: None,
        }
    }
}

/// A running operator.
pub struct Operator {
    pub health: Arc<Health>,
    /// Where the HTTP endpoints listen, when asked for.
    pub http_addr: Option<SocketAddr>,
    /// Where the webhook receiver listens, when asked for.
    pub webhook_addr: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    handle: JoinHandle<anyhow::Result<()>>,
}

impl Operator {
    /// Starts the operator; returns once the elector (or the controllers) are under way.
    pub async fn start(client: Client, options: OperatorOptions) -> anyhow::Result<Operator> {
        let health = Arc::new(Health::default());
        let metrics = Metrics::global();
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let mut http_addr = None;
        if let Some(addr) = options.http_addr {
            let mut rx = shutdown_rx.clone();
            let (bound, _) = serve(addr, health.clone(), metrics.clone(), async move {
                let _ = rx.wait_for(|s| *s).await;
            })
            .await
            .with_context(|| format!("binding {addr}"))?;
            tracing::info!(addr = %bound, "serving /metrics, /healthz, /readyz");
            http_addr = Some(bound);
        }
        let mut webhooks = None;
        let mut webhook_addr = None;
        if let Some(addr) = options.webhook_addr {
            let server = crate::webhooks::start(
                client.clone(),
                &options.namespaces,
                addr,
                shutdown_rx.clone(),
            )
            .await
            .with_context(|| format!("binding the webhook receiver at {addr}"))?;
            webhook_addr = Some(server.addr);
            webhooks = Some(server.hub);
        }
        let leadership = match &options.lease {
            Some(lease) => Some(
                Leadership::start(client.clone(), lease)
                    .await
                    .context("starting leader election")?,
            ),
            None => None,
        };
        let handle = tokio::spawn(supervise(
            client,
            options,
            leadership,
            health.clone(),
            metrics,
            shutdown_rx,
            webhooks,
        ));
        Ok(Operator {
            health,
            http_addr,
            webhook_addr,
            shutdown: shutdown_tx,
            handle,
        })
    }

    /// Asks for a graceful shutdown without waiting.
    pub fn request_shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    /// Shuts down gracefully: runs stop at a safe point, status records what was applied, the
    /// lease is released.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.request_shutdown();
        self.handle.await.context("operator task")?
    }
}

/// Runs controllers while leader; stands by otherwise.
async fn supervise(
    client: Client,
    options: OperatorOptions,
    leadership: Option<Leadership>,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
    webhooks: Option<Arc<crate::webhooks::WebhookHub>>,
) -> anyhow::Result<()> {
    let Some(leadership) = leadership else {
        health.leader.store(true, Ordering::SeqCst);
        metrics.set_leader(true);
        let ctx = Context::with_webhooks(
            client,
            options.settings.clone(),
            options.connectors.clone(),
            webhooks.clone(),
        );
        let ready = health.clone();
        run_controllers(ctx, &options.namespaces, shutdown, move || {
            ready.ready.store(true, Ordering::SeqCst)
        })
        .await;
        health.ready.store(false, Ordering::SeqCst);
        health.leader.store(false, Ordering::SeqCst);
        metrics.set_leader(false);
        return Ok(());
    };
    let mut leader = leadership.subscribe();
    // A standby is ready as soon as it competes for the lease; a leader once its watches start.
    health.ready.store(true, Ordering::SeqCst);
    loop {
        tokio::select! {
            r = leader.wait_for(|l| *l) => if r.is_err() { break },
            _ = shutdown.wait_for(|s| *s) => break,
        }
        tracing::info!("became leader; starting controllers");
        health.ready.store(false, Ordering::SeqCst);
        health.leader.store(true, Ordering::SeqCst);
        metrics.set_leader(true);
        // One term: controllers run until leadership is lost or shutdown is asked for.
        let (term_tx, term_rx) = watch::channel(false);
        let watcher = {
            let mut leader = leader.clone();
            let mut shutdown = shutdown.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = leader.wait_for(|l| !*l) => tracing::warn!("lost leadership; stopping controllers"),
                    _ = shutdown.wait_for(|s| *s) => tracing::info!("shutting down controllers"),
                }
                let _ = term_tx.send(true);
            })
        };
        let ctx = Context::with_webhooks(
            client.clone(),
            options.settings.clone(),
            options.connectors.clone(),
            webhooks.clone(),
        );
        let ready = health.clone();
        run_controllers(ctx, &options.namespaces, term_rx, move || {
            ready.ready.store(true, Ordering::SeqCst)
        })
        .await;
        watcher.abort();
        health.leader.store(false, Ordering::SeqCst);
        health.ready.store(true, Ordering::SeqCst);
        metrics.set_leader(false);
        if *shutdown.borrow() {
            break;
        }
    }
    drop(leader);
    leadership.release().await;
    Ok(())
}

fn default_identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .unwrap_or_else(|| "audience-operator".into());
    format!("{host}-{}", std::process::id())
}

/// Resolves on SIGTERM or ctrl-c.
async fn termination() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `audience-operator run`.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    crate::logging::init(args.log_json);
    let client = Client::try_default()
        .await
        .context("connecting to Kubernetes (KUBECONFIG or in-cluster)")?;
    let identity = args.identity.clone().unwrap_or_else(default_identity);
    let settings = Settings {
        concurrency: args.concurrency.max(1),
        sandbox: args.sandbox.clone(),
        instance: identity.clone(),
        ..Settings::default()
    };
    let lease = if args.no_leader_election {
        None
    } else {
        let ns = args
            .lease_namespace
            .clone()
            .unwrap_or_else(|| client.default_namespace().to_string());
        Some(LeaseSettings::new(&args.lease_name, ns, &identity))
    };
    let options = OperatorOptions {
        namespaces: args.namespaces.clone(),
        settings,
        lease,
        connectors: Arc::new(DefaultConnectors::new(ConnectOptions {
            endpoints: EndpointPolicy::Listed(args.allowed_endpoint_hosts.clone()),
            ..ConnectOptions::default()
        })),
        http_addr: Some(args.metrics_addr),
        webhook_addr: args.webhook_addr,
    };
    let operator = Operator::start(client, options).await?;
    tracing::info!(%identity, namespaces = ?args.namespaces, "audience-operator started");
    termination().await;
    tracing::info!("termination requested; stopping runs at a safe point");
    // The pod's grace period is 30 s by default: finish well inside it whatever hangs.
    match tokio::time::timeout(Duration::from_secs(25), operator.shutdown()).await {
        Ok(result) => result,
        Err(_) => {
            tracing::error!("graceful shutdown did not finish within 25 s; exiting anyway");
            Ok(())
        }
    }
}
