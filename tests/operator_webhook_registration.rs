//! Webhook registration on the real control plane (issue 13): a sync with
//! `webhooks.register: true` gets its subscriptions at Shopify (one per customer topic) and
//! Mailchimp (one list webhook) pointing at the operator's public URL, once; an edit in the
//! Shopify simulator then reaches Mailchimp through the registered subscription, with no
//! polling interval elapsed; deleting the sync removes the subscriptions at the vendors before
//! the object goes. An OrderSync registers Shopify's order topics at the same URL and an order
//! reaches Klaviyo through them; the two kinds never remove each other's. A new public URL
//! removes what was made at the old one (and nothing else); two syncs in different namespaces
//! on one shop do not remove each other's subscriptions.

mod operator_support;

use std::collections::BTreeMap;
use std::time::Duration;

use audience_operator::controller::registration::{WEBHOOKS_FINALIZER, WEBHOOKS_URL_ANNOTATION};
use audience_operator::crd::{AudienceSync, CREDENTIALS_LABEL, OrderSync};
use audience_operator::operator::Operator;
use audience_sandbox::shopify::{Customer, Order, OrderLine, Product};
use audience_testenv::TestEnv;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use operator_support::*;
use serde_json::json;
use url::Url;

/// A free loopback port, for a public URL that must be known before the receiver starts.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the operator with its receiver on a new port and that port as its public URL,
/// watching `namespaces` (default: the harness's); returns the public URL.
async fn start_public(h: &mut Harness, namespaces: Option<Vec<String>>) -> String {
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let mut options = h.options();
    options.webhook_addr = Some(format!("127.0.0.1:{port}").parse().unwrap());
    options.settings.webhook_public_url = Some(Url::parse(&public).unwrap());
    if let Some(namespaces) = namespaces {
        options.namespaces = namespaces;
    }
    h.operator = Some(
        Operator::start(h.client.clone(), options)
            .await
            .expect("starting the operator"),
    );
    public
}

/// Polls `cond` (a simulator's state, which has no watch) until it holds, or fails saying `what`.
async fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Deletes a sync and waits until the API server no longer has it (its finalizer released).
async fn delete_and_wait<K>(api: &Api<K>, name: &str)
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
{
    api.delete(name, &Default::default()).await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while api.get_opt(name).await.unwrap().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} was not released"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The sorted REST topics of the Shopify subscriptions at `url`.
fn topics_at(h: &Harness, url: &str) -> Vec<String> {
    let mut topics: Vec<String> = h
        .shopify()
        .webhook_subscriptions()
        .into_iter()
        .filter(|(_, u)| u == url)
        .map(|(t, _)| t)
        .collect();
    topics.sort();
    topics
}

const CUSTOMER_TOPICS: [&str; 4] = [
    "customers/create",
    "customers/delete",
    "customers/update",
    "customers_email_marketing_consent/update",
];
const ORDER_TOPICS: [&str; 5] = [
    "orders/create",
    "orders/fulfilled",
    "orders/paid",
    "orders/updated",
    "refunds/create",
];

const APP_SECRET: &str = "shpss_registration_app_client_secret_0123";
const MAILCHIMP_HOOK_SECRET: &str = "mc-registration-hook-secret";
const SHOP: &str = "test.myshopify.com";

/// The Shopify and Mailchimp Secrets with their webhook secrets, and the shop's app registered
/// with the same secret; the shop simulator.
async fn webhook_secrets(h: &Harness) -> audience_sandbox::shopify::Shopify {
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
    shopify
}

