//! OrderSync on a real API server: Lightspeed R-Series sales (the sandbox's seeded demo sales)
//! into Klaviyo metrics, the seed 003 flow. The history import is marked as backfill (no flows),
//! a second run sends nothing, a refund made later gives exactly one live Refunded Order, and the
//! shop's and Klaviyo's time zones are compared in a status condition. And
//! `examples/shopify-orders-to-mailchimp.yaml` as written: Shopify's seeded demo orders into a
//! Mailchimp e-commerce store, history under `is_syncing`, a second run writing nothing.

mod operator_support;

use std::path::Path;

use audience_operator::crd::OrderSync;
use audience_sandbox::lightspeed_r::{DEMO_ACCOUNT_ID, DEMO_TOKEN};
use audience_sandbox::shopify::DEMO_ORDERS;
use audience_sandbox::{Sandbox, SandboxOptions, Vendor};
use audience_testenv::TestEnv;
use operator_support::*;
use serde_json::json;

/// The usual harness, but with 12 demo people, so each source seeds its demo sales.
async fn harness_with_sales(prefix: &str) -> Harness {
    init_logging();
    let env = TestEnv::shared().await;
    env.apply_crds_from_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("crds"))
        .await
        .expect("applying crds/");
    let ns = env.namespace(prefix).await;
    let sandbox = Sandbox::new(SandboxOptions {
        customers: 12,
        ..Default::default()
    })
    .serve("127.0.0.1:0".parse().unwrap())
    .await
    .expect("serving the sandbox");
    let mut h = Harness {
        client: env.client(),
        ns,
        sandbox,
        operator: None,
    };
    h.start_operator().await;
    h
}

fn order_sync(name: &str) -> serde_json::Value {
    json!({
        "apiVersion": "sync.audience-operator.io/v1alpha1",
        "kind": "OrderSync",
        "metadata": {"name": name},
        "spec": {
            "source": {"lightspeedRSeries": {"accountId": DEMO_ACCOUNT_ID, "credentialsSecretRef": {"name": "lightspeed-r"}}},
            "target": {"klaviyo": {"credentialsSecretRef": {"name": "klaviyo"}}},
            "backfill": {"since": "2020-01-01"},
            "schedule": {"interval": "1h"}
        }
    })
}

