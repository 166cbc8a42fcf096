//! Contract tests of `KlaviyoEventSink` against the Klaviyo simulator: bulk event jobs of at most
//! 1,000 events, dedupe by unique id, backfill firing no flows, profiles created with the order's
//! customer and no consent, refusals as rejections, scopes, pacing and the account's time zone.

mod klaviyo_support;

use std::sync::Arc;

use serde_json::Value;
use std::sync::atomic::Ordering;

use std::collections::BTreeSet;

use audience_connectors::klaviyo::{KlaviyoEventSink, MAX_EVENT_JOB_BYTES, bulk_bodies};
use audience_core::order::{Decimal, Order, OrderCustomer, OrderLine, OrderRefund};
use audience_core::order_events::{EventOptions, events_of_orders};
use audience_core::{ApplyControl, ErrorKind, EventSink, OrderEvent};
use audience_sandbox::klaviyo::Consent;
use chrono::{DateTime, Duration, Utc};
use klaviyo_support::*;

const BULK: &str = "/api/event-bulk-create-jobs";

fn sink(env: &Env) -> KlaviyoEventSink {
    KlaviyoEventSink::new(env.config()).unwrap()
}

/// `n` completed orders of `lines` lines each, by `people` customers, placed at `placed`.
fn orders(n: usize, lines: usize, people: usize, placed: DateTime<Utc>) -> Vec<Order> {
    (0..n)
        .map(|i| Order {
            source: "lightspeed-r".into(),
            order_id: format!("{}", 5000 + i),
            customer: OrderCustomer {
                email: format!("buyer{}@shop-mail.io", i % people),
                first_name: format!("First{}", i % people),
                last_name: format!("Last{}", i % people),
                city: "Boston".into(),
                region: "MA".into(),
                country: "US".into(),
                postal_code: "02110".into(),
                ..OrderCustomer::default()
            },
            shop_id: "1".into(),
            shop_name: "Klaviyo-Boston".into(),
            currency: "USD".into(),
            total: Some(Decimal::new(4999, 2)),
            discount_codes: vec!["SPRING2015".into()],
            total_discounts: Decimal::new(500, 2),
            lines: (0..lines)
                .map(|l| OrderLine {
                    line_id: format!("{l}"),
                    product_id: format!("{}", 2000 + l),
                    name: format!("Product {l}"),
                    categories: vec!["rea".into()],
                    quantity: Decimal::ONE,
                    unit_price: Decimal::new(1666, 2),
                    ..OrderLine::default()
                })
                .collect(),
            placed_at: placed,
            updated_at: placed,
            ..Order::default()
        })
        .collect()
}

fn events(orders: &[Order], live_from: Option<DateTime<Utc>>) -> Vec<OrderEvent> {
    let options = EventOptions {
        live_from,
        ..EventOptions::default()
    };
    let page = events_of_orders(orders, &options, None);
    assert!(page.rejected.is_empty() && page.skipped.is_empty());
    page.events
}

fn yesterday() -> DateTime<Utc> {
    (Utc::now() - Duration::days(1))
        .with_timezone(&Utc)
        .trunc_subsecs()
}

trait Trunc {
    fn trunc_subsecs(self) -> Self;
}

impl Trunc for DateTime<Utc> {
    fn trunc_subsecs(self) -> Self {
        DateTime::from_timestamp(self.timestamp(), 0).unwrap()
    }
}

