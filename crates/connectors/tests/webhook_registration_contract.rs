//! Contract tests of webhook registration against the simulators: Shopify's
//! `webhookSubscriptions` / `webhookSubscriptionCreate` / `webhookSubscriptionDelete` and
//! Mailchimp's `/lists/{list_id}/webhooks`: create, an idempotent second call that creates
//! nothing, delete of the operator's subscriptions only, and deliveries reaching what was
//! registered. Customer and order topics (an AudienceSync's and an OrderSync's interest) share
//! the URL, and removing one interest leaves the other's.

mod mailchimp_support;
mod shopify_support;

use std::sync::{Arc, Mutex};

use audience_connectors::shopify::webhook_subscriptions::{ORDER_TOPICS, TOPICS};
use audience_core::webhook_subscriptions::{Interest, WebhookRegistry, ensure, remove};
use audience_sandbox::shopify::{Customer, Order, OrderLine};
use axum::Router;
use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::routing::post;
use mailchimp_support::{Env, LIST};
use shopify_support::start_shop;

type Seen = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

/// A receiver that answers 200 to GET (Mailchimp's validation) and records POSTs.
async fn receiver(path: &str) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let app = Router::new().route(
        path,
        post(move |headers: HeaderMap, body: Bytes| {
            let record = record.clone();
            async move { record.lock().unwrap().push((headers, body)) }
        })
        .get(|| async { "ok" }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), seen)
}

#[tokio::test]
async fn shopify_subscriptions_are_created_once_delivered_and_deleted() {
    let (sandbox, source) = start_shop("hooks").await;
    let shop = &sandbox.sandbox.shopify;
    shop.set_app("hooks.myshopify.com", "app-secret");
    let (base, seen) = receiver("/webhooks/shopify").await;
    let url = format!("{base}/webhooks/shopify");

    // Someone else's subscription on the same shop stays untouched throughout.
    source
        .create_webhook_subscription("ORDERS_CREATE", "https://elsewhere.example.com/hooks")
        .await
        .unwrap();

    let first = ensure(&source, Interest::Customers, &url).await.unwrap();
    assert_eq!((first.created, first.kept), (TOPICS.len() as u64, 0));
    let second = ensure(&source, Interest::Customers, &url).await.unwrap();
    assert_eq!((second.created, second.kept), (0, TOPICS.len() as u64));
    let listed = source.webhook_subscriptions().await.unwrap();
    assert_eq!(listed.len(), TOPICS.len() + 1, "{listed:?}");
    // The simulator refuses a duplicate as Shopify does, so `ensure` listing first matters.
    let duplicate = source
        .create_webhook_subscription("CUSTOMERS_UPDATE", &url)
        .await
        .unwrap_err();
    assert!(
        duplicate.message.contains("already been taken"),
        "{duplicate}"
    );
    // An unknown topic is a GraphQL error, not a subscription.
    assert!(
        source
            .create_webhook_subscription("CUSTOMERS_EXPLODE", &url)
            .await
            .is_err()
    );

    // An edit is delivered to the registered subscription, signed with the app secret.
    let id = shop.add_customer(Customer {
        email: Some("ada@example.com".into()),
        ..Customer::default()
    });
    shop.edit_customer(id, |c| c.first_name = Some("Ada".into()));
    for outbox in shop
        .subscription_outboxes("customers/create")
        .into_iter()
        .chain(shop.subscription_outboxes("customers/update"))
    {
        outbox.wait_for(1).await;
    }
    {
        let seen = seen.lock().unwrap();
        let topics: Vec<&str> = seen
            .iter()
            .map(|(h, _)| h["x-shopify-topic"].to_str().unwrap())
            .collect();
        assert!(topics.contains(&"customers/update"), "{topics:?}");
        assert!(topics.contains(&"customers/create"), "{topics:?}");
        for (headers, _) in seen.iter() {
            assert_eq!(headers["x-shopify-shop-domain"], "hooks.myshopify.com");
        }
    }

    let removed = remove(&source, Interest::Customers, &|u: &str| u == url)
        .await
        .unwrap();
    assert_eq!(removed.deleted, TOPICS.len() as u64);
    let left = source.webhook_subscriptions().await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].url, "https://elsewhere.example.com/hooks");
    assert_eq!(
        remove(&source, Interest::Customers, &|u: &str| u == url)
            .await
            .unwrap()
            .deleted,
        0
    );
}

