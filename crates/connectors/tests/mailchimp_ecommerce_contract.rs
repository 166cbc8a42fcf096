//! Contract tests of `MailchimpOrderSink` against the Mailchimp simulator's e-commerce routes:
//! the store is created once and connected to the audience, history loads under `is_syncing`,
//! a re-run writes nothing, a refund after the fact patches only that order, nobody is
//! resubscribed, 429s are retried and hostile answers are errors, not panics.

mod mailchimp_support;

use audience_connectors::mailchimp::{MailchimpOrderConfig, MailchimpOrderSink};
use audience_core::order::{
    Decimal, Order, OrderCustomer, OrderFulfillment, OrderLine, OrderRefund,
};
use audience_core::{ApplyControl, ErrorKind, EventKinds, OrderSendOptions, OrderSink};
use audience_sandbox::mailchimp::MemberStatus as SimStatus;
use audience_sandbox::{Fault, FaultKind, Vendor};
use chrono::{DateTime, Duration, Utc};
use mailchimp_support::*;

const STORE: &str = "contract-store";

fn sink(env: &Env) -> MailchimpOrderSink {
    let mut config = MailchimpOrderConfig::new(&env.key, STORE, LIST).with_base_url(env.base_url());
    config.retry = fast_retry();
    config.domain = Some("shop.fjordmail.se".into());
    MailchimpOrderSink::new(config).unwrap()
}

fn order(i: usize, placed: DateTime<Utc>) -> Order {
    Order {
        source: "shopify".into(),
        order_id: format!("gid://shopify/Order/{}", 1000 + i),
        order_number: format!("#{}", 1000 + i),
        customer: OrderCustomer {
            customer_id: format!("gid://shopify/Customer/{}", i % 3),
            email: format!("buyer{}@shop-mail.io", i % 3),
            first_name: format!("First{}", i % 3),
            last_name: "Buyer".into(),
            city: "Boston".into(),
            country: "US".into(),
            ..OrderCustomer::default()
        },
        currency: "USD".into(),
        total: Some(Decimal::new(4000, 2)),
        total_discounts: Decimal::new(500, 2),
        discount_codes: if i == 0 {
            vec!["SPRING".into()]
        } else {
            vec![]
        },
        lines: vec![
            OrderLine {
                line_id: "gid://shopify/LineItem/1".into(),
                product_id: "gid://shopify/Product/7".into(),
                variant_id: "gid://shopify/ProductVariant/71".into(),
                name: "Mug".into(),
                quantity: Decimal::new(2, 0),
                unit_price: Decimal::new(1000, 2),
                ..OrderLine::default()
            },
            OrderLine {
                line_id: "gid://shopify/LineItem/2".into(),
                product_id: format!("gid://shopify/Product/{}", 8 + i % 2),
                name: "Plate".into(),
                quantity: Decimal::ONE,
                unit_price: Decimal::new(2000, 2),
                ..OrderLine::default()
            },
        ],
        placed_at: placed,
        updated_at: placed,
        ..Order::default()
    }
}

/// Four orders placed a month ago (history for a `live_from` of an hour ago).
fn month_old_orders() -> Vec<Order> {
    (0..4)
        .map(|i| order(i, now() - Duration::days(30)))
        .collect()
}

fn options(live_from: DateTime<Utc>) -> OrderSendOptions {
    OrderSendOptions {
        kinds: EventKinds::all(),
        live_from: Some(live_from),
    }
}

fn now() -> DateTime<Utc> {
    Utc::now()
}

