//! Vendor webhooks in the operator: the receiver (`audience-webhooks`) on its own port, wired to
//! the controllers. A verified delivery never writes to a vendor: it marks the syncs of that
//! account and asks their controller to reconcile them now, so the run follows every rule a
//! scheduled run follows (polling stays the truth; vendors do not guarantee delivery).
//!
//! - **Which syncs**: `(Shopify, shop domain)` and `(Lightspeed X, domain prefix)` name a
//!   *source*: every sync reading that account; `(Mailchimp, list id)` names a *target*: every
//!   sync writing that audience (an unsubscribe there changes what the next plan may do). Of
//!   those, customer and campaign hints (`customers/*`, Mailchimp's events) run the customer
//!   syncs (AudienceSync, SegmentSync), order hints (`orders/*`, `refunds/create`, Lightspeed X
//!   `sale.*`) the OrderSyncs ([`hears`]).
//! - **Which secret verifies**: key [`WEBHOOK_SECRET_KEY`] of the Secret the sync already uses
//!   for that side (`credentialsSecretRef`): the Shopify app's client secret (not the Admin API
//!   token), the Lightspeed X app's client secret, or the secret put in the Mailchimp webhook URL
//!   (`/webhooks/mailchimp/{secret}`). A sync whose Secret has no such key receives no webhooks:
//!   deliveries for its account are refused with 401. Secrets are read from a cache of the
//!   Secrets that opt in (the credentials label), never fetched on the request path.
//! - **When a run starts**: at once (after the receiver's debounce window), unless the sync's
//!   last run did not succeed: then its own backoff decides (a webhook must not hammer a vendor
//!   that is rate-limiting or refusing the key).
//! - **Replicas**: every replica listens; only the leader's controllers act on a trigger, a
//!   standby drops it (its next poll reads the change anyway). With sharding every replica's
//!   controllers run, each owning some syncs: a delivery for a sync of another replica's shard
//!   is handed to the owner by setting the sync's [`WEBHOOK_HINT_ANNOTATION`] (`<time>;<what>`),
//!   whose change the owner's watch sees; the owner then runs it as if the webhook had reached
//!   it (`crate::schedule::decide`). The receiving replica never runs it itself.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use audience_core::webhook_subscriptions::Interest;
use audience_webhooks::{
    Config, PixelConfig, PixelReceiver, PixelSync, Scope, Secret as WebhookSecret, ShopperEvent,
    Trigger, Vendor, Webhooks,
};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::sync::{mpsc, watch};

use crate::controller::object_key;
use crate::crd::{CREDENTIALS_LABEL, TargetRef, WEBHOOK_HINT_ANNOTATION};
use crate::shard::ShardFilter;
use crate::sync::SyncObject;
use kube::api::{Patch, PatchParams};

/// The key of a credentials Secret holding the webhook secret of that side.
pub const WEBHOOK_SECRET_KEY: &str = "webhookSecret";

/// The key of the Shopify source's credentials Secret holding the web pixel's secret (see
/// [`audience_webhooks::pixel`]): without it the sync takes no shopper events (401).
pub const PIXEL_SECRET_KEY: &str = "pixelSecret";

/// How long shopper events for one sync are gathered before its run is asked for.
pub const PIXEL_BATCH: Duration = Duration::from_secs(5);

/// How long hints for one account are gathered into one trigger.
pub const DEBOUNCE: Duration = Duration::from_secs(2);

/// One kind's syncs as the webhooks see them: its controller's store and the channel that asks
/// the controller to reconcile an object now.
trait KindRoutes: Send + Sync {
    /// The Secrets (`namespace`, `name`) of the syncs concerned by `(vendor, account)`.
    fn secret_refs(&self, vendor: Vendor, account: &str) -> Vec<(String, String)>;
    /// Asks for a reconcile of every sync concerned whose kind hears one of `scopes`; returns
    /// their keys.
    fn trigger(
        &self,
        vendor: Vendor,
        account: &str,
        scopes: &BTreeSet<Scope>,
        hub: &WebhookHub,
        why: &str,
    ) -> Vec<String>;
    /// An AudienceSync's customer events: its source Secret (`namespace`, `name`), shop domain
    /// and settings; `None` for other kinds and syncs without `customerEvents`.
    fn pixel(&self, namespace: &str, name: &str) -> Option<PixelRoute> {
        let _ = (namespace, name);
        None
    }
    /// Asks for a reconcile of one sync; false when this kind has no such sync.
    fn trigger_one(&self, namespace: &str, name: &str, hub: &WebhookHub, why: &str) -> bool {
        let _ = (namespace, name, hub, why);
        false
    }
}

