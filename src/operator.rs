//! `audience-operator run`: leader election (or, with `--shards N`, one Lease per shard: see
//! [`crate::shard`]), the controllers, the HTTP endpoints and a graceful shutdown.
//! [`Operator::start`] runs it all in-process (the integration tests start two, or three).

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
use crate::shard::{ShardFilter, ShardManager, ShardSettings, Shards, ordinal_of};
use crate::sync::connect::EndpointPolicy;
use crate::sync::{ConnectOptions, ConnectorFactory, DefaultConnectors};

/// Flags of `audience-operator run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Watch only this namespace (repeatable). Default: every namespace.
    #[arg(long = "namespace", short = 'n')]
    pub namespaces: Vec<String>,
    /// Runs under way at most at once (small runs go many at once: the per-key vendor budgets
    /// limit each account's traffic).
    #[arg(long, default_value_t = crate::controller::admission::DEFAULT_CONCURRENCY)]
    pub concurrency: u16,
    /// Records all runs under way may hold together; each run counts its last run's size, so
    /// large shops run few at once.
    #[arg(long, default_value_t = crate::controller::admission::DEFAULT_RECORDS_BUDGET)]
    pub run_records_budget: u64,
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
    /// Spread the syncs over this many shards, one Lease each (`<lease-name>-shard-K`), instead
    /// of one leader: the chart's StatefulSet sets it to its replicas. 1: leader election.
    #[arg(long, env = "AUDIENCE_OPERATOR_SHARDS", default_value_t = 1)]
    pub shards: u32,
    /// This replica's home shard (default: the ordinal at the end of `--identity`, as in a
    /// StatefulSet pod's name `audience-operator-2`; without either, the replica only fills in
    /// for shards whose home replica is gone).
    #[arg(long, env = "AUDIENCE_OPERATOR_SHARD")]
    pub shard: Option<u32>,
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
    /// The receiver's URL as the vendors reach it (e.g. `https://hooks.example.com`): syncs with
    /// `webhooks.register: true` get subscriptions at the vendors pointing here, removed again
    /// when the sync is deleted. Without it nothing is registered.
    #[arg(long, env = "AUDIENCE_OPERATOR_WEBHOOK_PUBLIC_URL", value_parser = public_url)]
    pub webhook_public_url: Option<String>,
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
    /// Sharding (replaces `lease` when set): reconcile only the syncs of the shards held.
    pub shards: Option<ShardSettings>,
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
            shards: None,
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
    /// Asks the shard elector to stop without releasing its Leases (see [`Operator::kill`]).
    crash: watch::Sender<bool>,
    shards: Option<ShardFilter>,
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
        let (crash_tx, crash_rx) = watch::channel(false);
        if let Some(settings) = options.shards.clone() {
            let (in_flight_tx, in_flight_rx) = watch::channel(Shards::new());
            let manager = ShardManager::start(client.clone(), settings, in_flight_rx)
                .await
                .context("starting the shard electors")?;
            let shards = Some(manager.filter());
            let handle = tokio::spawn(supervise_shards(
                client,
                options,
                manager,
                in_flight_tx,
                health.clone(),
                metrics,
                shutdown_rx,
                crash_rx,
                webhooks,
            ));
            return Ok(Operator {
                health,
                http_addr,
                webhook_addr,
                shutdown: shutdown_tx,
                crash: crash_tx,
                shards,
                handle,
            });
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
            crash: crash_tx,
            shards: None,
            handle,
        })
    }

    /// With sharding: the shards this process holds, and their changes.
    pub fn shards(&self) -> Option<ShardFilter> {
        self.shards.clone()
    }

    /// Stops as a killed process does, as far as the cluster can tell: no Lease is released
    /// (they expire on their own), so the other replicas take over only after expiry. Runs under
    /// way still stop at a safe point. Without sharding, the same as [`Operator::shutdown`].
    pub async fn kill(self) -> anyhow::Result<()> {
        let _ = self.crash.send(true);
        self.shutdown().await
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

/// With sharding: the controllers run for the whole life of the process and reconcile only what
/// the held shards contain (gaining a shard triggers its objects). Losing one ends the term: runs
/// under way stop at a safe point and the controllers restart on the shards still held, so no run
/// of a lost shard goes on beside its new owner's. `in_flight` tells the elector which shards may
/// still have runs under way (everything held at some point of the current term), so a shard
/// handed back is released only after its runs stopped.
#[allow(clippy::too_many_arguments)]
async fn supervise_shards(
    client: Client,
    options: OperatorOptions,
    manager: ShardManager,
    in_flight: watch::Sender<Shards>,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
    mut crash: watch::Receiver<bool>,
    webhooks: Option<Arc<crate::webhooks::WebhookHub>>,
) -> anyhow::Result<()> {
    let filter = manager.filter();
    let in_flight = Arc::new(in_flight);
    // The elector ends with the process: released on a shutdown, abandoned on a kill.
    let elector = {
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let crashed = tokio::select! {
                biased;
                r = crash.wait_for(|c| *c) => r.is_ok(),
                _ = shutdown.wait_for(|s| *s) => false,
            };
            if crashed {
                manager.abandon().await
            } else {
                manager.release().await
            }
        })
    };
    let mut owned = filter.subscribe();
    loop {
        let held = owned.borrow_and_update().clone();
        in_flight.send_replace(held.clone());
        set_role(&health, &metrics, !held.is_empty());
        let (term_tx, term_rx) = watch::channel(false);
        let watcher = {
            let mut owned = owned.clone();
            let mut shutdown = shutdown.clone();
            let in_flight = in_flight.clone();
            let (health, metrics) = (health.clone(), metrics.clone());
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        r = owned.changed() => {
                            if r.is_err() {
                                break;
                            }
                            let now = owned.borrow_and_update().clone();
                            set_role(&health, &metrics, !now.is_empty());
                            if !in_flight.borrow().is_subset(&now) {
                                tracing::info!(shards = ?now, "a shard was lost or handed over; restarting the controllers on the shards still held");
                                break;
                            }
                            in_flight.send_modify(|f| f.extend(now));
                        }
                        _ = shutdown.wait_for(|s| *s) => break,
                    }
                }
                let _ = term_tx.send(true);
            })
        };
        let ctx = Context::with_shards(
            Context::with_webhooks(
                client.clone(),
                options.settings.clone(),
                options.connectors.clone(),
                webhooks.clone(),
            ),
            Some(filter.clone()),
        );
        // A replica holding no shard is a ready standby; it is ready once its watches start.
        let ready = health.clone();
        run_controllers(ctx, &options.namespaces, term_rx, move || {
            ready.ready.store(true, Ordering::SeqCst)
        })
        .await;
        watcher.abort();
        // Every run of this term has stopped.
        in_flight.send_replace(Shards::new());
        if *shutdown.borrow() {
            break;
        }
    }
    set_role(&health, &metrics, false);
    health.ready.store(false, Ordering::SeqCst);
    let _ = elector.await;
    Ok(())
}

