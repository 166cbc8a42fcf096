//! Contract tests of `LightspeedRSource` as an `OrderSource` against the R-Series simulator's sales.

use std::collections::{BTreeSet, HashMap};
use std::str::FromStr;
use std::time::{Duration, Instant};

use audience_connectors::lightspeed_r::LightspeedRSource;
use audience_core::order::{Decimal, Order};
use audience_core::{ConnectorError, ErrorKind, OrderPage, OrderScope, OrderSource};
use audience_sandbox::lightspeed_r::{DEMO_ACCOUNT_ID, Sale, SaleLine};
use audience_sandbox::{Fault, FaultKind, RunningSandbox, Sandbox, SandboxOptions, Vendor};
use chrono::{DateTime, TimeZone, Utc};
use futures::TryStreamExt;

async fn start(customers: usize, token: &str) -> RunningSandbox {
    let running = Sandbox::new(SandboxOptions {
        customers,
        seed: 42,
    })
    .serve("127.0.0.1:0".parse().unwrap())
    .await
    .expect("sandbox serves");
    // Each test has its own token, so the process-wide key budgets of parallel tests stay apart.
    running.sandbox.lightspeed_r.set_token(token);
    running
}

fn source(running: &RunningSandbox, token: &str) -> LightspeedRSource {
    LightspeedRSource::new(DEMO_ACCOUNT_ID, token)
        .unwrap()
        .with_base_url(&format!(
            "{}/API/V3/Account/{DEMO_ACCOUNT_ID}",
            running.vendor_url(Vendor::LightspeedR)
        ))
        .unwrap()
}

fn long_ago() -> OrderScope {
    OrderScope::Since(Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap())
}

async fn read(
    source: &LightspeedRSource,
    scope: OrderScope,
) -> Result<Vec<OrderPage>, ConnectorError> {
    source.orders(scope).try_collect().await
}

fn orders(pages: &[OrderPage]) -> Vec<&Order> {
    pages.iter().flat_map(|p| &p.orders).collect()
}

fn by_id(pages: &[OrderPage]) -> HashMap<&str, &Order> {
    orders(pages)
        .into_iter()
        .map(|o| (o.order_id.as_str(), o))
        .collect()
}

fn last_checkpoint(pages: &[OrderPage]) -> String {
    pages.last().unwrap().checkpoint.clone().unwrap()
}

fn sale_calls(running: &RunningSandbox) -> u64 {
    running
        .sandbox
        .stats
        .count(Vendor::LightspeedR, Some("GET"), "/Sale.json")
}

fn dec(raw: &str) -> Decimal {
    Decimal::from_str(raw).unwrap()
}

fn cents(c: i64) -> Decimal {
    Decimal::new(c, 2)
}

fn line_total(line: &SaleLine) -> i64 {
    line.unit_quantity * line.unit_price_cents - line.discount_cents + line.tax_cents
}

fn sale_total(sale: &Sale) -> i64 {
    sale.lines.iter().map(line_total).sum()
}

