//! Full read of 10,000 Lightspeed X-Series customers from the simulator, with a stated injected
//! latency per call and the rate limit relaxed, printing customers/s and the calls made. Exits
//! non-zero unless the calls equal the pages needed (full pages plus the final empty one).
//!
//! `cargo bench -p audience-connectors --bench lightspeed_x_read`

use std::time::{Duration, Instant};

use audience_connectors::lightspeed_x::LightspeedXSource;
use audience_core::{ReadScope, Source};
use audience_sandbox::{Sandbox, SandboxOptions, Vendor};
use futures::StreamExt;

const CUSTOMERS: usize = 10_000;
const TOKEN: &str = "lsx-bench-token";

struct Run {
    latency: Duration,
    page_size: u32,
}

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
    let base = format!("{}/api/2.0", running.vendor_url(Vendor::LightspeedX));
    sandbox.lightspeed_x.set_token(TOKEN);
    // Relaxed: the benchmark measures paging and parsing, not waiting for a window.
    sandbox
        .lightspeed_x
        .set_rate_limit(u32::MAX, Duration::from_secs(300));

    println!("lightspeed-x full read of {CUSTOMERS} customers");
    let mut failed = false;
    for run in [
        Run {
            latency: Duration::from_millis(50),
            page_size: 1000,
        },
        // If the real page_size cap is lower than 1000 [U], this is the cost.
        Run {
            latency: Duration::from_millis(50),
            page_size: 200,
        },
        Run {
            latency: Duration::ZERO,
            page_size: 1000,
        },
    ] {
        sandbox.stats.clear();
        sandbox.faults.set_latency(Vendor::LightspeedX, run.latency);
        let source = LightspeedXSource::new("bench", TOKEN)
            .expect("config")
            .with_base_url(&base)
            .expect("base URL")
            .with_page_size(run.page_size);
        let started = Instant::now();
        let mut stream = source.read(ReadScope::Full);
        let mut customers = 0usize;
        while let Some(page) = stream.next().await {
            customers += page.expect("page read").contacts.len();
        }
        let elapsed = started.elapsed();
        let calls = sandbox
            .stats
            .count(Vendor::LightspeedX, Some("GET"), "/customers");
        let needed = CUSTOMERS.div_ceil(run.page_size as usize) as u64 + 1;
        println!(
            "latency {:>3} ms  page_size {:>4}  customers {customers}  calls {calls} (pages needed {needed})  {:.2} s  {:.0} customers/s",
            run.latency.as_millis(),
            run.page_size,
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
