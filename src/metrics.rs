//! Prometheus metrics (served on `/metrics`).
//!
//! - `audience_sync_runs_total{kind,outcome}`: finished runs by `Ready` reason;
//! - `audience_sync_failures_total{kind,reason}`: failed runs by reason;
//! - `audience_sync_run_duration_seconds{kind}`: run duration histogram;
//! - `audience_contacts_changed_total{kind,change}`: created, updated, archived, unsubscribed,
//!   segment_added, segment_removed, rejected;
//! - `audience_contacts_drift_corrected_total{kind}`: members changed in the target behind the
//!   sync's back and set back to the source (a subset of `change="updated"`);
//! - `audience_vendor_api_calls_total{vendor,endpoint,status}`: every vendor call (status 0 for a
//!   transport failure), fed by the connectors' call observer;
//! - `audience_operator_leader`: 1 while this replica holds the lease (with sharding: at least
//!   one shard);
//! - `audience_operator_tracked_objects`: per-object entries kept between reconciles (backoff
//!   counters, webhook registrations, segment checks, each sync's kept connectors; pruned when
//!   objects are deleted);
//! - `audience_operator_owned_shards` / `audience_operator_shards`: shards this replica holds,
//!   out of how many (both 0 without sharding), so `sum(owned) == max(shards)` says every shard
//!   has an owner;
//! - `audience_sync_in_progress{kind}`: runs under way.
//!
//! Read at scrape time from the controllers' caches (so a deleted sync's series goes with it):
//! - `audience_sync_interval_seconds{kind,namespace,name}`: the time between two scheduled runs
//!   (for a cron schedule, between its next two occurrences); absent while suspended;
//! - `audience_sync_last_success_timestamp_seconds{kind,namespace,name}`: `status.lastSyncTime`;
//! - `audience_sync_stalled{kind,namespace,name,reason}`: 1 while `Stalled=True` (a person must
//!   act), with its reason.
//!
//! And from the connectors' key budgets (`audience_connectors::http::budget_usage`):
//! - `audience_vendor_key_requests_in_flight{vendor,key}` and
//!   `audience_vendor_key_max_concurrent{vendor,key}`: a key's budget (`key` is a fingerprint);
//! - `audience_vendor_key_paused{vendor,key}`: 1 while a vendor's slow-down answer holds the key.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::crd::RunCounts;

type Labels = Vec<(String, String)>;
type FloatGauge = Gauge<f64, AtomicU64>;

/// One sync as a scrape reports it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncSample {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// Time between scheduled runs; `None` while suspended or when the schedule is invalid.
    pub interval: Option<Duration>,
    /// `status.lastSyncTime`, in Unix seconds.
    pub last_success: Option<f64>,
    /// The reason of `Stalled=True`.
    pub stalled: Option<String>,
}

