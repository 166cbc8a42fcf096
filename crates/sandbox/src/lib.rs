//! In-memory simulators of the vendor APIs audience-operator talks to.
//!
//! Each vendor lives in its own module, written from the vendor's spec in `shared/specs` and sharing
//! no types with the connectors. All of them are served by one axum router under a prefix per vendor
//! (`/mailchimp`, `/shopify`, `/lightspeed-x`, `/lightspeed-r`, `/retailcrm`), with:
//! - `GET /_sandbox/stats`: request counts per vendor by method, route template and status;
//! - `POST /_sandbox/reset`: clears every vendor's state, injected faults and counters;
//! - `POST /_sandbox/faults`: injects latency, 429s, 500s, timeouts or malformed bodies (see [`faults`]);
//! - `POST /_sandbox/mailchimp/confirm`: a pending Mailchimp member confirms (see [`mailchimp::confirm_route`]).

pub mod faults;
pub mod lightspeed_r;
pub mod lightspeed_x;
pub mod mailchimp;
pub mod retailcrm;
pub mod seed;
pub mod shopify;
pub mod stats;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use tokio::net::TcpListener;

pub use faults::{Fault, FaultKind, Faults};
pub use stats::Stats;

/// The vendors served, with the path prefix each is mounted under.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Vendor {
    Mailchimp,
    Shopify,
    LightspeedX,
    LightspeedR,
    Retailcrm,
}

impl Vendor {
    pub const ALL: [Vendor; 5] = [
        Vendor::Mailchimp,
        Vendor::Shopify,
        Vendor::LightspeedX,
        Vendor::LightspeedR,
        Vendor::Retailcrm,
    ];

    /// The name used in stats and fault injection, and the path prefix (`/{name}`).
    pub fn name(self) -> &'static str {
        match self {
            Vendor::Mailchimp => "mailchimp",
            Vendor::Shopify => "shopify",
            Vendor::LightspeedX => "lightspeed-x",
            Vendor::LightspeedR => "lightspeed-r",
            Vendor::Retailcrm => "retailcrm",
        }
    }

    pub fn from_name(name: &str) -> Option<Vendor> {
        Vendor::ALL.into_iter().find(|v| v.name() == name)
    }
}

/// Options for a new sandbox.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// Demo customers generated per source vendor (0 for an empty sandbox).
    pub customers: usize,
    /// Seed of the deterministic demo-data generator.
    pub seed: u64,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            customers: 0,
            seed: 42,
        }
    }
}

/// Every simulator's state, cheap to clone (all fields are shared handles).
#[derive(Clone)]
pub struct Sandbox {
    pub stats: Stats,
    pub faults: Faults,
    pub mailchimp: mailchimp::Mailchimp,
    pub shopify: shopify::Shopify,
    pub lightspeed_x: lightspeed_x::LightspeedX,
    pub lightspeed_r: lightspeed_r::LightspeedR,
    pub retailcrm: retailcrm::RetailCrm,
    options: Arc<SandboxOptions>,
}

impl Sandbox {
    pub fn new(options: SandboxOptions) -> Sandbox {
        let sandbox = Sandbox {
            stats: Stats::default(),
            faults: Faults::default(),
            mailchimp: mailchimp::Mailchimp::default(),
            shopify: shopify::Shopify::default(),
            lightspeed_x: lightspeed_x::LightspeedX::default(),
            lightspeed_r: lightspeed_r::LightspeedR::default(),
            retailcrm: retailcrm::RetailCrm::default(),
            options: Arc::new(options),
        };
        sandbox.seed_demo_data();
        sandbox
    }

    /// Clears all state, faults and counters, then seeds the demo data again.
    pub fn reset(&self) {
        self.stats.clear();
        self.faults.clear();
        self.mailchimp.reset();
        self.shopify.reset();
        self.lightspeed_x.reset();
        self.lightspeed_r.reset();
        self.retailcrm.reset();
        self.seed_demo_data();
    }

    fn seed_demo_data(&self) {
        let people = seed::people(self.options.customers, self.options.seed);
        self.mailchimp.seed_demo();
        self.shopify.seed_demo(&people);
        self.lightspeed_x.seed_demo(&people);
        self.lightspeed_r.seed_demo(&people);
        self.retailcrm.seed_demo(&people);
    }

    /// The axum router serving every vendor and the `/_sandbox` control endpoints.
    pub fn router(&self) -> Router {
        let mount = |vendor: Vendor, router: Router| {
            let layered = router.layer(axum::middleware::from_fn_with_state(
                (vendor, self.faults.clone()),
                faults::inject,
            ));
            // Mailchimp's limit of simultaneous connections per API key must hold a slot during
            // injected latency too, so it sits outside fault injection (inside the counters).
            let layered = match vendor {
                Vendor::Mailchimp => layered.layer(axum::middleware::from_fn_with_state(
                    self.mailchimp.clone(),
                    mailchimp::limit_connections,
                )),
                _ => layered,
            };
            let layered = layered.layer(axum::middleware::from_fn_with_state(
                (vendor, self.stats.clone()),
                stats::record,
            ));
            (format!("/{}", vendor.name()), layered)
        };
        let mut app = Router::new()
            .route("/_sandbox/stats", get(stats_handler))
            .route("/_sandbox/reset", post(reset_handler))
            .route("/_sandbox/faults", post(faults::inject_handler))
            .route(
                "/_sandbox/mailchimp/confirm",
                mailchimp::confirm_route(self.mailchimp.clone()),
            )
            .with_state(self.clone());
        for (prefix, router) in [
            mount(Vendor::Mailchimp, mailchimp::router(self.mailchimp.clone())),
            mount(Vendor::Shopify, shopify::router(self.shopify.clone())),
            mount(
                Vendor::LightspeedX,
                lightspeed_x::router(self.lightspeed_x.clone()),
            ),
            mount(
                Vendor::LightspeedR,
                lightspeed_r::router(self.lightspeed_r.clone()),
            ),
            mount(Vendor::Retailcrm, retailcrm::router(self.retailcrm.clone())),
        ] {
            app = app.nest(&prefix, router);
        }
        app
    }

    /// Binds `addr` (use port 0 for a free one) and serves in a background task.
    pub async fn serve(&self, addr: SocketAddr) -> std::io::Result<RunningSandbox> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let app = self.router();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stop_rx.await;
                })
                .await;
        });
        Ok(RunningSandbox {
            addr: local,
            sandbox: self.clone(),
            stop: Some(stop_tx),
            task,
        })
    }
}

/// A sandbox served on a local port; stops when dropped.
pub struct RunningSandbox {
    pub addr: SocketAddr,
    pub sandbox: Sandbox,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    #[allow(dead_code)]
    task: tokio::task::JoinHandle<()>,
}

impl RunningSandbox {
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The base URL of one vendor, e.g. `http://127.0.0.1:PORT/mailchimp`.
    pub fn vendor_url(&self, vendor: Vendor) -> String {
        format!("http://{}/{}", self.addr, vendor.name())
    }
}

impl Drop for RunningSandbox {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn stats_handler(State(sandbox): State<Sandbox>) -> axum::Json<serde_json::Value> {
    axum::Json(sandbox.stats.snapshot_json())
}

async fn reset_handler(State(sandbox): State<Sandbox>) -> axum::http::StatusCode {
    sandbox.reset();
    axum::http::StatusCode::NO_CONTENT
}