#[tokio::test]
async fn twenty_five_hundred_events_take_exactly_three_jobs_and_a_resend_stores_nothing_new() {
    let env = Env::start().await;
    let sink = sink(&env);
    // 625 orders × (Placed Order + 3 Ordered Product) = 2,500 events by 40 people.
    let events = events(&orders(625, 3, 40, yesterday()), None);
    assert_eq!(events.len(), 2500);
    let report = sink
        .send_events(&events, &ApplyControl::default())
        .await
        .unwrap();
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    assert_eq!(report.accepted, 2500);
    assert_eq!(report.write_calls, 3);
    assert!(!report.stopped_early);
    assert_eq!(env.calls("POST", BULK), 3);
    assert_eq!(env.writes(), 3);
    let sim = env.sim();
    let placed = sim.events("Placed Order");
    assert_eq!(placed.len(), 625);
    assert_eq!(sim.events("Ordered Product").len(), 1875);
    // The event as recorded: value a number, currency, time, the seed's properties.
    let first = placed
        .iter()
        .find(|e| e.unique_id.as_deref() == Some("lightspeed-r:5000:placed"))
        .unwrap();
    assert_eq!(first.value, Some(49.99));
    assert_eq!(first.value_currency.as_deref(), Some("USD"));
    assert_eq!(first.time, yesterday_of(&events));
    assert_eq!(first.properties["Shop"], "Klaviyo-Boston");
    assert_eq!(first.properties["ItemCount"], 3);
    assert_eq!(first.properties["EmailDomain"], "shop-mail.io");
    assert_eq!(sim.profile_count(), 40);

    // The same events again (a crash before the cursor was saved): three more jobs, nothing new.
    env.clear_stats();
    let again = sink
        .send_events(&events, &ApplyControl::default())
        .await
        .unwrap();
    assert_eq!(again.write_calls, 3);
    assert_eq!(env.calls("POST", BULK), 3);
    assert_eq!(sim.events("Placed Order").len(), 625);
    assert_eq!(sim.events("Ordered Product").len(), 1875);
    assert_eq!(sim.profile_count(), 40);
}

fn yesterday_of(events: &[OrderEvent]) -> DateTime<Utc> {
    events[0].occurred_at
}

#[tokio::test]
async fn backfilled_history_triggers_no_flows_and_live_events_do() {
    let env = Env::start().await;
    let sink = sink(&env);
    let sync_start = Utc::now() - Duration::hours(1);
    // History: placed before the sync started.
    let old = orders(10, 1, 5, yesterday());
    let history = events(&old, Some(sync_start));
    assert!(history.iter().all(|e| e.backfill));
    sink.send_events(&history, &ApplyControl::default())
        .await
        .unwrap();
    assert_eq!(env.sim().events("Placed Order").len(), 10);
    assert!(env.sim().events("Placed Order").iter().all(|e| e.backfill));
    assert_eq!(env.sim().metric_flows("Placed Order"), 0);
    assert_eq!(env.sim().metric_flows("Ordered Product"), 0);

    // A refund today of one of those orders is news: live, one flow trigger; the rest of the
    // re-read order is already recorded.
    let mut changed = old[0].clone();
    changed.refunds.push(OrderRefund {
        refund_id: "R1".into(),
        refunded_at: Utc::now().trunc_subsecs(),
        amount: Decimal::new(1666, 2),
        line_ids: vec!["0".into()],
    });
    let reread = events(&[changed], Some(sync_start));
    sink.send_events(&reread, &ApplyControl::default())
        .await
        .unwrap();
    assert_eq!(env.sim().events("Refunded Order").len(), 1);
    assert_eq!(env.sim().metric_flows("Refunded Order"), 1);
    assert_eq!(env.sim().events("Placed Order").len(), 10);
    assert_eq!(env.sim().metric_flows("Placed Order"), 0);

    // Live orders trigger their flows.
    let mut new = orders(3, 2, 3, Utc::now().trunc_subsecs());
    for (i, order) in new.iter_mut().enumerate() {
        order.order_id = format!("new{i}");
    }
    sink.send_events(&events(&new, Some(sync_start)), &ApplyControl::default())
        .await
        .unwrap();
    assert_eq!(env.sim().metric_flows("Placed Order"), 3);
    assert_eq!(env.sim().metric_flows("Ordered Product"), 6);
}

#[tokio::test]
async fn a_new_profile_gets_the_customers_name_and_location_and_no_subscription() {
    let env = Env::start().await;
    let sink = sink(&env);
    sink.send_events(
        &events(&orders(1, 1, 1, yesterday()), None),
        &ApplyControl::default(),
    )
    .await
    .unwrap();
    let profile = env.sim().profile_by_email("buyer0@shop-mail.io").unwrap();
    assert_eq!(profile.first_name.as_deref(), Some("First0"));
    assert_eq!(profile.last_name.as_deref(), Some("Last0"));
    assert_eq!(profile.location["city"], "Boston");
    assert_eq!(profile.location["region"], "MA");
    assert_eq!(profile.location["zip"], "02110");
    assert_eq!(profile.location["country"], "US");
    assert_eq!(profile.email_marketing.consent, Consent::NeverSubscribed);
    assert!(env.list_members_all().is_empty());
    assert_eq!(env.calls("POST", SUBSCRIBE), 0);
    assert_eq!(env.sim().list_flows(&env.list_id), 0);
}