/// Lists the syncs one controller knows (its cache), at each scrape.
pub type SyncLister = Box<dyn Fn() -> Vec<SyncSample> + Send + Sync>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Reads the webhook receiver's totals by outcome (`accepted`, `unauthorized` …).
pub type WebhookTotals = Box<dyn Fn() -> Vec<(&'static str, u64)> + Send + Sync>;

struct WebhookSource {
    read: WebhookTotals,
    counted: BTreeMap<&'static str, u64>,
}

/// The operator's metrics; one per process.
pub struct Metrics {
    registry: Registry,
    runs: Family<Labels, Counter>,
    failures: Family<Labels, Counter>,
    duration: Family<Labels, Histogram>,
    contacts: Family<Labels, Counter>,
    drift: Family<Labels, Counter>,
    vendor_calls: Family<Labels, Counter>,
    in_progress: Family<Labels, Gauge>,
    leader: Gauge,
    owned_shards: Gauge,
    tracked_objects: Gauge,
    shards: Gauge,
    sync_interval: Family<Labels, FloatGauge>,
    last_success: Family<Labels, FloatGauge>,
    stalled: Family<Labels, Gauge>,
    key_in_flight: Family<Labels, Gauge>,
    key_max: Family<Labels, Gauge>,
    key_paused: Family<Labels, Gauge>,
    listers: Mutex<BTreeMap<u64, SyncLister>>,
    next_lister: AtomicU64,
    webhook_deliveries: Family<Labels, Counter>,
    /// The webhook receivers' running totals, and what the counters were last brought up to
    /// (one per receiver started in this process: several in tests).
    webhook_sources: Mutex<Vec<WebhookSource>>,
    pixel_posts: Family<Labels, Counter>,
    /// The same for the shopper-event (web pixel) receiver.
    pixel_sources: Mutex<Vec<WebhookSource>>,
    /// One scrape at a time refreshes and encodes the scrape-time gauges.
    render_lock: Mutex<()>,
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("audience");
        let runs = Family::<Labels, Counter>::default();
        let failures = Family::<Labels, Counter>::default();
        let duration = Family::<Labels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.05, 2.0, 16))
        });
        let contacts = Family::<Labels, Counter>::default();
        let drift = Family::<Labels, Counter>::default();
        let vendor_calls = Family::<Labels, Counter>::default();
        let in_progress = Family::<Labels, Gauge>::default();
        let leader = Gauge::default();
        let owned_shards = Gauge::default();
        let tracked_objects = Gauge::default();
        registry.register(
            "operator_tracked_objects",
            "Per-object entries the controllers keep between reconciles (backoff counters, Secret changes); entries of deleted objects are dropped",
            tracked_objects.clone(),
        );
        let shards = Gauge::default();
        registry.register("sync_runs", "Finished sync runs by outcome", runs.clone());
        registry.register(
            "sync_failures",
            "Failed sync runs by reason",
            failures.clone(),
        );
        registry.register(
            "sync_run_duration_seconds",
            "Duration of sync runs",
            duration.clone(),
        );
        registry.register(
            "contacts_changed",
            "Contacts changed in targets",
            contacts.clone(),
        );
        registry.register(
            "contacts_drift_corrected",
            "Members changed in the target behind the sync's back and set back to the source (also in contacts_changed{change=\"updated\"})",
            drift.clone(),
        );
        registry.register(
            "vendor_api_calls",
            "Vendor API calls by vendor, endpoint and status",
            vendor_calls.clone(),
        );
        registry.register(
            "sync_in_progress",
            "Sync runs under way",
            in_progress.clone(),
        );
        registry.register(
            "operator_leader",
            "1 while this replica holds the leader lease",
            leader.clone(),
        );
        registry.register(
            "operator_owned_shards",
            "Shards whose Lease this replica holds (0 without sharding)",
            owned_shards.clone(),
        );
        registry.register(
            "operator_shards",
            "How many shards the syncs are spread over (0 without sharding)",
            shards.clone(),
        );
        let sync_interval = Family::<Labels, FloatGauge>::default();
        let last_success = Family::<Labels, FloatGauge>::default();
        let stalled = Family::<Labels, Gauge>::default();
        let key_in_flight = Family::<Labels, Gauge>::default();
        let key_max = Family::<Labels, Gauge>::default();
        let key_paused = Family::<Labels, Gauge>::default();
        registry.register(
            "sync_interval_seconds",
            "Time between two scheduled runs of a sync (absent while suspended)",
            sync_interval.clone(),
        );
        registry.register(
            "sync_last_success_timestamp_seconds",
            "When a sync last succeeded (status.lastSyncTime)",
            last_success.clone(),
        );
        registry.register(
            "sync_stalled",
            "1 while a sync is Stalled (a person must act), by reason",
            stalled.clone(),
        );
        registry.register(
            "vendor_key_requests_in_flight",
            "Requests in flight on a vendor API key's budget",
            key_in_flight.clone(),
        );
        registry.register(
            "vendor_key_max_concurrent",
            "Concurrent requests a vendor API key's budget allows",
            key_max.clone(),
        );
        registry.register(
            "vendor_key_paused",
            "1 while a vendor's slow-down answer holds every request on a key",
            key_paused.clone(),
        );
        let webhook_deliveries = Family::<Labels, Counter>::default();
        registry.register(
            "webhook_deliveries",
            "Webhook deliveries the receiver answered, by outcome (accepted, duplicate, stale, ignored, validated, unauthorized, malformed, too_large, rate_limited, unavailable)",
            webhook_deliveries.clone(),
        );
        let pixel_posts = Family::<Labels, Counter>::default();
        registry.register(
            "pixel_posts",
            "Shopper-event posts from the Shopify web pixel, by outcome (queued, disabled, privacy_dropped, unauthorized, forbidden_origin, malformed, too_large, rate_limited, unavailable)",
            pixel_posts.clone(),
        );
        Metrics {
            registry,
            runs,
            failures,
            duration,
            contacts,
            drift,
            vendor_calls,
            in_progress,
            leader,
            owned_shards,
            tracked_objects,
            shards,
            sync_interval,
            last_success,
            stalled,
            key_in_flight,
            key_max,
            key_paused,
            listers: Mutex::new(BTreeMap::new()),
            next_lister: AtomicU64::new(0),
            webhook_deliveries,
            webhook_sources: Mutex::new(Vec::new()),
            pixel_posts,
            pixel_sources: Mutex::new(Vec::new()),
            render_lock: Mutex::new(()),
        }
    }

    /// The process-wide metrics; the first call also hooks the connectors' call observer.
    pub fn global() -> Arc<Metrics> {
        static GLOBAL: OnceLock<Arc<Metrics>> = OnceLock::new();
        GLOBAL
            .get_or_init(|| {
                let metrics = Arc::new(Metrics::new());
                let m = metrics.clone();
                audience_connectors::http::set_call_observer(Arc::new(
                    move |vendor, endpoint, status| m.vendor_call(vendor, endpoint, status),
                ));
                metrics
            })
            .clone()
    }

    pub fn vendor_call(&self, vendor: &str, endpoint: &str, status: u16) {
        self.vendor_calls
            .get_or_create(&labels(&[
                ("vendor", vendor),
                ("endpoint", endpoint),
                ("status", &status.to_string()),
            ]))
            .inc();
    }

    pub fn run_started(&self, kind: &str) {
        self.in_progress
            .get_or_create(&labels(&[("kind", kind)]))
            .inc();
    }

    /// Records a finished run.
    pub fn run_finished(
        &self,
        kind: &str,
        outcome: &str,
        ok: bool,
        took: Duration,
        counts: Option<&RunCounts>,
    ) {
        self.in_progress
            .get_or_create(&labels(&[("kind", kind)]))
            .dec();
        self.runs
            .get_or_create(&labels(&[("kind", kind), ("outcome", outcome)]))
            .inc();
        if !ok {
            self.failures
                .get_or_create(&labels(&[("kind", kind), ("reason", outcome)]))
                .inc();
        }
        self.duration
            .get_or_create(&labels(&[("kind", kind)]))
            .observe(took.as_secs_f64());
        if let Some(c) = counts {
            for (change, n) in [
                ("created", c.created),
                ("updated", c.updated),
                ("archived", c.archived),
                ("unsubscribed", c.unsubscribed),
                ("segment_added", c.segment_added),
                ("segment_removed", c.segment_removed),
                ("rejected", c.rejected),
            ] {
                if n > 0 {
                    self.contacts
                        .get_or_create(&labels(&[("kind", kind), ("change", change)]))
                        .inc_by(n);
                }
            }
            if c.drift > 0 {
                self.drift
                    .get_or_create(&labels(&[("kind", kind)]))
                    .inc_by(c.drift);
            }
        }
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    pub fn set_owned_shards(&self, n: usize) {
        self.owned_shards.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    pub fn set_tracked_objects(&self, n: usize) {
        self.tracked_objects
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    pub fn set_shard_count(&self, n: u32) {
        self.shards.set(i64::from(n));
    }

    /// Adds a source of per-sync gauges (a controller's cache); returns its id for
    /// [`Metrics::unwatch_syncs`].
    pub fn watch_syncs(&self, lister: SyncLister) -> u64 {
        let id = self.next_lister.fetch_add(1, Ordering::Relaxed);
        self.listers
            .lock()
            .expect("listers lock")
            .insert(id, lister);
        id
    }

    /// A webhook receiver whose totals the `webhook_deliveries` counters follow.
    pub fn watch_webhooks(&self, read: WebhookTotals) {
        self.webhook_sources
            .lock()
            .expect("webhook source lock")
            .push(WebhookSource {
                read,
                counted: BTreeMap::new(),
            });
    }

    /// A web-pixel receiver whose totals the `pixel_posts` counters follow.
    pub fn watch_pixel(&self, read: WebhookTotals) {
        self.pixel_sources
            .lock()
            .expect("pixel source lock")
            .push(WebhookSource {
                read,
                counted: BTreeMap::new(),
            });
    }

    /// Drops a source (its controller stopped).
    pub fn unwatch_syncs(&self, id: u64) {
        self.listers.lock().expect("listers lock").remove(&id);
    }

    /// Rebuilds the scrape-time gauges from the caches and the key budgets.
    fn refresh(&self) {
        for family in [&self.sync_interval, &self.last_success] {
            family.clear();
        }
        self.stalled.clear();
        for sample in self
            .listers
            .lock()
            .expect("listers lock")
            .values()
            .flat_map(|list| list())
        {
            let base = [
                ("kind", sample.kind.as_str()),
                ("namespace", sample.namespace.as_str()),
                ("name", sample.name.as_str()),
            ];
            if let Some(d) = sample.interval {
                self.sync_interval
                    .get_or_create(&labels(&base))
                    .set(d.as_secs_f64());
            }
            if let Some(t) = sample.last_success {
                self.last_success.get_or_create(&labels(&base)).set(t);
            }
            if let Some(reason) = &sample.stalled {
                let mut l = labels(&base);
                l.push(("reason".into(), reason.clone()));
                self.stalled.get_or_create(&l).set(1);
            }
        }
        for (sources, family) in [
            (&self.webhook_sources, &self.webhook_deliveries),
            (&self.pixel_sources, &self.pixel_posts),
        ] {
            for source in sources.lock().expect("receiver source lock").iter_mut() {
                // Counters only go up: each scrape adds what the receiver counted since the last.
                for (outcome, total) in (source.read)() {
                    let counted = source.counted.entry(outcome).or_default();
                    let counter = family.get_or_create(&labels(&[("outcome", outcome)]));
                    if total > *counted {
                        counter.inc_by(total - *counted);
                        *counted = total;
                    }
                }
            }
        }
        for family in [&self.key_in_flight, &self.key_max, &self.key_paused] {
            family.clear();
        }
        for b in audience_connectors::http::budget_usage() {
            let l = labels(&[("vendor", b.vendor), ("key", &b.key)]);
            let n = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
            self.key_in_flight.get_or_create(&l).set(n(b.in_flight));
            self.key_max.get_or_create(&l).set(n(b.max_concurrent));
            self.key_paused.get_or_create(&l).set(i64::from(b.paused));
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let _one = self.render_lock.lock().expect("render lock");
        self.refresh();
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("encoding metrics into a String cannot fail");
        out
    }
}

/// The per-sync samples of one controller's cache.
pub fn sync_lister<K: crate::sync::SyncObject>(
    store: kube::runtime::reflector::Store<kube::core::DeserializeGuard<K>>,
) -> SyncLister {
    use kube::ResourceExt;
    Box::new(move || {
        store
            .state()
            .iter()
            .filter_map(|guard| guard.0.as_ref().ok())
            .map(|obj| {
                let status = obj.sync_status();
                let interval = if obj.suspend() {
                    None
                } else {
                    crate::schedule::Cadence::parse(obj.schedule())
                        .ok()
                        .map(|c| c.interval())
                };
                SyncSample {
                    kind: K::KIND.to_string(),
                    namespace: obj.namespace().unwrap_or_default(),
                    name: obj.name_any(),
                    interval,
                    last_success: status
                        .and_then(|s| s.last_sync_time.as_ref())
                        .map(|t| t.0.as_millisecond() as f64 / 1000.0),
                    stalled: status
                        .and_then(|s| crate::status::condition(s, crate::status::STALLED))
                        .filter(|c| c.status == "True")
                        .map(|c| c.reason.clone()),
                }
            })
            .collect()
    })
}