#[tokio::test]
async fn the_demo_sales_become_orders_with_refunds_shipments_discounts_and_utc_times() {
    let token = "lsr-orders-demo";
    let running = start(12, token).await;
    let sim = &running.sandbox.lightspeed_r;
    let source = source(&running, token);
    let pages = read(&source, long_ago()).await.unwrap();
    let orders = by_id(&pages);

    // 10 customer sales and the walk-in sale; the refund sale 12 is folded into sale 3 and the
    // open sale 13 is never read.
    let ids: BTreeSet<String> = orders.keys().map(|id| id.to_string()).collect();
    let expected: BTreeSet<String> = (1..=11).map(|i: u64| i.to_string()).collect();
    assert_eq!(ids, expected);
    assert_eq!(orders_count(&pages), 11, "each order once");

    for id in 1..=11u64 {
        let sale = sim.sale(id).unwrap();
        let order = orders[id.to_string().as_str()];
        assert_eq!(order.source, "lightspeed-r");
        assert_eq!(order.currency, "USD");
        assert_eq!(order.total, Some(cents(sale_total(&sale))), "sale {id}");
        // Shop times are New York local times on the wire; the order holds the same instants.
        assert_eq!(order.placed_at, sale.complete_time.unwrap(), "sale {id}");
        assert_eq!(order.updated_at, sale.time_stamp, "sale {id}");
        assert_eq!(order.order_number, sale.ticket_number);
        assert_eq!(order.lines.len(), sale.lines.len());
        assert_eq!(order.shop_id, sale.shop_id.to_string());
        let shop = if sale.shop_id == 1 {
            "Harbour Street"
        } else {
            "Old Town"
        };
        assert_eq!(order.shop_name, shop);
    }
    // The customer's primary email, names and place.
    let first = orders["1"];
    let customer = sim.customer(1).unwrap();
    let primary = customer
        .contact
        .emails
        .iter()
        .find(|e| e.use_type == "Primary")
        .unwrap();
    assert_eq!(first.customer.email, primary.address);
    assert_eq!(first.customer.customer_id, "1");
    assert_eq!(first.customer.first_name, customer.first_name);
    assert_eq!(first.customer.city, customer.contact.addresses[0].city);
    // Sale 1: SPRING25 on its first line.
    assert_eq!(first.discount_codes, vec!["SPRING25".to_string()]);
    let sale1 = sim.sale(1).unwrap();
    let discount = cents(sale1.lines[0].discount_cents);
    assert!(discount > Decimal::ZERO);
    assert_eq!(first.total_discounts, discount);
    assert_eq!(first.lines[0].discount, discount);
    assert_eq!(first.lines[0].name, "Logo T-Shirt");
    assert_eq!(first.lines[0].categories, vec!["T-Shirts".to_string()]);
    assert_eq!(first.lines[0].sku, "TS-LOGO");
    assert_eq!(first.lines[0].product_id, "1");
    // Unit price after the line discount: (1 × 25.00 − 6.25) / 1.
    assert_eq!(first.lines[0].unit_price, dec("18.75"));
    // Sale 2 is worth $0.
    assert_eq!(orders["2"].total, Some(Decimal::ZERO));
    // Sale 3 carries its refund (sale 12), whole.
    let refunded = orders["3"];
    assert_eq!(refunded.refunds.len(), 1);
    let refund = &refunded.refunds[0];
    let refund_sale = sim.sale(12).unwrap();
    assert_eq!(refund.refund_id, "12");
    assert_eq!(refund.amount, cents(-sale_total(&refund_sale)));
    assert!(refund.amount > Decimal::ZERO);
    assert_eq!(
        refund.line_ids,
        vec![sim.sale(3).unwrap().lines[0].sale_line_id.to_string()]
    );
    assert_eq!(refund.refunded_at, refund_sale.create_time);
    assert_eq!(
        refunded.lines.len(),
        3,
        "the original lines, not the refund's"
    );
    // Sale 4 and the walk-in sale 11 are shipped; 11 has no customer and so no email.
    assert_eq!(orders["4"].fulfillments.len(), 1);
    let walk_in = orders["11"];
    assert_eq!(walk_in.fulfillments.len(), 1);
    assert_eq!(walk_in.customer.email, "");
    assert_eq!(walk_in.customer.customer_id, "");
    assert!(
        orders
            .iter()
            .filter(|(id, _)| !["4", "11"].contains(id))
            .all(|(_, o)| o.fulfillments.is_empty())
    );
    assert!(
        orders
            .iter()
            .filter(|(id, _)| **id != "3")
            .all(|(_, o)| o.refunds.is_empty())
    );

    assert_eq!(
        source.time_zone().await.unwrap().as_deref(),
        Some("America/New_York")
    );
}

fn orders_count(pages: &[OrderPage]) -> usize {
    pages.iter().map(|p| p.orders.len()).sum()
}

fn plain_sale(customer_id: u64, completed: DateTime<Utc>, price_cents: i64) -> Sale {
    Sale {
        shop_id: 1,
        customer_id,
        completed: true,
        create_time: completed,
        complete_time: Some(completed),
        time_stamp: completed,
        lines: vec![SaleLine {
            item_id: 3,
            unit_quantity: 1,
            unit_price_cents: price_cents,
            ..SaleLine::default()
        }],
        ..Sale::default()
    }
}

