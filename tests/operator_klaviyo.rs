//! Klaviyo as a target on a real API server, against the Klaviyo simulator: an AudienceSync into a
//! list (consent through subscription jobs, a history import on the first run, zero writes when
//! nothing changed, new customers into the list afterwards) and a SegmentSync into a segment list.

mod operator_support;

use audience_operator::crd::{AudienceSync, SegmentSync};
use audience_sandbox::Vendor;
use audience_sandbox::klaviyo::{Consent, OptIn, SeedConsent, Suppression};
use operator_support::*;
use serde_json::json;

const LIST: &str = "Shop customers";

fn klaviyo_audience_sync(name: &str) -> serde_json::Value {
    audience_sync(
        name,
        json!({
            "target": {"mailchimp": null, "klaviyo": {"listName": LIST, "credentialsSecretRef": {"name": "klaviyo"}}},
            "mode": "mirror",
        }),
    )
}

#[tokio::test]
async fn an_audience_sync_fills_a_klaviyo_list_with_the_right_consent_and_then_writes_nothing() {
    let h = harness("op-klaviyo", true).await;
    h.default_secrets().await;
    h.secret("klaviyo", &[("apiKey", &h.klaviyo_key())]).await;
    let shop = h.shopify();
    h.add_shopify("ann@gmail.com", "Ann", "Lee");
    let bob = h.add_shopify("bob@gmail.com", "Bob", "Stone");
    let cat = h.add_shopify("cat@gmail.com", "Cat", "Moss");
    shop.edit_customer(cat, |c| c.marketing_state = "UNSUBSCRIBED".into());
    let dan = h.add_shopify("dan@gmail.com", "Dan", "Oak");
    shop.edit_customer(dan, |c| c.marketing_state = "NOT_SUBSCRIBED".into());
    // Eve unsubscribed from every Klaviyo email before; the shop still says subscribed.
    h.add_shopify("eve@gmail.com", "Eve", "Ash");
    let kl = h.klaviyo();
    kl.seed_profile("eve@gmail.com", None, None, SeedConsent::Unsubscribed);

    let api = h.api::<AudienceSync>();
    h.create::<AudienceSync>(klaviyo_audience_sync("to-klaviyo"))
        .await;
    let synced = wait_reason(&api, "to-klaviyo", "Synced").await;
    let run = synced.status.as_ref().unwrap().last_run.clone().unwrap();
    assert_eq!(
        (run.counts.source, run.counts.created, run.counts.rejected),
        (5, 5, 1),
        "{run:?}"
    );
    let rejected = &synced.status.as_ref().unwrap().rejected_sample;
    assert!(
        rejected
            .iter()
            .any(|r| r.email == "eve@gmail.com" && r.reason.contains("UNSUBSCRIBE")),
        "{rejected:?}"
    );

    let list = kl.list_id(LIST).expect("the named list was created");
    assert_eq!(
        kl.list_members(&list),
        [
            "ann@gmail.com",
            "bob@gmail.com",
            "cat@gmail.com",
            "dan@gmail.com",
            "eve@gmail.com"
        ]
    );
    let profile = |email: &str| kl.profile_by_email(email).unwrap();
    assert_eq!(profile("ann@gmail.com").first_name.as_deref(), Some("Ann"));
    assert_eq!(profile("bob@gmail.com").last_name.as_deref(), Some("Stone"));
    assert_eq!(
        profile("ann@gmail.com").email_marketing.consent,
        Consent::Subscribed
    );
    // Opted out at the source: unsubscribed for this list, never globally.
    let cat = profile("cat@gmail.com").email_marketing;
    assert!(
        cat.list_suppressions.iter().any(|(l, _, _)| *l == list),
        "{cat:?}"
    );
    assert!(cat.suppressions.is_empty(), "{cat:?}");
    // Never opted in: in the list without consent.
    assert_eq!(
        profile("dan@gmail.com").email_marketing.consent,
        Consent::NeverSubscribed
    );
    // Unsubscribed in Klaviyo: never resubscribed (a subscribe would lift the suppression).
    assert!(
        profile("eve@gmail.com")
            .email_marketing
            .is_suppressed(Suppression::Unsubscribe)
    );
    // The first run is a history import: no "added to list" welcome flow started (seed 003).
    assert_eq!(kl.list_flows(&list), 0);

    // Nothing changed: a second run makes no write call.
    let writes = vendor_writes(&h, Vendor::Klaviyo);
    let second = h.sync_now::<AudienceSync>("to-klaviyo", "1").await;
    let run = second.status.as_ref().unwrap().last_run.clone().unwrap();
    // Eve is skipped (never resubscribed), the others are unchanged.
    assert_eq!(
        (
            run.counts.created,
            run.counts.updated,
            run.counts.unchanged,
            run.counts.skipped
        ),
        (0, 0, 4, 1),
        "{run:?}"
    );
    assert_eq!(vendor_writes(&h, Vendor::Klaviyo), writes, "no write call");

    // Later runs add new customers to the list, still without a welcome flow unless the sync
    // asks for list flows (seed 003); Bob, gone from the shop, leaves the list (mirror) but stays
    // a profile of the account.
    h.add_shopify("fay@gmail.com", "Fay", "Birch");
    assert!(shop.delete_customer(bob));
    // Bob's deletion is found by a full reconcile.
    let third = h.sync_now::<AudienceSync>("to-klaviyo", "full-2").await;
    let run = third.status.as_ref().unwrap().last_run.clone().unwrap();
    assert_eq!((run.counts.created, run.counts.archived), (1, 1), "{run:?}");
    assert_eq!(
        kl.list_members(&list),
        [
            "ann@gmail.com",
            "cat@gmail.com",
            "dan@gmail.com",
            "eve@gmail.com",
            "fay@gmail.com"
        ]
    );
    assert!(kl.profile_by_email("bob@gmail.com").is_some());
    assert_eq!(
        profile("fay@gmail.com").email_marketing.consent,
        Consent::Subscribed
    );
    assert_eq!(kl.list_flows(&list), 0, "no welcome flow by default");

    // Asking for list flows: the next new subscriber starts one.
    h.patch_spec::<AudienceSync>(
        "to-klaviyo",
        json!({"target": {"klaviyo": {"listName": LIST, "credentialsSecretRef": {"name": "klaviyo"}, "triggerListFlows": true}}}),
    )
    .await;
    h.add_shopify("gus@gmail.com", "Gus", "Elm");
    h.sync_now::<AudienceSync>("to-klaviyo", "3").await;
    assert!(
        kl.list_members(&list)
            .contains(&"gus@gmail.com".to_string())
    );
    assert_eq!(kl.list_flows(&list), 1, "the new subscriber's welcome flow");
    h.assert_no_secret_leaked().await;
}

