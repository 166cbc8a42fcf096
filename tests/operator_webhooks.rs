//! Webhooks on the real control plane (issue 13): an edit in the Shopify simulator, delivered as
//! a signed `customers/update` webhook, reaches the Mailchimp simulator without waiting for the
//! schedule (the sync runs hourly); a delivery signed with the wrong secret is refused with 401
//! and starts nothing.

mod operator_support;

use audience_operator::crd::AudienceSync;
use audience_operator::operator::Operator;
use audience_sandbox::shopify::Customer;
use operator_support::*;
use serde_json::json;

/// The Shopify app's client secret: what Shopify signs webhooks with (not the Admin API token).
const APP_SECRET: &str = "shpss_test_app_client_secret_0123456789";

/// The shop the harness's syncs read (what the simulator names in `X-Shopify-Shop-Domain`).
const SHOP: &str = "test.myshopify.com";

#[tokio::test]
async fn a_signed_shopify_webhook_runs_the_sync_at_once_and_a_forged_one_changes_nothing() {
    let mut h = harness("op-webhooks", false).await;
    let mut options = h.options();
    options.webhook_addr = Some("127.0.0.1:0".parse().unwrap());
    let operator = Operator::start(h.client.clone(), options)
        .await
        .expect("starting the operator");
    let url = format!(
        "http://{}/webhooks/shopify",
        operator.webhook_addr.expect("the receiver listens")
    );
    h.operator = Some(operator);

    h.default_secrets().await;
    let token = h.shopify().access_token();
    h.secret(
        "shopify",
        &[("accessToken", &token), ("webhookSecret", APP_SECRET)],
    )
    .await;
    let id = h.shopify().add_customer(Customer {
        email: Some("ann@gmail.com".into()),
        first_name: Some("Ann".into()),
        marketing_state: "SUBSCRIBED".into(),
        ..Default::default()
    });
    let api = h.api::<AudienceSync>();
    h.create::<AudienceSync>(audience_sync("webhooked", json!({})))
        .await;
    let first = wait_reason(&api, "webhooked", "Synced").await;
    assert_eq!(runs(&first), 1);
    let fname = |h: &Harness| {
        h.mailchimp()
            .member(AUDIENCE, "ann@gmail.com")
            .and_then(|m| m.merge_fields.get("FNAME").cloned())
    };
    assert_eq!(fname(&h), Some(json!("Ann")));

    // A delivery signed with another secret: 401, and the sync does not run.
    let shopify = h.shopify();
    shopify.send_webhooks_as(SHOP, &url, "not-the-app-secret");
    shopify.edit_customer(id, |c| c.first_name = Some("Forged".into()));
    let outbox = shopify.webhook_outbox();
    outbox.wait_for(1).await;
    let forged = outbox.records();
    assert_eq!(forged.len(), 1, "{forged:?}");
    assert!(!forged[0].delivered);
    assert_eq!(forged[0].attempts.first(), Some(&Some(401)), "{forged:?}");
    assert_eq!(runs(&api.get("webhooked").await.unwrap()), 1);

    // The genuine delivery: the sync runs now, an hour before its schedule, and the edit lands.
    shopify.send_webhooks_as(SHOP, &url, APP_SECRET);
    shopify.edit_customer(id, |c| c.first_name = Some("Annie".into()));
    let second = wait_for(&api, "webhooked", "a second run", |s: &AudienceSync| {
        runs(s) >= 2 && reason(s).as_deref() == Some("Synced")
    })
    .await;
    assert_eq!(runs(&second), 2);
    assert_eq!(fname(&h), Some(json!("Annie")));
    let delivered = shopify.webhook_outbox().records();
    assert!(delivered.iter().any(|d| d.delivered), "{delivered:?}");
    // The status says why the run started.
    let trigger = second.status.unwrap().last_run.unwrap().trigger;
    assert!(
        trigger.starts_with("shopify webhook customers/update"),
        "{trigger}"
    );
    // Both answers are counted for Prometheus.
    let scraped = audience_operator::metrics::Metrics::global().render();
    let count = |outcome: &str| -> u64 {
        scraped
            .lines()
            .find(|l| {
                l.starts_with("audience_webhook_deliveries_total{")
                    && l.contains(&format!("outcome=\"{outcome}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    assert_eq!(count("unauthorized"), 1, "{scraped}");
    assert!(count("accepted") >= 1, "{scraped}");
    h.assert_no_secret_leaked().await;
}