impl EnvExt for Env {
    fn list_members_all(&self) -> Vec<String> {
        self.sim()
            .list_ids()
            .iter()
            .flat_map(|id| self.sim().list_members(id))
            .collect()
    }
}

trait EnvExt {
    fn list_members_all(&self) -> Vec<String>;
}

#[tokio::test]
async fn an_order_klaviyo_refuses_is_rejected_whole_and_the_rest_of_the_job_is_recorded() {
    let env = Env::start().await;
    let sink = sink(&env);
    let mut all = orders(6, 2, 3, yesterday());
    // Klaviyo takes times at most a year ahead: this order's events are refused.
    all[4].placed_at = Utc::now() + Duration::days(800);
    let events = events(&all, None);
    let report = sink
        .send_events(&events, &ApplyControl::default())
        .await
        .unwrap();
    let mut refused: Vec<&str> = report
        .rejected
        .iter()
        .map(|r| r.unique_id.as_str())
        .collect();
    refused.sort();
    assert_eq!(
        refused,
        vec![
            "lightspeed-r:5004:placed",
            "lightspeed-r:5004:product:0",
            "lightspeed-r:5004:product:1"
        ]
    );
    assert!(
        report.rejected.iter().all(|r| r.reason.contains("1 year")),
        "{:?}",
        report.rejected
    );
    assert_eq!(report.accepted, 15);
    // The refused job, then the job without that order.
    assert_eq!(report.write_calls, 2);
    assert_eq!(env.sim().events("Placed Order").len(), 5);
    assert_eq!(env.sim().events("Ordered Product").len(), 10);
    assert!(
        env.sim()
            .events("Placed Order")
            .iter()
            .all(|e| e.unique_id.as_deref() != Some("lightspeed-r:5004:placed"))
    );
}

#[tokio::test]
async fn an_event_given_twice_in_one_call_is_sent_once() {
    let env = Env::start().await;
    let sink = sink(&env);
    let once = events(&orders(4, 1, 2, yesterday()), None);
    let twice: Vec<OrderEvent> = once.iter().chain(once.iter()).cloned().collect();
    let report = sink
        .send_events(&twice, &ApplyControl::default())
        .await
        .unwrap();
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    assert_eq!(report.accepted, 8);
    assert_eq!(env.sim().events("Placed Order").len(), 4);
}

#[tokio::test]
async fn a_read_only_key_gets_an_auth_error_naming_the_scopes_and_nothing_is_recorded() {
    let env = Env::start().await;
    env.sim()
        .set_key_scopes(&env.key, &["events:read", "profiles:read", "accounts:read"]);
    let sink = sink(&env);
    let err = sink
        .send_events(
            &events(&orders(2, 1, 2, yesterday()), None),
            &ApplyControl::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth, "{err}");
    assert_eq!(err.endpoint, "POST /api/event-bulk-create-jobs");
    let shown = format!("{err} {err:?}");
    assert!(shown.contains("events:write"), "{shown}");
    assert!(!shown.contains(&env.key), "{shown}");
    assert!(env.sim().events("Placed Order").is_empty());
    assert_eq!(env.sim().profile_count(), 0);
    // Reading the time zone needs only accounts:read.
    assert!(sink.time_zone().await.is_ok());
}

#[tokio::test]
async fn the_time_zone_is_the_accounts() {
    let env = Env::start().await;
    env.sim().set_timezone("Europe/Stockholm");
    let sink = sink(&env);
    assert_eq!(
        sink.time_zone().await.unwrap().as_deref(),
        Some("Europe/Stockholm")
    );
    assert_eq!(env.calls("GET", "/api/accounts"), 1);
}

#[tokio::test]
async fn twenty_jobs_are_paced_under_the_limits_without_a_429() {
    let env = Env::start().await;
    let sink = sink(&env);
    // 5,000 orders × 4 events = 20,000 events: 20 jobs, twice the burst of 10 a second.
    let events = events(&orders(5000, 3, 500, yesterday()), None);
    let report = sink
        .send_events(&events, &ApplyControl::default())
        .await
        .unwrap();
    assert_eq!(report.write_calls, 20);
    assert_eq!(report.accepted, 20_000);
    assert_eq!(env.sim().throttled(BULK), 0);
    assert_eq!(env.sim().events("Placed Order").len(), 5000);
}