#[tokio::test]
async fn a_backfill_creates_the_store_under_is_syncing_and_a_rerun_writes_nothing() {
    let env = Env::start().await;
    let live_from = now() - Duration::hours(1);
    let history = month_old_orders();
    let sink = sink(&env);
    let control = ApplyControl::default();
    let report = sink
        .send_orders(&history, &options(live_from), &control)
        .await
        .unwrap();
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    assert_eq!(report.orders_created, 4);
    assert_eq!(report.lines_created, 8);
    assert_eq!(sink.finish().await.unwrap(), 1);
    let sim = env.sim();
    assert_eq!(sim.store_list_id(STORE).as_deref(), Some(LIST));
    assert_eq!(sim.store_syncing_history(STORE), [true, false]);
    let orders = sim.ecommerce_orders(STORE);
    assert_eq!(
        orders.iter().map(|o| o.id.as_str()).collect::<Vec<_>>(),
        ["1000", "1001", "1002", "1003"]
    );
    assert_eq!(orders[0].financial_status, "paid");
    assert_eq!(orders[0].promo_codes, ["SPRING"]);
    assert_eq!(orders[0].lines[0], ("1".into(), "7".into(), "71".into(), 2));
    assert_eq!(
        sim.ecommerce_products(STORE),
        [
            ("7".to_string(), vec!["71".to_string()]),
            ("8".to_string(), vec!["8".to_string()]),
            ("9".to_string(), vec!["9".to_string()]),
        ]
    );
    assert_eq!(sim.ecommerce_customers(STORE).len(), 3);
    assert_eq!(
        sim.ecommerce_promo_codes(STORE),
        [("SPRING".to_string(), vec!["SPRING".to_string()])]
    );
    // Each product created once, each order once, store once, two is_syncing flips at most.
    let writes = sim.ecommerce_writes();
    assert_eq!(
        writes,
        1 + 3 + 2 + 4 + 1,
        "{:?}",
        sim.ecommerce_writes_by_route()
    );

    // A new sink (the next run) with the same orders reads and writes nothing.
    let again = self::sink(&env);
    let report = again
        .send_orders(&history, &options(live_from), &control)
        .await
        .unwrap();
    assert_eq!(report.unchanged, 4);
    assert_eq!(report.write_calls, 0);
    assert_eq!(again.finish().await.unwrap(), 0);
    assert_eq!(sim.ecommerce_writes(), writes);
    assert_eq!(sim.store_syncing_history(STORE), [true, false]);
}

#[tokio::test]
async fn a_refund_and_a_shipment_after_the_fact_patch_only_that_order() {
    let env = Env::start().await;
    let live_from = now() - Duration::days(60);
    let mut orders: Vec<Order> = (0..3)
        .map(|i| order(i, now() - Duration::days(2)))
        .collect();
    let control = ApplyControl::default();
    sink(&env)
        .send_orders(&orders, &options(live_from), &control)
        .await
        .unwrap();
    assert_eq!(
        env.sim().store_syncing_history(STORE),
        [false],
        "live: no sync flag"
    );
    let before = env.sim().ecommerce_writes();
    orders[1].refunds.push(OrderRefund {
        refund_id: "r1".into(),
        refunded_at: now(),
        amount: Decimal::new(4000, 2),
        line_ids: vec![],
    });
    orders[2].fulfillments.push(OrderFulfillment {
        fulfillment_id: "f1".into(),
        fulfilled_at: now(),
        line_ids: vec![],
    });
    orders[1].updated_at = now();
    orders[2].updated_at = now();
    let report = sink(&env)
        .send_orders(&orders, &options(live_from), &control)
        .await
        .unwrap();
    assert_eq!((report.refunds, report.fulfillments), (1, 1));
    assert_eq!(report.unchanged, 1);
    assert_eq!(report.write_calls, 2);
    assert_eq!(env.sim().ecommerce_writes(), before + 2);
    let by_route = env.sim().ecommerce_writes_by_route();
    assert_eq!(
        by_route["PATCH /3.0/ecommerce/stores/{store_id}/orders/{order_id}"],
        2
    );
    let stored = env.sim().ecommerce_orders(STORE);
    assert_eq!(stored[0].financial_status, "paid");
    assert_eq!(stored[1].financial_status, "refunded");
    assert_eq!(stored[2].fulfillment_status, "shipped");
    // With refunds not wanted, the refund is not sent.
    orders[0].refunds.push(OrderRefund {
        refund_id: "r2".into(),
        refunded_at: now(),
        amount: Decimal::new(100, 2),
        line_ids: vec![],
    });
    let mut no_refunds = options(live_from);
    no_refunds.kinds.refunded_order = false;
    no_refunds.kinds.fulfilled_order = true;
    let report = sink(&env)
        .send_orders(&orders[..1], &no_refunds, &control)
        .await
        .unwrap();
    assert_eq!(report.write_calls, 0);
}

#[tokio::test]
async fn a_purchase_never_resubscribes_and_subscribes_only_new_buyers_who_opted_in() {
    let env = Env::start().await;
    env.sim()
        .insert_member(LIST, "buyer0@shop-mail.io", SimStatus::Unsubscribed);
    env.sim()
        .insert_member(LIST, "buyer1@shop-mail.io", SimStatus::Cleaned);
    let mut orders: Vec<Order> = (0..4).map(|i| order(i, now())).collect();
    // The two known ones opted in at the shop since: still never resubscribed.
    orders[0].customer.accepts_marketing = true;
    orders[1].customer.accepts_marketing = true;
    // Two new buyers: one opted in at checkout, one did not.
    orders[3].customer.email = "buyer3@shop-mail.io".into();
    orders[3].customer.customer_id = "gid://shopify/Customer/3".into();
    orders[3].customer.accepts_marketing = true;
    sink(&env)
        .send_orders(
            &orders,
            &options(now() - Duration::days(1)),
            &ApplyControl::default(),
        )
        .await
        .unwrap();
    let status = |e: &str| env.sim().member(LIST, e).unwrap().status;
    assert_eq!(status("buyer0@shop-mail.io"), SimStatus::Unsubscribed);
    assert_eq!(status("buyer1@shop-mail.io"), SimStatus::Cleaned);
    assert_eq!(status("buyer2@shop-mail.io"), SimStatus::Transactional);
    assert_eq!(status("buyer3@shop-mail.io"), SimStatus::Subscribed);
}