#[tokio::test]
async fn a_segment_sync_keeps_a_klaviyo_segment_list_equal_to_the_source_segment() {
    let h = harness("op-klaviyo-seg", true).await;
    h.default_secrets().await;
    h.secret("klaviyo", &[("apiKey", &h.klaviyo_key())]).await;
    let crm = h.retailcrm();
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
    add("c@gmail.com");
    crm.create_segment("vip", "VIP", &[a, b]);
    // Someone the merchant put in the segment list by hand, not in the source segment.
    let kl = h.klaviyo();
    let seg_list = kl.create_list("VIP", OptIn::Single);
    let x = kl.seed_profile("x@gmail.com", None, None, SeedConsent::Subscribed);
    assert!(kl.add_to_list(&seg_list, &x));

    let api = h.api::<SegmentSync>();
    h.create::<SegmentSync>(json!({
        "apiVersion": "sync.audience-operator.io/v1alpha1",
        "kind": "SegmentSync",
        "metadata": {"name": "vip"},
        "spec": {
            "source": {"retailcrm": {"account": "demo", "credentialsSecretRef": {"name": "retailcrm"}}},
            "sourceSegment": {"retailcrmSegment": "vip"},
            "target": {"klaviyo": {"listName": "CRM customers", "segmentList": "VIP", "credentialsSecretRef": {"name": "klaviyo"}}},
            "mode": "exact",
            "schedule": {"interval": "1h"}
        }
    }))
    .await;
    let synced = wait_reason(&api, "vip", "Synced").await;
    let counts = synced.status.unwrap().last_run.unwrap().counts;
    assert_eq!(
        (counts.created, counts.segment_added, counts.segment_removed),
        (2, 2, 1),
        "{counts:?}"
    );
    assert_eq!(kl.list_members(&seg_list), ["a@gmail.com", "b@gmail.com"]);
    let audience = kl.list_id("CRM customers").unwrap();
    assert_eq!(kl.list_members(&audience), ["a@gmail.com", "b@gmail.com"]);
    // Removed from the segment list only: x keeps its profile and consent.
    let x = kl.profile_by_email("x@gmail.com").unwrap();
    assert_eq!(x.email_marketing.consent, Consent::Subscribed);
    assert!(x.email_marketing.can_receive());
    // c is not in the segment: never added anywhere.
    assert!(kl.profile_by_email("c@gmail.com").is_none());

    // b leaves the segment: the next run removes b from the segment list, not from the account.
    assert!(crm.set_segment_members("vip", &[a]));
    let second = h.sync_now::<SegmentSync>("vip", "1").await;
    let counts = second.status.unwrap().last_run.unwrap().counts;
    assert_eq!(
        (counts.created, counts.segment_added, counts.segment_removed),
        (0, 0, 1),
        "{counts:?}"
    );
    assert_eq!(kl.list_members(&seg_list), ["a@gmail.com"]);
    assert_eq!(kl.list_members(&audience), ["a@gmail.com", "b@gmail.com"]);
    h.assert_no_secret_leaked().await;
}