#[tokio::test]
async fn a_stop_request_ends_at_a_job_boundary() {
    let env = Env::start().await;
    let sink = sink(&env);
    let events = events(&orders(1000, 3, 100, yesterday()), None);
    let control = ApplyControl::default();
    control.stop.store(true, Ordering::Relaxed);
    let report = sink.send_events(&events, &control).await.unwrap();
    assert!(report.stopped_early);
    assert_eq!(report.write_calls, 0);
    assert_eq!(env.calls("POST", BULK), 0);

    // A stop requested after the first job: whole jobs only, fewer than four.
    let control = ApplyControl::default();
    let stop = control.stop.clone();
    let control = ApplyControl {
        progress: Some(Arc::new(move |done, _| {
            if done > 0 {
                stop.store(true, Ordering::Relaxed);
            }
        })),
        ..control
    };
    let sink = KlaviyoEventSink::new({
        let mut config = env.config();
        config.write_concurrency = 1;
        config
    })
    .unwrap();
    let report = sink.send_events(&events, &control).await.unwrap();
    assert!(report.stopped_early);
    assert!(report.write_calls < 4, "{}", report.write_calls);
    assert_eq!(report.accepted % 1000, 0);
    assert_eq!(
        env.sim().events("Placed Order").len() + env.sim().events("Ordered Product").len(),
        report.accepted as usize
    );
}

/// Large events: jobs are cut by bytes, each body within 5 MB, grouped one entry per profile,
/// every event in exactly one job; the simulator (5,000,000 bytes at most) takes them all.
#[tokio::test]
async fn large_events_are_cut_into_jobs_under_five_megabytes_grouped_per_profile() {
    let env = Env::start().await;
    let sink = sink(&env);
    let mut all = orders(200, 3, 20, yesterday());
    for order in &mut all {
        for line in &mut order.lines {
            line.name = format!("{} {}", line.name, "x".repeat(30_000));
        }
    }
    let events = events(&all, None);
    let bodies = bulk_bodies(&events);
    assert!(bodies.len() >= 8, "{} jobs", bodies.len());
    let mut seen = BTreeSet::new();
    for body in &bodies {
        assert!(body.len() <= MAX_EVENT_JOB_BYTES, "{} bytes", body.len());
        let doc: Value = serde_json::from_slice(body).unwrap();
        let entries = doc["data"]["attributes"]["events-bulk-create"]["data"]
            .as_array()
            .unwrap();
        let mut emails = BTreeSet::new();
        for entry in entries {
            let email = entry["attributes"]["profile"]["data"]["attributes"]["email"]
                .as_str()
                .unwrap();
            assert!(emails.insert(email.to_string()), "{email} twice in a job");
            for event in entry["attributes"]["events"]["data"].as_array().unwrap() {
                let id = event["attributes"]["unique_id"]
                    .as_str()
                    .unwrap()
                    .to_string();
                assert!(seen.insert(id), "an event in two jobs");
                assert!(event["attributes"]["value"].is_number());
            }
        }
    }
    assert_eq!(seen.len(), events.len());
    let report = sink
        .send_events(&events, &ApplyControl::default())
        .await
        .unwrap();
    assert!(report.rejected.is_empty(), "{:?}", report.rejected.first());
    assert_eq!(report.write_calls, bodies.len() as u64);
    assert_eq!(env.calls("POST", BULK), bodies.len() as u64);
    assert_eq!(env.sim().events("Ordered Product").len(), 600);
}

/// A string over Klaviyo's 100 KB is refused before sending, with the rest of its order.
#[tokio::test]
async fn an_order_with_a_string_over_100_kb_is_refused_before_sending() {
    let env = Env::start().await;
    let sink = sink(&env);
    let mut all = orders(3, 2, 3, yesterday());
    all[1].lines[1].name = "y".repeat(150_000);
    let events = events(&all, None);
    let report = sink
        .send_events(&events, &ApplyControl::default())
        .await
        .unwrap();
    let refused: BTreeSet<&str> = report
        .rejected
        .iter()
        .map(|r| r.unique_id.as_str())
        .collect();
    assert_eq!(
        refused,
        BTreeSet::from([
            "lightspeed-r:5001:placed",
            "lightspeed-r:5001:product:0",
            "lightspeed-r:5001:product:1"
        ])
    );
    assert!(report.rejected.iter().all(|r| r.reason.contains("100 KB")));
    assert_eq!(report.accepted, 6);
    assert_eq!(report.write_calls, 1);
    assert_eq!(env.sim().events("Placed Order").len(), 2);
}

