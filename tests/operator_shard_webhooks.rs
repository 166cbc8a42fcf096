//! A webhook that reaches a replica not owning the sync (sharding, issue 13): two operator
//! processes with two shards, each with its own receiver; a signed Shopify delivery for a sync is
//! posted to the process that does not own it. That process does not run the sync: it hands the
//! webhook over through the sync's `webhook-hint` annotation, and the owner runs it at once.

mod operator_support;

use std::time::Duration;

use audience_operator::crd::{AudienceSync, WEBHOOK_HINT_ANNOTATION};
use audience_operator::leader::LeaseSettings;
use audience_operator::operator::Operator;
use audience_operator::shard::{ShardSettings, shard_of};
use audience_sandbox::shopify::Customer;
use kube::ResourceExt;
use operator_support::*;
use serde_json::json;

const SHARDS: u32 = 2;
const APP_SECRET: &str = "shpss_shard_webhooks_app_client_secret_01";
const SHOP: &str = "test.myshopify.com";

async fn start_sharded(h: &Harness, ordinal: u32) -> Operator {
    let mut options = h.options();
    options.settings.instance = format!("shard-{ordinal}");
    let mut lease = LeaseSettings::new("audience-operator", &h.ns, format!("shard-{ordinal}"));
    lease.duration = Duration::from_secs(4);
    lease.grace = Duration::from_secs(2);
    let mut shards = ShardSettings::new(SHARDS, Some(ordinal), lease);
    shards.poll = Duration::from_millis(300);
    options.shards = Some(shards);
    options.webhook_addr = Some("127.0.0.1:0".parse().unwrap());
    Operator::start(h.client.clone(), options)
        .await
        .expect("operator starts")
}

#[tokio::test]
async fn a_webhook_at_the_wrong_replica_is_handed_to_the_owner() {
    let h = harness("op-shardhook", false).await;
    let ops = [start_sharded(&h, 0).await, start_sharded(&h, 1).await];
    let deadline = tokio::time::Instant::now() + WAIT;
    while !ops
        .iter()
        .enumerate()
        .all(|(k, o)| o.shards().unwrap().owned().contains(&(k as u32)))
    {
        assert!(tokio::time::Instant::now() < deadline, "shards not held");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    h.default_secrets().await;
    let token = h.shopify().access_token();
    h.secret(
        "shopify",
        &[("accessToken", &token), ("webhookSecret", APP_SECRET)],
    )
    .await;
    let shopify = h.shopify().clone();
    let id = shopify.add_customer(Customer {
        email: Some("ann@gmail.com".into()),
        first_name: Some("Ann".into()),
        marketing_state: "SUBSCRIBED".into(),
        ..Default::default()
    });
    let name = "handed";
    let owner = shard_of(&h.ns, name, SHARDS) as usize;
    let other = &ops[1 - owner];
    let api = h.api::<AudienceSync>();
    h.create::<AudienceSync>(audience_sync(name, json!({})))
        .await;
    let first = wait_reason(&api, name, "Synced").await;
    assert_eq!(runs(&first), 1);

    // The delivery goes to the replica that does not own the sync.
    let url = format!(
        "http://{}/webhooks/shopify",
        other.webhook_addr.expect("the receiver listens")
    );
    shopify.send_webhooks_as(SHOP, &url, APP_SECRET);
    shopify.edit_customer(id, |c| c.first_name = Some("Annie".into()));
    let second = wait_for(&api, name, "the handed-over run", |s: &AudienceSync| {
        runs(s) >= 2 && reason(s).as_deref() == Some("Synced")
    })
    .await;
    let hint = second
        .annotations()
        .get(WEBHOOK_HINT_ANNOTATION)
        .cloned()
        .expect("the hint annotation");
    assert!(hint.contains("shopify webhook customers/update"), "{hint}");
    let status = second.status.unwrap();
    assert_eq!(status.handled_webhook_hint.as_deref(), Some(hint.as_str()));
    let trigger = status.last_run.unwrap().trigger;
    assert!(
        trigger.contains("handed over by another replica"),
        "{trigger}"
    );
    let fname = h
        .mailchimp()
        .member(AUDIENCE, "ann@gmail.com")
        .and_then(|m| m.merge_fields.get("FNAME").cloned());
    assert_eq!(fname, Some(json!("Annie")));
    for op in ops {
        op.shutdown().await.unwrap();
    }
}