#[tokio::test]
async fn many_sales_are_read_page_by_page_each_once() {
    let token = "lsr-orders-paging";
    let running = start(12, token).await;
    let sim = &running.sandbox.lightspeed_r;
    sim.set_bucket(1_000.0, 100.0);
    let base = Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0).unwrap();
    for i in 0..250 {
        // Several sales share a second, so pages end inside one.
        sim.add_sale(plain_sale(
            1 + i % 12,
            base + chrono::Duration::seconds(i as i64 / 7),
            1000 + i as i64,
        ));
    }
    let pages = read(&source(&running, token), long_ago()).await.unwrap();
    assert_eq!(orders_count(&pages), 261);
    assert_eq!(by_id(&pages).len(), 261, "no order twice");
    // 262 completed sales (the refund sale included) at 100 a page.
    assert_eq!(sale_calls(&running), 3);
    assert_eq!(pages.len(), 3);
    assert!(pages.iter().all(|p| p.checkpoint.is_some()));
    // Oldest change first.
    let stamps: Vec<DateTime<Utc>> = orders(&pages)
        .iter()
        .filter(|o| o.refunds.is_empty())
        .map(|o| o.updated_at)
        .collect();
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]));

    // Resuming from a middle page's checkpoint reads exactly the rest.
    let middle = pages[0].checkpoint.clone().unwrap();
    let rest = read(&source(&running, token), OrderScope::ChangedSince(middle))
        .await
        .unwrap();
    let first_ids: BTreeSet<&str> = pages[0]
        .orders
        .iter()
        .map(|o| o.order_id.as_str())
        .collect();
    let rest_ids: BTreeSet<&str> = orders(&rest).iter().map(|o| o.order_id.as_str()).collect();
    assert!(first_ids.is_disjoint(&rest_ids));
    assert_eq!(first_ids.len() + rest_ids.len(), 261);
}

#[tokio::test]
async fn an_incremental_read_returns_only_changed_orders_and_nothing_when_idle() {
    let token = "lsr-orders-incremental";
    let running = start(12, token).await;
    let sim = &running.sandbox.lightspeed_r;
    let source = source(&running, token);
    let pages = read(&source, long_ago()).await.unwrap();
    let checkpoint = last_checkpoint(&pages);

    // Nothing changed: one call, no page.
    let before = sale_calls(&running);
    let total_before = running.sandbox.stats.total(Vendor::LightspeedR);
    let idle = read(&source, OrderScope::ChangedSince(checkpoint.clone()))
        .await
        .unwrap();
    assert!(idle.is_empty());
    assert_eq!(sale_calls(&running) - before, 1);
    assert_eq!(
        running.sandbox.stats.total(Vendor::LightspeedR) - total_before,
        1,
        "no shop or refund look-up when nothing changed"
    );

    // A new sale and a shipment: exactly those two orders, the shipped one whole.
    let new_id = sim.add_sale(plain_sale(5, Utc::now(), 4200));
    assert!(sim.ship_sale(6));
    let changed = read(&source, OrderScope::ChangedSince(checkpoint))
        .await
        .unwrap();
    let changed_orders = by_id(&changed);
    let ids: BTreeSet<&str> = changed_orders.keys().copied().collect();
    assert_eq!(ids, BTreeSet::from(["6", new_id.to_string().as_str()]));
    let shipped = changed_orders["6"];
    assert_eq!(shipped.fulfillments.len(), 1);
    assert_eq!(shipped.lines.len(), sim.sale(6).unwrap().lines.len());
    assert_eq!(
        changed_orders[new_id.to_string().as_str()].total,
        Some(cents(4200))
    );

    // Those changes are within the last minute, so the next read looks back over it, and still
    // hands out nothing twice.
    let again = read(&source, OrderScope::ChangedSince(last_checkpoint(&changed)))
        .await
        .unwrap();
    assert!(again.is_empty(), "{again:?}");
}

