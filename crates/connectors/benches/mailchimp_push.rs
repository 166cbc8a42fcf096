//! Initial push of 100,000 contacts into the Mailchimp simulator at 100 ms latency per call, then a
//! second sync with nothing changed, and the same push with the official Python client.
//!
//! `cargo bench -p audience-connectors --bench mailchimp_push`
//!
//! Knobs (environment): `BENCH_CONTACTS` (default 100000), `BENCH_LATENCY_MS` (default 100),
//! `BENCH_CEILING` (default 1: also push at 0 ms latency to show the simulator's own capacity),
//! `BENCH_PYTHON` = `auto` (default: run the Python comparison when
//! `bench/mailchimp_python/run.sh --check` says the client is installed), `install` (install it
//! into a venv under target/ first), `off`; `BENCH_PYTHON_CONTACTS` (default: `BENCH_CONTACTS`).
//!
//! The sync is the operator's: read the audience, plan with the core planner, apply. The run fails
//! unless the push takes exactly ceil(contacts / 500) write calls and the second sync none.
//! Throughput is compared with the bound of 10 connections × 500 members per call / latency.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use audience_connectors::mailchimp::{
    BATCH_SIZE, MAX_CONNECTIONS, MailchimpConfig, MailchimpTarget,
};
use audience_core::diff::{AudiencePlanner, PlanOptions, TargetIndex};
use audience_core::{ApplyControl, Consent, FieldMapping, Plan, SourceContact, Target};
use audience_sandbox::mailchimp::EXAMPLE_API_KEY;
use audience_sandbox::{RunningSandbox, Sandbox, SandboxOptions, Vendor};
use futures::TryStreamExt;

const LIST: &str = "bench-audience";

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

/// One sync as the operator runs it: read the audience into the index, plan, apply.
async fn sync(target: &MailchimpTarget, source: &[SourceContact]) -> (Plan, Duration, Duration) {
    let options = PlanOptions {
        mapping: FieldMapping::default(),
        ..PlanOptions::default()
    };
    let started = Instant::now();
    let mut index = TargetIndex::new(&options.mapping);
    let mut pages = target.members();
    while let Some(page) = pages.try_next().await.expect("read members") {
        for member in &page {
            index.insert(member);
        }
    }
    drop(pages);
    let read = started.elapsed();
    let mut planner = AudiencePlanner::new(index, options);
    for contact in source {
        planner.observe(contact);
    }
    let plan = planner.finish();
    (plan, read, started.elapsed())
}

fn writes(running: &RunningSandbox) -> u64 {
    running.sandbox.stats.writes(Vendor::Mailchimp)
}

