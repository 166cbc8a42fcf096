//! Contract tests of `LightspeedXSource` as an `OrderSource` against the X-Series simulator's sales.

use std::collections::{BTreeSet, HashMap};

use audience_connectors::lightspeed_x::LightspeedXSource;
use audience_core::order::{Decimal, Order, OrderStatus};
use audience_core::{ConnectorError, ErrorKind, OrderPage, OrderScope, OrderSource};
use audience_sandbox::lightspeed_x::{Sale, SaleLine};
use audience_sandbox::{Fault, FaultKind, RunningSandbox, Sandbox, SandboxOptions, Vendor};
use chrono::{TimeZone, Utc};
use futures::TryStreamExt;

async fn start(customers: usize, token: &str) -> RunningSandbox {
    let running = Sandbox::new(SandboxOptions {
        customers,
        seed: 42,
    })
    .serve("127.0.0.1:0".parse().unwrap())
    .await
    .expect("sandbox serves");
    running.sandbox.lightspeed_x.set_token(token);
    running
}

fn source(running: &RunningSandbox, token: &str) -> LightspeedXSource {
    LightspeedXSource::new("sandbox", token)
        .unwrap()
        .with_base_url(&format!(
            "{}/api/2.0",
            running.vendor_url(Vendor::LightspeedX)
        ))
        .unwrap()
}

fn long_ago() -> OrderScope {
    OrderScope::Since(Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap())
}

async fn read(
    source: &LightspeedXSource,
    scope: OrderScope,
) -> Result<Vec<OrderPage>, ConnectorError> {
    source.orders(scope).try_collect().await
}

fn all(pages: &[OrderPage]) -> Vec<&Order> {
    pages.iter().flat_map(|p| &p.orders).collect()
}

fn by_number(pages: &[OrderPage]) -> HashMap<String, &Order> {
    all(pages)
        .into_iter()
        .map(|o| (o.order_number.clone(), o))
        .collect()
}

fn cents(c: i64) -> Decimal {
    Decimal::new(c, 2)
}

fn sale_calls(running: &RunningSandbox) -> u64 {
    running
        .sandbox
        .stats
        .count(Vendor::LightspeedX, Some("GET"), "/sales")
}

#[tokio::test]
async fn the_demo_sales_become_orders_with_returns_and_exact_money() {
    let token = "lsx-orders-demo";
    let running = start(12, token).await;
    let sim = &running.sandbox.lightspeed_x;
    let source = source(&running, token);
    let pages = read(&source, long_ago()).await.unwrap();
    let orders = by_number(&pages);
    assert_eq!(
        all(&pages).len(),
        11,
        "the return is folded into its original"
    );
    let expected: BTreeSet<String> = (1001..=1011).map(|n| format!("QS-{n}")).collect();
    assert_eq!(orders.keys().cloned().collect::<BTreeSet<_>>(), expected);
    for sale in sim.sales().iter().filter(|s| s.return_for.is_none()) {
        let order = orders[&sale.invoice_number];
        assert_eq!(
            order.total,
            Some(cents(sale.total_price_cents() + sale.total_tax_cents())),
            "{}",
            sale.invoice_number
        );
        assert_eq!(order.currency, "NZD");
        assert_eq!(order.shop_name, "Queen Street");
        assert_eq!(order.placed_at, sale.sale_date);
        assert_eq!(order.lines.len(), sale.line_items.len());
    }
    let first = orders["QS-1001"];
    let customer = sim.customer(first.customer.customer_id.as_str()).unwrap();
    assert_eq!(Some(first.customer.email.clone()), customer.email);
    assert!(first.total_discounts > Decimal::ZERO);
    assert_eq!(first.lines[0].categories.len(), 1);
    assert!(!first.lines[0].name.is_empty());
    assert_eq!(orders["QS-1002"].total, Some(Decimal::ZERO));
    assert_eq!(orders["QS-1004"].fulfillments.len(), 1);
    assert_eq!(orders["QS-1005"].status, OrderStatus::Cancelled);
    assert_eq!(orders["QS-1011"].customer.email, "");
    let refunded = orders["QS-1003"];
    assert_eq!(refunded.refunds.len(), 1);
    let ret = sim
        .sales()
        .into_iter()
        .find(|s| s.invoice_number == "QS-1003-R")
        .unwrap();
    assert_eq!(refunded.refunds[0].refund_id, ret.id);
    assert_eq!(
        refunded.refunds[0].amount,
        cents(-(ret.total_price_cents() + ret.total_tax_cents()))
    );
    assert!(refunded.refunds[0].amount > Decimal::ZERO);
    assert_eq!(
        source.time_zone().await.unwrap().as_deref(),
        Some("Pacific/Auckland")
    );
}

