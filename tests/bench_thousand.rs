//! Many syncs on one operator process (issue 13, "Scale on one replica"): N AudienceSyncs, each
//! its own merchant in the sandbox (its own shop, CRM and Mailchimp account, with their own data
//! and rate limits), on the real control plane. Measured: time from the operator's start until
//! every sync has completed one run, the process's resident memory (the operator runs in-process,
//! so this is the test process's RSS: its growth from just before the operator starts, with every
//! merchant's data already resident), vendor calls per merchant, 429s (the per-key budgets must
//! keep them at 0), and status writes per sync (distinct resource versions seen by a watch).
//!
//! ```text
//! make bench-thousand         # BENCH_SYNCS=N (default 1000), BENCH_CONCURRENCY=K (default: the operator's),
//!                             # BENCH_LATENCY_MS=L per vendor call (default 100)
//! ```
//!
//! A 50-sync slice runs in `make test` and asserts the same bounds.

mod operator_support;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use audience_operator::controller::Settings;
use audience_operator::crd::AudienceSync;
use audience_operator::operator::Operator;
use audience_operator::sync::connect::EndpointPolicy;
use audience_operator::sync::{ConnectOptions, DefaultConnectors};
use audience_sandbox::Vendor;
use audience_sandbox::merchants::{self, DEFAULT_AUDIENCE};
use futures::{StreamExt, TryStreamExt};
use kube::ResourceExt;
use kube::runtime::watcher;
use operator_support::*;
use serde_json::json;

/// Status writes one sync's first run may make: Progressing, the result, and a few progress
/// patches (at most one per `progress_interval`). [U] The bound, not a vendor fact.
const WRITES_PER_RUN: usize = 8;

/// CPU time this process has used (user + system), in seconds.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command's closing parenthesis; utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// Merchant `i`'s id: its shop domain.
fn merchant(i: usize) -> String {
    format!("shop-{i:04}.myshopify.com")
}

/// Whether sync `i` reads RetailCRM rather than Shopify (one in four).
fn from_retailcrm(i: usize) -> bool {
    i % 4 == 3
}

/// Sync `i`: merchant `i`'s source into merchant `i`'s Mailchimp audience, every connector
/// pointed at that merchant's accounts in the sandbox.
fn manifest(i: usize, base: &str) -> serde_json::Value {
    let id = merchant(i);
    let at = |vendor: Vendor| format!("{base}/merchants/{id}/{}", vendor.name());
    let source = if from_retailcrm(i) {
        json!({"retailcrm": {"account": format!("crm-{i:04}"), "endpoint": at(Vendor::Retailcrm),
            "credentialsSecretRef": {"name": format!("m{i}-retailcrm")}}})
    } else {
        json!({"shopify": {"shopDomain": id, "endpoint": at(Vendor::Shopify),
            "credentialsSecretRef": {"name": format!("m{i}-shopify")}}})
    };
    let mut sync = audience_sync(&format!("sync-{i:04}"), json!({}));
    sync["spec"]["source"] = source;
    sync["spec"]["target"] = json!({"mailchimp": {"audienceId": DEFAULT_AUDIENCE,
        "endpoint": at(Vendor::Mailchimp),
        "credentialsSecretRef": {"name": format!("m{i}-mailchimp")}}});
    sync
}

/// What one scale run measured.
struct Figures {
    took: Duration,
    rss_start_mib: u64,
    rss_growth_mib: u64,
    max_writes: usize,
    mean_writes: f64,
}