/// What the pixel endpoint needs to know about one AudienceSync.
struct PixelRoute {
    secret: (String, String),
    shop_domain: String,
    settings: crate::crd::customer_events::CustomerEventsSpec,
}

struct Routes<K: SyncObject> {
    store: Store<DeserializeGuard<K>>,
    reconcile: mpsc::UnboundedSender<ObjectRef<DeserializeGuard<K>>>,
    /// With sharding: which syncs this replica owns (others are handed over).
    shards: Option<ShardFilter>,
    client: Client,
}

impl<K: SyncObject> Routes<K> {
    fn owns(&self, namespace: &str, name: &str) -> bool {
        self.shards.as_ref().is_none_or(|f| f.owns(namespace, name))
    }

    /// Hands a webhook for a sync of another shard to its owner: a merge patch of the hint
    /// annotation, in the background (the dispatch never waits for the API server).
    fn hand_over(&self, namespace: &str, name: &str, why: &str) {
        let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
        let value = format!("{};{why}", jiff::Timestamp::now());
        let patch =
            serde_json::json!({"metadata": {"annotations": {WEBHOOK_HINT_ANNOTATION: value}}});
        let (namespace, name) = (namespace.to_string(), name.to_string());
        tokio::spawn(async move {
            let patched = api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await;
            match patched {
                Ok(_) => tracing::debug!(namespace, name, "webhook handed to the shard's owner"),
                Err(e) => {
                    tracing::warn!(namespace, name, error = %e, "handing a webhook to the shard's owner")
                }
            }
        });
    }
}

/// Whether a kind of `interest` runs on a hint of `scope`: customer syncs on customer and
/// campaign hints, order syncs on order hints (an order does not change a customer's record,
/// and a customer edit does not change an order).
pub(crate) fn hears(interest: Interest, scope: Scope) -> bool {
    match interest {
        Interest::Customers => matches!(scope, Scope::Customers | Scope::Campaigns),
        Interest::Orders => scope == Scope::Orders,
    }
}

/// The Secret name a sync uses for the side `(vendor, account)` names, if that side is its.
pub(crate) fn concerned<K: SyncObject>(obj: &K, vendor: Vendor, account: &str) -> Option<String> {
    let same = |a: &str| a.trim().eq_ignore_ascii_case(account);
    match vendor {
        Vendor::Shopify | Vendor::LightspeedX => {
            obj.source_specs().into_iter().find_map(|(_, s)| {
                let names_account = match vendor {
                    Vendor::Shopify => s.shopify.as_ref().is_some_and(|x| same(&x.shop_domain)),
                    _ => s
                        .lightspeed_x_series
                        .as_ref()
                        .is_some_and(|x| same(&x.domain_prefix)),
                };
                names_account
                    .then(|| s.credentials().map(|r| r.name.clone()))
                    .flatten()
            })
        }
        Vendor::Mailchimp => match obj.target()? {
            TargetRef::Mailchimp(m) if same(m.audience_id) => Some(m.credentials.name.clone()),
            _ => None,
        },
    }
}

impl<K: SyncObject> Routes<K> {
    fn find(&self, namespace: &str, name: &str) -> Option<Arc<DeserializeGuard<K>>> {
        self.store
            .get(&ObjectRef::new(name).within(namespace))
            .filter(|g| g.0.is_ok())
    }
}

impl<K: SyncObject> KindRoutes for Routes<K> {
    fn pixel(&self, namespace: &str, name: &str) -> Option<PixelRoute> {
        let guard = self.find(namespace, name)?;
        let obj = guard.0.as_ref().ok()?;
        let sync = (obj as &dyn std::any::Any).downcast_ref::<crate::crd::AudienceSync>()?;
        let settings = sync.spec.customer_events.clone()?;
        let shopify = sync.spec.source.as_ref()?.shopify.as_ref()?;
        Some(PixelRoute {
            secret: (
                namespace.to_string(),
                shopify.credentials_secret_ref.name.clone(),
            ),
            shop_domain: shopify.shop_domain.trim().to_string(),
            settings,
        })
    }

