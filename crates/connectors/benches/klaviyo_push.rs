//! Initial push of 100,000 profiles into an empty list of the Klaviyo simulator, at 100 ms latency
//! per call and with the simulator's real (unscaled) per-endpoint rate limits, then the same
//! profiles pushed by the official Python SDK (`klaviyo-api`) in a plain script, side by side.
//!
//! `cargo bench -p audience-connectors --bench klaviyo_push`
//!
//! Knobs (environment): `BENCH_PROFILES` (default 100000), `BENCH_LATENCY_MS` (default 100),
//! `BENCH_PYTHON` = `auto` (default: run the Python comparison when
//! `bench/klaviyo_python/run.sh --check` says the SDK is installed), `install` (install it into a
//! venv under target/ first), `off`; `BENCH_PYTHON_PROFILES` (default: `BENCH_PROFILES`).
//!
//! The sync is the operator's: read the list, plan with the core planner, apply. The run fails
//! unless the push makes exactly the minimum calls the connector's docs state (write calls:
//! ceil(N/10,000) import jobs + ceil(N/1,000) subscribe jobs; reads: ceil(N/100) consent
//! look-ups and three polls a job), never draws a 429, and leaves every profile in the list,
//! subscribed. Its time is compared with the bound the spec's `x-klaviyo-ratelimit` values allow
//! for those calls (see [`bound`]).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use audience_connectors::klaviyo::{
    KlaviyoConfig, KlaviyoTarget, LOOKUP_BATCH, ListRef, MAX_IMPORT_PROFILES, SUBSCRIBE_BATCH,
    default_mapping,
};
use audience_core::diff::{AudiencePlanner, PlanOptions, TargetIndex};
use audience_core::{ApplyControl, Consent, SourceContact, Target};
use audience_sandbox::klaviyo::{Consent as KlaviyoConsent, OptIn};
use audience_sandbox::{RunningSandbox, Sandbox, SandboxOptions, Vendor};
use futures::TryStreamExt;

const RUST_KEY: &str = "pk_benchrust0000000001";
const PYTHON_KEY: &str = "pk_benchpython00000001";

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn contacts(count: usize, prefix: &str) -> Vec<SourceContact> {
    let updated_at = chrono::DateTime::from_timestamp(1_700_000_000, 0).expect("timestamp");
    (0..count)
        .map(|i| SourceContact {
            source_id: format!("c{i}"),
            email: format!("{prefix}{i}@customers.shop-bench.io"),
            first_name: format!("First{i}"),
            last_name: format!("Last{i}"),
            consent: Consent::Subscribed,
            updated_at,
            ..SourceContact::default()
        })
        .collect()
}

/// The earliest second at which the last of `calls` calls to one operation can be sent, starting
/// at 0, when no one-second span may hold more than `burst` of them and no one-minute span more
/// than `steady` (the spec's burst and steady limits; a client that does not know where the
/// vendor's fixed windows start must keep to both in every span).
fn last_send(calls: u64, burst: u64, steady: u64) -> f64 {
    let mut sent: Vec<f64> = Vec::with_capacity(calls as usize);
    for k in 0..calls as usize {
        let mut t: f64 = 0.0;
        if k >= burst as usize {
            t = t.max(sent[k - burst as usize] + 1.0);
        }
        if k >= steady as usize {
            t = t.max(sent[k - steady as usize] + 60.0);
        }
        sent.push(t);
    }
    sent.last().copied().unwrap_or(0.0)
}

/// The bound the rate limits allow for a push of `profiles` new subscribed profiles with these
/// calls, at `latency` a call, with the spec's limits: look-ups `GET /api/profiles` (75/s,
/// 750/m), import jobs `POST /api/profile-bulk-import-jobs` (10/s, 150/m) each polled three
/// times `GET /api/profile-bulk-import-jobs/{job_id}` (10/s, 150/m), subscribe jobs `POST
/// /api/profile-subscription-bulk-create-jobs` (75/s, 750/m). Every operation has its own
/// windows, so they may overlap; only a subscribe job has to wait for the look-ups that decide
/// it. The bound is the latest of: the last look-up's answer plus one subscribe call; the last
/// import job's answer plus its three polls; the subscribe jobs alone.
fn bound(lookups: u64, imports: u64, subscribes: u64, latency: f64) -> f64 {
    let lookups_done = last_send(lookups, 75, 750) + latency;
    let imports_done = last_send(imports, 10, 150) + latency + 3.0 * latency;
    let subscribes_alone = last_send(subscribes, 75, 750) + latency;
    (lookups_done + latency)
        .max(imports_done)
        .max(subscribes_alone)
}