fn main() {
    let count = env("BENCH_CONTACTS", 100_000) as usize;
    let latency = Duration::from_millis(env("BENCH_LATENCY_MS", 100));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // The simulator gets its own runtime: its handlers hold a blocking lock while they work, which
    // would otherwise stall the client's tasks on the same worker threads. It gets a worker per
    // connection too: with only two, both could sit blocked on that lock while finished answers
    // wait to be written, which keeps the 10 calls in lock-step waves (100 ms + 10 × the handler
    // time each) — a queue the real, massively parallel service does not have.
    let simulator = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(MAX_CONNECTIONS + 2)
        .enable_all()
        .build()
        .expect("simulator runtime");
    let running = simulator.block_on(async {
        let sandbox = Sandbox::new(SandboxOptions::default());
        sandbox.mailchimp.create_list(LIST, "Bench Audience");
        sandbox.faults.set_latency(Vendor::Mailchimp, latency);
        sandbox
            .serve("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("serve")
    });
    let base_url = format!("{}/3.0", running.vendor_url(Vendor::Mailchimp));
    let target = MailchimpTarget::new(
        MailchimpConfig::new(EXAMPLE_API_KEY, LIST).with_base_url(base_url.clone()),
    )
    .expect("config");
    let source = contacts(count, "rs");
    let expected_calls = count.div_ceil(BATCH_SIZE) as u64;
    let bound = (MAX_CONNECTIONS * BATCH_SIZE) as f64 / latency.as_secs_f64().max(1e-9);

    println!(
        "mailchimp_push: {count} contacts, {} ms latency per call, {MAX_CONNECTIONS} connections, {BATCH_SIZE} per batch",
        latency.as_millis()
    );

    // First sync: everything is new.
    let (first, apply_time) = runtime.block_on(async {
        let (plan, read, planned) = sync(&target, &source).await;
        assert_eq!(
            plan.creates.len(),
            count,
            "first sync creates every contact"
        );
        running.sandbox.stats.clear();
        let started = Instant::now();
        let report = target
            .apply(&plan, &ApplyControl::default())
            .await
            .expect("apply");
        let apply_time = started.elapsed();
        println!(
            "  first sync: read {:.2} s, plan {:.2} s, apply {:.2} s",
            read.as_secs_f64(),
            (planned - read).as_secs_f64(),
            apply_time.as_secs_f64()
        );
        (report, apply_time)
    });
    assert_eq!(first.created, count as u64, "{:?}", first.rejected.first());
    assert!(first.rejected.is_empty());
    assert_eq!(first.write_calls, expected_calls);
    assert_eq!(
        writes(&running),
        expected_calls,
        "write calls seen by the simulator"
    );
    let rate = count as f64 / apply_time.as_secs_f64();
    let max_seen = running
        .sandbox
        .mailchimp
        .max_concurrent_seen(EXAMPLE_API_KEY);
    println!(
        "  push: {} write calls (= ceil({count}/{BATCH_SIZE})), {:.2} s, {:.0} members/s = {:.1}% of the {:.0}/s bound; max {} connections at once",
        first.write_calls,
        apply_time.as_secs_f64(),
        rate,
        100.0 * rate / bound,
        bound,
        max_seen
    );
    assert!(max_seen <= MAX_CONNECTIONS);

    // Second sync: nothing changed, nothing written.
    runtime.block_on(async {
        running.sandbox.stats.clear();
        let (plan, read, planned) = sync(&target, &source).await;
        let reads = running.sandbox.stats.total(Vendor::Mailchimp);
        let report = target
            .apply(&plan, &ApplyControl::default())
            .await
            .expect("apply");
        println!(
            "  second sync: {} GET calls to read {count} members in {:.2} s, plan {:.2} s, {} write calls",
            reads,
            read.as_secs_f64(),
            (planned - read).as_secs_f64(),
            report.write_calls
        );
        assert!(plan.is_empty(), "nothing changed: {:?}", plan.counts);
        assert_eq!(report.write_calls, 0);
        assert_eq!(writes(&running), 0);
    });

    // The simulator's own capacity: the same push with no injected latency, where only the
    // simulator's work per call (it renders every member under one lock) and the client's remain.
    if env("BENCH_CEILING", 1) == 1 {
        let ceiling = runtime.block_on(async {
            running
                .sandbox
                .mailchimp
                .create_list("bench-ceiling", "Ceiling");
            running
                .sandbox
                .faults
                .set_latency(Vendor::Mailchimp, Duration::ZERO);
            let target = MailchimpTarget::new(
                MailchimpConfig::new(EXAMPLE_API_KEY, "bench-ceiling")
                    .with_base_url(base_url.clone()),
            )
            .expect("config");
            let mut planner = AudiencePlanner::new(
                TargetIndex::new(&FieldMapping::default()),
                PlanOptions::default(),
            );
            for contact in &contacts(count, "ceil") {
                planner.observe(contact);
            }
            let plan = planner.finish();
            let started = Instant::now();
            let report = target
                .apply(&plan, &ApplyControl::default())
                .await
                .expect("apply");
            let elapsed = started.elapsed();
            running
                .sandbox
                .faults
                .set_latency(Vendor::Mailchimp, latency);
            assert_eq!(report.created, count as u64);
            count as f64 / elapsed.as_secs_f64()
        });
        println!(
            "  simulator ceiling (same push at 0 ms latency): {:.0} members/s; the push above reached {:.1}% of min(bound, ceiling)",
            ceiling,
            100.0 * rate / bound.min(ceiling)
        );
    }

    python_comparison(&running, &base_url, rate);
}

/// The same push with the official Python client, sequential and with 10 threads.
fn python_comparison(running: &RunningSandbox, base_url: &str, rust_rate: f64) {
    let mode = std::env::var("BENCH_PYTHON").unwrap_or_else(|_| "auto".into());
    if mode == "off" {
        return;
    }
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bench/mailchimp_python/run.sh");
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
            "  python: mailchimp-marketing not installed; run `bench/mailchimp_python/run.sh --install` (or BENCH_PYTHON=install) to compare"
        );
        return;
    }
    let count = env("BENCH_PYTHON_CONTACTS", env("BENCH_CONTACTS", 100_000));
    for (threads, list) in [(1, "py-sequential"), (10, "py-threaded")] {
        running.sandbox.mailchimp.create_list(list, list);
        running.sandbox.stats.clear();
        let out = run(&[
            "--base-url",
            base_url,
            "--api-key",
            EXAMPLE_API_KEY,
            "--list-id",
            list,
            "--count",
            &count.to_string(),
            "--threads",
            &threads.to_string(),
            "--prefix",
            list,
        ]);
        let out = match out {
            Ok(out) if out.status.success() => out,
            Ok(out) => {
                println!(
                    "  python ({threads} thread(s)) failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                continue;
            }
            Err(e) => {
                println!("  python ({threads} thread(s)) could not run: {e}");
                continue;
            }
        };
        let line = String::from_utf8_lossy(&out.stdout);
        let result: serde_json::Value = match serde_json::from_str(line.trim()) {
            Ok(v) => v,
            Err(_) => {
                println!("  python ({threads} thread(s)): unreadable output {line:?}");
                continue;
            }
        };
        let rate = result["members_per_sec"].as_f64().unwrap_or(0.0);
        let members = running.sandbox.mailchimp.member_count(list);
        println!(
            "  python mailchimp-marketing, {threads} thread(s): {} members in {} calls, {:.2} s, {:.0} members/s; Rust is {:.1}x faster (simulator holds {members}, {} errors)",
            result["members"],
            result["calls"],
            result["seconds"].as_f64().unwrap_or(0.0),
            rate,
            if rate > 0.0 {
                rust_rate / rate
            } else {
                f64::NAN
            },
            result["errors"],
        );
    }
}
