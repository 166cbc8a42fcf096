//! Request counters: what a sync really asked of each vendor.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::json;

use crate::Vendor;

/// One counted request kind.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RequestKey {
    pub vendor: Vendor,
    pub method: String,
    /// The route template as the router matched it, without the vendor prefix
    /// (e.g. `/3.0/lists/{list_id}/members`), or `unmatched`.
    pub route: String,
    pub status: u16,
}

/// Shared request counters, keyed by vendor, method, route template and status, and the calls in
/// flight per vendor (with their peak).
#[derive(Clone, Default)]
pub struct Stats {
    counts: Arc<Mutex<BTreeMap<RequestKey, u64>>>,
    in_flight: Arc<Mutex<BTreeMap<Vendor, InFlight>>>,
}

#[derive(Debug, Clone, Copy, Default)]
struct InFlight {
    now: u64,
    peak: u64,
}

/// One call in flight, from its arrival until its answer's body has been sent whole.
struct InFlightGuard {
    vendor: Vendor,
    in_flight: Arc<Mutex<BTreeMap<Vendor, InFlight>>>,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if let Some(entry) = self
            .in_flight
            .lock()
            .expect("in-flight lock")
            .get_mut(&self.vendor)
        {
            entry.now = entry.now.saturating_sub(1);
        }
    }
}

impl Stats {
    pub fn clear(&self) {
        self.counts.lock().expect("stats lock").clear();
        for entry in self.in_flight.lock().expect("in-flight lock").values_mut() {
            entry.peak = entry.now;
        }
    }

    fn enter(&self, vendor: Vendor) -> InFlightGuard {
        let mut in_flight = self.in_flight.lock().expect("in-flight lock");
        let entry = in_flight.entry(vendor).or_default();
        entry.now += 1;
        entry.peak = entry.peak.max(entry.now);
        InFlightGuard {
            vendor,
            in_flight: self.in_flight.clone(),
        }
    }

    /// The most calls to `vendor` that were in flight at once (arrived, answer not yet sent whole)
    /// since the start or the last [`Stats::clear`].
    pub fn peak_in_flight(&self, vendor: Vendor) -> u64 {
        self.in_flight
            .lock()
            .expect("in-flight lock")
            .get(&vendor)
            .map_or(0, |f| f.peak)
    }

    pub fn add(&self, key: RequestKey) {
        *self
            .counts
            .lock()
            .expect("stats lock")
            .entry(key)
            .or_default() += 1;
    }

    /// All counters.
    pub fn snapshot(&self) -> Vec<(RequestKey, u64)> {
        let counts = self.counts.lock().expect("stats lock");
        counts.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    /// Requests to `vendor` matching `method` (any when `None`) whose route template contains `route_part`.
    pub fn count(&self, vendor: Vendor, method: Option<&str>, route_part: &str) -> u64 {
        self.snapshot()
            .into_iter()
            .filter(|(k, _)| {
                k.vendor == vendor
                    && method.is_none_or(|m| k.method.eq_ignore_ascii_case(m))
                    && k.route.contains(route_part)
            })
            .map(|(_, n)| n)
            .sum()
    }

    /// Requests to `vendor` that write (POST, PUT, PATCH, DELETE).
    pub fn writes(&self, vendor: Vendor) -> u64 {
        self.snapshot()
            .into_iter()
            .filter(|(k, _)| k.vendor == vendor && k.method != "GET" && k.method != "HEAD")
            .map(|(_, n)| n)
            .sum()
    }

    /// Total requests to `vendor`.
    pub fn total(&self, vendor: Vendor) -> u64 {
        self.count(vendor, None, "")
    }

    /// The JSON served at `GET /_sandbox/stats`:
    /// `{"mailchimp": {"total": 3, "requests": [{"method","route","status","count"}]}, ...}`.
    pub fn snapshot_json(&self) -> serde_json::Value {
        let mut by_vendor: BTreeMap<&'static str, (u64, Vec<serde_json::Value>)> = Vendor::ALL
            .iter()
            .map(|v| (v.name(), (0, Vec::new())))
            .collect();
        for (key, count) in self.snapshot() {
            let entry = by_vendor.entry(key.vendor.name()).or_default();
            entry.0 += count;
            entry.1.push(json!({
                "method": key.method,
                "route": key.route,
                "status": key.status,
                "count": count,
            }));
        }
        let map: serde_json::Map<String, serde_json::Value> = by_vendor
            .into_iter()
            .map(|(name, (total, requests))| {
                (
                    name.to_string(),
                    json!({"total": total, "requests": requests}),
                )
            })
            .collect();
        serde_json::Value::Object(map)
    }
}

/// Middleware counting every request to one vendor by its outcome, and the calls in flight.
pub async fn record(
    State((vendor, stats)): State<(Vendor, Stats)>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().as_str().to_string();
    let prefix = format!("/{}", vendor.name());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| {
            p.as_str()
                .strip_prefix(&prefix)
                .unwrap_or(p.as_str())
                .to_string()
        })
        .unwrap_or_else(|| "unmatched".to_string());
    let in_flight = stats.enter(vendor);
    let response = next.run(request).await;
    stats.add(RequestKey {
        vendor,
        method,
        route,
        status: response.status().as_u16(),
    });
    // The call is in flight until the last byte of its answer is out, not just its headers.
    crate::body::hold_until_sent(response, in_flight)
}
