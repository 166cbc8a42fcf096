//! Full read of a RetailCRM account from the simulator, at an injected latency per call.
//!
//! `cargo bench -p audience-connectors --bench retailcrm_read`
//!
//! Knobs (environment): `BENCH_CUSTOMERS` (default 10000), `BENCH_LATENCY_MS` (default 50),
//! `BENCH_RATE` (requests/s per key on both sides, default 10 as RetailCRM's documented-by-hearsay
//! limit; 0 lifts the limit). Prints customers/s and the calls made, and fails unless the customer
//! calls equal the pages needed (100 per page); the history calls that fix the checkpoint (1, or 2
//! past 100 history entries) are printed apart.

use std::time::{Duration, Instant};

use audience_connectors::retailcrm::{RetailCrmConfig, RetailCrmSource};
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
    let rate = env("BENCH_RATE", 10) as u32;
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
        sandbox.retailcrm.set_rate_limit((rate > 0).then_some(rate));
        sandbox.faults.set_latency(Vendor::Retailcrm, latency);
        let running = sandbox
            .serve("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("serve");
        let mut config = RetailCrmConfig::with_base_url(
            running.vendor_url(Vendor::Retailcrm),
            sandbox.retailcrm.api_key(),
        );
        config.requests_per_second = if rate > 0 { rate } else { 100_000 };
        let source = RetailCrmSource::new(config).expect("config");

        let started = Instant::now();
        let mut read = 0usize;
        let mut stream = source.read(ReadScope::Full);
        while let Some(page) = stream.try_next().await.expect("read") {
            read += page.contacts.len();
        }
        let elapsed = started.elapsed();
        let count = |route: &str| -> u64 {
            sandbox
                .stats
                .snapshot()
                .into_iter()
                .filter(|(k, _)| k.vendor == Vendor::Retailcrm && k.route == route)
                .map(|(_, n)| n)
                .sum()
        };
        let customer_calls = count("/api/v5/customers");
        let history_calls = count("/api/v5/customers/history");
        let pages = customers.div_ceil(100).max(1) as u64;
        let refused = sandbox.retailcrm.counters().rate_limited;
        println!(
            "retailcrm_read: {read} customers in {:.2} s = {:.0} customers/s; {customer_calls} \
             customer calls (pages needed {pages}) + {history_calls} history calls; latency {} ms; \
             limit {} requests/s; 503 answers {refused}",
            elapsed.as_secs_f64(),
            read as f64 / elapsed.as_secs_f64(),
            latency.as_millis(),
            if rate > 0 {
                rate.to_string()
            } else {
                "none".into()
            },
        );
        assert_eq!(read, customers, "every customer read");
        assert_eq!(customer_calls, pages, "calls must equal the pages needed");
        assert_eq!(refused, 0, "the client kept under the limit");
    });
}
