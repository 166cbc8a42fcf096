//! In-memory simulators of the vendor APIs audience-operator talks to.
//!
//! Each vendor lives in its own module, written from the vendor's spec in `shared/specs` and sharing
//! no types with the connectors. All of them are served by one axum router under a prefix per vendor
//! (`/mailchimp`, `/klaviyo`, `/shopify`, `/lightspeed-x`, `/lightspeed-r`, `/retailcrm`), with:
//! - `GET /_sandbox/stats`: request counts per vendor by method, route template and status;
//! - `POST /_sandbox/reset`: clears every vendor's state, injected faults and counters;
//! - `POST /_sandbox/faults`: injects latency, 429s, 500s, timeouts, resets, malformed, huge or
//!   late bodies, raw answers with any header, and errors echoing the credential (see [`faults`]);
//! - `/merchants/{id}/...`: many merchants, each an independent sandbox with its own data and
//!   limits, and `GET /_sandbox/merchants`, their counters (see [`merchants`]);
//! - `POST /_sandbox/mailchimp/confirm`: a pending Mailchimp member confirms (see [`mailchimp::confirm_route`]).

mod body;
pub mod faults;
pub mod klaviyo;
pub mod lightspeed_r;
pub mod lightspeed_x;
pub mod mailchimp;
pub mod merchants;
pub mod retailcrm;
pub mod seed;
pub mod shopify;
pub mod simulator;
pub mod stats;
pub mod webhooks;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use tokio::net::TcpListener;

pub use faults::{Fault, FaultKind, Faults};
pub use simulator::Simulator;
pub use stats::Stats;

/// Every simulator served: `Variant => field: Type`. This one table generates the [`Vendor`]
/// enum, the [`Sandbox`] fields and the new / reset / seed / mount loops; the type's
/// [`Simulator`] impl supplies the name, router and state handling.
macro_rules! simulators {
    ($($variant:ident => $field:ident: $ty:ty),* $(,)?) => {
        /// The vendors served, with the path prefix each is mounted under.
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
        )]
        #[serde(rename_all = "kebab-case")]
        pub enum Vendor {
            $($variant,)*
        }

        const VENDOR_COUNT: usize = [$(stringify!($variant)),*].len();

        impl Vendor {
            pub const ALL: [Vendor; VENDOR_COUNT] = [$(Vendor::$variant),*];

            /// The name used in stats and fault injection, and the path prefix (`/{name}`).
            pub fn name(self) -> &'static str {
                match self {
                    $(Vendor::$variant => <$ty as Simulator>::NAME,)*
                }
            }
        }

        /// Every simulator's state, cheap to clone (all fields are shared handles).
        #[derive(Clone)]
        pub struct Sandbox {
            pub stats: Stats,
            pub faults: Faults,
            /// Other merchants' sandboxes, under `/merchants/{id}` (see [`merchants`]).
            pub merchants: merchants::Merchants,
            $(pub $field: $ty,)*
            options: Arc<SandboxOptions>,
        }

        impl Sandbox {
            fn with_options(options: SandboxOptions) -> Sandbox {
                Sandbox {
                    stats: Stats::default(),
                    faults: Faults::default(),
                    merchants: merchants::Merchants::default(),
                    $($field: <$ty>::default(),)*
                    options: Arc::new(options),
                }
            }

            fn reset_simulators(&self) {
                $(Simulator::reset(&self.$field);)*
            }

            fn seed_simulators(&self, people: &[seed::Person]) {
                $(Simulator::seed(&self.$field, people);)*
            }

            fn mount_simulators(&self, mut app: Router) -> Router {
                $(app = app.nest(
                    &format!("/{}", Vendor::$variant.name()),
                    self.mount(Vendor::$variant, &self.$field),
                );)*
                app
            }
        }
    };
}

simulators! {
    Mailchimp => mailchimp: mailchimp::Mailchimp,
    Klaviyo => klaviyo: klaviyo::Klaviyo,
    Shopify => shopify: shopify::Shopify,
    LightspeedX => lightspeed_x: lightspeed_x::LightspeedX,
    LightspeedR => lightspeed_r: lightspeed_r::LightspeedR,
    Retailcrm => retailcrm: retailcrm::RetailCrm,
}

impl Vendor {
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

impl Sandbox {
    pub fn new(options: SandboxOptions) -> Sandbox {
        let sandbox = Sandbox::with_options(options);
        sandbox.seed_demo_data();
        sandbox
    }

    /// Clears all state, faults and counters, then seeds the demo data again.
    pub fn reset(&self) {
        self.stats.clear();
        self.faults.clear();
        self.merchants.clear();
        self.reset_simulators();
        self.seed_demo_data();
    }

    fn seed_demo_data(&self) {
        let people = seed::people(self.options.customers, self.options.seed);
        self.seed_simulators(&people);
    }

    /// One vendor's router with its layers: counters outermost, then the simulator's own outer
    /// layers, then fault injection.
    fn mount<S: Simulator>(&self, vendor: Vendor, sim: &S) -> Router {
        let layered = sim.router().layer(axum::middleware::from_fn_with_state(
            (vendor, self.faults.clone()),
            faults::inject,
        ));
        sim.outer_layers(layered)
            .layer(axum::middleware::from_fn_with_state(
                (vendor, self.stats.clone()),
                stats::record,
            ))
    }

    /// The axum router serving every vendor and the `/_sandbox` control endpoints.
    pub fn router(&self) -> Router {
        let app = Router::new()
            .route("/_sandbox/stats", get(stats_handler))
            .route("/_sandbox/reset", post(reset_handler))
            .route("/_sandbox/faults", post(faults::inject_handler))
            .route(
                "/_sandbox/mailchimp/confirm",
                mailchimp::confirm_route(self.mailchimp.clone()),
            )
            .with_state(self.clone())
            .merge(self.merchants.router());
        self.mount_simulators(app)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_names_are_the_serde_names_and_round_trip() {
        for vendor in Vendor::ALL {
            let serde_name = serde_json::to_value(vendor).expect("serialises");
            assert_eq!(serde_name, serde_json::json!(vendor.name()));
            assert_eq!(Vendor::from_name(vendor.name()), Some(vendor));
        }
        assert_eq!(Vendor::from_name("nope"), None);
    }
}