#[tokio::test]
async fn a_store_on_another_audience_is_a_clear_error() {
    let env = Env::start().await;
    env.sim().create_list("other", "Other");
    let mut config =
        MailchimpOrderConfig::new(&env.key, STORE, "other").with_base_url(env.base_url());
    config.retry = fast_retry();
    MailchimpOrderSink::new(config)
        .unwrap()
        .send_orders(
            &[order(0, now())],
            &options(now()),
            &ApplyControl::default(),
        )
        .await
        .unwrap();
    let err = sink(&env)
        .send_orders(
            &[order(1, now())],
            &options(now()),
            &ApplyControl::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidConfig);
    assert!(
        err.message.contains("other") && err.message.contains(LIST),
        "{err}"
    );
    assert_eq!(env.sim().ecommerce_orders(STORE).len(), 1);
}

#[tokio::test]
async fn malformed_and_skipped_orders_send_nothing() {
    let env = Env::start().await;
    let mut half = order(0, now());
    half.lines[1].quantity = Decimal::new(15, 1);
    let mut zero = order(1, now());
    zero.total = Some(Decimal::ZERO);
    let mut anonymous = order(2, now());
    anonymous.customer.email.clear();
    let report = sink(&env)
        .send_orders(
            &[zero, anonymous],
            &options(now()),
            &ApplyControl::default(),
        )
        .await
        .unwrap();
    assert_eq!(report, Default::default());
    assert_eq!(
        env.sandbox.sandbox.stats.total(Vendor::Mailchimp),
        0,
        "no call at all"
    );
    let report = sink(&env)
        .send_orders(&[half], &options(now()), &ApplyControl::default())
        .await
        .unwrap();
    assert_eq!(report.rejected.len(), 1);
    assert!(
        report.rejected[0].reason.contains("whole"),
        "{:?}",
        report.rejected
    );
    assert!(env.sim().ecommerce_orders(STORE).is_empty());
    assert!(
        env.sim().ecommerce_products(STORE).is_empty(),
        "never half sent"
    );
}

#[tokio::test]
async fn rate_limits_are_retried() {
    let env = Env::start().await;
    env.sandbox.sandbox.faults.push(
        Vendor::Mailchimp,
        Fault {
            kind: FaultKind::RateLimited {
                retry_after_secs: 0,
            },
            count: 6,
            path_contains: Some("/ecommerce/".into()),
        },
    );
    let orders: Vec<Order> = (0..5).map(|i| order(i, now())).collect();
    let report = sink(&env)
        .send_orders(
            &orders,
            &options(now() - Duration::days(1)),
            &ApplyControl::default(),
        )
        .await
        .unwrap();
    assert_eq!(report.orders_created, 5);
    assert_eq!(env.sim().ecommerce_orders(STORE).len(), 5);
    assert!(env.calls_with_status(429) >= 6);
}

#[tokio::test]
async fn hostile_answers_are_errors_not_panics() {
    let env = Env::start().await;
    let control = ApplyControl::default();
    sink(&env)
        .send_orders(&[order(0, now())], &options(now()), &control)
        .await
        .unwrap();
    for kind in [
        FaultKind::Malformed,
        FaultKind::Raw {
            status: 200,
            retry_after: None,
            content_type: Some("application/json".into()),
            body: r#"{"id": "contract-store", "list_id": 42}"#.into(),
            headers: vec![],
        },
        FaultKind::Huge { bytes: 40 << 20 },
        FaultKind::EchoCredential,
    ] {
        env.sandbox.sandbox.faults.push(
            Vendor::Mailchimp,
            Fault {
                kind: kind.clone(),
                count: 1,
                path_contains: Some("/ecommerce/stores/".into()),
            },
        );
        let err = sink(&env)
            .send_orders(&[order(1, now())], &options(now()), &control)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err.kind,
                ErrorKind::InvalidResponse | ErrorKind::Rejected | ErrorKind::Transport
            ),
            "{kind:?}: {err}"
        );
        let secret = env.key.split('-').next().unwrap();
        assert!(!err.to_string().contains(secret), "key leaked: {err}");
        env.sandbox.sandbox.faults.clear();
    }
}

