//! Many merchants in one sandbox: each merchant is an independent [`Sandbox`] (its own data, its
//! own rate limits and connection limits, its own request counters), served under
//! `/merchants/{id}/...` with exactly the routes a single sandbox serves at its root
//! (`/merchants/{id}/shopify/admin/api/...`, `/merchants/{id}/mailchimp/3.0/...`, and the
//! merchant's own `/merchants/{id}/_sandbox/stats`).
//!
//! Real vendors key accounts differently: Shopify by shop domain, Lightspeed X-Series by domain
//! prefix, Lightspeed R-Series by account id, RetailCRM by the CRM's host, Mailchimp and Klaviyo by
//! the API key (its account). Here one path segment, `{id}`, stands for all of them: a merchant's
//! shop and its mailing platform account are one merchant, reached by pointing each connector's
//! `endpoint` at `{sandbox}/merchants/{id}/{vendor}` (e.g. the shop domain as the id). [U] The
//! specs do not say how an agency's merchants map onto accounts; one id for a merchant's whole
//! stack is the simplest model that gives every merchant its own vendor limits.
//!
//! A merchant is created on first use (a request under its prefix, or [`Merchants::get`]) and
//! seeded by the [`MerchantSetup`]: by default a few demo customers in each source, an access token
//! of its own for Shopify and an API key of its own for RetailCRM (credentials are per account), and a Mailchimp audience [`DEFAULT_AUDIENCE`].
//! `GET /_sandbox/merchants` aggregates every merchant's counters.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde_json::json;
use tower::ServiceExt as _;

use crate::stats::RequestKey;
use crate::{Sandbox, SandboxOptions, Vendor};

/// The Mailchimp audience id every new merchant has. [U]
pub const DEFAULT_AUDIENCE: &str = "audience";

/// Demo customers per source a new merchant gets by default. [U] "Small shops".
pub const DEFAULT_CUSTOMERS: usize = 5;

/// How a new merchant's sandbox is set up (called once, when the merchant is created).
pub type MerchantSetup = Arc<dyn Fn(&str, &Sandbox) + Send + Sync>;

/// One merchant: its sandbox and the router serving it (built once).
#[derive(Clone)]
struct Merchant {
    sandbox: Sandbox,
    router: Router,
}

struct State_ {
    customers: usize,
    setup: MerchantSetup,
    merchants: BTreeMap<String, Merchant>,
}

/// Every merchant of a sandbox; cheap to clone (clones share the merchants).
#[derive(Clone)]
pub struct Merchants {
    state: Arc<Mutex<State_>>,
}

impl Default for Merchants {
    fn default() -> Self {
        Merchants {
            state: Arc::new(Mutex::new(State_ {
                customers: DEFAULT_CUSTOMERS,
                setup: Arc::new(default_setup),
                merchants: BTreeMap::new(),
            })),
        }
    }
}

/// The Shopify access token of merchant `id` (each shop has its own).
pub fn shopify_token(id: &str) -> String {
    format!("shpat_{:016x}", fnv(id))
}

/// A well-formed Mailchimp API key of merchant `id` (each account has its own).
pub fn mailchimp_key(id: &str) -> String {
    format!(
        "{:016x}{:016x}-{}",
        fnv(id),
        fnv(&format!("{id}/mailchimp")),
        crate::mailchimp::DEFAULT_DATA_CENTER
    )
}

/// The RetailCRM API key of merchant `id` (each CRM has its own).
pub fn retailcrm_key(id: &str) -> String {
    format!("{:016x}{:016x}", fnv(&format!("{id}/retailcrm")), fnv(id))
}

/// FNV-1a: a stable, dependency-free hash for per-merchant seeds and credentials.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The default setup: a Shopify token of the merchant's own and an empty Mailchimp audience.
fn default_setup(id: &str, sandbox: &Sandbox) {
    sandbox.shopify.set_access_token(&shopify_token(id));
    sandbox.retailcrm.set_api_key(&retailcrm_key(id));
    sandbox
        .mailchimp
        .create_list(DEFAULT_AUDIENCE, &format!("{id} audience"));
}

impl Merchants {
    /// New merchants get `customers` demo customers in each source (from a seed of their own),
    /// then `setup`. Merchants already created are left as they are.
    pub fn configure(&self, customers: usize, setup: MerchantSetup) {
        let mut state = self.state.lock().expect("merchants lock");
        state.customers = customers;
        state.setup = setup;
    }

    /// Merchant `id`'s sandbox, created (and set up) on first use.
    pub fn get(&self, id: &str) -> Sandbox {
        self.merchant(id).sandbox
    }

    fn merchant(&self, id: &str) -> Merchant {
        let mut state = self.state.lock().expect("merchants lock");
        if let Some(m) = state.merchants.get(id) {
            return m.clone();
        }
        let sandbox = Sandbox::new(SandboxOptions {
            customers: state.customers,
            seed: fnv(id),
        });
        (state.setup)(id, &sandbox);
        let merchant = Merchant {
            router: sandbox.router(),
            sandbox,
        };
        state.merchants.insert(id.to_string(), merchant.clone());
        merchant
    }

