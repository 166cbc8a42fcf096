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

/// Shared request counters, keyed by vendor, method, route template and status.
#[derive(Clone, Default)]
pub struct Stats {
    counts: Arc<Mutex<BTreeMap<RequestKey, u64>>>,
}

impl Stats {
    pub fn clear(&self) {
        self.counts.lock().expect("stats lock").clear();
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

/// Middleware counting every request to one vendor by its outcome.
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
    let response = next.run(request).await;
    stats.add(RequestKey {
        vendor,
        method,
        route,
        status: response.status().as_u16(),
    });
    response
}
