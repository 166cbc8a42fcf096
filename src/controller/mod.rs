//! The controllers: one kube-rs `Controller` per kind (and per watched namespace), each also
//! watching the Secrets its objects reference.
//!
//! Every reconcile is a pipeline (after the Stackable operators), one file a step:
//! [`reconcile`] drives *validate* the spec (pure) → *decide* whether a run is due (pure,
//! [`crate::schedule`]) → [`dereference`] the Secrets and [`run`] the sync's one job path
//! ([`crate::sync`]) → build the [`status`] (pure) → apply it (server-side apply on the status
//! subresource), publish an Event and count the metrics. Error types decide the next attempt
//! ([`errors`]). No vendor is named here: vendors are the sync layer's and the connectors'.

pub mod admission;
pub mod dereference;
pub mod errors;
pub mod reconcile;
pub mod registration;
pub mod run;
pub mod segment_watch;
pub mod status;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::core::DeserializeGuard;
use kube::runtime::controller::{Action, Config as ControllerConfig};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use tokio::sync::watch;
use url::Url;

use crate::crd::{AudienceSync, CREDENTIALS_LABEL, OrderSync, SegmentSync};
use crate::metrics::Metrics;
use crate::shard::{ShardFilter, Shards, shard_of};
use crate::sync::{ConnectorCache, ConnectorFactory, DefaultConnectors};
pub use crate::sync::{SyncError, SyncObject};
use crate::webhooks::WebhookHub;
pub use errors::Retry;

/// The field manager of every status write.
pub const FIELD_MANAGER: &str = "audience-operator";

/// Tunables of the controllers.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Runs at most this many at once, over every kind (see [`admission`]).
    pub concurrency: u16,
    /// Records all runs at once may hold, each run sized by its last run (see [`admission`]).
    pub run_records_budget: u64,
    /// First delay of the per-object backoff after a transient failure.
    pub backoff_base: Duration,
    /// Longest backoff delay.
    pub backoff_max: Duration,
    /// Retry delay after credentials failures (a Secret change retries at once).
    pub credentials_retry: Duration,
    /// `Progressing` is patched at most this often during a run.
    pub progress_interval: Duration,
    /// `--sandbox`: send every vendor call to the simulators at this URL.
    pub sandbox: Option<Url>,
    /// This replica's name in Events.
    pub instance: String,
    /// The operator's webhook receiver as the vendors reach it (`--webhook-public-url`): syncs
    /// with `webhooks.register` get subscriptions pointing here. `None`: nothing is registered.
    pub webhook_public_url: Option<Url>,
    /// How often a SegmentSync's source segment metadata is checked between runs (see
    /// [`segment_watch`]); zero: never.
    pub segment_watch: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            concurrency: admission::DEFAULT_CONCURRENCY,
            run_records_budget: admission::DEFAULT_RECORDS_BUDGET,
            backoff_base: Duration::from_secs(10),
            backoff_max: Duration::from_secs(600),
            credentials_retry: Duration::from_secs(300),
            progress_interval: Duration::from_secs(3),
            sandbox: None,
            instance: "audience-operator".into(),
            webhook_public_url: None,
            segment_watch: Duration::from_secs(60),
        }
    }
}

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub connectors: Arc<dyn ConnectorFactory>,
    /// Each sync's connectors, kept between its runs (see [`crate::sync::cache`]).
    pub connector_cache: ConnectorCache,
    pub settings: Settings,
    /// Set on shutdown or lost leadership: runs stop at the next safe point.
    pub stop: Arc<AtomicBool>,
    /// Consecutive failures per object (backoff), reset on success.
    failures: Mutex<HashMap<String, u32>>,
    /// Objects whose Secrets changed since their last reconcile.
    secret_changed: Mutex<HashSet<String>>,
    /// Vendor webhooks, when the operator receives them (see [`crate::webhooks`]).
    pub webhooks: Option<Arc<WebhookHub>>,
    /// With sharding: the shards this process holds; objects of other shards are not
    /// reconciled (see [`crate::shard`]). `None`: every object.
    pub shards: Option<ShardFilter>,
    /// Bounds runs across all controllers.
    runs: admission::Admission,
    /// Per object: what its webhooks were last registered for (see `registration`).
    registered: Mutex<HashMap<String, registration::Stamp>>,
    /// Per SegmentSync: when its segment metadata was last read, and a change seen but not yet
    /// run (kept across a reconcile that defers to a fresher object).
    segment_checks: Mutex<HashMap<String, Instant>>,
    segment_changes: Mutex<HashMap<String, String>>,
    /// The opted-in Secrets each kind's controller watches, as its watch last saw them: a run
    /// reads its credentials here instead of asking the API server (see `dereference`).
    /// Keyed by kind and the namespace the watch covers (`None`: all).
    secret_stores: Mutex<HashMap<SecretScope, Store<Secret>>>,
    /// The namespaces the controllers watch (empty: the whole cluster), set by
    /// [`run_controllers`]: where `registration` looks for other syncs still needing a
    /// subscription.
    watched: Mutex<Vec<String>>,
}