/// The simulator is as strict as the spec on what the sink sends (so a sink bug cannot hide):
/// a `unique_id` repeated for one profile and metric fails the whole request, `time` must be an
/// RFC 3339 date-time after 1990, `value` a number, `value_currency` a code, the body 5 MB.
#[tokio::test]
async fn the_simulator_refuses_what_klaviyo_refuses_and_records_nothing_of_it() {
    let env = Env::start().await;
    let http = reqwest::Client::new();
    let post = |body: Vec<u8>| {
        http.post(format!("{}{BULK}", env.base_url()))
            .header("Authorization", format!("Klaviyo-API-Key {}", env.key))
            .header("revision", "2026-07-15")
            .header("content-type", "application/vnd.api+json")
            .header("accept", "application/vnd.api+json")
            .body(body)
            .send()
    };
    let event = |unique_id: &str, attrs: Value| {
        let mut event = serde_json::json!({"type": "event", "attributes": {
            "properties": {"a": 1},
            "time": "2026-01-02T03:04:05Z",
            "value": 10.5,
            "value_currency": "USD",
            "unique_id": unique_id,
            "metric": {"data": {"type": "metric", "attributes": {"name": "Placed Order"}}},
        }});
        for (k, v) in attrs.as_object().unwrap() {
            event["attributes"][k] = v.clone();
        }
        event
    };
    let body =
        |events: Vec<Value>| {
            serde_json::to_vec(&serde_json::json!({"data": {"type": "event-bulk-create-job",
            "attributes": {"events-bulk-create": {"data": [{"type": "event-bulk-create",
            "attributes": {
                "profile": {"data": {"type": "profile", "attributes": {"email": "s@shop-mail.io"}}},
                "events": {"data": events},
            }}]}}}}))
        .unwrap()
        };
    let none = serde_json::json!({});
    let refused = [
        (
            vec![event("1", none.clone()), event("1", none.clone())],
            "/events/data/1/attributes/unique_id",
        ),
        (
            vec![event("2", serde_json::json!({"time": "2026-01-02"}))],
            "/attributes/time",
        ),
        (
            vec![event(
                "3",
                serde_json::json!({"time": "1989-12-31T00:00:00Z"}),
            )],
            "/attributes/time",
        ),
        (
            vec![event("4", serde_json::json!({"value": "10.50"}))],
            "/attributes/value",
        ),
        (
            vec![event("5", serde_json::json!({"value_currency": "dollars"}))],
            "/attributes/value_currency",
        ),
    ];
    for (events, pointer) in refused {
        let answer = post(body(events)).await.unwrap();
        assert_eq!(answer.status(), 400, "{pointer}");
        let doc: Value = answer.json().await.unwrap();
        let at = doc["errors"][0]["source"]["pointer"].as_str().unwrap_or("");
        assert!(at.ends_with(pointer), "{at} for {pointer}");
    }
    // Over 5,000,000 bytes: refused whole.
    let big = event(
        "6",
        serde_json::json!({"properties": {"pad": "z".repeat(5_000_000)}}),
    );
    assert_eq!(post(body(vec![big])).await.unwrap().status(), 413);
    assert!(env.sim().events("Placed Order").is_empty());
    assert_eq!(env.sim().profile_count(), 0);
    // The same event, well formed, is taken; times are kept to the second.
    let ok = event(
        "7",
        serde_json::json!({"time": "2026-01-02T03:04:05.678+01:00"}),
    );
    assert_eq!(post(body(vec![ok])).await.unwrap().status(), 202);
    let stored = env.sim().events("Placed Order");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].time.to_rfc3339(), "2026-01-02T02:04:05+00:00");
}

/// A poll with nothing new costs no target call.
#[tokio::test]
async fn nothing_to_send_costs_no_call() {
    let env = Env::start().await;
    let report = sink(&env)
        .send_events(&[], &ApplyControl::default())
        .await
        .unwrap();
    assert_eq!(report, audience_core::EventReport::default());
    assert_eq!(env.total(), 0);
}