fn calls(running: &RunningSandbox, method: &str, route: &str) -> u64 {
    running
        .sandbox
        .stats
        .snapshot()
        .into_iter()
        .filter(|(k, _)| k.vendor == Vendor::Klaviyo && k.method == method && k.route == route)
        .map(|(_, n)| n)
        .sum()
}

fn with_status(running: &RunningSandbox, status: u16) -> u64 {
    running
        .sandbox
        .stats
        .snapshot()
        .into_iter()
        .filter(|(k, _)| k.vendor == Vendor::Klaviyo && k.status == status)
        .map(|(_, n)| n)
        .sum()
}

/// Every member of the list is one of the profiles pushed, subscribed.
fn check_list(running: &RunningSandbox, list_id: &str, prefix: &str, count: usize) -> usize {
    let sim = &running.sandbox.klaviyo;
    let members = sim.list_members(list_id);
    assert_eq!(members.len(), count, "every profile in the list");
    let mut subscribed = 0;
    for email in &members {
        assert!(email.starts_with(prefix), "{email}");
        let profile = sim.profile_by_email(email).expect("profile");
        if profile.email_marketing.consent == KlaviyoConsent::Subscribed {
            subscribed += 1;
        }
    }
    subscribed
}

fn main() {
    let count = env("BENCH_PROFILES", 100_000) as usize;
    let latency = Duration::from_millis(env("BENCH_LATENCY_MS", 100));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // The simulator gets its own runtime with a worker per connection, as in mailchimp_push: its
    // handlers hold a blocking lock, which would otherwise stall the client's tasks.
    let simulator = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(audience_connectors::klaviyo::MAX_CONNECTIONS + 2)
        .enable_all()
        .build()
        .expect("simulator runtime");
    let (running, list_id, python_list) = simulator.block_on(async {
        let sandbox = Sandbox::new(SandboxOptions::default());
        // The real windows: scale 1.0 (Klaviyo's 1 s and 60 s), limits on.
        sandbox.klaviyo.set_rate_limit_scale(1.0);
        sandbox.klaviyo.set_rate_limits_enabled(true);
        let list_id = sandbox
            .klaviyo
            .create_list("Bench Customers", OptIn::Single);
        let python_list = sandbox.klaviyo.create_list("Bench Python", OptIn::Single);
        sandbox.faults.set_latency(Vendor::Klaviyo, latency);
        let running = sandbox
            .serve("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("serve");
        (running, list_id, python_list)
    });
    let base_url = running.vendor_url(Vendor::Klaviyo);
    let target = KlaviyoTarget::new(
        KlaviyoConfig::new(RUST_KEY, ListRef::Id(list_id.clone())).with_base_url(base_url.clone()),
    )
    .expect("config");
    let source = contacts(count, "rs");
    let imports = count.div_ceil(MAX_IMPORT_PROFILES) as u64;
    let subscribes = count.div_ceil(SUBSCRIBE_BATCH) as u64;
    let lookups = count.div_ceil(LOOKUP_BATCH) as u64;
    let lat = latency.as_secs_f64();
    let bound = bound(lookups, imports, subscribes, lat);

    println!(
        "klaviyo_push: {count} profiles, {} ms latency per call, the spec's rate limits unscaled",
        latency.as_millis()
    );

    let (report, read, apply_time) = runtime.block_on(async {
        let options = PlanOptions {
            mapping: default_mapping(),
            ..PlanOptions::default()
        };
        let started = Instant::now();
        let mut index = TargetIndex::new(&options.mapping);
        let mut pages = target.members();
        while let Some(page) = pages.try_next().await.expect("read the list") {
            for member in &page {
                index.insert(member);
            }
        }
        drop(pages);
        let read = started.elapsed();
        let mut planner = AudiencePlanner::new(index, options);
        for contact in &source {
            planner.observe(contact);
        }
        let plan = planner.finish();
        assert_eq!(plan.creates.len(), count, "every profile is new");
        running.sandbox.stats.clear();
        let started = Instant::now();
        let report = target
            .apply(&plan, &ApplyControl::default())
            .await
            .expect("apply");
        (report, read, started.elapsed())
    });
    assert!(report.rejected.is_empty(), "{:?}", report.rejected.first());
    assert_eq!(report.created, count as u64);
    let minimum_writes = imports + subscribes;
    let writes = running.sandbox.stats.writes(Vendor::Klaviyo);
    assert_eq!(report.write_calls, minimum_writes, "the connector's count");
    assert_eq!(writes, minimum_writes, "write calls seen by the simulator");
    assert_eq!(
        calls(&running, "POST", "/api/profile-bulk-import-jobs"),
        imports
    );
    assert_eq!(
        calls(
            &running,
            "POST",
            "/api/profile-subscription-bulk-create-jobs"
        ),
        subscribes
    );
    assert_eq!(calls(&running, "GET", "/api/profiles"), lookups);
    let polls = calls(&running, "GET", "/api/profile-bulk-import-jobs/{job_id}");
    assert_eq!(polls, 3 * imports, "three polls a job");
    let throttled = with_status(&running, 429);
    let total = running.sandbox.stats.total(Vendor::Klaviyo);
    let subscribed = check_list(&running, &list_id, "rs", count);
    assert_eq!(subscribed, count, "every profile subscribed");
    let seconds = apply_time.as_secs_f64();
    println!(
        "  read of the empty list {:.2} s; push: {writes} write calls (minimum {minimum_writes} = {imports} import jobs + {subscribes} subscribe jobs: ratio {:.2}), \
         {lookups} look-ups, {polls} polls, {total} calls in all, {throttled} answered 429",
        read.as_secs_f64(),
        writes as f64 / minimum_writes as f64,
    );
    println!(
        "  push {seconds:.2} s = {:.0} profiles/s; the rate limits allow {bound:.2} s at best: {:.2} of the bound; {count} in the list, {subscribed} subscribed",
        count as f64 / seconds,
        bound / seconds,
    );
    assert_eq!(throttled, 0, "pacing keeps under every limit");

    python_comparison(&running, &base_url, &python_list, seconds);
}

/// The same push with the official Python SDK.
fn python_comparison(running: &RunningSandbox, base_url: &str, list_id: &str, rust_seconds: f64) {
    let mode = std::env::var("BENCH_PYTHON").unwrap_or_else(|_| "auto".into());
    if mode == "off" {
        return;
    }
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bench/klaviyo_python/run.sh");
    let run = |args: &[&str]| Command::new("bash").arg(&script).args(args).output();
    if mode == "install" {
        match run(&["--install"]) {
            Ok(out) if out.status.success() => {}
            other => {
                println!("  python: install failed ({other:?}); skipped");
                return;
            }
        }
    }
    if !run(&["--check"]).is_ok_and(|out| out.status.success()) {
        println!(
            "  python: klaviyo-api not installed; run `bench/klaviyo_python/run.sh --install` (or BENCH_PYTHON=install) to compare"
        );
        return;
    }
    let count = env("BENCH_PYTHON_PROFILES", env("BENCH_PROFILES", 100_000));
    running.sandbox.stats.clear();
    let out = run(&[
        "--base-url",
        base_url,
        "--api-key",
        PYTHON_KEY,
        "--list-id",
        list_id,
        "--count",
        &count.to_string(),
        "--prefix",
        "py",
    ]);
    let out = match out {
        Ok(out) if out.status.success() => out,
        Ok(out) => {
            println!(
                "  python failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return;
        }
        Err(e) => {
            println!("  python could not run: {e}");
            return;
        }
    };
    let line = String::from_utf8_lossy(&out.stdout);
    let result: serde_json::Value = match serde_json::from_str(line.trim()) {
        Ok(v) => v,
        Err(_) => {
            println!("  python: unreadable output {line:?}");
            return;
        }
    };
    let seconds = result["seconds"].as_f64().unwrap_or(0.0);
    let writes = running.sandbox.stats.writes(Vendor::Klaviyo);
    let throttled = with_status(running, 429);
    let members = running.sandbox.klaviyo.list_members(list_id).len();
    let subscribed = if members as u64 == count {
        check_list(running, list_id, "py", members)
    } else {
        0
    };
    println!(
        "  python {}: {} profiles, {} import jobs + {} subscribe jobs ({writes} write calls seen), {} polls, {:.2} s = {:.0} profiles/s, {throttled} answered 429, {} errors; \
         the list holds {members}, {subscribed} subscribed; the connector took {:.2}x its time (it also made the consent look-ups the script skips)",
        result["client"].as_str().unwrap_or("klaviyo-api"),
        result["profiles"],
        result["import_jobs"],
        result["subscribe_jobs"],
        result["polls"],
        seconds,
        result["profiles_per_sec"].as_f64().unwrap_or(0.0),
        result["errors"],
        if seconds > 0.0 {
            rust_seconds / seconds
        } else {
            f64::NAN
        },
    );
}
