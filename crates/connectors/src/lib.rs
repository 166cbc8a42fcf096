//! Connectors: HTTP clients of the vendors' APIs behind the core's `Source` and `Target` traits.
//!
//! [`http`] holds what every connector shares: bounded retries with backoff and jitter, the
//! per-API-key budget (concurrency and pauses after a rate limit) shared by every sync in the
//! process, error mapping that never leaks a secret, and the hook that counts calls for metrics.

pub mod config;
pub mod http;
pub mod klaviyo;
pub mod lightspeed_r;
pub mod lightspeed_x;
pub mod mailchimp;
pub mod order_cursor;
pub mod retailcrm;
pub mod shopify;
pub mod vendor;