    fn trigger_one(&self, namespace: &str, name: &str, hub: &WebhookHub, why: &str) -> bool {
        let Some(guard) = self.find(namespace, name) else {
            return false;
        };
        let Some(obj) = guard.0.as_ref().ok() else {
            return false;
        };
        // Not handed over with sharding: the shopper events wait in this process's queue,
        // which the owner's run could not send.
        hub.mark(&object_key(obj), why);
        self.reconcile
            .send(ObjectRef::new(name).within(namespace))
            .is_ok()
    }

    fn secret_refs(&self, vendor: Vendor, account: &str) -> Vec<(String, String)> {
        self.store
            .state()
            .iter()
            .filter_map(|guard| guard.0.as_ref().ok())
            .filter_map(|obj| {
                let secret = concerned(obj, vendor, account)?;
                Some((obj.namespace()?, secret))
            })
            .collect()
    }

    fn trigger(
        &self,
        vendor: Vendor,
        account: &str,
        scopes: &BTreeSet<Scope>,
        hub: &WebhookHub,
        why: &str,
    ) -> Vec<String> {
        let mut keys = Vec::new();
        if !scopes.iter().any(|s| hears(K::WEBHOOK_INTEREST, *s)) {
            return keys;
        }
        for obj in self.store.state().iter().filter_map(|g| g.0.as_ref().ok()) {
            let (Some(_), Some(ns)) = (concerned(obj, vendor, account), obj.namespace()) else {
                continue;
            };
            let key = object_key(obj);
            if !self.owns(&ns, &obj.name_any()) {
                self.hand_over(&ns, &obj.name_any(), why);
                keys.push(key);
                continue;
            }
            hub.mark(&key, why);
            if self
                .reconcile
                .send(ObjectRef::new(&obj.name_any()).within(&ns))
                .is_ok()
            {
                keys.push(key);
            }
        }
        keys
    }
}

/// What the receiver and the controllers share.
pub struct WebhookHub {
    secrets: Store<Secret>,
    routes: RwLock<Vec<Arc<dyn KindRoutes>>>,
    /// Sync key → what the webhook said, until its reconcile takes it.
    pending: Mutex<HashMap<String, String>>,
}

