//! Contract tests of `ShopifySource` as an `OrderSource` against the Shopify simulator's orders.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use audience_connectors::http::RetryPolicy;
use audience_connectors::shopify::{ORDERS_PER_PAGE, ShopifyConfig, ShopifySource};
use audience_core::order::{Decimal, Order, OrderStatus};
use audience_core::{ConnectorError, ErrorKind, OrderPage, OrderScope, OrderSource};
use audience_sandbox::shopify::{Order as ShopOrder, OrderLine as ShopLine};
use audience_sandbox::{Fault, FaultKind, RunningSandbox, Sandbox, SandboxOptions, Vendor};
use chrono::{TimeZone, Utc};
use futures::TryStreamExt;

fn unique_token() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "shpat_orders_{}_{}",
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
    let token = unique_token();
    sandbox.sandbox.shopify.set_access_token(&token);
    (sandbox, token)
}

fn source(sandbox: &RunningSandbox, token: &str) -> ShopifySource {
    let mut config = ShopifyConfig::with_base_url(sandbox.vendor_url(Vendor::Shopify), token);
    config.retry = RetryPolicy {
        max_retries: 4,
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(200),
        timeout: Duration::from_secs(10),
    };
    ShopifySource::new(config).unwrap()
}

fn long_ago() -> OrderScope {
    OrderScope::Since(Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap())
}

async fn read(source: &ShopifySource, scope: OrderScope) -> Result<Vec<OrderPage>, ConnectorError> {
    source.orders(scope).try_collect().await
}

fn all(pages: &[OrderPage]) -> Vec<&Order> {
    pages.iter().flat_map(|p| &p.orders).collect()
}

fn by_id(pages: &[OrderPage]) -> HashMap<String, &Order> {
    all(pages)
        .into_iter()
        .map(|o| (o.order_id.clone(), o))
        .collect()
}

fn gid(id: u64) -> String {
    format!("gid://shopify/Order/{id}")
}

fn cents(c: i64) -> Decimal {
    Decimal::new(c, 2)
}

fn root_calls(sandbox: &RunningSandbox, field: &str) -> u64 {
    sandbox
        .sandbox
        .shopify
        .counters()
        .root_fields
        .get(field)
        .copied()
        .unwrap_or(0)
}

fn last_checkpoint(pages: &[OrderPage]) -> String {
    pages.last().unwrap().checkpoint.clone().unwrap()
}

