//! Full read of 10,000 Lightspeed R-Series customers from the simulator, with a stated injected
//! latency per call and the leaky bucket relaxed, printing customers/s and the calls made. Exits
//! non-zero unless the calls equal the pages needed (100 customers a page; `next` is empty on the
//! last one, so no extra call).
//!
//! `cargo bench -p audience-connectors --bench lightspeed_r_read`

use std::time::{Duration, Instant};

use audience_connectors::lightspeed_r::{LightspeedRSource, PAGE_LIMIT};
use audience_core::{ReadScope, Source};
use audience_sandbox::lightspeed_r::DEMO_ACCOUNT_ID;
use audience_sandbox::{Sandbox, SandboxOptions, Vendor};
use futures::StreamExt;

const CUSTOMERS: usize = 10_000;
const TOKEN: &str = "lsr-bench-token";

#[tokio::main]
async fn main() {
    let sandbox = Sandbox::new(SandboxOptions {
        customers: CUSTOMERS,
        seed: 42,
    });
    let running = sandbox
        .serve("127.0.0.1:0".parse().expect("address"))
        .await
        .expect("sandbox serves");
    let base = format!(
        "{}/API/V3/Account/{DEMO_ACCOUNT_ID}",
        running.vendor_url(Vendor::LightspeedR)
    );
    sandbox.lightspeed_r.set_token(TOKEN);

    println!("lightspeed-r full read of {CUSTOMERS} customers");
    let mut failed = false;
    for latency in [Duration::from_millis(50), Duration::ZERO] {
        // Relaxed: a bucket the whole read fits in, so the benchmark measures paging and parsing.
        sandbox.lightspeed_r.set_bucket(1_000_000.0, 1_000.0);
        sandbox.stats.clear();
        sandbox.faults.set_latency(Vendor::LightspeedR, latency);
        let source = LightspeedRSource::new(DEMO_ACCOUNT_ID, TOKEN)
            .expect("config")
            .with_base_url(&base)
            .expect("base URL");
        let started = Instant::now();
        let mut stream = source.read(ReadScope::Full);
        let mut customers = 0usize;
        while let Some(page) = stream.next().await {
            customers += page.expect("page read").contacts.len();
        }
        let elapsed = started.elapsed();
        let calls = sandbox
            .stats
            .count(Vendor::LightspeedR, Some("GET"), "/Customer.json");
        let needed = CUSTOMERS.div_ceil(PAGE_LIMIT as usize) as u64;
        println!(
            "latency {:>3} ms  limit {PAGE_LIMIT}  customers {customers}  calls {calls} (pages needed {needed})  {:.2} s  {:.0} customers/s",
            latency.as_millis(),
            elapsed.as_secs_f64(),
            customers as f64 / elapsed.as_secs_f64()
        );
        if customers != CUSTOMERS || calls != needed {
            eprintln!("FAILED: expected {CUSTOMERS} customers in {needed} calls");
            failed = true;
        }
    }
    if failed {
        std::process::exit(1);
    }
}
