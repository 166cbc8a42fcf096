//! Vendor webhooks in the operator: the receiver (`audience-webhooks`) on its own port, wired to
//! the controllers. A verified delivery never writes to a vendor: it marks the syncs of that
//! account and asks their controller to reconcile them now, so the run follows every rule a
//! scheduled run follows (polling stays the truth; vendors do not guarantee delivery).
//!
//! - **Which syncs**: `(Shopify, shop domain)` and `(Lightspeed X, domain prefix)` name a
//!   *source*: every sync reading that account; `(Mailchimp, list id)` names a *target*: every
//!   sync writing that audience (an unsubscribe there changes what the next plan may do).
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
//!   standby drops it (its next poll reads the change anyway).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use audience_webhooks::{Config, Secret as WebhookSecret, Trigger, Vendor, Webhooks};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::sync::{mpsc, watch};

use crate::controller::object_key;
use crate::crd::{CREDENTIALS_LABEL, TargetRef};
use crate::sync::SyncObject;

/// The key of a credentials Secret holding the webhook secret of that side.
pub const WEBHOOK_SECRET_KEY: &str = "webhookSecret";

/// How long hints for one account are gathered into one trigger.
pub const DEBOUNCE: Duration = Duration::from_secs(2);

/// One kind's syncs as the webhooks see them: its controller's store and the channel that asks
/// the controller to reconcile an object now.
trait KindRoutes: Send + Sync {
    /// The Secrets (`namespace`, `name`) of the syncs concerned by `(vendor, account)`.
    fn secret_refs(&self, vendor: Vendor, account: &str) -> Vec<(String, String)>;
    /// Asks for a reconcile of every sync concerned; returns their keys.
    fn trigger(&self, vendor: Vendor, account: &str, hub: &WebhookHub, why: &str) -> Vec<String>;
}

struct Routes<K: SyncObject> {
    store: Store<DeserializeGuard<K>>,
    reconcile: mpsc::UnboundedSender<ObjectRef<DeserializeGuard<K>>>,
}

/// The Secret name a sync uses for the side `(vendor, account)` names, if that side is its.
fn concerned<K: SyncObject>(obj: &K, vendor: Vendor, account: &str) -> Option<String> {
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

impl<K: SyncObject> KindRoutes for Routes<K> {
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

    fn trigger(&self, vendor: Vendor, account: &str, hub: &WebhookHub, why: &str) -> Vec<String> {
        let mut keys = Vec::new();
        for obj in self.store.state().iter().filter_map(|g| g.0.as_ref().ok()) {
            let (Some(_), Some(ns)) = (concerned(obj, vendor, account), obj.namespace()) else {
                continue;
            };
            let key = object_key(obj);
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
    ) -> mpsc::UnboundedReceiver<ObjectRef<DeserializeGuard<K>>> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.routes
            .write()
            .expect("routes lock")
            .push(Arc::new(Routes {
                store,
                reconcile: tx,
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
            .flat_map(|r| r.trigger(trigger.vendor, &trigger.account, self, &why))
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
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    {
        let mut stop = shutdown.clone();
        let app = webhooks.router();
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
