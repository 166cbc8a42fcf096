//! Prometheus metrics (served on `/metrics`).
//!
//! - `audience_sync_runs_total{kind,outcome}`: finished runs by `Ready` reason;
//! - `audience_sync_failures_total{kind,reason}`: failed runs by reason;
//! - `audience_sync_run_duration_seconds{kind}`: run duration histogram;
//! - `audience_contacts_changed_total{kind,change}`: created, updated, archived, unsubscribed,
//!   segment_added, segment_removed, rejected;
//! - `audience_vendor_api_calls_total{vendor,endpoint,status}`: every vendor call (status 0 for a
//!   transport failure), fed by the connectors' call observer;
//! - `audience_operator_leader`: 1 while this replica holds the lease;
//! - `audience_sync_in_progress{kind}`: runs under way.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::crd::RunCounts;

type Labels = Vec<(String, String)>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The operator's metrics; one per process.
pub struct Metrics {
    registry: Registry,
    runs: Family<Labels, Counter>,
    failures: Family<Labels, Counter>,
    duration: Family<Labels, Histogram>,
    contacts: Family<Labels, Counter>,
    vendor_calls: Family<Labels, Counter>,
    in_progress: Family<Labels, Gauge>,
    leader: Gauge,
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
        let vendor_calls = Family::<Labels, Counter>::default();
        let in_progress = Family::<Labels, Gauge>::default();
        let leader = Gauge::default();
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
        Metrics {
            registry,
            runs,
            failures,
            duration,
            contacts,
            vendor_calls,
            in_progress,
            leader,
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
        }
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("encoding metrics into a String cannot fail");
        out
    }
}
