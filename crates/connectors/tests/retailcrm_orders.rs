//! Contract tests of `RetailCrmSource` as an `OrderSource` against the RetailCRM simulator's
//! orders: statuses, returns, shipments, money, paging, the history cursor, time zones, limits.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use audience_connectors::http::RetryPolicy;
use audience_connectors::retailcrm::{RetailCrmConfig, RetailCrmSource};
use audience_core::order::{Decimal, Order, OrderStatus};
use audience_core::{
    ConnectorError, EventOptions, OrderEventKind, OrderPage, OrderScope, OrderSkipReason,
    OrderSource, events_of_orders,
};
use audience_sandbox::retailcrm::{self as sim, OrderItem};
use audience_sandbox::{Fault, FaultKind, RunningSandbox, Sandbox, SandboxOptions, Vendor};
use chrono::{NaiveDate, TimeZone, Utc};
use futures::TryStreamExt;

fn unique_key() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "rcrm_orders_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

async fn start(customers: usize) -> (RunningSandbox, String) {
    let sandbox = Sandbox::new(SandboxOptions {
        customers,
        seed: 42,
    })
    .serve("127.0.0.1:0".parse().unwrap())
    .await
    .unwrap();
    let key = unique_key();
    sandbox.sandbox.retailcrm.set_api_key(&key);
    (sandbox, key)
}

fn config(sandbox: &RunningSandbox, key: &str) -> RetailCrmConfig {
    let mut config = RetailCrmConfig::with_base_url(sandbox.vendor_url(Vendor::Retailcrm), key);
    config.retry = RetryPolicy {
        max_retries: 6,
        min_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(500),
        timeout: Duration::from_secs(10),
    };
    config
}

fn source(sandbox: &RunningSandbox, key: &str) -> RetailCrmSource {
    RetailCrmSource::new(config(sandbox, key)).unwrap()
}

fn long_ago() -> OrderScope {
    OrderScope::Since(Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap())
}

async fn read(
    source: &RetailCrmSource,
    scope: OrderScope,
) -> Result<Vec<OrderPage>, ConnectorError> {
    source.orders(scope).try_collect().await
}

fn by_id(pages: &[OrderPage]) -> HashMap<String, Order> {
    pages
        .iter()
        .flat_map(|p| &p.orders)
        .map(|o| (o.order_id.clone(), o.clone()))
        .collect()
}

fn calls(sandbox: &RunningSandbox, route: &str) -> u64 {
    sandbox
        .sandbox
        .stats
        .snapshot()
        .into_iter()
        .filter(|(k, _)| k.vendor == Vendor::Retailcrm && k.route == route)
        .map(|(_, n)| n)
        .sum()
}

fn rub(raw: &str) -> Decimal {
    Decimal::from_str(raw).unwrap()
}