#[tokio::test]
async fn registered_subscriptions_carry_an_edit_and_go_when_the_sync_is_deleted() {
    let mut h = harness("op-hookreg", false).await;
    let public = start_public(&mut h, None).await;

    let shopify = webhook_secrets(&h).await;
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

fn order_sync(name: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut spec = json!({
        "source": {"shopify": {"shopDomain": SHOP, "credentialsSecretRef": {"name": "shopify"}}},
        "target": {"klaviyo": {"credentialsSecretRef": {"name": "klaviyo"}}},
        "schedule": {"interval": "1h"}
    });
    merge(&mut spec, extra);
    json!({
        "apiVersion": "sync.audience-operator.io/v1alpha1",
        "kind": "OrderSync",
        "metadata": {"name": name},
        "spec": spec,
    })
}

#[tokio::test]
async fn an_order_sync_registers_the_order_topics_and_an_order_reaches_klaviyo_through_them() {
    let mut h = harness("op-hookreg-orders", false).await;
    let public = start_public(&mut h, None).await;
    h.secret("klaviyo", &[("apiKey", &h.klaviyo_key())]).await;
    let shopify = webhook_secrets(&h).await;
    shopify.add_product(Product {
        id: 7_001,
        title: "Canvas tote".into(),
        product_type: "Bags".into(),
        collections: Vec::new(),
        variant_id: 7_101,
        variant_title: "Default".into(),
        sku: "TOTE-1".into(),
        price_cents: 2_500,
    });
    let buyer = shopify.add_customer(Customer {
        email: Some("buyer@gmail.com".into()),
        first_name: Some("Bea".into()),
        marketing_state: "SUBSCRIBED".into(),
        ..Default::default()
    });

    let orders = h.api::<OrderSync>();
    h.create::<OrderSync>(order_sync(
        "orders",
        json!({"webhooks": {"register": true}}),
    ))
    .await;
    let first = wait_reason(&orders, "orders", "Synced").await;
    assert_eq!(runs(&first), 1);
    assert!(first.finalizers().iter().any(|f| f == WEBHOOKS_FINALIZER));
    assert_eq!(
        first.annotations().get(WEBHOOKS_URL_ANNOTATION),
        Some(&public)
    );
    h.wait_event("orders", "WebhooksRegistered", "Normal").await;
    let url = format!("{public}/webhooks/shopify");
    assert_eq!(topics_at(&h, &url), ORDER_TOPICS);
    assert_eq!(
        shopify.webhook_subscriptions().len(),
        5,
        "order topics only"
    );
    assert!(h.mailchimp().registered(AUDIENCE).is_empty());
    assert!(h.klaviyo().events("Placed Order").is_empty());

    // An order: the registered subscriptions deliver it and the sync runs at once (its
    // schedule is hourly), sending the Placed Order to Klaviyo.
    shopify.add_order(Order {
        customer_id: Some(buyer),
        email: Some("buyer@gmail.com".into()),
        lines: vec![OrderLine {
            product_id: 7_001,
            quantity: 2,
            original_unit_cents: 2_500,
            discounted_unit_cents: 2_500,
            ..OrderLine::default()
        }],
        ..Order::default()
    });
    let second = wait_for(&orders, "orders", "a webhook run", |s: &OrderSync| {
        runs(s) >= 2 && reason(s).as_deref() == Some("Synced")
    })
    .await;
    let trigger = second.status.unwrap().last_run.unwrap().trigger;
    assert!(trigger.starts_with("shopify webhook orders/"), "{trigger}");
    let placed = h.klaviyo().events("Placed Order");
    assert_eq!(placed.len(), 1, "{placed:?}");
    assert_eq!(placed[0].value, Some(50.0));
    assert!(!placed[0].backfill, "a live order");

    // An AudienceSync on the same shop adds the customer topics at the same URL; deleting the
    // OrderSync then removes the order topics only.
    let audiences = h.api::<AudienceSync>();
    h.create::<AudienceSync>(audience_sync(
        "customers",
        json!({"webhooks": {"register": true}}),
    ))
    .await;
    wait_reason(&audiences, "customers", "Synced").await;
    eventually("both kinds' topics", || {
        topics_at(&h, &url).len() == CUSTOMER_TOPICS.len() + ORDER_TOPICS.len()
    })
    .await;
    delete_and_wait(&orders, "orders").await;
    assert_eq!(topics_at(&h, &url), CUSTOMER_TOPICS);
    assert_eq!(h.mailchimp().registered(AUDIENCE).len(), 1);
    delete_and_wait(&audiences, "customers").await;
    assert_eq!(shopify.webhook_subscriptions(), Vec::new());
    assert!(h.mailchimp().registered(AUDIENCE).is_empty());
    h.assert_no_secret_leaked().await;
}

#[tokio::test]
async fn a_new_public_url_removes_the_subscriptions_at_the_old_one_and_nothing_else() {
    let mut h = harness("op-hookreg-moved", false).await;
    let old = start_public(&mut h, None).await;
    let shopify = webhook_secrets(&h).await;
    let api = h.api::<AudienceSync>();
    h.create::<AudienceSync>(audience_sync(
        "moved",
        json!({"webhooks": {"register": true}}),
    ))
    .await;
    wait_reason(&api, "moved", "Synced").await;
    let old_url = format!("{old}/webhooks/shopify");
    eventually("the subscriptions at the first URL", || {
        topics_at(&h, &old_url) == CUSTOMER_TOPICS
    })
    .await;
    // Not the operator's: another app with the same path shape, and the merchant's own
    // endpoint on the operator's old host.
    let other_app = "https://other-app.example.com/webhooks/shopify";
    let merchant = format!("{old}/merchant/hooks");
    assert!(shopify.add_foreign_webhook_subscription("PRODUCTS_CREATE", other_app));
    assert!(shopify.add_foreign_webhook_subscription("CUSTOMERS_UPDATE", &merchant));
    assert_eq!(h.mailchimp().registered(AUDIENCE).len(), 1);

    // The operator comes back at another public URL.
    h.stop_operator().await;
    let new = start_public(&mut h, None).await;
    assert_ne!(old, new);
    let new_url = format!("{new}/webhooks/shopify");
    eventually("the subscriptions moved to the new URL", || {
        topics_at(&h, &new_url) == CUSTOMER_TOPICS && topics_at(&h, &old_url).is_empty()
    })
    .await;
    assert_eq!(topics_at(&h, other_app), ["products/create"]);
    assert_eq!(topics_at(&h, &merchant), ["customers/update"]);
    assert_eq!(shopify.webhook_subscriptions().len(), 6);
    let hooks = h.mailchimp().registered(AUDIENCE);
    assert_eq!(hooks.len(), 1, "the old list webhook went");
    assert_eq!(
        hooks[0].url,
        format!("{new}/webhooks/mailchimp/{MAILCHIMP_HOOK_SECRET}")
    );
    let moved = wait_for(&api, "moved", "the new URL recorded", {
        let new = new.clone();
        move |s: &AudienceSync| s.annotations().get(WEBHOOKS_URL_ANNOTATION) == Some(&new)
    })
    .await;
    assert!(moved.finalizers().iter().any(|f| f == WEBHOOKS_FINALIZER));
    let removed = h.wait_event("moved", "WebhooksRemoved", "Normal").await;
    assert!(
        removed.note.as_deref().unwrap_or("").contains(&old),
        "{removed:?}"
    );

    delete_and_wait(&api, "moved").await;
    assert_eq!(
        shopify.webhook_subscriptions().len(),
        2,
        "only the others' stay"
    );
    assert!(h.mailchimp().registered(AUDIENCE).is_empty());
    h.assert_no_secret_leaked().await;
}

/// A Secret in `namespace` that opts in to being read by the operator.
async fn secret_in(h: &Harness, namespace: &str, name: &str, data: &[(&str, &str)]) {
    for (key, value) in data {
        secret_scan::register(&format!("{namespace}/{name}.{key}"), value);
    }
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(BTreeMap::from([(
                CREDENTIALS_LABEL.to_string(),
                "true".to_string(),
            )])),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Default::default()
    };
    let api: Api<Secret> = Api::namespaced(h.client.clone(), namespace);
    api.patch(
        name,
        &PatchParams::apply("test").force(),
        &Patch::Apply(&serde_json::to_value(&secret).unwrap()),
    )
    .await
    .expect("applying a Secret");
}

