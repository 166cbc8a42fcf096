//! Freshness benchmark (issue 13): how long a source edit takes to be visible in the target, on
//! the real control plane, with webhooks and with polling. Not part of `make test` (it runs for
//! minutes by design: polling freshness is bounded by the schedule, whose minimum is 1m):
//!
//! ```text
//! make bench-freshness        # BENCH_FRESHNESS_SAMPLES=N (default 20 webhook, 8 polling edits)
//! ```
//!
//! A Shopify shop of 1,000 customers syncs into a Mailchimp audience. Each sample edits one
//! customer's first name in the Shopify simulator and measures until the Mailchimp simulator's
//! member shows it. Webhooks: the simulator delivers `customers/update`, signed, to the operator's
//! receiver, and the sync runs hourly (so only the webhook can explain a fast arrival). Polling:
//! no webhooks, `interval: 1m`, and edits at pseudo-random points of the interval.

mod operator_support;

use std::time::{Duration, Instant};

use audience_operator::crd::AudienceSync;
use audience_operator::operator::Operator;
use audience_sandbox::shopify::Customer;
use operator_support::*;
use serde_json::json;

const APP_SECRET: &str = "shpss_bench_app_client_secret_0123456789";
const SHOP: &str = "test.myshopify.com";
const CUSTOMERS: usize = 1_000;

fn samples(default: usize) -> usize {
    std::env::var("BENCH_FRESHNESS_SAMPLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn report(what: &str, mut seen: Vec<Duration>) -> (Duration, Duration) {
    seen.sort();
    let (p50, p95) = (percentile(&seen, 50.0), percentile(&seen, 95.0));
    eprintln!(
        "freshness {what}: {} samples, p50 {:.2} s, p95 {:.2} s, max {:.2} s",
        seen.len(),
        p50.as_secs_f64(),
        p95.as_secs_f64(),
        seen.last().unwrap().as_secs_f64()
    );
    (p50, p95)
}

/// Adds the shop's customers; returns the id of the one the samples edit.
fn seed_shop(h: &Harness) -> u64 {
    let shop = h.shopify();
    shop.set_bucket(1_000_000.0, 1_000_000.0);
    let mut first = 0;
    for i in 0..CUSTOMERS {
        let id = shop.add_customer(Customer {
            email: Some(format!("fresh{i}@gmail.com")),
            first_name: Some(format!("First{i}")),
            marketing_state: "SUBSCRIBED".into(),
            ..Default::default()
        });
        if i == 0 {
            first = id;
        }
    }
    first
}

/// Edits the customer and measures until the audience shows the edit.
async fn sample(h: &Harness, id: u64, name: String, limit: Duration) -> Duration {
    let started = Instant::now();
    h.shopify()
        .edit_customer(id, |c| c.first_name = Some(name.clone()));
    loop {
        let shown = h
            .mailchimp()
            .member(AUDIENCE, "fresh0@gmail.com")
            .and_then(|m| m.merge_fields.get("FNAME").cloned());
        if shown == Some(json!(name)) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "{name} not visible after {limit:?}"
        );
        // Measurement resolution, not synchronisation: the loop only reads the simulator.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: make bench-freshness"]
async fn freshness_with_webhooks() {
    let mut h = harness("bench-fresh-hooks", false).await;
    let mut options = h.options();
    options.webhook_addr = Some("127.0.0.1:0".parse().unwrap());
    let operator = Operator::start(h.client.clone(), options)
        .await
        .expect("starting the operator");
    let url = format!(
        "http://{}/webhooks/shopify",
        operator.webhook_addr.expect("the receiver listens")
    );
    h.operator = Some(operator);
    h.default_secrets().await;
    let token = h.shopify().access_token();
    h.secret(
        "shopify",
        &[("accessToken", &token), ("webhookSecret", APP_SECRET)],
    )
    .await;
    let id = seed_shop(&h);
    let api = h.api::<AudienceSync>();
    h.create::<AudienceSync>(audience_sync("hooked", json!({})))
        .await;
    wait_reason(&api, "hooked", "Synced").await;
    h.shopify().send_webhooks_as(SHOP, &url, APP_SECRET);

    let mut seen = Vec::new();
    for i in 0..samples(20) {
        seen.push(sample(&h, id, format!("Hook{i}"), Duration::from_secs(60)).await);
    }
    let (_, p95) = report("with webhooks (debounce 2 s, schedule 1h)", seen);
    // Without the webhook, the edit would wait for the hourly schedule.
    assert!(p95 < Duration::from_secs(15), "p95 {p95:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: make bench-freshness"]
async fn freshness_with_polling() {
    let h = harness("bench-fresh-poll", true).await;
    h.default_secrets().await;
    let id = seed_shop(&h);
    let api = h.api::<AudienceSync>();
    h.create::<AudienceSync>(audience_sync(
        "polled",
        json!({"schedule": {"interval": "1m"}}),
    ))
    .await;
    wait_reason(&api, "polled", "Synced").await;

    // Edits at pseudo-random points of the interval (a fixed sequence, so runs compare).
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut seen = Vec::new();
    for i in 0..samples(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        // Choosing when the next edit happens, not waiting for the operator.
        tokio::time::sleep(Duration::from_millis(state % 60_000)).await;
        seen.push(sample(&h, id, format!("Poll{i}"), Duration::from_secs(150)).await);
    }
    let (_, p95) = report("with polling (interval 1m)", seen);
    assert!(p95 < Duration::from_secs(90), "p95 {p95:?}");
}
