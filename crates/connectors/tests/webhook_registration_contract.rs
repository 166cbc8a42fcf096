//! Contract tests of webhook registration against the simulators: Shopify's
//! `webhookSubscriptions` / `webhookSubscriptionCreate` / `webhookSubscriptionDelete` and
//! Mailchimp's `/lists/{list_id}/webhooks`: create, an idempotent second call that creates
//! nothing, delete of the operator's subscriptions only, and deliveries reaching what was
//! registered.

mod mailchimp_support;
mod shopify_support;

use std::sync::{Arc, Mutex};

use audience_connectors::shopify::webhook_subscriptions::TOPICS;
use audience_core::webhook_subscriptions::{WebhookRegistry, ensure, remove};
use audience_sandbox::shopify::Customer;
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

    let first = ensure(&source, &url).await.unwrap();
    assert_eq!((first.created, first.kept), (TOPICS.len() as u64, 0));
    let second = ensure(&source, &url).await.unwrap();
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

    let removed = remove(&source, &|u: &str| u == url).await.unwrap();
    assert_eq!(removed.deleted, TOPICS.len() as u64);
    let left = source.webhook_subscriptions().await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].url, "https://elsewhere.example.com/hooks");
    assert_eq!(
        remove(&source, &|u: &str| u == url).await.unwrap().deleted,
        0
    );
}

#[tokio::test]
async fn mailchimp_list_webhook_is_created_once_validated_delivered_and_deleted() {
    let env = Env::start().await;
    let target = env.target();
    let (base, seen) = receiver("/webhooks/mailchimp/{secret}").await;
    let url = format!("{base}/webhooks/mailchimp/s3cret");

    let first = ensure(&target, &url).await.unwrap();
    assert_eq!((first.created, first.kept), (1, 0));
    let second = ensure(&target, &url).await.unwrap();
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
    let removed = remove(&target, &|u: &str| u.starts_with(&prefix))
        .await
        .unwrap();
    assert_eq!(removed.deleted, 1);
    assert!(target.webhook_subscriptions().await.unwrap().is_empty());
    assert_eq!(
        env.calls("DELETE", "/3.0/lists/{list_id}/webhooks/{webhook_id}"),
        1
    );
}
