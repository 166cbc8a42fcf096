//! Webhook deliveries from the simulators: when a simulator's data changes and webhooks are on,
//! it hands a signed delivery to its [`Outbox`], which POSTs it to the configured URL in the
//! background. The simulator's own answer never waits for it.
//!
//! Delivery follows what the vendors document in spirit, compressed in time [U]: a 5 s timeout
//! (Shopify's [D]; Mailchimp allows 10 s), and a delivery not answered 2xx is retried with the
//! same headers (so the same delivery id) up to [`RETRIES`] times after 200 ms, 400 ms, … where
//! Shopify retries 8 times over 4 hours. Deliveries are not ordered (neither are the vendors').
//! Each vendor builds its own payloads and signatures; this module only carries bytes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::watch;

/// Retries after the first attempt.
pub const RETRIES: u32 = 3;
const TIMEOUT: Duration = Duration::from_secs(5);
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// HMAC-SHA256 of `body` keyed with `secret`.
pub fn hmac_sha256(secret: &[u8], body: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// A random id shaped like a UUID v4 (Shopify's webhook and event ids look like this).
pub fn uuid_v4() -> String {
    let n = rand::random::<u128>() & !(0xf_u128 << 76) & !(0xc_u128 << 60)
        | (0x4_u128 << 76)
        | (0x8_u128 << 60);
    let h = format!("{n:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// One delivery: a POST of `body` with `headers` (content type included).
#[derive(Debug, Clone)]
pub struct Delivery {
    /// What the delivery is about, for the record (`customers/update`, `unsubscribe`, …).
    pub topic: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What became of one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub topic: String,
    /// HTTP status of each attempt (`None` for a timeout or connection error).
    pub attempts: Vec<Option<u16>>,
    /// True when an attempt was answered 2xx.
    pub delivered: bool,
}

struct Destination {
    url: String,
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

/// Where a simulator's webhooks go (nowhere until configured). Cheap to clone; clones share.
#[derive(Clone)]
pub struct Outbox {
    destination: Arc<Mutex<Option<Arc<Destination>>>>,
    records: Arc<Mutex<Vec<DeliveryRecord>>>,
    finished: Arc<watch::Sender<usize>>,
}

impl Default for Outbox {
    fn default() -> Outbox {
        Outbox {
            destination: Arc::default(),
            records: Arc::default(),
            finished: Arc::new(watch::channel(0).0),
        }
    }
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("enabled", &self.enabled())
            .finish()
    }
}

impl Outbox {
    /// Sends every later delivery to `url`, from tasks on the current Tokio runtime (so call it
    /// from async code; deliveries stop when that runtime ends).
    ///
    /// # Panics
    /// Outside a Tokio runtime.
    pub fn send_to(&self, url: &str) {
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .expect("a plain HTTP client builds");
        *self.destination.lock().expect("outbox lock") = Some(Arc::new(Destination {
            url: url.to_string(),
            client,
            runtime: tokio::runtime::Handle::current(),
        }));
    }

    /// Stops sending (deliveries already under way finish).
    pub fn stop(&self) {
        *self.destination.lock().expect("outbox lock") = None;
    }

    pub fn enabled(&self) -> bool {
        self.destination.lock().expect("outbox lock").is_some()
    }

    /// Queues `delivery` when webhooks are on; returns at once either way.
    pub fn post(&self, delivery: Delivery) {
        let Some(destination) = self.destination.lock().expect("outbox lock").clone() else {
            return;
        };
        let outbox = self.clone();
        destination
            .runtime
            .clone()
            .spawn(async move { outbox.deliver(&destination, delivery).await });
    }

    async fn deliver(&self, destination: &Destination, delivery: Delivery) {
        let mut attempts = Vec::new();
        let mut delivered = false;
        let mut backoff = FIRST_BACKOFF;
        for attempt in 0..=RETRIES {
            if attempt > 0 {
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
            let mut request = destination.client.post(&destination.url);
            for (name, value) in &delivery.headers {
                request = request.header(name, value);
            }
            let status = request
                .body(delivery.body.clone())
                .send()
                .await
                .ok()
                .map(|r| r.status());
            attempts.push(status.map(|s| s.as_u16()));
            // 4xx other than 429 is the receiver refusing this delivery: retrying the same bytes
            // cannot change its mind (Shopify retries anyway; the sandbox keeps tests quick).
            if status.is_some_and(|s| s.is_success()) {
                delivered = true;
                break;
            }
            if status.is_some_and(|s| s.is_client_error() && s.as_u16() != 429) {
                break;
            }
        }
        self.records
            .lock()
            .expect("outbox lock")
            .push(DeliveryRecord {
                topic: delivery.topic,
                attempts,
                delivered,
            });
        self.finished.send_modify(|n| *n += 1);
    }

    /// Every finished delivery so far, in the order they finished.
    pub fn records(&self) -> Vec<DeliveryRecord> {
        self.records.lock().expect("outbox lock").clone()
    }

    /// Waits until at least `n` deliveries have finished (delivered or given up).
    pub async fn wait_for(&self, n: usize) {
        let mut rx = self.finished.subscribe();
        // The sender lives as long as `self`, so this only ends when the count is reached.
        let _ = rx.wait_for(|done| *done >= n).await;
    }
}