#[tokio::test]
async fn lightspeed_r_sales_become_klaviyo_events_once_history_as_backfill_and_a_later_refund_once()
{
    let h = harness_with_sales("op-orders").await;
    h.secret("lightspeed-r", &[("token", DEMO_TOKEN)]).await;
    h.secret("klaviyo", &[("apiKey", &h.klaviyo_key())]).await;
    let kl = h.klaviyo();
    kl.set_timezone("Europe/Stockholm");

    let api = h.api::<OrderSync>();
    h.create::<OrderSync>(order_sync("ls-orders")).await;
    let synced = wait_reason(&api, "ls-orders", "Synced").await;
    let status = synced.status.clone().unwrap();
    let c = status.last_run.clone().unwrap().counts;
    // The seeded demo sales (see audience_sandbox::lightspeed_r::DEMO_SALES): 11 orders read,
    // one worth $0 and one without a customer skipped.
    assert_eq!(c.source, 11, "{c:?}");
    assert_eq!(
        (
            c.events.placed_order,
            c.events.ordered_product,
            c.events.fulfilled_order
        ),
        (9, 17, 1),
        "{c:?}"
    );
    assert_eq!(
        (c.orders_skipped.no_email, c.orders_skipped.zero_value),
        (1, 1),
        "{c:?}"
    );
    assert!(status.checkpoint.is_some(), "the cursor is saved");
    // The simulator holds exactly what the status counts, all of it history (no flows).
    let placed = kl.events("Placed Order");
    assert_eq!(placed.len(), 9);
    assert_eq!(kl.events("Ordered Product").len(), 17);
    assert_eq!(kl.events("Shipped Order").len(), 1);
    let refunded_before = kl.events("Refunded Order");
    assert_eq!(
        refunded_before.len() as u64,
        c.events.refunded_order,
        "{c:?}"
    );
    for metric in [
        "Placed Order",
        "Ordered Product",
        "Shipped Order",
        "Refunded Order",
    ] {
        assert!(kl.events(metric).iter().all(|e| e.backfill), "{metric}");
        assert_eq!(
            kl.metric_flows(metric),
            0,
            "{metric}: backfill fires no flow"
        );
    }
    // The shops are in New York, the Klaviyo account in Stockholm: said, naming both.
    let tz = status
        .conditions
        .iter()
        .find(|c| c.type_ == "TimeZonesDiffer")
        .expect("a TimeZonesDiffer condition");
    assert_eq!(tz.status, "True");
    assert!(
        tz.message.contains("America/New_York") && tz.message.contains("Europe/Stockholm"),
        "{}",
        tz.message
    );

    // Nothing new: the second run reads once and sends nothing.
    let writes = vendor_writes(&h, Vendor::Klaviyo);
    let second = h.sync_now::<OrderSync>("ls-orders", "1").await;
    let c2 = second
        .status
        .as_ref()
        .unwrap()
        .last_run
        .clone()
        .unwrap()
        .counts;
    assert_eq!(c2.events.total(), 0, "{c2:?}");
    assert_eq!(vendor_writes(&h, Vendor::Klaviyo), writes, "no write call");

    // A refund made now of sale 5's first line: exactly one more Refunded Order, live (it may
    // start a flow), and nothing else recorded twice.
    let lr = &h.sandbox.sandbox.lightspeed_r;
    let line = lr.sale(5).expect("demo sale 5").lines[0].sale_line_id;
    lr.refund_line(5, line, 1).expect("a refund");
    let third = h.sync_now::<OrderSync>("ls-orders", "2").await;
    let c3 = third
        .status
        .as_ref()
        .unwrap()
        .last_run
        .clone()
        .unwrap()
        .counts;
    // Only the new event goes: the sale's Placed Order and Ordered Products are in the
    // ledger of ids Klaviyo accepted (`NAME-sent-events`), not sent again.
    assert_eq!(
        (c3.events.refunded_order, c3.events.total(), c3.source),
        (1, 1, 1),
        "{c3:?}"
    );
    let ready = third
        .status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap()
        .message
        .clone();
    assert!(ready.contains("already sent, not sent again"), "{ready}");
    let refunded = kl.events("Refunded Order");
    assert_eq!(refunded.len(), refunded_before.len() + 1);
    assert_eq!(refunded.iter().filter(|e| !e.backfill).count(), 1);
    assert_eq!(kl.metric_flows("Refunded Order"), 1);
    assert_eq!(kl.events("Placed Order").len(), 9, "no Placed Order twice");
    assert_eq!(kl.events("Ordered Product").len(), 17);

    // The activity log answers for the buyer: the refund of this run, newest first, after the
    // history the first run sent.
    let refund = refunded
        .iter()
        .find(|e| !e.backfill)
        .expect("the live refund");
    let email = kl
        .profile(&refund.profile_id)
        .and_then(|p| p.email)
        .expect("the buyer's address");
    let (entries, hashed) =
        audience_operator::activity::read(&h.client, &h.ns, "OrderSync", "ls-orders")
            .await
            .expect("reading the activity log")
            .expect("an activity log");
    assert!(!hashed);
    let mine = audience_core::activity::lookup(&entries, Some(&email), false, 50);
    assert_eq!(mine[0].action, audience_core::activity::Action::OrderSent);
    assert_eq!(
        mine[0].fields,
        vec!["Refunded Order".to_string()],
        "{mine:?}"
    );
    assert_eq!(mine[0].side, "klaviyo");
    assert!(
        mine.iter()
            .any(|e| e.fields.iter().any(|f| f == "Placed Order")),
        "{mine:?}"
    );
    h.assert_no_secret_leaked().await;
}

/// Applies an example's documents (Secrets by their `stringData`, then the OrderSync) to the
/// test's namespace, unchanged but for the namespace.
async fn apply_example(h: &Harness, file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(file);
    let text = std::fs::read_to_string(&path).expect("reading the example");
    let mut name = String::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let value: serde_json::Value =
            serde::Deserialize::deserialize(doc).expect("a YAML document");
        match value["kind"].as_str() {
            Some("Secret") => {
                let data: Vec<(String, String)> = value["stringData"]
                    .as_object()
                    .expect("stringData")
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect();
                let pairs: Vec<(&str, &str)> =
                    data.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                h.secret(value["metadata"]["name"].as_str().unwrap(), &pairs)
                    .await;
            }
            Some("OrderSync") => {
                name = value["metadata"]["name"].as_str().unwrap().to_string();
                h.create::<OrderSync>(value).await;
            }
            other => panic!("{file}: unexpected kind {other:?}"),
        }
    }
    name
}