/// A kind's Secret watch: the kind and the namespace it covers (`None`: all).
type SecretScope = (&'static str, Option<String>);

impl Context {
    pub fn new(
        client: Client,
        settings: Settings,
        connectors: Arc<dyn ConnectorFactory>,
    ) -> Arc<Context> {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "audience-operator".into(),
                instance: Some(settings.instance.clone()),
            },
        );
        Arc::new(Context {
            client,
            recorder,
            metrics: Metrics::global(),
            connectors,
            connector_cache: ConnectorCache::new(),
            runs: admission::Admission::new(settings.concurrency, settings.run_records_budget),
            settings,
            stop: Arc::new(AtomicBool::new(false)),
            failures: Mutex::new(HashMap::new()),
            secret_changed: Mutex::new(HashSet::new()),
            webhooks: None,
            shards: None,
            registered: Mutex::new(HashMap::new()),
            segment_checks: Mutex::new(HashMap::new()),
            segment_changes: Mutex::new(HashMap::new()),
            secret_stores: Mutex::new(HashMap::new()),
            watched: Mutex::new(Vec::new()),
        })
    }

    fn add_secret_store(&self, kind: &'static str, scope: Option<String>, store: Store<Secret>) {
        self.secret_stores
            .lock()
            .expect("secret stores lock")
            .insert((kind, scope), store);
    }

    fn remove_secret_store(&self, kind: &'static str, scope: &Option<String>) {
        self.secret_stores
            .lock()
            .expect("secret stores lock")
            .remove(&(kind, scope.clone()));
    }

    /// The store of opted-in Secrets kind `kind`'s controller watches in `namespace`.
    pub(crate) fn secret_store(
        &self,
        kind: &'static str,
        namespace: &str,
    ) -> Option<Store<Secret>> {
        let stores = self.secret_stores.lock().expect("secret stores lock");
        stores
            .get(&(kind, Some(namespace.to_string())))
            .or_else(|| stores.get(&(kind, None)))
            .cloned()
    }

    /// The same context, reconciling only the objects of the shards `filter` holds.
    pub fn with_shards(mut ctx: Arc<Context>, filter: Option<ShardFilter>) -> Arc<Context> {
        Arc::get_mut(&mut ctx).expect("a new context").shards = filter;
        ctx
    }

    /// The namespaces the controllers watch (empty: the whole cluster).
    pub(crate) fn watched_namespaces(&self) -> Vec<String> {
        self.watched.lock().expect("watched lock").clone()
    }

    /// Whether this process reconciles the object (always, without sharding).
    pub fn owns(&self, namespace: &str, name: &str) -> bool {
        self.shards.as_ref().is_none_or(|f| f.owns(namespace, name))
    }

    /// The same context, with webhooks asking its controllers for runs.
    pub fn with_webhooks(
        client: Client,
        settings: Settings,
        connectors: Arc<dyn ConnectorFactory>,
        webhooks: Option<Arc<WebhookHub>>,
    ) -> Arc<Context> {
        let mut ctx = Context::new(client, settings, connectors);
        Arc::get_mut(&mut ctx).expect("a new context").webhooks = webhooks;
        ctx
    }

    /// A context with the real connectors.
    pub fn with_default_connectors(client: Client, settings: Settings) -> Arc<Context> {
        Context::new(client, settings, Arc::new(DefaultConnectors::default()))
    }

    fn failure(&self, key: &str) -> u32 {
        let n = {
            let mut f = self.failures.lock().expect("failures lock");
            let n = f.entry(key.to_string()).or_insert(0);
            *n += 1;
            *n
        };
        self.publish_tracked();
        n
    }

    fn reset_failures(&self, key: &str) {
        self.failures.lock().expect("failures lock").remove(key);
        self.publish_tracked();
    }

    fn mark_secret_changed(&self, key: String) {
        self.secret_changed.lock().expect("secret lock").insert(key);
        self.publish_tracked();
    }

    /// Per-object entries kept between reconciles.
    pub fn tracked_objects(&self) -> usize {
        self.failures.lock().expect("failures lock").len()
            + self.secret_changed.lock().expect("secret lock").len()
            + self.registered.lock().expect("registered lock").len()
            + self.segment_checks.lock().expect("segment lock").len()
            + self.segment_changes.lock().expect("segment lock").len()
            + self.connector_cache.len()
    }

    fn publish_tracked(&self) {
        self.metrics.set_tracked_objects(self.tracked_objects());
    }

    /// Forgets what is kept of the objects of `kind` that are not in `live` (their `object_key`s):
    /// a deleted object is never reconciled again, so nothing else would remove its entries.
    fn prune(&self, kind: &str, live: &HashSet<String>) {
        let prefix = format!("{kind}/");
        let gone = |key: &str| key.starts_with(&prefix) && !live.contains(key);
        self.failures
            .lock()
            .expect("failures lock")
            .retain(|key, _| !gone(key));
        self.secret_changed
            .lock()
            .expect("secret lock")
            .retain(|key| !gone(key));
        self.registered
            .lock()
            .expect("registered lock")
            .retain(|key, _| !gone(key));
        self.segment_checks
            .lock()
            .expect("segment lock")
            .retain(|key, _| !gone(key));
        self.segment_changes
            .lock()
            .expect("segment lock")
            .retain(|key, _| !gone(key));
        self.connector_cache.retain(|key| !gone(key));
        if let Some(hub) = &self.webhooks {
            hub.forget(gone);
        }
        // Shopper events queued for a deleted AudienceSync (keyed `namespace/name`).
        if kind == <crate::crd::AudienceSync as SyncObject>::KIND {
            crate::engine::customer_events::forget_queues(|sync_key| {
                gone(&format!("{prefix}{sync_key}"))
            });
        }
        self.publish_tracked();
    }

    fn registered(&self, key: &str) -> Option<registration::Stamp> {
        self.registered
            .lock()
            .expect("registered lock")
            .get(key)
            .cloned()
    }

    fn set_registered(&self, key: String, stamp: Option<registration::Stamp>) {
        let mut map = self.registered.lock().expect("registered lock");
        match stamp {
            Some(stamp) => map.insert(key, stamp),
            None => map.remove(&key),
        };
    }

    /// A run read the segment at `now`: it counts as a check.
    fn segment_read(&self, key: &str, now: Instant) {
        self.segment_checks
            .lock()
            .expect("segment lock")
            .insert(key.to_string(), now);
    }

    /// When the segment was last checked, if that is less than `interval` ago; else records
    /// `now` as this check and returns `None`.
    fn segment_checked(&self, key: &str, now: Instant, interval: Duration) -> Option<Instant> {
        let mut checks = self.segment_checks.lock().expect("segment lock");
        match checks.get(key) {
            Some(last) if now.duration_since(*last) < interval => Some(*last),
            _ => {
                checks.insert(key.to_string(), now);
                None
            }
        }
    }

    fn segment_change(&self, key: &str) -> Option<String> {
        self.segment_changes
            .lock()
            .expect("segment lock")
            .get(key)
            .cloned()
    }

    fn set_segment_change(&self, key: &str, what: Option<String>) {
        let mut changes = self.segment_changes.lock().expect("segment lock");
        match what {
            Some(what) => changes.insert(key.to_string(), what),
            None => changes.remove(key),
        };
    }

    fn take_secret_changed(&self, key: &str) -> bool {
        self.secret_changed.lock().expect("secret lock").remove(key)
    }
}