    /// The ids of every merchant created so far, sorted.
    pub fn ids(&self) -> Vec<String> {
        let state = self.state.lock().expect("merchants lock");
        state.merchants.keys().cloned().collect()
    }

    /// Every merchant's sandbox, by id.
    pub fn all(&self) -> Vec<(String, Sandbox)> {
        let state = self.state.lock().expect("merchants lock");
        state
            .merchants
            .iter()
            .map(|(id, m)| (id.clone(), m.sandbox.clone()))
            .collect()
    }

    /// Removes every merchant.
    pub fn clear(&self) {
        self.state.lock().expect("merchants lock").merchants.clear();
    }

    /// Every merchant's counters added up, per request kind.
    pub fn total_stats(&self) -> Vec<(RequestKey, u64)> {
        let mut sum: BTreeMap<RequestKey, u64> = BTreeMap::new();
        for (_, sandbox) in self.all() {
            for (key, n) in sandbox.stats.snapshot() {
                *sum.entry(key).or_default() += n;
            }
        }
        sum.into_iter().collect()
    }

    /// The routes: `/merchants/{id}/...` and `GET /_sandbox/merchants`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/merchants/{id}", any(serve_merchant))
            .route("/merchants/{id}/{*rest}", any(serve_merchant))
            .route("/_sandbox/merchants", get(merchants_stats))
            .with_state(self.clone())
    }

    /// The JSON of `GET /_sandbox/merchants`: `{"merchants": N, "totals": {vendor: {"total",
    /// "status": {code: n}}}, "by_merchant": {id: {vendor: total}}}`.
    pub fn stats_json(&self) -> serde_json::Value {
        let mut totals: BTreeMap<&'static str, (u64, BTreeMap<u16, u64>)> = BTreeMap::new();
        let mut by_merchant = serde_json::Map::new();
        let all = self.all();
        for (id, sandbox) in &all {
            let mut mine: BTreeMap<&'static str, u64> = BTreeMap::new();
            for (key, n) in sandbox.stats.snapshot() {
                let name = key.vendor.name();
                *mine.entry(name).or_default() += n;
                let t = totals.entry(name).or_default();
                t.0 += n;
                *t.1.entry(key.status).or_default() += n;
            }
            by_merchant.insert(id.clone(), json!(mine));
        }
        let totals: serde_json::Map<String, serde_json::Value> = totals
            .into_iter()
            .map(|(name, (total, status))| {
                let status: BTreeMap<String, u64> = status
                    .into_iter()
                    .map(|(s, n)| (s.to_string(), n))
                    .collect();
                (name.to_string(), json!({"total": total, "status": status}))
            })
            .collect();
        json!({"merchants": all.len(), "totals": totals, "by_merchant": by_merchant})
    }
}

impl Merchants {
    /// Requests to `vendor` answered with `status`, over every merchant.
    pub fn count_status(&self, vendor: Vendor, status: u16) -> u64 {
        self.total_stats()
            .into_iter()
            .filter(|(k, _)| k.vendor == vendor && k.status == status)
            .map(|(_, n)| n)
            .sum()
    }
}

/// Hands the request to the merchant's own router with the `/merchants/{id}` prefix taken off.
async fn serve_merchant(
    State(merchants): State<Merchants>,
    Path(params): Path<BTreeMap<String, String>>,
    request: Request,
) -> Response {
    let Some(id) = params.get("id").filter(|id| !id.is_empty()) else {
        return axum::http::StatusCode::NOT_FOUND.into_response();
    };
    let merchant = merchants.merchant(id);
    let prefix_len = request
        .uri()
        .path()
        .find(&format!("/merchants/{id}"))
        .map_or(0, |at| at + "/merchants/".len() + id.len());
    let rest = &request.uri().path()[prefix_len..];
    let path_and_query = match request.uri().query() {
        Some(q) => format!("/{}?{q}", rest.trim_start_matches('/')),
        None => format!("/{}", rest.trim_start_matches('/')),
    };
    let Ok(uri) = path_and_query.parse::<Uri>() else {
        return axum::http::StatusCode::BAD_REQUEST.into_response();
    };
    // A request of its own: the outer route's matched path and path parameters must not reach
    // the merchant's router (its extractors and counters see only its own routes).
    let (parts, body) = request.into_parts();
    let mut inner = Request::new(body);
    *inner.method_mut() = parts.method;
    *inner.uri_mut() = uri;
    *inner.version_mut() = parts.version;
    *inner.headers_mut() = parts.headers;
    match merchant.router.oneshot(inner).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

async fn merchants_stats(State(merchants): State<Merchants>) -> axum::Json<serde_json::Value> {
    axum::Json(merchants.stats_json())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merchants_have_their_own_credentials() {
        assert_ne!(
            shopify_token("a.myshopify.com"),
            shopify_token("b.myshopify.com")
        );
        assert_ne!(mailchimp_key("a"), mailchimp_key("b"));
        assert!(mailchimp_key("a").ends_with("-us6"));
    }
}