#[tokio::test]
async fn the_demo_orders_are_read_whole_with_refunds_fulfilments_and_discounts() {
    let (sandbox, token) = start(12).await;
    let shop = &sandbox.sandbox.shopify;
    let source = source(&sandbox, &token);
    let pages = read(&source, long_ago()).await.unwrap();
    let orders = by_id(&pages);
    assert_eq!(all(&pages).len(), 11, "each order once");
    let expected: BTreeSet<String> = (5_100_001..=5_100_010)
        .chain([5_100_011])
        .map(gid)
        .collect();
    assert_eq!(orders.keys().cloned().collect::<BTreeSet<_>>(), expected);

    let mut opted_in = 0;
    for sim in shop.orders() {
        let order = orders[&sim.gid()];
        assert_eq!(order.source, "shopify");
        assert_eq!(order.total, Some(cents(sim.total_cents())), "{}", sim.gid());
        assert_eq!(order.currency, "USD");
        assert_eq!(order.order_number, format!("#{}", sim.number));
        assert_eq!(order.placed_at, sim.processed_at);
        assert_eq!(order.updated_at, sim.updated_at);
        assert_eq!(order.lines.len(), sim.lines.len());
        assert_eq!(order.shop_name, "Sandbox Outfitters");
        assert_eq!(order.customer.email, sim.email.clone().unwrap_or_default());
        // The buyer's email opt-in as the shop holds it, for Mailchimp's `opt_in_status`.
        let subscribed = sim
            .customer_id
            .and_then(|id| shop.customer(id))
            .is_some_and(|c| c.marketing_state == "SUBSCRIBED");
        assert_eq!(
            order.customer.accepts_marketing,
            subscribed,
            "{}",
            sim.gid()
        );
        opted_in += usize::from(subscribed);
    }
    assert!(opted_in > 0, "the demo has buyers who opted in");
    let first = orders[&gid(5_100_001)];
    assert_eq!(first.discount_codes, vec!["WELCOME10".to_string()]);
    assert!(first.total_discounts > Decimal::ZERO);
    let line = &first.lines[0];
    assert_eq!(line.name, "Harbour Hoodie");
    assert_eq!(line.categories, vec!["Hoodies".to_string()]);
    assert_eq!(
        line.collections,
        vec!["Winter".to_string(), "Bestsellers".to_string()]
    );
    assert_eq!(line.product_id, "gid://shopify/Product/8000001");
    assert_eq!(line.variant_id, "gid://shopify/ProductVariant/9000001");
    assert_eq!(line.sku, "SBX-001");
    assert_eq!(line.unit_price, cents(5850), "10 % off 65.00");
    assert_eq!(line.discount, cents(650));
    let customer = shop.customer(shop.customer_ids()[0]).unwrap();
    assert_eq!(first.customer.email, customer.email.clone().unwrap());
    assert_eq!(
        first.customer.first_name,
        customer.first_name.clone().unwrap()
    );
    assert_eq!(
        first.customer.city,
        customer
            .default_address
            .as_ref()
            .unwrap()
            .city
            .clone()
            .unwrap()
    );
    assert_eq!(orders[&gid(5_100_002)].total, Some(Decimal::ZERO));
    let refunded = orders[&gid(5_100_003)];
    assert_eq!(refunded.refunds.len(), 1);
    let sim3 = shop.order(5_100_003).unwrap();
    assert_eq!(
        refunded.refunds[0].amount,
        cents(sim3.refunds[0].amount_cents)
    );
    assert_eq!(
        refunded.refunds[0].line_ids,
        vec![format!("gid://shopify/LineItem/{}", sim3.lines[0].id)]
    );
    assert_eq!(refunded.refunds[0].refunded_at, sim3.refunds[0].created_at);
    assert_eq!(orders[&gid(5_100_004)].fulfillments.len(), 1);
    assert_eq!(
        orders[&gid(5_100_004)].fulfillments[0].line_ids.len(),
        shop.order(5_100_004).unwrap().lines.len()
    );
    assert_eq!(orders[&gid(5_100_005)].status, OrderStatus::Cancelled);
    let guest = orders[&gid(5_100_011)];
    assert_eq!(guest.customer.email, "");
    assert_eq!(guest.customer.customer_id, "");
    assert_eq!(guest.fulfillments.len(), 1);
    assert_eq!(
        all(&pages)
            .iter()
            .filter(|o| o.status == OrderStatus::Completed)
            .count(),
        10
    );
    assert_eq!(
        source.time_zone().await.unwrap().as_deref(),
        Some("America/New_York")
    );
}

fn plain_order(created_minute: i64, lines: usize) -> ShopOrder {
    let created = Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0).unwrap()
        + chrono::Duration::seconds(created_minute * 20);
    ShopOrder {
        email: Some(format!("buyer{created_minute}@example.com")),
        created_at: created,
        processed_at: created,
        updated_at: created,
        lines: (0..lines)
            .map(|n| ShopLine {
                product_id: 8_000_001 + (n as u64 % 4),
                quantity: 1,
                original_unit_cents: 1000 + n as i64,
                discounted_unit_cents: 1000 + n as i64,
                ..ShopLine::default()
            })
            .collect(),
        ..ShopOrder::default()
    }
}

#[tokio::test]
async fn many_orders_are_read_page_by_page_within_the_cost_limit() {
    let (sandbox, token) = start(12).await;
    let shop = &sandbox.sandbox.shopify;
    shop.set_bucket(20_000.0, 1000.0);
    for i in 0..40 {
        shop.add_order(plain_order(i, 2));
    }
    let pages = read(&source(&sandbox, &token), long_ago()).await.unwrap();
    assert_eq!(all(&pages).len(), 51);
    assert_eq!(by_id(&pages).len(), 51, "no order twice");
    let expected_calls = 51_u64.div_ceil(u64::from(ORDERS_PER_PAGE));
    assert_eq!(root_calls(&sandbox, "orders"), expected_calls);
    assert_eq!(root_calls(&sandbox, "shop"), 1);
    assert!(pages.iter().all(|p| p.checkpoint.is_some()));
    let stamps: Vec<_> = all(&pages).iter().map(|o| o.updated_at).collect();
    assert!(
        stamps.windows(2).all(|w| w[0] <= w[1]),
        "oldest change first"
    );

    // Resuming after the first page reads exactly the rest.
    let rest = read(
        &source(&sandbox, &token),
        OrderScope::ChangedSince(pages[0].checkpoint.clone().unwrap()),
    )
    .await
    .unwrap();
    let first: BTreeSet<_> = pages[0].orders.iter().map(|o| o.order_id.clone()).collect();
    let rest: BTreeSet<_> = all(&rest).iter().map(|o| o.order_id.clone()).collect();
    assert!(first.is_disjoint(&rest));
    assert_eq!(first.len() + rest.len(), 51);
}

