//! Order history into Klaviyo metrics: 100,000 orders (1 to 4 lines, ≈250,000 Ordered Product
//! events, 350,000 events in all) read page by page, turned into events by the core and sent as
//! bulk event jobs to the Klaviyo simulator at 100 ms latency per call with its real (unscaled)
//! per-endpoint rate limits.
//!
//! `cargo bench -p audience-connectors --bench klaviyo_events`
//!
//! Knobs (environment): `BENCH_ORDERS` (default 100000), `BENCH_LATENCY_MS` (default 100),
//! `BENCH_PAGE` (orders a source page holds, default 250), `BENCH_FLUSH` (events gathered from
//! pages before a send, default 20000), `BENCH_PACING` (the connector's pacing windows as a
//! multiple of Klaviyo's, default 1.0), `BENCH_SEPARATE=1` (the simulator runs in a child
//! process, this bench binary started again, so the peak RSS printed is the client's alone; its
//! store is then not checked here, the sink's accepted count is printed instead) with
//! `BENCH_SIM_SCALE` (the child's rate-limit windows as a multiple of Klaviyo's, default 1.0:
//! with `BENCH_PACING` at the same value a 1M-order memory run takes minutes, not the limits'
//! twenty).
//!
//! The run is the operator's: pages of orders are generated one at a time (the history is never
//! held), turned into events, gathered until `BENCH_FLUSH` events, then sent in whole thousands
//! cut at an order boundary (the rest waits for the next pages; a page's cursor would be saved
//! once all its events were sent), two sends in flight at most. It fails unless every event is recorded once, and it prints the job calls against the minimum `ceil(events / 1,000)`, the time against
//! the bound the rate limit (10/s, 150/m) allows for those calls, the most events held at once,
//! the 429s drawn, and the process's peak RSS (`VmHWM`, which includes the simulator's store of
//! every event).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use audience_connectors::klaviyo::{KlaviyoConfig, KlaviyoEventSink, ListRef};
use audience_core::event_batches::{BatchSizer, KLAVIYO_BULK, plan_batches};
use audience_core::order::{Decimal, Order, OrderCustomer, OrderLine};
use audience_core::order_events::{EventOptions, events_of_orders};
use audience_core::{ApplyControl, EventSink, OrderEvent};
use audience_sandbox::{Sandbox, SandboxOptions, Vendor};

const KEY: &str = "pk_benchevents00000001";

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Orders `from..to`: order i has 1 + i % 4 lines, one of 20,000 customers.
fn page(from: usize, to: usize) -> Vec<Order> {
    let placed = chrono::Utc::now() - chrono::Duration::days(30);
    (from..to)
        .map(|i| Order {
            source: "lightspeed-r".into(),
            order_id: format!("{i}"),
            customer: OrderCustomer {
                email: format!("buyer{}@customers.shop-bench.io", i % 20_000),
                first_name: format!("First{}", i % 20_000),
                last_name: "Bench".into(),
                city: "Boston".into(),
                country: "US".into(),
                ..OrderCustomer::default()
            },
            shop_id: "1".into(),
            shop_name: "Bench Shop".into(),
            currency: "USD".into(),
            total: Some(Decimal::new(2500 + (i % 1000) as i64, 2)),
            lines: (0..1 + i % 4)
                .map(|l| OrderLine {
                    line_id: format!("{l}"),
                    product_id: format!("{}", 1000 + (i + l) % 500),
                    name: format!("Product {}", (i + l) % 500),
                    categories: vec!["bench".into()],
                    quantity: Decimal::ONE,
                    unit_price: Decimal::new(999, 2),
                    ..OrderLine::default()
                })
                .collect(),
            placed_at: placed,
            updated_at: placed,
            ..Order::default()
        })
        .collect()
}

/// The earliest second the last of `calls` calls can go out when no one-second span may hold
/// more than `burst` and no one-minute span more than `steady` (as klaviyo_push).
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

/// Job cuts by count alone (these events are far below the byte limit).
struct CountOnly;

impl BatchSizer for CountOnly {
    fn overhead(&self) -> usize {
        0
    }
    fn profile_bytes(&self, _: usize, _: &OrderEvent) -> usize {
        0
    }
    fn event_bytes(&self, _: usize, _: &OrderEvent) -> usize {
        0
    }
}

fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// The child of `BENCH_SEPARATE=1`: serves a Klaviyo simulator, prints its URL, and lives until
/// its standard input closes (the parent ends or drops it).
fn serve_simulator(latency: Duration) {
    let scale: f64 = std::env::var("BENCH_SIM_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(audience_connectors::klaviyo::MAX_CONNECTIONS + 2)
        .enable_all()
        .build()
        .expect("simulator runtime");
    runtime.block_on(async {
        let sandbox = Sandbox::new(SandboxOptions::default());
        sandbox.klaviyo.set_rate_limit_scale(scale);
        sandbox.klaviyo.set_rate_limits_enabled(true);
        sandbox.faults.set_latency(Vendor::Klaviyo, latency);
        let running = sandbox
            .serve("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("serve");
        println!("{}", running.vendor_url(Vendor::Klaviyo));
        let _ = tokio::task::spawn_blocking(|| {
            let mut sink = Vec::new();
            let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
        })
        .await;
        drop(running);
    });
}

/// Starts the simulator child and returns it with its Klaviyo URL.
fn spawn_simulator() -> (std::process::Child, String) {
    let mut child = std::process::Command::new(std::env::current_exe().expect("this binary"))
        .env("BENCH_ROLE", "simulator")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("starting the simulator process");
    let stdout = child.stdout.take().expect("child stdout");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
        .expect("the simulator's URL");
    (child, line.trim().to_string())
}

fn main() {
    let orders = env("BENCH_ORDERS", 100_000) as usize;
    if std::env::var("BENCH_ROLE").as_deref() == Ok("simulator") {
        serve_simulator(Duration::from_millis(env("BENCH_LATENCY_MS", 100)));
        return;
    }
    let latency = Duration::from_millis(env("BENCH_LATENCY_MS", 100));
    let page_size = env("BENCH_PAGE", 250).max(1) as usize;
    let flush = env("BENCH_FLUSH", 20_000).max(1) as usize;
    let pacing: f64 = std::env::var("BENCH_PACING")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let simulator = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(audience_connectors::klaviyo::MAX_CONNECTIONS + 2)
        .enable_all()
        .build()
        .expect("simulator runtime");
    let external = (std::env::var("BENCH_SEPARATE").as_deref() == Ok("1")).then(spawn_simulator);
    let running = external.is_none().then(|| {
        simulator.block_on(async {
            let sandbox = Sandbox::new(SandboxOptions::default());
            sandbox.klaviyo.set_rate_limit_scale(1.0);
            sandbox.klaviyo.set_rate_limits_enabled(true);
            sandbox.faults.set_latency(Vendor::Klaviyo, latency);
            sandbox
                .serve("127.0.0.1:0".parse().expect("addr"))
                .await
                .expect("serve")
        })
    });
    let url = match (&running, &external) {
        (Some(running), _) => running.vendor_url(Vendor::Klaviyo),
        (None, Some((_, url))) => url.clone(),
        (None, None) => unreachable!("one of the two is set"),
    };
    let mut config = KlaviyoConfig::new(KEY, ListRef::Name("unused".into())).with_base_url(url);
    config.pacing = Some(pacing);
    let sink = KlaviyoEventSink::new(config).expect("config");
    let limits = match (&external, std::env::var("BENCH_SIM_SCALE").ok()) {
        (Some(_), Some(scale)) => {
            format!("the spec's rate limits, windows ×{scale}, in a separate simulator process")
        }
        (Some(_), None) => {
            "the spec's rate limits unscaled, in a separate simulator process".to_string()
        }
        (None, _) => "the spec's rate limits unscaled".to_string(),
    };
    println!(
        "klaviyo_events: {orders} orders, pages of {page_size}, sends of ≥{flush} events, {} ms latency per call, {limits}",
        latency.as_millis()
    );

    let options = EventOptions::default();
    let sink = Arc::new(sink);
    let (events_total, write_calls, held, seconds) = runtime.block_on(async {
        let started = Instant::now();
        let mut buffer: Vec<OrderEvent> = Vec::new();
        let mut in_flight: VecDeque<tokio::task::JoinHandle<(u64, u64, u64)>> = VecDeque::new();
        let (mut total, mut calls, mut held) = (0u64, 0u64, 0usize);
        let mut from = 0;
        while from < orders || !buffer.is_empty() {
            if from < orders {
                let to = (from + page_size).min(orders);
                let page = events_of_orders(&page(from, to), &options, None);
                assert!(page.rejected.is_empty() && page.skipped.is_empty());
                buffer.extend(page.events);
                from = to;
            }
            if buffer.len() < flush && from < orders {
                continue;
            }
            // Send whole jobs (as the sink will cut them: 1,000 events or fewer, between
            // orders); the last, partial one waits for the next pages (their cursor is not saved
            // until it is sent).
            let jobs = plan_batches(&buffer, KLAVIYO_BULK, &CountOnly);
            let cut = match jobs.last() {
                Some(last) if from < orders && jobs.len() > 1 => last.start,
                _ => buffer.len(),
            };
            let chunk: Vec<OrderEvent> = buffer.drain(..cut).collect();
            // Two sends in flight at most: the next is planned while the last jobs of the
            // previous one are still out, and memory stays at two sends' worth.
            held = held.max(buffer.len() + chunk.len() + in_flight.len() * flush);
            let sink = sink.clone();
            in_flight.push_back(tokio::spawn(async move {
                let report = sink
                    .send_events(&chunk, &ApplyControl::default())
                    .await
                    .expect("send");
                assert!(report.rejected.is_empty(), "{:?}", report.rejected.first());
                assert_eq!(report.accepted, chunk.len() as u64);
                (report.accepted, report.write_calls, 0)
            }));
            while in_flight.len() >= 2
                || (from >= orders && buffer.is_empty() && !in_flight.is_empty())
            {
                let (accepted, write_calls, _) = in_flight
                    .pop_front()
                    .expect("in flight")
                    .await
                    .expect("task");
                total += accepted;
                calls += write_calls;
            }
        }
        for task in in_flight {
            let (accepted, write_calls, _) = task.await.expect("task");
            total += accepted;
            calls += write_calls;
        }
        (total, calls, held, started.elapsed().as_secs_f64())
    });
    let Some(running) = running else {
        let (mut child, url) = external.expect("the simulator process");
        println!(
            "  {events_total} events accepted by the simulator process at {url}: {write_calls} job calls, minimum {}",
            events_total.div_ceil(1000)
        );
        drop(child.stdin.take());
        let _ = child.wait();
        println!(
            "  {seconds:.2} s; at most {held} events held at once; peak RSS {} (the client alone)",
            peak_rss_mb().map_or("unknown".into(), |mb| format!("{mb:.0} MB"))
        );
        return;
    };
    let sim = &running.sandbox.klaviyo;
    let placed = sim.events("Placed Order").len() as u64;
    let products = sim.events("Ordered Product").len() as u64;
    assert_eq!(placed, orders as u64, "every Placed Order recorded once");
    assert_eq!(placed + products, events_total, "every event recorded once");
    // Seen by the simulator: the jobs plus any retry of a 429 or 5xx (counted once by the sink).
    let seen = running.sandbox.stats.writes(Vendor::Klaviyo);
    let throttled = running
        .sandbox
        .stats
        .snapshot()
        .into_iter()
        .filter(|(k, _)| k.vendor == Vendor::Klaviyo && k.status == 429)
        .map(|(_, n)| n)
        .sum::<u64>();
    let minimum = events_total.div_ceil(1000);
    // Jobs end between orders, so a job holds 1,000 events or a few fewer: the least the
    // planner can do is its cut of the whole history.
    let bound = last_send(write_calls, 10, 150) + latency.as_secs_f64();
    println!(
        "  {events_total} events ({placed} Placed Order + {products} Ordered Product): {write_calls} job calls ({seen} seen by the simulator), minimum {minimum}: ratio {:.3}; {throttled} answered 429",
        write_calls as f64 / minimum.max(1) as f64
    );
    println!(
        "  {seconds:.2} s = {:.0} events/s; the rate limit allows {bound:.2} s for {write_calls} jobs: {:.2} of the bound",
        events_total as f64 / seconds,
        bound / seconds
    );
    println!(
        "  at most {held} events held at once; peak RSS {} (simulator's store included)",
        peak_rss_mb().map_or("unknown".into(), |mb| format!("{mb:.0} MB"))
    );
    if throttled > 0 {
        // Retried after Retry-After (nothing lost), but each costs the operation a pause: the
        // client's sliding windows count sends, the vendor's fixed windows count arrivals, and
        // on a loaded machine arrival jitter at a window's edge can put an 11th call into one.
        println!(
            "  note: {throttled} answered 429 (arrival jitter at a fixed window's edge); time lost to Retry-After"
        );
    }
}