#[tokio::test]
async fn syncs_in_two_namespaces_on_one_shop_do_not_remove_each_others_subscriptions() {
    let mut h = harness("op-hookreg-ns-a", false).await;
    let other_ns = TestEnv::shared().await.namespace("op-hookreg-ns-b").await;
    let watched = vec![h.ns.clone(), other_ns.clone()];
    let public = start_public(&mut h, Some(watched)).await;
    let token = h.shopify().access_token();
    for ns in [h.ns.clone(), other_ns.clone()] {
        secret_in(
            &h,
            &ns,
            "shopify",
            &[("accessToken", &token), ("webhookSecret", APP_SECRET)],
        )
        .await;
        secret_in(
            &h,
            &ns,
            "mailchimp",
            &[
                ("apiKey", &h.mailchimp_key()),
                ("webhookSecret", MAILCHIMP_HOOK_SECRET),
            ],
        )
        .await;
    }
    h.shopify().set_app(SHOP, APP_SECRET);
    let here = h.api::<AudienceSync>();
    let there: Api<AudienceSync> = Api::namespaced(h.client.clone(), &other_ns);
    let manifest = |name: &str| -> AudienceSync {
        serde_json::from_value(audience_sync(name, json!({"webhooks": {"register": true}})))
            .unwrap()
    };
    here.create(&PostParams::default(), &manifest("here"))
        .await
        .unwrap();
    there
        .create(&PostParams::default(), &manifest("there"))
        .await
        .unwrap();
    wait_reason(&here, "here", "Synced").await;
    wait_reason(&there, "there", "Synced").await;
    let url = format!("{public}/webhooks/shopify");
    eventually("one set of subscriptions for both", || {
        topics_at(&h, &url) == CUSTOMER_TOPICS
    })
    .await;
    assert_eq!(h.shopify().webhook_subscriptions().len(), 4, "never twice");
    assert_eq!(h.mailchimp().registered(AUDIENCE).len(), 1);

    // The sync of the other namespace still needs them: deleting this one keeps them.
    delete_and_wait(&here, "here").await;
    assert_eq!(topics_at(&h, &url), CUSTOMER_TOPICS);
    assert_eq!(h.mailchimp().registered(AUDIENCE).len(), 1);
    // The last one out removes them.
    delete_and_wait(&there, "there").await;
    assert_eq!(h.shopify().webhook_subscriptions(), Vec::new());
    assert!(h.mailchimp().registered(AUDIENCE).is_empty());
}