#[tokio::test]
async fn an_incremental_read_brings_back_only_refunded_and_fulfilled_orders_whole() {
    let (sandbox, token) = start(12).await;
    let shop = &sandbox.sandbox.shopify;
    let source = source(&sandbox, &token);
    let pages = read(&source, long_ago()).await.unwrap();
    let checkpoint = last_checkpoint(&pages);

    let calls = root_calls(&sandbox, "orders");
    let idle = read(&source, OrderScope::ChangedSince(checkpoint.clone()))
        .await
        .unwrap();
    assert!(idle.is_empty());
    assert_eq!(
        root_calls(&sandbox, "orders") - calls,
        1,
        "one call when idle"
    );
    assert_eq!(root_calls(&sandbox, "shop"), 1, "no shop look-up when idle");

    let sim3 = shop.order(5_100_003).unwrap();
    let refund = shop
        .refund_order_line(5_100_003, sim3.lines[1].id, 1)
        .unwrap();
    let fulfilment = shop.fulfill_order(5_100_006).unwrap();
    let changed = read(&source, OrderScope::ChangedSince(checkpoint))
        .await
        .unwrap();
    let orders = by_id(&changed);
    assert_eq!(
        orders.keys().cloned().collect::<BTreeSet<_>>(),
        BTreeSet::from([gid(5_100_003), gid(5_100_006)])
    );
    let refunded = orders[&gid(5_100_003)];
    let refund_ids: Vec<&str> = refunded
        .refunds
        .iter()
        .map(|r| r.refund_id.as_str())
        .collect();
    let new_refund = format!("gid://shopify/Refund/{refund}");
    assert_eq!(
        refund_ids,
        vec!["gid://shopify/Refund/900001", new_refund.as_str()]
    );
    assert_eq!(refunded.lines.len(), sim3.lines.len(), "read whole");
    let fulfilled = orders[&gid(5_100_006)];
    assert_eq!(
        fulfilled.fulfillments[0].fulfillment_id,
        format!("gid://shopify/Fulfillment/{fulfilment}")
    );

    // Both changes are within the last minute: the next read looks back over it and still hands
    // nothing out twice.
    let again = read(&source, OrderScope::ChangedSince(last_checkpoint(&changed)))
        .await
        .unwrap();
    assert!(again.is_empty());
}

#[tokio::test]
async fn large_orders_are_completed_with_follow_up_queries() {
    let (sandbox, token) = start(0).await;
    let shop = &sandbox.sandbox.shopify;
    shop.set_bucket(20_000.0, 1000.0);
    let big_id = shop.add_order(plain_order(1, 145));
    let many_refunds = shop.add_order(plain_order(2, 3));
    let line = shop.order(many_refunds).unwrap().lines[0].id;
    for _ in 0..7 {
        shop.refund_order_line(many_refunds, line, 1).unwrap();
    }
    let pages = read(&source(&sandbox, &token), long_ago()).await.unwrap();
    let orders = by_id(&pages);
    let big = orders[&gid(big_id)];
    assert_eq!(big.lines.len(), 145);
    let line_ids: BTreeSet<_> = big.lines.iter().map(|l| l.line_id.clone()).collect();
    assert_eq!(line_ids.len(), 145, "no line twice");
    assert_eq!(
        big.total,
        Some(cents(shop.order(big_id).unwrap().total_cents()))
    );
    assert_eq!(orders[&gid(many_refunds)].refunds.len(), 7);
    // 20 lines with the page, then 100 and 25 in two follow-ups; one follow-up for the refunds.
    assert_eq!(root_calls(&sandbox, "order"), 3);
}