#[tokio::test]
async fn mailchimp_list_webhook_is_created_once_validated_delivered_and_deleted() {
    let env = Env::start().await;
    let target = env.target();
    let (base, seen) = receiver("/webhooks/mailchimp/{secret}").await;
    let url = format!("{base}/webhooks/mailchimp/s3cret");

    let first = ensure(&target, Interest::Customers, &url).await.unwrap();
    assert_eq!((first.created, first.kept), (1, 0));
    let second = ensure(&target, Interest::Customers, &url).await.unwrap();
    assert_eq!((second.created, second.kept), (0, 1));
    assert_eq!(env.calls("POST", "/3.0/lists/{list_id}/webhooks"), 1);
    assert_eq!(target.webhook_subscriptions().await.unwrap().len(), 1);
    // Mailchimp validates the URL with a GET: one that does not answer is refused.
    let unreachable = target
        .create_webhook_subscription("list", "http://127.0.0.1:9/nowhere")
        .await
        .unwrap_err();
    assert!(unreachable.message.contains("HTTP 400"), "{unreachable}");

    // An unsubscribe outside the API reaches the registered webhook.
    let sim = env.sim();
    sim.insert_member_with(
        LIST,
        "ann@example.com",
        audience_sandbox::mailchimp::MemberStatus::Subscribed,
        serde_json::json!({}),
        &[],
    );
    assert!(sim.set_member_status(
        LIST,
        "ann@example.com",
        audience_sandbox::mailchimp::MemberStatus::Unsubscribed
    ));
    sim.registered(LIST)[0].outbox.wait_for(1).await;
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        let form: Vec<(String, String)> = url::form_urlencoded::parse(&seen[0].1)
            .into_owned()
            .collect();
        assert!(
            form.contains(&("type".into(), "unsubscribe".into())),
            "{form:?}"
        );
    }

    let prefix = format!("{base}/webhooks/mailchimp/");
    let removed = remove(&target, Interest::Customers, &|u: &str| {
        u.starts_with(&prefix)
    })
    .await
    .unwrap();
    assert_eq!(removed.deleted, 1);
    assert!(target.webhook_subscriptions().await.unwrap().is_empty());
    assert_eq!(
        env.calls("DELETE", "/3.0/lists/{list_id}/webhooks/{webhook_id}"),
        1
    );
}