#[tokio::test]
async fn the_shopify_orders_to_mailchimp_example_fills_the_store_once() {
    let h = harness_with_sales("op-orders-mc").await;
    let name = apply_example(&h, "shopify-orders-to-mailchimp.yaml").await;
    let api = h.api::<OrderSync>();
    let synced = wait_reason(&api, &name, "Synced").await;
    let status = synced.status.clone().unwrap();
    assert_eq!(
        ready(&synced).map(|c| c.status.as_str()),
        Some("True"),
        "Ready"
    );
    let c = status.last_run.clone().unwrap().counts;
    // The seeded demo orders (audience_sandbox::shopify::DEMO_ORDERS): #1002 ($0), #1005
    // (cancelled) and #1011 (no email) are not sent; the other 8 are, #1003 with its refund and
    // #1004 fulfilled.
    let shop = h.shopify().orders();
    assert_eq!(shop.len(), DEMO_ORDERS);
    let sent: Vec<_> = shop
        .iter()
        .filter(|o| ![1002, 1005, 1011].contains(&o.number))
        .collect();
    let lines: usize = sent.iter().map(|o| o.lines.len()).sum();
    assert_eq!(c.source, DEMO_ORDERS as u64, "{c:?}");
    assert_eq!(
        (
            c.events.placed_order,
            c.events.ordered_product,
            c.events.refunded_order,
            c.events.fulfilled_order
        ),
        (8, lines as u64, 1, 1),
        "{c:?}"
    );
    assert_eq!(
        (
            c.orders_skipped.zero_value,
            c.orders_skipped.no_email,
            c.orders_skipped.cancelled
        ),
        (1, 1, 1),
        "{c:?}"
    );
    assert!(status.checkpoint.is_some(), "the cursor is saved");

    let mc = h.mailchimp();
    let store = "demo-shop";
    assert_eq!(mc.store_list_id(store).as_deref(), Some("a1b2c3d4e5"));
    // The history (the backfill) loaded with automations paused, then resumed.
    assert_eq!(mc.store_syncing_history(store), [true, false]);
    let orders = mc.ecommerce_orders(store);
    let mut want: Vec<String> = sent.iter().map(|o| o.id.to_string()).collect();
    want.sort();
    assert_eq!(
        orders.iter().map(|o| o.id.clone()).collect::<Vec<_>>(),
        want
    );
    let by_number = |n: u64| {
        let id = shop.iter().find(|o| o.number == n).unwrap().id.to_string();
        orders.iter().find(|o| o.id == id).unwrap().clone()
    };
    assert_eq!(by_number(1003).financial_status, "partially_refunded");
    assert_eq!(by_number(1004).fulfillment_status, "shipped");
    assert_eq!(by_number(1001).promo_codes, ["WELCOME10"]);
    let customers = mc.ecommerce_customers(store);
    let mut emails: Vec<String> = customers.iter().map(|c| c.email_address.clone()).collect();
    let mut want_emails: Vec<String> = sent.iter().filter_map(|o| o.email.clone()).collect();
    emails.sort();
    want_emails.sort();
    want_emails.dedup();
    assert_eq!(emails, want_emails);
    // `opt_in_status` is the buyer's email consent in the shop: claimed only for those who
    // opted in, and (Mailchimp's rule) it never changed a member who existed before.
    let shopify = h.shopify();
    for c in &customers {
        let opted_in = shopify
            .customer_id_by_email(&c.email_address)
            .and_then(|id| shopify.customer(id))
            .is_some_and(|sc| sc.marketing_state == "SUBSCRIBED");
        assert_eq!(c.opt_in_status, opted_in, "{}", c.email_address);
    }
    let mut products: Vec<String> = sent
        .iter()
        .flat_map(|o| o.lines.iter().map(|l| l.product_id.to_string()))
        .collect();
    products.sort();
    products.dedup();
    assert_eq!(
        mc.ecommerce_products(store)
            .into_iter()
            .map(|(id, _)| id)
            .collect::<Vec<_>>(),
        products
    );
    // Promo codes: the shop's code discounts (audience_sandbox::shopify::DEMO_DISCOUNTS, one with
    // two codes), not only WELCOME10 seen on #1001, each with its real rule.
    assert_eq!(
        mc.ecommerce_promo_codes(store)
            .into_iter()
            .map(|(id, _)| id)
            .collect::<Vec<_>>(),
        [
            "FREEGIFT",
            "SAVE15",
            "SAVE15-VIP",
            "SHIPFREE",
            "SPRING20",
            "TAKE5",
            "WELCOME10"
        ]
    );
    let rule = |id: &str| {
        let r = mc.ecommerce_promo_rule(store, id).unwrap();
        (
            r["type"].as_str().unwrap().to_string(),
            r["amount"].as_f64().unwrap(),
            r["target"].as_str().unwrap().to_string(),
            r["enabled"].as_bool().unwrap(),
        )
    };
    let rule_of = |t: &str, a: f64, target: &str, enabled: bool| {
        (t.to_string(), a, target.to_string(), enabled)
    };
    assert_eq!(rule("WELCOME10"), rule_of("percentage", 0.1, "total", true));
    assert_eq!(rule("FREEGIFT"), rule_of("percentage", 1.0, "total", true));
    assert_eq!(rule("TAKE5"), rule_of("fixed", 5.0, "per_item", true));
    assert_eq!(rule("SAVE15-VIP"), rule_of("fixed", 15.0, "total", true));
    assert_eq!(rule("SHIPFREE"), rule_of("fixed", 0.0, "shipping", true));
    assert_eq!(
        rule("SPRING20"),
        rule_of("percentage", 0.2, "total", false),
        "expired"
    );
    let synced_at = status
        .promo_codes_synced_at
        .clone()
        .expect("promoCodesSyncedAt");
    let promo_condition = status
        .conditions
        .iter()
        .find(|c| c.type_ == "PromoCodesSynced")
        .expect("the PromoCodesSynced condition");
    assert_eq!(
        promo_condition.status, "True",
        "{}",
        promo_condition.message
    );
    let shop_calls = |h: &Harness| {
        h.shopify()
            .counters()
            .root_fields
            .get("codeDiscountNodes")
            .copied()
            .unwrap_or(0)
    };
    let listed = shop_calls(&h);
    assert_eq!(listed, 1);

    // Nothing new: the second run writes nothing anywhere.
    let writes = mc.ecommerce_writes();
    let target_writes = vendor_writes(&h, Vendor::Mailchimp);
    let second = h.sync_now::<OrderSync>(&name, "1").await;
    let c2 = second.status.unwrap().last_run.unwrap().counts;
    assert_eq!(c2.events.total(), 0, "{c2:?}");
    assert_eq!(mc.ecommerce_writes(), writes, "no e-commerce write");
    assert_eq!(vendor_writes(&h, Vendor::Mailchimp), target_writes);
    // Within promoCodes.every (6h) the shop's codes are not asked for again.
    assert_eq!(shop_calls(&h), listed, "no promo call within the interval");
    assert_eq!(
        h.api::<OrderSync>()
            .get(&name)
            .await
            .unwrap()
            .status
            .unwrap()
            .promo_codes_synced_at,
        Some(synced_at)
    );

    // A refund made now of #1006's first line: that order alone is patched, live (no
    // is_syncing around it).
    let shopify = h.shopify();
    let o1006 = shop.iter().find(|o| o.number == 1006).unwrap();
    shopify
        .refund_order_line(o1006.id, o1006.lines[0].id, 1)
        .expect("a refund");
    let third = h.sync_now::<OrderSync>(&name, "2").await;
    let c3 = third.status.unwrap().last_run.unwrap().counts;
    assert_eq!(
        (c3.events.refunded_order, c3.events.placed_order),
        (1, 0),
        "{c3:?}"
    );
    assert_eq!(mc.ecommerce_writes(), writes + 1, "one PATCH");
    let refreshed = mc.ecommerce_orders(store);
    let id = o1006.id.to_string();
    assert_eq!(
        refreshed
            .iter()
            .find(|o| o.id == id)
            .unwrap()
            .financial_status,
        "partially_refunded"
    );
    assert_eq!(mc.store_syncing_history(store), [true, false]);
    h.assert_no_secret_leaked().await;
}
