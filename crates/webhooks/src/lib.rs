//! The operator's webhook receiver: vendor webhooks in, debounced sync triggers out.
//!
//! A webhook is a hint, never data: nothing here writes to a vendor or decides what changed. A
//! verified delivery becomes a [`Hint`] (vendor, account, topic, the addresses it names); the
//! [`debounce`]r coalesces hints per account into one [`Trigger`] per window; the operator marks
//! the syncs of that account and runs them at once. Polling stays the truth, since no vendor
//! guarantees delivery.
//!
//! This crate has no Kubernetes types: the caller supplies the [`SecretResolver`] (account →
//! candidate secrets) and consumes the triggers.
//!
//! Shopper events from a Shopify web pixel come in on their own route ([`pixel`]): checked and
//! queued for the operator, never sent to a vendor from here.
//!
//! Vendors: [`shopify`] (HMAC of the raw body, dedupe by webhook id, stale deliveries dropped),
//! [`mailchimp`] (secret in the URL, validation GET), [`lightspeed_x`] (form-encoded `payload`,
//! `X-Signature`). Refusals change nothing and emit nothing: 401 unsigned / wrongly signed /
//! unknown account, 400 malformed, 413 too large, 429 over a rate limit, 503 when the hint
//! channel is full. Logs carry the vendor, the verified account and the outcome; never a secret,
//! a signature or a body.
//!
//! # Wiring it into the operator
//!
//! ```no_run
//! use std::time::Duration;
//! use audience_webhooks::{Config, Secret, Vendor, Webhooks};
//!
//! # async fn demo() -> std::io::Result<()> {
//! // Answer from memory (e.g. a reflector store of the Secrets the syncs reference).
//! let resolver = |vendor: Vendor, account: &str| -> Vec<Secret> {
//!     let _ = (vendor, account);
//!     vec![]
//! };
//! let (webhooks, mut triggers) =
//!     Webhooks::with_triggers(Config::default(), resolver, Duration::from_secs(2));
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:8443").await?;
//! let app = webhooks.router();
//! tokio::spawn(async move { axum::serve(listener, app).await });
//! while let Some(trigger) = triggers.recv().await {
//!     // Find the syncs whose source or target is (trigger.vendor, trigger.account),
//!     // mark them and request an immediate (incremental) run.
//!     let _ = trigger;
//! }
//! # Ok(()) }
//! ```
//!
//! [`Webhooks::new`] with your own `mpsc::Sender<Hint>` and [`debounce`] does the same in two
//! steps, for a caller that wants the raw hints too.
//!
//! - **Port and Service**: its own listener (not the metrics port), e.g. `--webhook-addr
//!   0.0.0.0:8443`, exposed by a chart Service `…-webhooks` with an optional Ingress; TLS is
//!   terminated by the Ingress or from a mounted Secret. The routes are absolute
//!   (`/webhooks/shopify`, `/webhooks/mailchimp/{secret}`, `/webhooks/lightspeed-x[/{prefix}]`).
//! - **Secrets** the resolver returns: for [`Vendor::Shopify`] with a shop domain, the Shopify
//!   app's client secret (proposed key `shopifyClientSecret` in the source's credentials Secret;
//!   an Admin API access token is *not* the webhook key); for [`Vendor::Mailchimp`] with a list
//!   id, the URL secret the operator put in the webhook URL when registering it (proposed key
//!   `mailchimpWebhookSecret`, or one derived per list from a master key); for
//!   [`Vendor::LightspeedX`] with a domain prefix, the OAuth app's client secret (`[U]`).
//!   Several candidates may be returned (several syncs, or a rotation).
//! - **Hint → syncs**: `(Shopify, shop)` and `(LightspeedX, prefix)` name a *source*: every sync
//!   reading that account; [`Scope::Customers`] concerns customer / segment syncs,
//!   [`Scope::Orders`] order syncs. `(Mailchimp, list id)` names a *target*: every sync writing to
//!   that list (an unsubscribe or clean there changes what the next plan may do). The trigger's
//!   emails let an incremental run look up just those members; `emails_truncated` or an empty set
//!   means "read what changed since the checkpoint".
//! - **Registration** (issue 13's optional `webhooks.register`), with `BASE` the externally
//!   reachable URL: Shopify `webhookSubscriptionCreate(topic: CUSTOMERS_UPDATE, …,
//!   webhookSubscription: {callbackUrl: "BASE/webhooks/shopify", format: JSON})` per topic of
//!   [`shopify::TOPICS`] the sync needs; Mailchimp `POST /lists/{id}/webhooks` with
//!   `url: "BASE/webhooks/mailchimp/SECRET"`, `events` for the [`mailchimp::TYPES`] and
//!   `sources: {user: true, admin: true, api: false}` (the operator's own API writes need not
//!   come back to it); Lightspeed X `POST /api/webhooks` with `url:
//!   "BASE/webhooks/lightspeed-x/PREFIX"` and `type: customer.update` / `sale.update`.
//! - **Do not log request paths** in front of this router (no `TraceLayer` with URIs, no ingress
//!   access log with paths): Mailchimp's secret is in the path. The receiver itself logs none.
//! - **What a signature does not cover**: Shopify signs only the body, not `X-Shopify-Shop-Domain`,
//!   the topic or the webhook id, and one app secret serves every shop that installed the app. A
//!   replayed delivery with edited headers can therefore name another shop of the same app: the
//!   worst it does is cause one run that finds nothing new (the stale window bounds replays).
//! - **Health**: [`Webhooks::counters`] for metrics; call [`Webhooks::prune`] now and then (e.g.
//!   every minute) to drop idle accounts' rate-limit state.

mod debounce;
mod dedupe;
mod hint;
pub mod lightspeed_x;
pub mod mailchimp;
pub mod pixel;
mod receiver;
mod secrets;
pub mod shopify;
mod verify;

pub use debounce::{MAX_EMAILS_PER_TRIGGER, Trigger, debounce};
pub use hint::{Hint, MAX_EMAILS_PER_HINT, Scope, Vendor};
pub use pixel::{
    PixelConfig, PixelCounters, PixelReceiver, PixelResolver, PixelSync, ShopperEvent,
};
pub use receiver::{Config, Counters, HINT_QUEUE, RateLimit, Webhooks};
pub use secrets::{Secret, SecretResolver};
pub use verify::hmac_sha256;