#[tokio::test]
async fn shopify_order_topics_are_registered_beside_the_customer_ones_and_carry_orders() {
    let (sandbox, source) = start_shop("orderhooks").await;
    let shop = &sandbox.sandbox.shopify;
    shop.set_app("orderhooks.myshopify.com", "app-secret");
    let (base, seen) = receiver("/webhooks/shopify").await;
    let url = format!("{base}/webhooks/shopify");
    // Another app's order subscription at its own URL stays untouched throughout.
    assert!(shop.add_foreign_webhook_subscription(
        "ORDERS_CREATE",
        "https://other-app.example.com/webhooks/shopify"
    ));

    let customers = ensure(&source, Interest::Customers, &url).await.unwrap();
    assert_eq!(customers.created, TOPICS.len() as u64);
    let orders = ensure(&source, Interest::Orders, &url).await.unwrap();
    assert_eq!(
        (orders.created, orders.kept),
        (ORDER_TOPICS.len() as u64, 0)
    );
    let again = ensure(&source, Interest::Orders, &url).await.unwrap();
    assert_eq!((again.created, again.kept), (0, ORDER_TOPICS.len() as u64));
    let mut topics: Vec<String> = shop
        .webhook_subscriptions()
        .into_iter()
        .filter(|(_, u)| *u == url)
        .map(|(t, _)| t)
        .filter(|t| !t.starts_with("customers"))
        .collect();
    topics.sort();
    assert_eq!(
        topics,
        [
            "orders/create",
            "orders/fulfilled",
            "orders/paid",
            "orders/updated",
            "refunds/create"
        ]
    );

    // An order placed, refunded and fulfilled: each topic reaches the registered URL, signed,
    // naming the buyer.
    let id = shop.add_order(Order {
        email: Some("buyer@example.com".into()),
        lines: vec![OrderLine {
            product_id: 1,
            quantity: 2,
            original_unit_cents: 1500,
            discounted_unit_cents: 1500,
            ..OrderLine::default()
        }],
        ..Order::default()
    });
    let line = shop.order(id).unwrap().lines[0].id;
    shop.refund_order_line(id, line, 1).unwrap();
    shop.fulfill_order(id).unwrap();
    for (topic, n) in [
        ("orders/create", 1),
        ("orders/paid", 1),
        ("refunds/create", 1),
        ("orders/fulfilled", 1),
        ("orders/updated", 2),
    ] {
        for outbox in shop.subscription_outboxes(topic) {
            outbox.wait_for(n).await;
        }
    }
    {
        let seen = seen.lock().unwrap();
        let mut topics: Vec<&str> = seen
            .iter()
            .map(|(h, _)| h["x-shopify-topic"].to_str().unwrap())
            .collect();
        topics.sort();
        assert_eq!(
            topics,
            [
                "orders/create",
                "orders/fulfilled",
                "orders/paid",
                "orders/updated",
                "orders/updated",
                "refunds/create"
            ]
        );
        for (headers, body) in seen.iter() {
            let expected = audience_sandbox::webhooks::hmac_sha256(b"app-secret", body);
            use base64::Engine;
            assert_eq!(
                headers["x-shopify-hmac-sha256"],
                base64::engine::general_purpose::STANDARD.encode(expected)
            );
            let json: serde_json::Value = serde_json::from_slice(body).unwrap();
            if headers["x-shopify-topic"] == "refunds/create" {
                assert_eq!(json["order_id"], id);
                assert_eq!(json["refund_line_items"][0]["quantity"], 1);
            } else {
                assert_eq!(json["id"], id);
                assert_eq!(json["email"], "buyer@example.com");
                assert_eq!(json["total_price"], "30.00");
            }
        }
    }

    // Removing the customer interest leaves the order subscriptions, and the reverse.
    let ours = |u: &str| u == url;
    let removed = remove(&source, Interest::Customers, &ours).await.unwrap();
    assert_eq!(removed.deleted, TOPICS.len() as u64);
    assert_eq!(
        shop.webhook_subscriptions().len(),
        ORDER_TOPICS.len() + 1,
        "the order topics and the other app's stay"
    );
    let removed = remove(&source, Interest::Orders, &ours).await.unwrap();
    assert_eq!(removed.deleted, ORDER_TOPICS.len() as u64);
    assert_eq!(
        shop.webhook_subscriptions(),
        [(
            "orders/create".to_string(),
            "https://other-app.example.com/webhooks/shopify".to_string()
        )]
    );
}

#[tokio::test]
async fn subscriptions_at_an_old_url_are_removed_by_that_url_and_nothing_else() {
    let (sandbox, source) = start_shop("movedhooks").await;
    let shop = &sandbox.sandbox.shopify;
    let old = "https://old.example.com/webhooks/shopify";
    let new = "https://new.example.com/webhooks/shopify";
    ensure(&source, Interest::Customers, old).await.unwrap();
    ensure(&source, Interest::Customers, new).await.unwrap();
    // The merchant's own endpoint on the old host, and another app with the same path shape.
    assert!(
        shop.add_foreign_webhook_subscription("CUSTOMERS_UPDATE", "https://old.example.com/hooks")
    );
    assert!(shop.add_foreign_webhook_subscription(
        "CUSTOMERS_UPDATE",
        "https://other-app.example.com/webhooks/shopify"
    ));
    let removed = remove(&source, Interest::Customers, &|u: &str| u == old)
        .await
        .unwrap();
    assert_eq!(removed.deleted, TOPICS.len() as u64);
    let left = source.webhook_subscriptions().await.unwrap();
    assert_eq!(left.len(), TOPICS.len() + 2, "{left:?}");
    assert!(left.iter().all(|s| s.url != old));
    assert_eq!(left.iter().filter(|s| s.url == new).count(), TOPICS.len());
}