impl WebhookHub {
    /// Registers a kind's store while its controller runs; returns the stream of objects the
    /// webhooks ask it to reconcile (for `Controller::reconcile_on`).
    pub fn register<K: SyncObject>(
        &self,
        store: Store<DeserializeGuard<K>>,
        shards: Option<ShardFilter>,
        client: Client,
    ) -> mpsc::UnboundedReceiver<ObjectRef<DeserializeGuard<K>>> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.routes
            .write()
            .expect("routes lock")
            .push(Arc::new(Routes {
                store,
                reconcile: tx,
                shards,
                client,
            }));
        rx
    }

    /// Forgets every registered kind (the controllers stopped: a new term registers again).
    pub fn clear(&self) {
        self.routes.write().expect("routes lock").clear();
    }

    fn mark(&self, key: &str, why: &str) {
        self.pending
            .lock()
            .expect("pending lock")
            .insert(key.to_string(), why.to_string());
    }

    /// What a webhook said about this sync since its last reconcile, taken once.
    pub fn take(&self, key: &str) -> Option<String> {
        self.pending.lock().expect("pending lock").remove(key)
    }

    /// Forgets what webhooks said about the syncs `gone` names (deleted objects).
    pub fn forget(&self, gone: impl Fn(&str) -> bool) {
        self.pending
            .lock()
            .expect("pending lock")
            .retain(|key, _| !gone(key));
    }

    /// Puts back what [`WebhookHub::take`] took (a reconcile that defers to a fresher object).
    pub fn put_back(&self, key: &str, why: String) {
        self.pending
            .lock()
            .expect("pending lock")
            .insert(key.to_string(), why);
    }

    /// The webhook secrets of every sync concerned by `(vendor, account)`, from the Secret cache.
    fn secrets_for(&self, vendor: Vendor, account: &str) -> Vec<WebhookSecret> {
        let routes = self.routes.read().expect("routes lock").clone();
        let mut out = Vec::new();
        for (ns, name) in routes.iter().flat_map(|r| r.secret_refs(vendor, account)) {
            let secret = self
                .secrets
                .get(&ObjectRef::new(&name).within(&ns))
                .and_then(|s| s.data.as_ref()?.get(WEBHOOK_SECRET_KEY).cloned());
            if let Some(bytes) = secret.filter(|b| !b.0.is_empty()) {
                out.push(WebhookSecret::new(bytes.0));
            }
        }
        out
    }

    /// The pixel settings of the AudienceSync `namespace/name`, from the caches.
    fn pixel_sync(&self, namespace: &str, name: &str) -> Option<PixelSync> {
        let routes = self.routes.read().expect("routes lock").clone();
        let route = routes.iter().find_map(|r| r.pixel(namespace, name))?;
        let (ns, secret_name) = &route.secret;
        let secret = self
            .secrets
            .get(&ObjectRef::new(secret_name).within(ns))
            .and_then(|s| s.data.as_ref()?.get(PIXEL_SECRET_KEY).cloned())
            .filter(|b| !b.0.is_empty());
        let mut origins = vec![format!("https://{}", route.shop_domain)];
        origins.extend(route.settings.pixel_origins.iter().cloned());
        Some(PixelSync {
            secrets: secret
                .map(|b| WebhookSecret::new(b.0))
                .into_iter()
                .collect(),
            origins,
            enabled: route.settings.enabled && route.settings.shopper_events,
            privacy_restricted: route.settings.privacy_restricted,
        })
    }

    /// Asks for a run of the sync `namespace/name` (shopper events wait for it).
    fn trigger_sync(&self, namespace: &str, name: &str, why: &str) -> bool {
        let routes = self.routes.read().expect("routes lock").clone();
        routes
            .iter()
            .any(|r| r.trigger_one(namespace, name, self, why))
    }

    /// Hands a trigger to the controllers; returns the syncs asked to run.
    fn dispatch(&self, trigger: &Trigger) -> Vec<String> {
        let topics: Vec<&str> = trigger.topics.iter().map(String::as_str).collect();
        let why = format!(
            "{} webhook {} ({} deliver{})",
            trigger.vendor.name(),
            topics.join(", "),
            trigger.hints,
            if trigger.hints == 1 { "y" } else { "ies" }
        );
        let routes = self.routes.read().expect("routes lock").clone();
        routes
            .iter()
            .flat_map(|r| {
                r.trigger(
                    trigger.vendor,
                    &trigger.account,
                    &trigger.scopes,
                    self,
                    &why,
                )
            })
            .collect()
    }
}

/// The receiver, listening.
pub struct WebhookServer {
    pub hub: Arc<WebhookHub>,
    pub addr: SocketAddr,
}