/// Creates `n` merchants and their syncs, starts one operator, and waits until every sync has
/// completed one run (`Synced`); asserts the budgets held and the status writes stayed bounded.
async fn scale(
    n: usize,
    concurrency: Option<u16>,
    latency: Duration,
    deadline: Duration,
) -> Figures {
    let mut h = harness("bench-thousand", false).await;
    let base = h.sandbox.url();
    // Every merchant exists (and its data is resident) before the clock starts.
    let all = h.sandbox.sandbox.merchants.clone();
    for i in 0..n {
        let sandbox = all.get(&merchant(i));
        for vendor in Vendor::ALL {
            sandbox.faults.set_latency(vendor, latency);
        }
    }
    let secrets: Vec<(String, &str, String)> = (0..n)
        .flat_map(|i| {
            let id = merchant(i);
            let source = if from_retailcrm(i) {
                (
                    format!("m{i}-retailcrm"),
                    "apiKey",
                    merchants::retailcrm_key(&id),
                )
            } else {
                (
                    format!("m{i}-shopify"),
                    "accessToken",
                    merchants::shopify_token(&id),
                )
            };
            [
                source,
                (
                    format!("m{i}-mailchimp"),
                    "apiKey",
                    merchants::mailchimp_key(&id),
                ),
            ]
        })
        .collect();
    futures::stream::iter(secrets)
        .for_each_concurrent(16, |(name, key, value)| {
            let h = &h;
            async move { h.secret(&name, &[(key, &value)]).await }
        })
        .await;
    futures::stream::iter(0..n)
        .for_each_concurrent(16, |i| {
            let (h, base) = (&h, &base);
            async move {
                h.create::<AudienceSync>(manifest(i, base)).await;
            }
        })
        .await;

    // Every status write is a new resource version of the object; a watch sees each one.
    let versions: Arc<std::sync::Mutex<HashMap<String, HashSet<String>>>> = Default::default();
    let synced: Arc<std::sync::Mutex<HashSet<String>>> = Default::default();
    let (listed_tx, listed_rx) = tokio::sync::oneshot::channel::<()>();
    let watch = {
        let (versions, synced) = (versions.clone(), synced.clone());
        let api = h.api::<AudienceSync>();
        tokio::spawn(async move {
            let mut listed = Some(listed_tx);
            let mut stream = watcher(api, watcher::Config::default()).boxed();
            while let Ok(Some(event)) = stream.try_next().await {
                let obj = match event {
                    watcher::Event::InitDone => {
                        if let Some(tx) = listed.take() {
                            let _ = tx.send(());
                        }
                        continue;
                    }
                    watcher::Event::Apply(o) | watcher::Event::InitApply(o) => o,
                    _ => continue,
                };
                let name = obj.name_any();
                if listed.is_none() {
                    versions
                        .lock()
                        .unwrap()
                        .entry(name.clone())
                        .or_default()
                        .insert(obj.resource_version().unwrap_or_default());
                }
                if reason(&obj).as_deref() == Some("Synced") {
                    synced.lock().unwrap().insert(name);
                }
            }
        })
    };
    listed_rx.await.expect("the watch lists the syncs");

    let cpu_start = cpu_secs();
    let rss = RssSampler::start(Duration::from_millis(20));
    let rss_start = rss.start_kib;

    let mut options = h.options();
    // No `--sandbox`: each sync's own endpoints name its merchant, as a real spec names its shop.
    options.settings = Settings {
        sandbox: None,
        concurrency: concurrency.unwrap_or(Settings::default().concurrency),
        ..options.settings
    };
    options.connectors = Arc::new(DefaultConnectors::new(ConnectOptions {
        endpoints: EndpointPolicy::Listed(vec!["127.0.0.1".into()]),
        ..ConnectOptions::default()
    }));
    let started = Instant::now();
    h.operator = Some(
        Operator::start(h.client.clone(), options)
            .await
            .expect("starting the operator"),
    );
    let mut last_report = Instant::now();
    loop {
        let count = synced.lock().unwrap().len();
        if count == n {
            break;
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            eprintln!(
                "  {count}/{n} synced after {:.0} s",
                started.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
        assert!(
            started.elapsed() < deadline,
            "only {count} of {n} syncs completed a run in {deadline:?}"
        );
        // Measurement resolution: the loop only reads what the watch recorded.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = started.elapsed();
    let cpu = cpu_secs() - cpu_start;
    let rss_growth = rss.stop().await;
    h.stop_operator().await;
    watch.abort();

    // Vendor budgets held: no merchant's account ever answered 429.
    for vendor in [Vendor::Shopify, Vendor::Retailcrm, Vendor::Mailchimp] {
        assert_eq!(all.count_status(vendor, 429), 0, "{vendor:?} answered 429");
    }
    // Every merchant's audience has its subscribed customers.
    let with_members = all
        .all()
        .iter()
        .filter(|(_, s)| !s.mailchimp.members(DEFAULT_AUDIENCE).is_empty())
        .count();
    assert_eq!(with_members, n, "every audience got members");

    let per_merchant = |vendor: Vendor| -> (f64, u64) {
        let calls: Vec<u64> = all
            .all()
            .iter()
            .map(|(_, s)| s.stats.total(vendor))
            .collect();
        let used: Vec<u64> = calls.iter().copied().filter(|&c| c > 0).collect();
        let mean = used.iter().sum::<u64>() as f64 / used.len().max(1) as f64;
        (mean, calls.into_iter().max().unwrap_or(0))
    };
    let peak_in_flight = all
        .all()
        .iter()
        .map(|(_, s)| s.stats.peak_in_flight(Vendor::Mailchimp))
        .max()
        .unwrap_or(0);
    let writes: Vec<usize> = versions
        .lock()
        .unwrap()
        .values()
        .map(HashSet::len)
        .collect();
    let max_writes = writes.iter().copied().max().unwrap_or(0);
    let mean_writes = writes.iter().sum::<usize>() as f64 / n as f64;
    let figures = Figures {
        took,
        rss_start_mib: rss_start / 1024,
        rss_growth_mib: rss_growth / 1024,
        max_writes,
        mean_writes,
    };
    let (shopify_mean, shopify_max) = per_merchant(Vendor::Shopify);
    let (crm_mean, crm_max) = per_merchant(Vendor::Retailcrm);
    let (mc_mean, mc_max) = per_merchant(Vendor::Mailchimp);
    eprintln!(
        "BENCH {n} syncs on one operator (concurrency {}, {} ms per vendor call): all completed one run in {:.1} s ({cpu:.1} s CPU of this process, operator and simulators); RSS {} MiB before the operator started, +{} MiB peak growth; \
         calls per merchant: Shopify {shopify_mean:.1} (max {shopify_max}), RetailCRM {crm_mean:.1} (max {crm_max}), Mailchimp {mc_mean:.1} (max {mc_max}); \
         Mailchimp peak in flight per account {peak_in_flight}; 429s 0; status writes per sync {:.1} mean, {} max",
        concurrency.unwrap_or(Settings::default().concurrency),
        latency.as_millis(),
        figures.took.as_secs_f64(),
        figures.rss_start_mib,
        figures.rss_growth_mib,
        figures.mean_writes,
        figures.max_writes,
    );
    assert!(
        peak_in_flight <= 10,
        "Mailchimp's 10 connections per account held"
    );
    assert!(
        figures.max_writes <= WRITES_PER_RUN,
        "status writes bounded: {} for one sync",
        figures.max_writes
    );
    figures
}

fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// The bounded slice of `make test`: 50 merchants, one operator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_merchants_each_complete_a_run_within_their_budgets() {
    scale(50, None, Duration::ZERO, WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: make bench-thousand"]
async fn a_thousand_merchants_on_one_operator() {
    let n = env("BENCH_SYNCS").unwrap_or(1000);
    // A vendor call over the internet takes tens to hundreds of milliseconds; with none, the run
    // measures only this machine's CPU. [U] 100 ms.
    let latency = Duration::from_millis(env("BENCH_LATENCY_MS").unwrap_or(100));
    scale(
        n,
        env("BENCH_CONCURRENCY"),
        latency,
        Duration::from_secs(900),
    )
    .await;
}