#[tokio::test]
async fn a_code_mailchimp_cannot_hold_does_not_stop_the_order() {
    let env = Env::start().await;
    let mut long = order(0, now());
    long.discount_codes = vec!["X".repeat(51)];
    let report = sink(&env)
        .send_orders(&[long], &options(now()), &ApplyControl::default())
        .await
        .unwrap();
    assert_eq!(report.orders_created, 1);
    assert!(env.sim().ecommerce_promo_codes(STORE).is_empty());
    assert_eq!(
        env.sim().ecommerce_orders(STORE)[0].promo_codes,
        ["X".repeat(51)]
    );
}

#[tokio::test]
async fn a_run_that_died_during_the_backfill_leaves_no_store_paused() {
    let env = Env::start().await;
    let live_from = now() - Duration::hours(1);
    let control = ApplyControl::default();
    // The first run loads history and dies before finishing: the store stays is_syncing.
    let crashed = sink(&env);
    crashed
        .send_orders(
            &[order(0, now() - Duration::days(9))],
            &options(live_from),
            &control,
        )
        .await
        .unwrap();
    drop(crashed);
    assert_eq!(env.sim().store_is_syncing(STORE), Some(true));
    // The next run has only live orders: automations are resumed before they are sent.
    let next = sink(&env);
    next.send_orders(&[order(1, now())], &options(live_from), &control)
        .await
        .unwrap();
    assert_eq!(env.sim().store_is_syncing(STORE), Some(false));
    assert_eq!(env.sim().store_syncing_history(STORE), [true, false]);
    // Even a run with nothing to write puts it back when it finds the store paused.
    let crashed = sink(&env);
    crashed
        .send_orders(
            &[order(2, now() - Duration::days(9))],
            &options(live_from),
            &control,
        )
        .await
        .unwrap();
    drop(crashed);
    let idle = sink(&env);
    idle.send_orders(
        &[order(2, now() - Duration::days(9))],
        &options(live_from),
        &control,
    )
    .await
    .unwrap();
    assert_eq!(idle.finish().await.unwrap(), 1);
    assert_eq!(env.sim().store_is_syncing(STORE), Some(false));
}

#[tokio::test]
async fn no_more_than_ten_connections_at_once() {
    let env = Env::start().await;
    env.sandbox
        .sandbox
        .faults
        .set_latency(Vendor::Mailchimp, std::time::Duration::from_millis(20));
    let mut config = MailchimpOrderConfig::new(&env.key, STORE, LIST).with_base_url(env.base_url());
    config.retry = fast_retry();
    config.concurrency = 50;
    let sink = MailchimpOrderSink::new(config).unwrap();
    let orders: Vec<Order> = (0..40).map(|i| order(i, now())).collect();
    let report = sink
        .send_orders(
            &orders,
            &options(now() - Duration::days(1)),
            &ApplyControl::default(),
        )
        .await
        .unwrap();
    assert_eq!(report.orders_created, 40);
    let seen = env.sim().max_concurrent_seen(&env.key);
    assert!((2..=10).contains(&seen), "{seen} at once");
    assert_eq!(
        env.calls_with_status(429),
        0,
        "the key budget keeps under the limit"
    );
}

/// The operator keeps a sync's sink between runs (`reset_run_state` between them): within a run the
/// store is read once, and a new run makes sure of it again (a store created by the last run is not
/// "fresh" any more, and whatever a person changed in between is read).
#[tokio::test]
async fn a_kept_sink_makes_sure_of_the_store_again_each_run() {
    const STORE_ROUTE: &str = "/3.0/ecommerce/stores/{store_id}";
    let env = Env::start().await;
    let live_from = now() - Duration::hours(1);
    let history = month_old_orders();
    let sink = sink(&env);
    let control = ApplyControl::default();
    sink.send_orders(&history, &options(live_from), &control)
        .await
        .unwrap();
    sink.finish().await.unwrap();
    let writes = env.sim().ecommerce_writes();

    // More pages of the same run: the store is known.
    env.clear_stats();
    sink.send_orders(&history, &options(live_from), &control)
        .await
        .unwrap();
    assert_eq!(env.calls("GET", STORE_ROUTE), 0);

    sink.reset_run_state().await;
    env.clear_stats();
    let report = sink
        .send_orders(&history, &options(live_from), &control)
        .await
        .unwrap();
    assert_eq!(
        env.calls("GET", STORE_ROUTE),
        1,
        "the new run reads the store"
    );
    assert_eq!(report.unchanged, 4);
    assert_eq!(report.write_calls, 0);
    sink.finish().await.unwrap();
    assert_eq!(env.sim().ecommerce_writes(), writes);
}
