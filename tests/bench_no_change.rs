//! Cost of a run when nothing changed (issue 13), for a 100,000-customer shop: a full reconcile
//! against an incremental run, on the real control plane. Calls per vendor (counted by the
//! simulators), wall time from asking to `Synced`, and how much the process's resident memory grew
//! during the run (sampled every 5 ms; the simulators' own data is already resident before it).
//! Not part of `make test`:
//!
//! ```text
//! make bench-no-change        # BENCH_CUSTOMERS=N (default 100000)
//! ```

mod operator_support;

use std::time::{Duration, Instant};

use audience_operator::crd::AudienceSync;
use audience_sandbox::{Vendor, seed};
use operator_support::*;
use serde_json::json;

fn customers() -> usize {
    std::env::var("BENCH_CUSTOMERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

fn calls(h: &Harness, vendor: Vendor) -> u64 {
    h.sandbox
        .sandbox
        .stats
        .snapshot()
        .into_iter()
        .filter(|(k, _)| k.vendor == vendor)
        .map(|(_, n)| n)
        .sum()
}

/// Runs the sync once (sync-now `value`) and reports its cost.
async fn measured(h: &Harness, what: &str, value: &str) -> AudienceSync {
    h.sandbox.sandbox.stats.clear();
    let rss = RssSampler::start(Duration::from_millis(5));
    let started = Instant::now();
    // A full reconcile of 100,000 members takes longer than the harness's one-minute wait.
    h.annotate::<AudienceSync>("shop", "sync.audience-operator.io/sync-now", value)
        .await;
    let api = h.api::<AudienceSync>();
    let synced = loop {
        let o = api.get("shop").await.unwrap();
        if o.status
            .as_ref()
            .is_some_and(|s| s.handled_sync_now.as_deref() == Some(value))
            && reason(&o).as_deref() == Some("Synced")
        {
            break o;
        }
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "{what}: not done"
        );
        // Measurement resolution: the loop only reads the object.
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let took = started.elapsed();
    let rss_growth = rss.stop().await;
    let mode = synced
        .status
        .as_ref()
        .and_then(|s| s.last_run.as_ref())
        .and_then(|r| r.mode.clone())
        .unwrap_or_default();
    eprintln!(
        "BENCH no-change {what} ({mode}): Shopify {} calls, Mailchimp {} calls ({} writes), {:.2} s, RSS +{} MiB",
        calls(h, Vendor::Shopify),
        calls(h, Vendor::Mailchimp),
        vendor_writes(h, Vendor::Mailchimp),
        took.as_secs_f64(),
        rss_growth / 1024
    );
    synced
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: make bench-no-change"]
async fn a_run_with_nothing_changed_full_against_incremental() {
    let h = harness("bench-no-change", true).await;
    h.default_secrets().await;
    h.shopify().set_bucket(1e9, 1e9);
    let n = customers();
    h.shopify().seed_demo(&seed::people(n, 42));
    h.create::<AudienceSync>(audience_sync("shop", json!({"mode": "mirror"})))
        .await;
    let api = h.api::<AudienceSync>();
    let started = Instant::now();
    loop {
        let o = api.get("shop").await.unwrap();
        if reason(&o).as_deref() == Some("Synced") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "first push not done"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "BENCH first push of {n} customers: {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let full = measured(&h, "full reconcile", "full-1").await;
    assert_eq!(vendor_writes(&h, Vendor::Mailchimp), 0, "nothing changed");
    let full_reads = calls(&h, Vendor::Shopify) + calls(&h, Vendor::Mailchimp);
    let incremental = measured(&h, "incremental", "2").await;
    let incremental_reads = calls(&h, Vendor::Shopify) + calls(&h, Vendor::Mailchimp);
    assert_eq!(vendor_writes(&h, Vendor::Mailchimp), 0);
    let mode = |s: &AudienceSync| {
        s.status
            .as_ref()
            .unwrap()
            .last_run
            .as_ref()
            .unwrap()
            .mode
            .clone()
    };
    assert_eq!(mode(&full).as_deref(), Some("full"));
    assert_eq!(mode(&incremental).as_deref(), Some("incremental"));
    assert!(incremental_reads <= 6, "{incremental_reads} reads");
    assert!(
        full_reads > incremental_reads * 10,
        "{full_reads} against {incremental_reads}"
    );
}
