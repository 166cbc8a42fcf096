//! Webhook registration on the real control plane (issue 13): a sync with
//! `webhooks.register: true` gets its subscriptions at Shopify (one per customer topic) and
//! Mailchimp (one list webhook) pointing at the operator's public URL, once; an edit in the
//! Shopify simulator then reaches Mailchimp through the registered subscription, with no
//! polling interval elapsed; deleting the sync removes the subscriptions at the vendors before
//! the object goes.

mod operator_support;

use audience_operator::controller::registration::WEBHOOKS_FINALIZER;
use audience_operator::crd::AudienceSync;
use audience_operator::operator::Operator;
use audience_sandbox::shopify::Customer;
use kube::ResourceExt;
use operator_support::*;
use serde_json::json;
use url::Url;

const APP_SECRET: &str = "shpss_registration_app_client_secret_0123";
const MAILCHIMP_HOOK_SECRET: &str = "mc-registration-hook-secret";
const SHOP: &str = "test.myshopify.com";

#[tokio::test]
async fn registered_subscriptions_carry_an_edit_and_go_when_the_sync_is_deleted() {
    let mut h = harness("op-hookreg", false).await;
    // The public URL must be known before the receiver starts: take a free port for it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let public = format!("http://127.0.0.1:{port}");
    let mut options = h.options();
    options.webhook_addr = Some(format!("127.0.0.1:{port}").parse().unwrap());
    options.settings.webhook_public_url = Some(Url::parse(&public).unwrap());
    h.operator = Some(
        Operator::start(h.client.clone(), options)
            .await
            .expect("starting the operator"),
    );

    let token = h.shopify().access_token();
    h.secret(
        "shopify",
        &[("accessToken", &token), ("webhookSecret", APP_SECRET)],
    )
    .await;
    h.secret(
        "mailchimp",
        &[
            ("apiKey", &h.mailchimp_key()),
            ("webhookSecret", MAILCHIMP_HOOK_SECRET),
        ],
    )
    .await;
    let shopify = h.shopify().clone();
    shopify.set_app(SHOP, APP_SECRET);
    let id = shopify.add_customer(Customer {
        email: Some("ann@gmail.com".into()),
        first_name: Some("Ann".into()),
        marketing_state: "SUBSCRIBED".into(),
        ..Default::default()
    });

    let api = h.api::<AudienceSync>();
    h.create::<AudienceSync>(audience_sync(
        "registered",
        json!({"webhooks": {"register": true}}),
    ))
    .await;
    let first = wait_reason(&api, "registered", "Synced").await;
    assert_eq!(runs(&first), 1);
    assert!(first.finalizers().iter().any(|f| f == WEBHOOKS_FINALIZER));
    h.wait_event("registered", "WebhooksRegistered", "Normal")
        .await;

    let shopify_url = format!("{public}/webhooks/shopify");
    let mailchimp_url = format!("{public}/webhooks/mailchimp/{MAILCHIMP_HOOK_SECRET}");
    let subscriptions = shopify.webhook_subscriptions();
    let mut topics: Vec<&str> = subscriptions.iter().map(|(t, _)| t.as_str()).collect();
    topics.sort();
    assert_eq!(
        topics,
        [
            "customers/create",
            "customers/delete",
            "customers/update",
            "customers_email_marketing_consent/update"
        ]
    );
    assert!(subscriptions.iter().all(|(_, u)| *u == shopify_url));
    let hooks = h.mailchimp().registered(AUDIENCE);
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0].url, mailchimp_url);

    // An edit at Shopify: the registered subscription delivers it and the sync runs at once
    // (its schedule is hourly); nothing was registered twice meanwhile.
    shopify.edit_customer(id, |c| c.first_name = Some("Annie".into()));
    let second = wait_for(&api, "registered", "a webhook run", |s: &AudienceSync| {
        runs(s) >= 2 && reason(s).as_deref() == Some("Synced")
    })
    .await;
    let trigger = second.status.unwrap().last_run.unwrap().trigger;
    assert!(
        trigger.starts_with("shopify webhook customers/update"),
        "{trigger}"
    );
    let fname = h
        .mailchimp()
        .member(AUDIENCE, "ann@gmail.com")
        .and_then(|m| m.merge_fields.get("FNAME").cloned());
    assert_eq!(fname, Some(json!("Annie")));
    assert_eq!(shopify.webhook_subscriptions().len(), 4);
    assert_eq!(h.mailchimp().registered(AUDIENCE).len(), 1);

    // The merchant deletes one subscription by hand: the next full reconcile puts it back.
    assert!(shopify.delete_webhook_subscription("customers/update"));
    assert_eq!(shopify.webhook_subscriptions().len(), 3);
    h.sync_now::<AudienceSync>("registered", "full-1").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while shopify.webhook_subscriptions().len() != 4 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the deleted subscription was not re-created: {:?}",
            shopify.webhook_subscriptions()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        shopify
            .webhook_subscriptions()
            .iter()
            .all(|(_, u)| *u == shopify_url)
    );
    assert_eq!(h.mailchimp().registered(AUDIENCE).len(), 1, "nothing twice");

    // Deleting the sync removes the subscriptions at both vendors, then the object goes.
    api.delete("registered", &Default::default()).await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while api.get_opt("registered").await.unwrap().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sync was not released"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(shopify.webhook_subscriptions(), Vec::new());
    assert!(h.mailchimp().registered(AUDIENCE).is_empty());
    h.assert_no_secret_leaked().await;
}