/// How often each controller drops what is kept of deleted objects (a scan of its own cache).
const PRUNE_EVERY: Duration = Duration::from_secs(5);

/// Until `shutdown`: every [`PRUNE_EVERY`], forgets the per-object entries of objects of kind `K`
/// no longer in `store`. An entry is only made while reconciling an object the store holds, so
/// an entry whose object is missing from it belongs to a deleted object.
async fn prune_deleted<K: SyncObject>(
    ctx: Arc<Context>,
    store: Store<DeserializeGuard<K>>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(PRUNE_EVERY) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        let live: HashSet<String> = store
            .state()
            .iter()
            .map(|guard| {
                format!(
                    "{}/{}/{}",
                    K::KIND,
                    guard.namespace().unwrap_or_default(),
                    guard.name_any()
                )
            })
            .collect();
        ctx.prune(K::KIND, &live);
        tracing::trace!(
            kind = K::KIND,
            live = live.len(),
            tracked = ctx.tracked_objects(),
            "pruned deleted objects"
        );
    }
}

/// `Kind/namespace/name`.
pub fn object_key<K: SyncObject>(obj: &K) -> String {
    format!(
        "{}/{}/{}",
        K::KIND,
        obj.namespace().unwrap_or_default(),
        obj.name_any()
    )
}