/// Binds the receiver at `addr`, starts the Secret cache and the trigger dispatch; everything
/// stops when `shutdown` turns true.
pub async fn start(
    client: Client,
    namespaces: &[String],
    addr: SocketAddr,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<WebhookServer> {
    let (reader, writer) = reflector::store::<Secret>();
    let hub = Arc::new(WebhookHub {
        secrets: reader,
        routes: RwLock::new(Vec::new()),
        pending: Mutex::new(HashMap::new()),
    });
    // The cache holds only the Secrets that opt in, as the controllers' watch does. One watch per
    // namespace when the operator is confined to some.
    let config = watcher::Config::default().labels(&format!("{CREDENTIALS_LABEL}=true"));
    let apis: Vec<Api<Secret>> = if namespaces.is_empty() {
        vec![Api::all(client.clone())]
    } else {
        namespaces
            .iter()
            .map(|ns| Api::namespaced(client.clone(), ns))
            .collect()
    };
    let streams = futures::stream::select_all(
        apis.into_iter()
            .map(|api| watcher(api, config.clone()).default_backoff().boxed()),
    );
    let cache = reflector(writer, streams).applied_objects();
    {
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            tokio::pin!(cache);
            loop {
                tokio::select! {
                    item = cache.next() => match item {
                        Some(Err(e)) => tracing::debug!(error = %e, "webhook Secret cache"),
                        Some(Ok(_)) => {}
                        None => break,
                    },
                    _ = stop.wait_for(|s| *s) => break,
                }
            }
        });
    }
    let resolver = {
        let hub = hub.clone();
        move |vendor: Vendor, account: &str| hub.secrets_for(vendor, account)
    };
    let (webhooks, mut triggers) = Webhooks::with_triggers(Config::default(), resolver, DEBOUNCE);
    {
        let webhooks = webhooks.clone();
        crate::metrics::Metrics::global().watch_webhooks(Box::new(move || {
            let c = webhooks.counters();
            vec![
                ("accepted", c.accepted),
                ("duplicate", c.duplicate),
                ("stale", c.stale),
                ("ignored", c.ignored),
                ("validated", c.validated),
                ("unauthorized", c.unauthorized),
                ("malformed", c.malformed),
                ("too_large", c.too_large),
                ("rate_limited", c.rate_limited),
                ("unavailable", c.unavailable),
            ]
        }));
    }
    let (pixel, pixel_events) = {
        let hub = hub.clone();
        PixelReceiver::new(
            PixelConfig::default(),
            move |namespace: &str, name: &str| hub.pixel_sync(namespace, name),
        )
    };
    {
        let pixel = pixel.clone();
        crate::metrics::Metrics::global().watch_pixel(Box::new(move || {
            let c = pixel.counters();
            vec![
                ("queued", c.queued),
                ("disabled", c.disabled),
                ("privacy_dropped", c.privacy_dropped),
                ("unauthorized", c.unauthorized),
                ("forbidden_origin", c.forbidden_origin),
                ("malformed", c.malformed),
                ("too_large", c.too_large),
                ("rate_limited", c.rate_limited),
                ("unavailable", c.unavailable),
            ]
        }));
    }
    spawn_pixel_batcher(hub.clone(), pixel_events, shutdown.clone());
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    {
        let mut stop = shutdown.clone();
        let app = webhooks.router().merge(pixel.router());
        tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
            if let Err(e) = served {
                tracing::warn!(error = %e, "webhook receiver stopped");
            }
        });
    }
    {
        let hub = hub.clone();
        let mut stop = shutdown;
        tokio::spawn(async move {
            let mut prune = tokio::time::interval(Duration::from_secs(60));
            loop {
                tokio::select! {
                    trigger = triggers.recv() => {
                        let Some(trigger) = trigger else { break };
                        let syncs = hub.dispatch(&trigger);
                        tracing::info!(
                            vendor = trigger.vendor.name(),
                            account = %trigger.account,
                            hints = trigger.hints,
                            syncs = syncs.len(),
                            "webhook: syncs asked to run"
                        );
                    }
                    _ = prune.tick() => webhooks.prune(),
                    _ = stop.wait_for(|s| *s) => break,
                }
            }
        });
    }
    tracing::info!(addr = %bound, "serving vendor webhooks");
    Ok(WebhookServer { hub, addr: bound })
}

/// Moves checked shopper events from the pixel receiver to their sync's queue and, once per
/// [`PIXEL_BATCH`], asks each sync that got some for a run: the run sends them (within the
/// Mailchimp key's budget) after its push. The receiver itself never calls a vendor.
fn spawn_pixel_batcher(
    hub: Arc<WebhookHub>,
    mut events: mpsc::Receiver<ShopperEvent>,
    mut stop: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        let mut touched: HashMap<(String, String), u64> = HashMap::new();
        let mut tick = tokio::time::interval(PIXEL_BATCH);
        loop {
            tokio::select! {
                event = events.recv() => {
                    let Some(e) = event else { break };
                    let key = format!("{}/{}", e.namespace, e.sync);
                    crate::engine::customer_events::queue_shopper_event(
                        &key,
                        crate::engine::customer_events::QueuedShopperEvent {
                            event: e.event,
                            email: e.email,
                            customer_id: e.customer_id,
                            occurred_at: e.occurred_at,
                            properties: e.properties,
                        },
                    );
                    *touched.entry((e.namespace, e.sync)).or_default() += 1;
                }
                _ = tick.tick() => {
                    for ((namespace, name), n) in touched.drain() {
                        let why = format!("{n} shopper event{} from the web pixel", if n == 1 { "" } else { "s" });
                        let asked = hub.trigger_sync(&namespace, &name, &why);
                        tracing::debug!(namespace, name, events = n, asked, "pixel: sync asked to run");
                    }
                }
                _ = stop.wait_for(|s| *s) => break,
            }
        }
    });
}