#[tokio::test]
async fn a_refund_added_later_brings_the_order_back_whole_with_all_its_refunds() {
    let token = "lsr-orders-refund";
    let running = start(12, token).await;
    let sim = &running.sandbox.lightspeed_r;
    let source = source(&running, token);
    let pages = read(&source, long_ago()).await.unwrap();
    let checkpoint = last_checkpoint(&pages);

    // Sale 3 already has refund 12; refund one unit of its second line too.
    let sale3 = sim.sale(3).unwrap();
    let line = &sale3.lines[1];
    let refund_id = sim.refund_line(3, line.sale_line_id, 1).unwrap();
    let changed = read(&source, OrderScope::ChangedSince(checkpoint))
        .await
        .unwrap();
    let changed_orders = orders(&changed);
    assert_eq!(changed_orders.len(), 1, "{changed_orders:?}");
    let order = changed_orders[0];
    assert_eq!(order.order_id, "3", "the original, not the refund sale");
    assert_eq!(order.lines.len(), 3);
    let refund_ids: Vec<&str> = order.refunds.iter().map(|r| r.refund_id.as_str()).collect();
    let rid = refund_id.to_string();
    assert_eq!(refund_ids, vec!["12", rid.as_str()]);
    let new_refund = &order.refunds[1];
    assert_eq!(new_refund.line_ids, vec![line.sale_line_id.to_string()]);
    assert_eq!(
        new_refund.amount,
        cents(-sale_total(&sim.sale(refund_id).unwrap()))
    );
    assert!(new_refund.amount > Decimal::ZERO);
}

#[tokio::test]
async fn local_shop_times_become_the_right_utc_instants() {
    let token = "lsr-orders-zone";
    let running = start(12, token).await;
    let sim = &running.sandbox.lightspeed_r;
    assert!(sim.set_time_zone("Australia/Melbourne"));
    // 23:30 UTC on 14 January is 10:30 the next morning in Melbourne (+11:00, summer time); in
    // July the same shop is at +10:00.
    let summer = Utc.with_ymd_and_hms(2025, 1, 14, 23, 30, 0).unwrap();
    let winter = Utc.with_ymd_and_hms(2025, 7, 14, 23, 30, 0).unwrap();
    let a = sim.add_sale(plain_sale(2, summer, 1500));
    let b = sim.add_sale(plain_sale(2, winter, 1500));

    // On the wire: local times with the shop's offset.
    let body: serde_json::Value = reqwest::Client::new()
        .get(format!(
            "{}/API/V3/Account/{DEMO_ACCOUNT_ID}/Sale.json?saleID={a}",
            running.vendor_url(Vendor::LightspeedR)
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["Sale"]["completeTime"], "2025-01-15T10:30:00+11:00");

    let source = source(&running, token);
    let pages = read(&source, long_ago()).await.unwrap();
    let orders = by_id(&pages);
    assert_eq!(orders[a.to_string().as_str()].placed_at, summer);
    assert_eq!(orders[b.to_string().as_str()].placed_at, winter);
    assert_eq!(
        source.time_zone().await.unwrap().as_deref(),
        Some("Australia/Melbourne")
    );
}

#[tokio::test]
async fn a_429_and_a_small_bucket_are_waited_out() {
    let token = "lsr-orders-429";
    let running = start(12, token).await;
    let sim = &running.sandbox.lightspeed_r;
    let base = Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0).unwrap();
    for i in 0..300 {
        sim.add_sale(plain_sale(1, base + chrono::Duration::seconds(i), 100));
    }
    // 5 drips draining 10 per second: the read's 4 sale pages, 4 refund look-ups and the shops
    // overflow it unless the client paces itself.
    sim.set_bucket(5.0, 10.0);
    running.sandbox.faults.push(
        Vendor::LightspeedR,
        Fault {
            kind: FaultKind::RateLimited {
                retry_after_secs: 1,
            },
            count: 1,
            path_contains: Some("/Sale.json".into()),
        },
    );
    let started = Instant::now();
    let pages = read(&source(&running, token), long_ago()).await.unwrap();
    assert_eq!(orders_count(&pages), 311);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured"
    );
    assert_eq!(sim.refused(), 0, "the bucket never overflowed");
    assert_eq!(sale_calls(&running), 4 + 1);
}