fn last_checkpoint(pages: &[OrderPage]) -> String {
    pages.last().unwrap().checkpoint.clone().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_orders_map_statuses_returns_shipments_and_money() {
    let (sandbox, key) = start(10).await;
    let crm = &sandbox.sandbox.retailcrm;
    let source = source(&sandbox, &key);
    let pages = read(&source, long_ago()).await.unwrap();
    let orders = by_id(&pages);
    assert_eq!(orders.len(), sim::DEMO_ORDERS);

    // #1: complete, two lines, 45.00 off each of two teas.
    let first = &orders["1"];
    let record = crm.order(1).unwrap();
    assert_eq!(first.status, OrderStatus::Completed);
    assert_eq!(first.currency, "RUB");
    assert_eq!(first.total, Some(rub("2000")));
    assert_eq!(first.total_discounts, rub("90"));
    assert_eq!(first.lines.len(), 2);
    assert_eq!(first.lines[0].unit_price, rub("405"));
    assert_eq!(first.lines[0].quantity, rub("2"));
    assert_eq!(first.lines[0].product_id, "501");
    assert_eq!(first.lines[0].sku, "TEA-01");
    assert_eq!(first.shop_id, sim::SITE);
    assert_eq!(first.shop_name, sim::SITE_NAME);
    assert_eq!(first.customer.email, record.email.clone().unwrap());
    assert_eq!(
        first.customer.customer_id,
        record.customer_id.unwrap().to_string()
    );
    // Moscow wall time in, the same instant out.
    assert_eq!(first.placed_at, record.created_at);
    assert!(first.refunds.is_empty() && first.fulfillments.is_empty());

    // #3: returned after completion: completed, refunded whole at the status change.
    let returned = &orders["3"];
    assert_eq!(returned.status, OrderStatus::Completed);
    assert_eq!(returned.refunds.len(), 1);
    assert_eq!(returned.refunds[0].amount, returned.total.unwrap());
    assert_eq!(
        returned.refunds[0].refunded_at,
        crm.order(3).unwrap().status_updated_at
    );
    assert_eq!(returned.refunds[0].line_ids.len(), returned.lines.len());

    // #4: shipped on its shipment date, midnight in Moscow.
    let shipped = &orders["4"];
    let date = crm.order(4).unwrap().shipment_date.unwrap();
    assert_eq!(shipped.fulfillments.len(), 1);
    assert_eq!(
        shipped.fulfillments[0].fulfilled_at,
        chrono_tz::Europe::Moscow
            .from_local_datetime(&date.and_hms_opt(0, 0, 0).unwrap())
            .unwrap()
            .with_timezone(&Utc)
    );
    assert_eq!(orders["5"].status, OrderStatus::Cancelled);
    assert_eq!(orders["6"].status, OrderStatus::Open);
    assert!(orders["8"].customer.email.is_empty());

    // Through the core: #2 is worth 0, #8 has no email, #5 cancelled and #6 open send nothing.
    let events = events_of_orders(
        &pages
            .iter()
            .flat_map(|p| p.orders.clone())
            .collect::<Vec<_>>(),
        &EventOptions::default(),
        None,
    );
    assert_eq!(events.skipped.get(&OrderSkipReason::ZeroValue), Some(&1));
    assert_eq!(events.skipped.get(&OrderSkipReason::NoEmail), Some(&1));
    assert!(events.rejected.is_empty(), "{:?}", events.rejected);
    let placed: Vec<&str> = events
        .events
        .iter()
        .filter(|e| e.kind == OrderEventKind::PlacedOrder)
        .map(|e| e.order_id.as_str())
        .collect();
    assert_eq!(placed.len(), 4, "#1, #3, #4 and #7: {placed:?}");
    assert_eq!(
        events
            .events
            .iter()
            .filter(|e| e.kind == OrderEventKind::RefundedOrder)
            .count(),
        1
    );
    assert_eq!(
        events
            .events
            .iter()
            .filter(|e| e.kind == OrderEventKind::FulfilledOrder)
            .count(),
        1
    );

    // The time zone is the account's, read once.
    assert_eq!(
        source.time_zone().await.unwrap().as_deref(),
        Some(sim::TIME_ZONE)
    );
    assert_eq!(calls(&sandbox, "/api/v5/settings"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_cursor_reads_each_change_once_and_an_idle_poll_is_one_call() {
    let (sandbox, key) = start(10).await;
    let crm = &sandbox.sandbox.retailcrm;
    let source = source(&sandbox, &key);
    let first = read(&source, long_ago()).await.unwrap();
    let checkpoint = last_checkpoint(&first);
    assert_eq!(
        checkpoint,
        crm.order_history().last().unwrap().id.to_string()
    );

    let before = sandbox
        .sandbox
        .stats
        .snapshot()
        .iter()
        .map(|(_, n)| n)
        .sum::<u64>();
    let idle = read(&source, OrderScope::ChangedSince(checkpoint.clone()))
        .await
        .unwrap();
    assert_eq!(by_id(&idle).len(), 0);
    assert_eq!(last_checkpoint(&idle), checkpoint, "nothing moved it");
    let after = sandbox
        .sandbox
        .stats
        .snapshot()
        .iter()
        .map(|(_, n)| n)
        .sum::<u64>();
    assert_eq!(after - before, 1, "an idle poll is one history call");

    // The open order completes and #7 comes back: exactly those two are read again.
    assert!(crm.set_order_status(6, "complete"));
    assert!(crm.set_order_status(7, "return"));
    let changed = read(&source, OrderScope::ChangedSince(checkpoint.clone()))
        .await
        .unwrap();
    let orders = by_id(&changed);
    assert_eq!(orders.len(), 2);
    assert_eq!(orders["6"].status, OrderStatus::Completed);
    assert_eq!(orders["7"].refunds.len(), 1);
    let next = last_checkpoint(&changed);
    assert!(next.parse::<u64>().unwrap() > checkpoint.parse::<u64>().unwrap());
    // And the change is not read a second time.
    let again = read(&source, OrderScope::ChangedSince(next.clone()))
        .await
        .unwrap();
    assert_eq!(by_id(&again).len(), 0);
    assert_eq!(last_checkpoint(&again), next);

    // A shipment marked by hand is a change too.
    assert!(crm.set_order_shipped(7, NaiveDate::from_ymd_opt(2026, 3, 2).unwrap()));
    let shipped = read(&source, OrderScope::ChangedSince(next)).await.unwrap();
    assert_eq!(by_id(&shipped)["7"].fulfillments.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_of_100_and_history_pages_by_since_id() {
    let (sandbox, key) = start(0).await;
    let crm = &sandbox.sandbox.retailcrm;
    crm.set_rate_limit(None);
    let mut config = config(&sandbox, &key);
    config.requests_per_second = 1000;
    let source = RetailCrmSource::new(config).unwrap();
    let created = Utc.with_ymd_and_hms(2026, 2, 1, 9, 0, 0).unwrap();
    for n in 0..250u64 {
        crm.add_order(sim::Order {
            email: Some(format!("buyer{n}@example.com")),
            status: "complete".into(),
            created_at: created + chrono::Duration::minutes(n as i64),
            items: vec![OrderItem {
                offer_id: Some(700 + n % 5),
                product_name: "Tea".into(),
                quantity: 1,
                initial_price_cents: 10_000 + n as i64,
                ..OrderItem::default()
            }],
            ..sim::Order::default()
        });
    }
    let pages = read(&source, long_ago()).await.unwrap();
    assert_eq!(by_id(&pages).len(), 250);
    assert_eq!(
        calls(&sandbox, "/api/v5/orders"),
        3,
        "one call per 100 orders"
    );
    // The newest history id: page 1 of 3, then the last page.
    assert_eq!(calls(&sandbox, "/api/v5/orders/history"), 2);
    // 100.01 exactly, not a float's neighbour.
    assert_eq!(by_id(&pages)["2"].total, Some(rub("100.01")));

    // The pages before the last carry resume positions: an interrupted backfill goes on after
    // the page it had done, reading only the rest, and ends with the same history id.
    let resume = pages[0].checkpoint.clone().unwrap();
    assert!(resume.contains("\"page\":2"), "{resume}");
    let orders_before = calls(&sandbox, "/api/v5/orders");
    let rest = read(&source, OrderScope::ChangedSince(resume))
        .await
        .unwrap();
    assert_eq!(by_id(&rest).len(), 150, "pages 2 and 3 only");
    assert_eq!(calls(&sandbox, "/api/v5/orders") - orders_before, 2);
    assert_eq!(last_checkpoint(&rest), last_checkpoint(&pages));

    // A backfill from a time of day keeps only what was created from then (the filter is a date).
    let since = created + chrono::Duration::minutes(200);
    let late = read(&source, OrderScope::Since(since)).await.unwrap();
    assert_eq!(by_id(&late).len(), 50);

    // 150 changes since the checkpoint: two history pages (by sinceId, never page), two fetches.
    let checkpoint = last_checkpoint(&pages);
    for id in 1..=150 {
        assert!(crm.set_order_status(id, "return"));
    }
    let history_before = calls(&sandbox, "/api/v5/orders/history");
    let orders_before = calls(&sandbox, "/api/v5/orders");
    let changed = read(&source, OrderScope::ChangedSince(checkpoint))
        .await
        .unwrap();
    assert_eq!(by_id(&changed).len(), 150);
    assert_eq!(
        calls(&sandbox, "/api/v5/orders/history") - history_before,
        2
    );
    assert_eq!(calls(&sandbox, "/api/v5/orders") - orders_before, 2);
    assert!(changed.iter().all(|p| p.checkpoint.is_some()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_zone_wins_over_the_accounts() {
    let (sandbox, key) = start(10).await;
    let crm = &sandbox.sandbox.retailcrm;
    let source = RetailCrmSource::new(
        config(&sandbox, &key)
            .with_time_zone("Asia/Almaty")
            .unwrap(),
    )
    .unwrap();
    let pages = read(&source, long_ago()).await.unwrap();
    let record = crm.order(1).unwrap();
    // The account wrote Moscow wall time (UTC+3); read as Almaty (UTC+5) it is 2 h earlier.
    assert_eq!(
        by_id(&pages)["1"].placed_at,
        record.created_at - chrono::Duration::hours(2)
    );
    assert_eq!(
        source.time_zone().await.unwrap().as_deref(),
        Some("Asia/Almaty")
    );
    assert_eq!(calls(&sandbox, "/api/v5/settings"), 0, "no need to ask");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_orders_are_rejected_by_the_core_not_errors() {
    let (sandbox, key) = start(0).await;
    let crm = &sandbox.sandbox.retailcrm;
    let item = OrderItem {
        offer_id: Some(1),
        product_name: "Tea".into(),
        quantity: 1,
        initial_price_cents: 500,
        ..OrderItem::default()
    };
    let base = sim::Order {
        email: Some("a@example.com".into()),
        status: "complete".into(),
        items: vec![item.clone()],
        ..sim::Order::default()
    };
    crm.add_order(sim::Order {
        omit_total: true,
        ..base.clone()
    });
    crm.add_order(sim::Order {
        items: vec![OrderItem {
            offer_id: None,
            ..item.clone()
        }],
        ..base.clone()
    });
    crm.add_order(sim::Order {
        items: vec![OrderItem {
            quantity: -2,
            ..item.clone()
        }],
        ..base.clone()
    });
    crm.add_order(sim::Order {
        currency: None,
        ..base.clone()
    });
    let pages = read(&source(&sandbox, &key), long_ago()).await.unwrap();
    let orders: Vec<Order> = pages.iter().flat_map(|p| p.orders.clone()).collect();
    assert_eq!(orders.len(), 4);
    // No currency on the order: the site's (RUB) stands in.
    assert_eq!(orders[3].currency, "RUB");
    let events = events_of_orders(&orders, &EventOptions::default(), None);
    let reasons: Vec<&str> = events.rejected.iter().map(|r| r.reason.as_str()).collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(reasons[0].contains("no total"), "{reasons:?}");
    assert!(reasons[1].contains("product"), "{reasons:?}");
    assert!(
        reasons[2].contains("negative") || reasons[2].contains("quantity"),
        "{reasons:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_bad_answers() {
    let (sandbox, key) = start(10).await;
    let crm = &sandbox.sandbox.retailcrm;
    sandbox.sandbox.faults.push(
        Vendor::Retailcrm,
        Fault {
            kind: FaultKind::RateLimited {
                retry_after_secs: 1,
            },
            count: 3,
            path_contains: Some("/api/v5/orders".into()),
        },
    );
    let pages = read(&source(&sandbox, &key), long_ago()).await.unwrap();
    assert_eq!(by_id(&pages).len(), sim::DEMO_ORDERS);
    assert_eq!(
        crm.counters().rate_limited,
        0,
        "never refused by the account itself"
    );

    // A wrong key is a clear error naming the endpoint, without the key.
    let wrong = source(&sandbox, "rcrm_wrong_key_for_orders");
    let err = read(&wrong, long_ago()).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("/api/v5/"), "{text}");
    assert!(!text.contains("rcrm_wrong_key_for_orders"), "{text}");

    // A checkpoint that is not a history id is a clear error, not a panic.
    let err = read(
        &source(&sandbox, &key),
        OrderScope::ChangedSince("yesterday".into()),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("history id"), "{err}");
}

/// The operator keeps a sync's source between runs (`reset_run_state` between them): the statuses
/// and sites are read once per run, so a status group or site changed in the CRM is seen by the
/// next run, not never.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_references_are_read_once_per_run() {
    let (sandbox, key) = start(10).await;
    let source = source(&sandbox, &key);
    let first = read(&source, long_ago()).await.unwrap();
    let checkpoint = last_checkpoint(&first);
    assert_eq!(calls(&sandbox, "/api/v5/reference/statuses"), 1);
    assert_eq!(calls(&sandbox, "/api/v5/reference/sites"), 1);
    // More pages of the same run use what was read.
    sandbox.sandbox.retailcrm.set_order_status(6, "complete");
    read(&source, OrderScope::ChangedSince(checkpoint.clone()))
        .await
        .unwrap();
    assert_eq!(calls(&sandbox, "/api/v5/reference/statuses"), 1);

    source.reset_run_state().await;
    sandbox.sandbox.retailcrm.set_order_status(7, "complete");
    let next = read(&source, OrderScope::ChangedSince(checkpoint))
        .await
        .unwrap();
    assert_eq!(by_id(&next)["7"].status, OrderStatus::Completed);
    assert_eq!(calls(&sandbox, "/api/v5/reference/statuses"), 2);
    assert_eq!(calls(&sandbox, "/api/v5/reference/sites"), 2);
}
