//! The SegmentSync's source-segment watch on the real control plane (issue 13): between its
//! daily runs, each watch tick reads only the segment's metadata (one call, nothing at
//! Mailchimp: RetailCRM's segment listing, Shopify's member count); when the segment's members
//! change, the next tick reads them and updates the Mailchimp tag. The tick is a minute in
//! production; one second here.

mod operator_support;

use std::time::Duration;

use audience_operator::crd::SegmentSync;
use audience_operator::operator::Operator;
use audience_sandbox::Vendor;
use audience_sandbox::mailchimp::MemberStatus;
use operator_support::*;
use serde_json::json;

fn calls(h: &Harness, vendor: Vendor, route: Option<&str>) -> u64 {
    h.sandbox
        .sandbox
        .stats
        .snapshot()
        .into_iter()
        .filter(|(k, _)| k.vendor == vendor && route.is_none_or(|r| k.route == r))
        .map(|(_, n)| n)
        .sum()
}

/// Waits until `cond` holds, looking every 100 ms (the simulators' counters have no watch).
async fn until(what: &str, cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A harness whose operator ticks the segment watch every second, with the default Secrets.
async fn watching_harness(name: &str) -> Harness {
    let mut h = harness(name, false).await;
    let mut options = h.options();
    options.settings.segment_watch = Duration::from_secs(1);
    h.operator = Some(
        Operator::start(h.client.clone(), options)
            .await
            .expect("starting the operator"),
    );
    h.default_secrets().await;
    h
}

#[tokio::test]
async fn a_recomputed_segment_reaches_mailchimp_at_the_next_tick_and_quiet_ticks_cost_one_call() {
    let h = watching_harness("op-segwatch").await;
    let crm = h.retailcrm().clone();
    let add = |email: &str| {
        crm.add_customer(audience_sandbox::retailcrm::Customer {
            email: Some(email.into()),
            first_name: Some("X".into()),
            subscribed: true,
            ..Default::default()
        })
    };
    let a = add("a@gmail.com");
    let b = add("b@gmail.com");
    crm.create_segment("vip", "VIP", &[a]);
    h.mailchimp()
        .insert_member(AUDIENCE, "a@gmail.com", MemberStatus::Subscribed);

    let api = h.api::<SegmentSync>();
    h.create::<SegmentSync>(json!({
        "apiVersion": "sync.audience-operator.io/v1alpha1",
        "kind": "SegmentSync",
        "metadata": {"name": "watched"},
        "spec": {
            "source": {"retailcrm": {"account": "demo", "credentialsSecretRef": {"name": "retailcrm"}}},
            "sourceSegment": {"retailcrmSegment": "vip"},
            "target": {"mailchimp": {"audienceId": AUDIENCE, "segment": "VIP", "credentialsSecretRef": {"name": "mailchimp"}}},
            "mode": "exact",
            "schedule": {"interval": "24h"}
        }
    }))
    .await;
    let first = wait_reason(&api, "watched", "Synced").await;
    assert_eq!(runs(&first), 1);
    let stamp = first.status.as_ref().unwrap().checkpoint.clone().unwrap();
    assert!(stamp.starts_with("segment:size=1"), "{stamp}");
    let tagged = |h: &Harness| {
        let mut m = h.mailchimp().tag_members(AUDIENCE, "VIP");
        m.sort();
        m
    };
    assert_eq!(tagged(&h), ["a@gmail.com"]);

    // Quiet ticks: each reads the segment listing once; no member read, nothing at Mailchimp.
    let segments = calls(&h, Vendor::Retailcrm, Some("/api/v5/segments"));
    let customers = calls(&h, Vendor::Retailcrm, Some("/api/v5/customers"));
    let mailchimp = calls(&h, Vendor::Mailchimp, None);
    until("three quiet ticks", || {
        calls(&h, Vendor::Retailcrm, Some("/api/v5/segments")) >= segments + 3
    })
    .await;
    assert_eq!(
        calls(&h, Vendor::Retailcrm, Some("/api/v5/customers")),
        customers
    );
    assert_eq!(calls(&h, Vendor::Mailchimp, None), mailchimp);
    assert_eq!(runs(&api.get("watched").await.unwrap()), 1);

    // RetailCRM recomputes the segment: the next tick runs the sync, and b gets the tag.
    assert!(crm.set_segment_members("vip", &[a, b]));
    let second = wait_for(
        &api,
        "watched",
        "a run after the refresh",
        |s: &SegmentSync| runs(s) >= 2 && reason(s).as_deref() == Some("Synced"),
    )
    .await;
    let status = second.status.unwrap();
    let trigger = status.last_run.unwrap().trigger;
    assert!(trigger.starts_with("source segment changed"), "{trigger}");
    assert!(
        status.checkpoint.unwrap().starts_with("segment:size=2"),
        "the new stamp is saved"
    );
    assert_eq!(tagged(&h), ["a@gmail.com", "b@gmail.com"]);
    h.assert_no_secret_leaked().await;
}

#[tokio::test]
async fn a_shopify_segment_that_gains_a_member_reaches_mailchimp_at_the_next_tick() {
    let h = watching_harness("op-segwatch-shopify").await;
    let a = h.add_shopify("a@gmail.com", "A", "Buyer");
    let b = h.add_shopify("b@gmail.com", "B", "Buyer");
    let shop = h.shopify().clone();
    let segment = shop.create_segment("VIP", "amount_spent >= 500", &[a]);

    let api = h.api::<SegmentSync>();
    h.create::<SegmentSync>(json!({
        "apiVersion": "sync.audience-operator.io/v1alpha1",
        "kind": "SegmentSync",
        "metadata": {"name": "watched-shop"},
        "spec": {
            "source": {"shopify": {"shopDomain": "test.myshopify.com", "credentialsSecretRef": {"name": "shopify"}}},
            "sourceSegment": {"shopifySegment": segment.to_string()},
            "target": {"mailchimp": {"audienceId": AUDIENCE, "segment": "VIP", "credentialsSecretRef": {"name": "mailchimp"}}},
            "mode": "union",
            "schedule": {"interval": "24h"}
        }
    }))
    .await;
    let first = wait_reason(&api, "watched-shop", "Synced").await;
    assert_eq!(runs(&first), 1);
    let stamp = first.status.as_ref().unwrap().checkpoint.clone().unwrap();
    assert_eq!(stamp, "segment:size=1");

    // Quiet ticks: one Shopify call each (the member count), nothing at Mailchimp, no run.
    let shopify = calls(&h, Vendor::Shopify, None);
    let mailchimp = calls(&h, Vendor::Mailchimp, None);
    until("three quiet ticks", || {
        calls(&h, Vendor::Shopify, None) >= shopify + 3
    })
    .await;
    assert_eq!(calls(&h, Vendor::Mailchimp, None), mailchimp);
    assert_eq!(runs(&api.get("watched-shop").await.unwrap()), 1);

    // b now matches the segment: the next tick runs the sync and b is tagged.
    assert!(shop.set_segment_members(segment, &[a, b]));
    let second = wait_for(
        &api,
        "watched-shop",
        "a run after the segment changed",
        |s: &SegmentSync| runs(s) >= 2 && reason(s).as_deref() == Some("Synced"),
    )
    .await;
    let status = second.status.unwrap();
    let trigger = status.last_run.unwrap().trigger;
    assert!(trigger.starts_with("source segment changed"), "{trigger}");
    assert_eq!(status.checkpoint.as_deref(), Some("segment:size=2"));
    let mut tagged = h.mailchimp().tag_members(AUDIENCE, "VIP");
    tagged.sort();
    assert_eq!(tagged, ["a@gmail.com", "b@gmail.com"]);
    h.assert_no_secret_leaked().await;
}