#[tokio::test]
async fn malformed_answers_are_errors_and_a_sale_without_a_total_is_passed_on() {
    let token = "lsr-orders-malformed";
    let running = start(12, token).await;
    let source = source(&running, token);
    running.sandbox.faults.push(
        Vendor::LightspeedR,
        Fault {
            kind: FaultKind::Malformed,
            count: 1,
            path_contains: Some("/Sale.json".into()),
        },
    );
    let error = read(&source, long_ago()).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::InvalidResponse);
    assert!(
        error
            .to_string()
            .starts_with("lightspeed-r GET /Sale.json:"),
        "{error}"
    );

    let raw = |body: &str| Fault {
        kind: FaultKind::Raw {
            status: 200,
            retry_after: None,
            content_type: Some("application/json".into()),
            body: body.to_string(),
            headers: Vec::new(),
        },
        count: 1,
        path_contains: Some("/Sale.json".into()),
    };
    // A timeStamp that is no time: the position cannot be kept, so the read fails.
    running.sandbox.faults.push(
        Vendor::LightspeedR,
        raw(r#"{"@attributes":{"next":""},"Sale":{"saleID":"70","timeStamp":"yesterday"}}"#),
    );
    let error = read(&source, long_ago()).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::InvalidResponse);
    assert!(error.to_string().contains("sale 70"), "{error}");
    // A quantity that is no number.
    running.sandbox.faults.push(
        Vendor::LightspeedR,
        raw(r#"{"@attributes":{"next":""},"Sale":{"saleID":"71","timeStamp":"2025-03-01T10:00:00-05:00",
            "completed":"true","SaleLines":{"SaleLine":{"saleLineID":"900","unitQuantity":"two","itemID":"1"}}}}"#),
    );
    let error = read(&source, long_ago()).await.unwrap_err();
    assert!(error.to_string().contains("unitQuantity"), "{error}");

    // No calcTotal and a line without an item: handed on with the gaps empty, for the core to
    // reject with a reason.
    running.sandbox.faults.push(
        Vendor::LightspeedR,
        raw(r#"{"@attributes":{"next":""},"Sale":{"saleID":"72","timeStamp":"2025-03-01T10:00:00-05:00",
            "completeTime":"2025-03-01T09:59:00-05:00","completed":"true","shopID":"1",
            "SaleLines":{"SaleLine":{"saleLineID":"901","unitQuantity":"1","unitPrice":"5.00","itemID":"0","calcTotal":"5.40"}}}}"#),
    );
    let pages = read(&source, long_ago()).await.unwrap();
    let orders = orders(&pages);
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0].order_id, "72");
    assert_eq!(orders[0].total, None);
    assert_eq!(orders[0].lines[0].product_id, "");
    assert_eq!(
        orders[0].placed_at,
        Utc.with_ymd_and_hms(2025, 3, 1, 14, 59, 0).unwrap()
    );
    assert_eq!(orders[0].shop_name, "Harbour Street");
}

#[tokio::test]
async fn unusable_checkpoints_and_currencies_are_refused() {
    let token = "lsr-orders-config";
    let running = start(2, token).await;
    let error = read(
        &source(&running, token),
        OrderScope::ChangedSince("last tuesday".into()),
    )
    .await
    .unwrap_err();
    assert_eq!(error.kind, ErrorKind::InvalidConfig);
    let error = source(&running, token)
        .with_currency("dollars")
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::InvalidConfig);
    let eur = source(&running, token).with_currency("eur").unwrap();
    let pages = read(&eur, long_ago()).await.unwrap();
    assert!(orders(&pages).iter().all(|o| o.currency == "EUR"));
    assert_eq!(
        orders_count(&pages),
        3,
        "sales 1 and 2 of the two people, the walk-in sale 11"
    );
}