#[tokio::test]
async fn a_small_bucket_and_an_injected_throttle_are_waited_out() {
    let (sandbox, token) = start(12).await;
    let shop = &sandbox.sandbox.shopify;
    for i in 0..12 {
        shop.add_order(plain_order(i, 1));
    }
    // A page costs ~800 points requested: a bucket of 1000 restoring 400/s holds one at a time.
    shop.set_bucket(1000.0, 400.0);
    sandbox.sandbox.faults.push(
        Vendor::Shopify,
        Fault {
            kind: FaultKind::RateLimited {
                retry_after_secs: 1,
            },
            count: 1,
            path_contains: Some("/graphql.json".into()),
        },
    );
    let pages = read(&source(&sandbox, &token), long_ago()).await.unwrap();
    assert_eq!(all(&pages).len(), 23);
    let counters = shop.counters();
    assert!(counters.min_available >= 0.0);
    assert_eq!(
        counters.throttled, 0,
        "the client waits for the bucket instead of being throttled: {counters:?}"
    );
}

#[tokio::test]
async fn malformed_answers_are_errors_and_an_order_without_a_total_is_passed_on() {
    let (sandbox, token) = start(2).await;
    let source = source(&sandbox, &token);
    sandbox.sandbox.faults.push(
        Vendor::Shopify,
        Fault {
            kind: FaultKind::Malformed,
            count: 1,
            path_contains: Some("/graphql.json".into()),
        },
    );
    let error = read(&source, long_ago()).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::InvalidResponse);
    assert!(error.to_string().contains("(orders)"), "{error}");

    let raw = |body: &str| Fault {
        kind: FaultKind::Raw {
            status: 200,
            retry_after: None,
            content_type: Some("application/json".into()),
            body: body.to_string(),
            headers: Vec::new(),
        },
        count: 1,
        path_contains: Some("/graphql.json".into()),
    };
    sandbox.sandbox.faults.push(
        Vendor::Shopify,
        raw(r#"{"data":{"orders":{"nodes":[{"id":"gid://shopify/Order/1","updatedAt":"soon"}],"pageInfo":{"hasNextPage":false,"endCursor":null}}}}"#),
    );
    let error = read(&source, long_ago()).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::InvalidResponse);
    assert!(error.to_string().contains("updatedAt"), "{error}");

    // No totalPriceSet, a line without a product, and times with an offset: handed on with the
    // gaps empty for the core to reject, times in UTC.
    sandbox.sandbox.faults.push(
        Vendor::Shopify,
        raw(r##"{"data":{"orders":{"nodes":[{"id":"gid://shopify/Order/2","name":"#9","email":"a@b.co",
            "createdAt":"2025-01-15T10:30:00-05:00","processedAt":"2025-01-15T10:30:00-05:00",
            "updatedAt":"2025-01-15T10:31:00-05:00","cancelledAt":null,"currencyCode":"USD",
            "displayFinancialStatus":"PAID","discountCodes":[],"totalPriceSet":null,"totalDiscountsSet":null,
            "customer":null,"lineItems":{"nodes":[{"id":"gid://shopify/LineItem/3","sku":null,"title":"Custom",
            "quantity":1,"originalUnitPriceSet":{"shopMoney":{"amount":"5.0"}},
            "discountedUnitPriceSet":{"shopMoney":{"amount":"5.0"}},"totalDiscountSet":{"shopMoney":{"amount":"0.0"}},
            "variant":null,"product":null}],"pageInfo":{"hasNextPage":false,"endCursor":null}},
            "refunds":[],"fulfillments":[]}],"pageInfo":{"hasNextPage":false,"endCursor":null}}}}"##),
    );
    let pages = read(&source, long_ago()).await.unwrap();
    let orders = all(&pages);
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0].total, None);
    assert_eq!(orders[0].lines[0].product_id, "");
    assert_eq!(orders[0].customer.email, "a@b.co");
    assert_eq!(
        orders[0].placed_at,
        Utc.with_ymd_and_hms(2025, 1, 15, 15, 30, 0).unwrap()
    );

    let error = read(&source, OrderScope::ChangedSince("not a checkpoint".into()))
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::InvalidConfig);
}
