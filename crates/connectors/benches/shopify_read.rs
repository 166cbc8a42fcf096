//! Full read of a Shopify shop from the simulator, at an injected latency per call.
//!
//! `cargo bench -p audience-connectors --bench shopify_read`
//!
//! Knobs (environment): `BENCH_CUSTOMERS` (default 10000), `BENCH_LATENCY_MS` (default 50),
//! `BENCH_BUCKET` = `plus` (default: 1000 points/s, bucket 20000) or `standard` (100 points/s,
//! bucket 2000), the plan whose cost bucket the shop has. Prints customers/s and the calls made,
//! and fails unless the calls equal the pages needed (250 customers per page).

use std::time::{Duration, Instant};

use audience_connectors::shopify::{ShopifyConfig, ShopifySource};
use audience_core::{ReadScope, Source};
use audience_sandbox::{Sandbox, SandboxOptions, Vendor};
use futures::TryStreamExt;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let customers = env("BENCH_CUSTOMERS", 10_000) as usize;
    let latency = Duration::from_millis(env("BENCH_LATENCY_MS", 50));
    let plan = std::env::var("BENCH_BUCKET").unwrap_or_else(|_| "plus".into());
    let (maximum, restore) = match plan.as_str() {
        "standard" => (2_000.0, 100.0),
        _ => (20_000.0, 1_000.0),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let sandbox = Sandbox::new(SandboxOptions {
            customers,
            seed: 42,
        });
        sandbox.shopify.set_bucket(maximum, restore);
        sandbox.faults.set_latency(Vendor::Shopify, latency);
        let running = sandbox
            .serve("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("serve");
        let token = sandbox.shopify.access_token();
        let source = ShopifySource::new(ShopifyConfig::with_base_url(
            running.vendor_url(Vendor::Shopify),
            token,
        ))
        .expect("config");

        let started = Instant::now();
        let mut read = 0usize;
        let mut stream = source.read(ReadScope::Full);
        while let Some(page) = stream.try_next().await.expect("read") {
            read += page.contacts.len();
        }
        let elapsed = started.elapsed();
        let calls = sandbox.stats.total(Vendor::Shopify);
        let pages = customers.div_ceil(250).max(1) as u64;
        let throttled = sandbox.shopify.counters().throttled;
        println!(
            "shopify_read: {read} customers in {:.2} s = {:.0} customers/s; {calls} calls \
             (pages needed {pages}); latency {} ms; bucket {plan} ({maximum} max, {restore}/s); \
             THROTTLED answers {throttled}",
            elapsed.as_secs_f64(),
            read as f64 / elapsed.as_secs_f64(),
            latency.as_millis(),
        );
        assert_eq!(read, customers, "every customer read");
        assert_eq!(calls, pages, "calls must equal the pages needed");
    });
}