#[tokio::test]
async fn incremental_reads_follow_the_version_and_a_later_return_brings_the_order_back() {
    let token = "lsx-orders-incremental";
    let running = start(12, token).await;
    let sim = &running.sandbox.lightspeed_x;
    let source = source(&running, token);
    let pages = read(&source, long_ago()).await.unwrap();
    let checkpoint = pages.last().unwrap().checkpoint.clone().unwrap();
    assert_eq!(checkpoint, sim.sales().last().unwrap().version.to_string());

    let before = running.sandbox.stats.total(Vendor::LightspeedX);
    let idle = read(&source, OrderScope::ChangedSince(checkpoint.clone()))
        .await
        .unwrap();
    assert!(idle.is_empty());
    assert_eq!(running.sandbox.stats.total(Vendor::LightspeedX) - before, 1);

    let original = sim
        .sales()
        .into_iter()
        .find(|s| s.invoice_number == "QS-1007")
        .unwrap();
    let ret = sim
        .return_line(&original.id, &original.line_items[0].id, 1)
        .unwrap();
    let changed = read(&source, OrderScope::ChangedSince(checkpoint))
        .await
        .unwrap();
    let orders = all(&changed);
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0].order_id, original.id);
    assert_eq!(orders[0].lines.len(), original.line_items.len());
    assert_eq!(orders[0].refunds.len(), 1);
    assert_eq!(orders[0].refunds[0].refund_id, ret);
    assert_eq!(
        orders[0].refunds[0].line_ids,
        vec![original.line_items[0].id.clone()]
    );
}

#[tokio::test]
async fn many_sales_page_by_version() {
    let token = "lsx-orders-paging";
    let running = start(12, token).await;
    let sim = &running.sandbox.lightspeed_x;
    let outlet = sim.sales()[0].outlet_id.clone();
    let product = sim.sales()[0].line_items[0].product_id.clone();
    for i in 0..250 {
        let at = Utc.with_ymd_and_hms(2025, 6, 1, 0, 0, 0).unwrap() + chrono::Duration::minutes(i);
        sim.add_sale(Sale {
            outlet_id: outlet.clone(),
            invoice_number: format!("BULK-{i}"),
            status: "CLOSED".into(),
            sale_date: at,
            created_at: at,
            updated_at: at,
            line_items: vec![SaleLine {
                product_id: product.clone(),
                quantity: 1,
                price_cents: 1000 + i,
                ..SaleLine::default()
            }],
            ..Sale::default()
        });
    }
    let source = source(&running, token).with_page_size(100);
    let pages = read(&source, long_ago()).await.unwrap();
    assert_eq!(all(&pages).len(), 261);
    assert_eq!(by_number(&pages).len(), 261);
    // 262 sales at 100 a page, and the empty page that ends the list.
    assert_eq!(sale_calls(&running), 3 + 1);
    let bulk = by_number(&pages)["BULK-7"];
    assert_eq!(bulk.total, Some(cents(1007)));
}

#[tokio::test]
async fn rate_limits_are_waited_out_and_malformed_answers_are_errors() {
    let token = "lsx-orders-faults";
    let running = start(12, token).await;
    let source = source(&running, token);
    running.sandbox.faults.push(
        Vendor::LightspeedX,
        Fault {
            kind: FaultKind::RateLimited {
                retry_after_secs: 1,
            },
            count: 1,
            path_contains: Some("/sales".into()),
        },
    );
    let pages = read(&source, long_ago()).await.unwrap();
    assert_eq!(all(&pages).len(), 11);
    // Retry-After is an HTTP date (whole seconds), so the wait itself may be under a second; what
    // shows it was waited out is one 429 and a complete read.
    let refused: u64 = running
        .sandbox
        .stats
        .snapshot()
        .into_iter()
        .filter(|(k, _)| k.vendor == Vendor::LightspeedX && k.status == 429)
        .map(|(_, n)| n)
        .sum();
    assert_eq!(refused, 1);

    running.sandbox.faults.push(
        Vendor::LightspeedX,
        Fault {
            kind: FaultKind::Malformed,
            count: 1,
            path_contains: Some("/sales".into()),
        },
    );
    let error = read(&source, long_ago()).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::InvalidResponse);
    assert!(
        error.to_string().starts_with("lightspeed-x GET /sales:"),
        "{error}"
    );

    // A sale without a total is handed on for the core to reject.
    running.sandbox.faults.push(
        Vendor::LightspeedX,
        Fault {
            kind: FaultKind::Raw {
                status: 200,
                retry_after: None,
                content_type: Some("application/json".into()),
                body: r#"{"data":[{"id":"s-1","status":"CLOSED","total_price":null,"total_tax":0.5,
                    "sale_date":"2025-01-15T10:30:00+13:00","updated_at":"2025-01-15T10:31:00+13:00","version":7,
                    "line_items":[{"id":"l-1","product_id":null,"quantity":1,"price":0.1,"discount":0}]}],
                    "version":{"min":7,"max":7}}"#
                    .into(),
                headers: Vec::new(),
            },
            count: 1,
            path_contains: Some("/sales".into()),
        },
    );
    let pages = read(&source, long_ago()).await.unwrap();
    let orders = all(&pages);
    assert_eq!(orders[0].order_id, "s-1");
    assert_eq!(orders[0].total, None);
    assert_eq!(orders[0].lines[0].product_id, "");
    assert_eq!(orders[0].lines[0].unit_price, Decimal::new(1, 1));
    assert_eq!(
        orders[0].placed_at,
        Utc.with_ymd_and_hms(2025, 1, 14, 21, 30, 0).unwrap()
    );

    let error = read(&source, OrderScope::ChangedSince("v7".into()))
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::InvalidConfig);
}