fn set_role(health: &Health, metrics: &Metrics, leader: bool) {
    health.leader.store(leader, Ordering::SeqCst);
    metrics.set_leader(leader);
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

/// Checks `--webhook-public-url` at parse time (kept as text: `RunArgs` stays small).
fn public_url(s: &str) -> Result<String, String> {
    match Url::parse(s) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(s.to_string()),
        Ok(_) => Err("the public URL must be http or https".into()),
        Err(e) => Err(e.to_string()),
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
        run_records_budget: args.run_records_budget.max(1),
        sandbox: args.sandbox.clone(),
        instance: identity.clone(),
        webhook_public_url: args
            .webhook_public_url
            .as_deref()
            .map(Url::parse)
            .transpose()
            .context("--webhook-public-url")?,
        ..Settings::default()
    };
    let lease_namespace = args
        .lease_namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_string());
    let lease_settings = LeaseSettings::new(&args.lease_name, lease_namespace, &identity);
    let (lease, shards) = if args.shards > 1 {
        let ordinal = match args.shard {
            Some(k) => {
                anyhow::ensure!(
                    k < args.shards,
                    "--shard {k} is not below --shards {}",
                    args.shards
                );
                Some(k)
            }
            // Only a given identity (the pod name) names a home shard: the default host-pid
            // would read as an ordinal. A pod beyond the shard count (a StatefulSet scaled by
            // hand past --shards) has no home and only fills in for shards without an owner.
            None => match args.identity.as_deref().and_then(ordinal_of) {
                Some(k) if k >= args.shards => {
                    tracing::warn!(
                        ordinal = k,
                        shards = args.shards,
                        "this pod's ordinal is past the shard count; it has no home shard and only fills in for shards whose home pod is gone"
                    );
                    None
                }
                k => k,
            },
        };
        tracing::info!(shards = args.shards, home = ?ordinal, "sharding");
        (
            None,
            Some(ShardSettings::new(args.shards, ordinal, lease_settings)),
        )
    } else if args.no_leader_election {
        (None, None)
    } else {
        (Some(lease_settings), None)
    };
    let options = OperatorOptions {
        namespaces: args.namespaces.clone(),
        settings,
        lease,
        shards,
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