/// The objects of a store that reference a Secret.
fn referencing<K: SyncObject>(
    store: &Store<DeserializeGuard<K>>,
    secret: &Secret,
) -> Vec<(ObjectRef<DeserializeGuard<K>>, String)> {
    let (Some(ns), name) = (secret.namespace(), secret.name_any()) else {
        return Vec::new();
    };
    store
        .state()
        .iter()
        .filter_map(|guard| guard.0.as_ref().ok())
        .filter(|obj| {
            obj.namespace().as_deref() == Some(ns.as_str()) && obj.secret_names().contains(&name)
        })
        .map(|obj| (ObjectRef::new(&obj.name_any()).within(&ns), object_key(obj)))
        .collect()
}

/// A reconcile that failed outside a run (writing the status, reading the API server): the same
/// per-object backoff from [`Settings`] as a failed run, on the same failure counter.
fn error_policy<K: SyncObject>(
    obj: Arc<DeserializeGuard<K>>,
    error: &SyncError,
    ctx: Arc<Context>,
) -> Action {
    let name = obj.name_any();
    let key = format!(
        "{}/{}/{}",
        K::KIND,
        obj.namespace().unwrap_or_default(),
        name
    );
    let n = ctx.failure(&key);
    let delay = errors::backoff_delay(n, ctx.settings.backoff_base, ctx.settings.backoff_max);
    tracing::warn!(kind = K::KIND, %name, error = %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// The reconcile, for the objects of this process's shards only: another shard's object is left
/// untouched (no status write, no Event, no requeue); its owner reconciles it, and this process
/// does when it gains the shard (see [`gained`]).
async fn reconcile_owned<K: SyncObject>(
    guard: Arc<DeserializeGuard<K>>,
    ctx: Arc<Context>,
) -> Result<Action, SyncError> {
    if !ctx.owns(&guard.namespace().unwrap_or_default(), &guard.name_any()) {
        return Ok(Action::await_change());
    }
    reconcile::reconcile::<K>(guard, ctx).await
}

/// The objects of each shard this process gains, as they are gained: they are reconciled at
/// once (a sync-now asked while the shard had no owner runs now, not at the next resync).
/// Objects of the shards held when the controller starts come from its first list.
fn gained<K: SyncObject>(
    filter: &ShardFilter,
    store: Store<DeserializeGuard<K>>,
) -> futures::stream::BoxStream<'static, ObjectRef<DeserializeGuard<K>>> {
    let mut rx = filter.subscribe();
    let held = rx.borrow_and_update().clone();
    let count = filter.count;
    futures::stream::unfold((rx, held), move |(mut rx, held)| {
        let store = store.clone();
        async move {
            rx.changed().await.ok()?;
            let now: Shards = rx.borrow_and_update().clone();
            let new: Shards = now.difference(&held).copied().collect();
            let refs: Vec<_> = if new.is_empty() {
                Vec::new()
            } else {
                store
                    .state()
                    .iter()
                    .filter_map(|guard| {
                        let ns = guard.namespace()?;
                        let name = guard.name_any();
                        new.contains(&shard_of(&ns, &name, count))
                            .then(|| ObjectRef::new(&name).within(&ns))
                    })
                    .collect()
            };
            if !refs.is_empty() {
                tracing::info!(kind = K::KIND, shards = ?new, objects = refs.len(), "gained shards; reconciling their objects");
            }
            Some((futures::stream::iter(refs), (rx, now)))
        }
    })
    .flatten()
    .boxed()
}

/// Where a controller watches: everywhere, or one namespace.
fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Runs one kind's controller in one scope until `shutdown` turns true.
async fn run_kind<K: SyncObject>(
    ctx: Arc<Context>,
    namespace: Option<String>,
    mut shutdown: watch::Receiver<bool>,
) {
    let api: Api<DeserializeGuard<K>> = scoped(&ctx.client, namespace.as_deref());
    let secrets: Api<Secret> = scoped(&ctx.client, namespace.as_deref());
    let controller = Controller::new(api, watcher::Config::default().any_semantic());
    let store = controller.store();
    // Only Secrets that opt in are cached (and read): not every Secret of the cluster. The
    // watch fills a store the runs read their credentials from.
    let (secret_store, secret_writer) = kube::runtime::reflector::store::<Secret>();
    let secret_events = kube::runtime::reflector(
        secret_writer,
        watcher(
            secrets,
            watcher::Config::default().labels(&format!("{CREDENTIALS_LABEL}=true")),
        ),
    )
    .touched_objects();
    ctx.add_secret_store(K::KIND, namespace.clone(), secret_store);
    let webhook_reconciles = ctx
        .webhooks
        .as_ref()
        .map(|hub| hub.register(store.clone(), ctx.shards.clone(), ctx.client.clone()));
    // Per-sync gauges only for this process's shards: N replicas must not report a sync N times.
    let gauges = {
        let all = crate::metrics::sync_lister(store.clone());
        let filter = ctx.shards.clone();
        ctx.metrics.watch_syncs(Box::new(move || {
            let mut samples = all();
            if let Some(f) = &filter {
                samples.retain(|s| f.owns(&s.namespace, &s.name));
            }
            samples
        }))
    };
    let gained_reconciles = match &ctx.shards {
        Some(filter) => gained::<K>(filter, store.clone()),
        None => futures::stream::empty().boxed(),
    };
    let pruner = tokio::spawn(prune_deleted::<K>(
        ctx.clone(),
        store.clone(),
        shutdown.clone(),
    ));
    let mapper_ctx = ctx.clone();
    controller
        .with_config(ControllerConfig::default().concurrency(ctx.settings.concurrency.max(1)))
        .watches_stream(secret_events, move |secret: Secret| {
            referencing::<K>(&store, &secret)
                .into_iter()
                .map(|(r, key)| {
                    mapper_ctx.mark_secret_changed(key);
                    r
                })
                .collect::<Vec<_>>()
        })
        .reconcile_on(match webhook_reconciles {
            Some(rx) => tokio_stream_of(rx),
            None => futures::stream::empty().boxed(),
        })
        .reconcile_on(gained_reconciles)
        .graceful_shutdown_on(async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .run(reconcile_owned::<K>, error_policy::<K>, ctx.clone())
        .for_each(|result| async move {
            match result {
                Ok((obj, _)) => tracing::trace!(kind = K::KIND, object = %obj, "reconciled"),
                Err(kube::runtime::controller::Error::ReconcilerFailed(e, obj)) => {
                    tracing::debug!(kind = K::KIND, object = %obj, error = %e, "reconcile failed")
                }
                Err(e) => tracing::warn!(kind = K::KIND, error = %e, "controller"),
            }
        })
        .await;
    pruner.abort();
    ctx.remove_secret_store(K::KIND, &namespace);
    ctx.metrics.unwatch_syncs(gauges);
    tracing::info!(
        kind = K::KIND,
        namespace = namespace.as_deref().unwrap_or("*"),
        "controller stopped"
    );
}

/// A channel as a stream (what `reconcile_on` takes).
fn tokio_stream_of<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<T>,
) -> futures::stream::BoxStream<'static, T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}

/// Waits until both CRDs are served (the controllers need them to watch).
/// Lists only in the watched namespaces (`namespaces`; empty means the whole cluster), so an
/// operator confined by namespaced Roles can tell that the CRDs are served.
pub async fn wait_for_crds(
    client: &Client,
    namespaces: &[String],
    mut shutdown: watch::Receiver<bool>,
) -> bool {
    let params = kube::api::ListParams::default().limit(1);
    let mut logged = false;
    loop {
        let scopes: Vec<Option<&str>> = if namespaces.is_empty() {
            vec![None]
        } else {
            namespaces.iter().map(|n| Some(n.as_str())).collect()
        };
        let mut outcome = Ok(());
        for scope in scopes {
            let (audiences, segments, orders) = match scope {
                None => (
                    Api::<AudienceSync>::all(client.clone()),
                    Api::<SegmentSync>::all(client.clone()),
                    Api::<OrderSync>::all(client.clone()),
                ),
                Some(ns) => (
                    Api::<AudienceSync>::namespaced(client.clone(), ns),
                    Api::<SegmentSync>::namespaced(client.clone(), ns),
                    Api::<OrderSync>::namespaced(client.clone(), ns),
                ),
            };
            if let Err(e) = audiences.list_metadata(&params).await {
                outcome = Err(e);
                break;
            }
            if let Err(e) = segments.list_metadata(&params).await {
                outcome = Err(e);
                break;
            }
            if let Err(e) = orders.list_metadata(&params).await {
                outcome = Err(e);
                break;
            }
        }
        match outcome {
            Ok(()) => return true,
            Err(e) => {
                if !logged {
                    tracing::warn!(error = %e, "waiting for the CRDs (install crds/)");
                    logged = true;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = shutdown.wait_for(|s| *s) => return false,
        }
    }
}

/// Runs the controllers of both kinds (in every namespace, or in each of `namespaces`) until
/// `shutdown` turns true; runs under way stop at a safe point and record what they applied.
/// `started` is called once the CRDs are served and the watches start.
pub async fn run_controllers(
    ctx: Arc<Context>,
    namespaces: &[String],
    shutdown: watch::Receiver<bool>,
    started: impl FnOnce() + Send,
) {
    {
        let ctx = ctx.clone();
        let mut rx = shutdown.clone();
        tokio::spawn(async move {
            if rx.wait_for(|s| *s).await.is_ok() {
                ctx.stop.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        });
    }
    *ctx.watched.lock().expect("watched lock") = namespaces.to_vec();
    if !wait_for_crds(&ctx.client, namespaces, shutdown.clone()).await {
        return;
    }
    // The kinds register their stores with the webhooks anew each term.
    if let Some(hub) = &ctx.webhooks {
        hub.clear();
    }
    started();
    let scopes: Vec<Option<String>> = if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.iter().cloned().map(Some).collect()
    };
    let mut tasks = Vec::new();
    for ns in scopes {
        tasks.push(tokio::spawn(run_kind::<AudienceSync>(
            ctx.clone(),
            ns.clone(),
            shutdown.clone(),
        )));
        tasks.push(tokio::spawn(run_kind::<SegmentSync>(
            ctx.clone(),
            ns.clone(),
            shutdown.clone(),
        )));
        tasks.push(tokio::spawn(run_kind::<OrderSync>(
            ctx.clone(),
            ns,
            shutdown.clone(),
        )));
    }
    let aborts: Vec<_> = tasks.iter().map(|t| t.abort_handle()).collect();
    let joined = futures::future::join_all(tasks);
    tokio::pin!(joined);
    let mut stop = shutdown.clone();
    tokio::select! {
        _ = &mut joined => return,
        _ = stop.wait_for(|s| *s) => {}
    }
    // Runs in progress stop at their next safe point (the stop flag is checked between batches),
    // which takes seconds; a watch stuck on a slow API server must not keep the process alive past
    // the pod's termination grace period, nor the lease from being released.
    if tokio::time::timeout(SHUTDOWN_GRACE, &mut joined)
        .await
        .is_err()
    {
        tracing::warn!(grace = ?SHUTDOWN_GRACE, "controllers did not stop in time; aborting them");
        for abort in aborts {
            abort.abort();
        }
    }
}

/// How long a graceful shutdown waits for the controllers before aborting them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(15);
