//! Many sources, one audience, on the real control plane (issue 15): a Lightspeed X-Series POS
//! and a Shopify web shop feed one Mailchimp audience through one AudienceSync with `sources`.
//! Per customer the most restrictive consent wins, each field has one owner, a second round
//! writes nothing, the Lightspeed rule is counted both ways, and a member edited in Mailchimp by
//! hand is set back and reported as drift.

mod operator_support;

use audience_operator::crd::AudienceSync;
use audience_sandbox::Vendor;
use audience_sandbox::lightspeed_x::{Customer as PosCustomer, DEMO_TOKEN};
use audience_sandbox::shopify::Customer as WebCustomer;
use chrono::{Duration, Utc};
use operator_support::*;
use serde_json::json;

const LIST: &str = "combined";

fn combined_sync(extra: serde_json::Value) -> serde_json::Value {
    let mut object = audience_sync(
        "store-and-web",
        json!({
            "source": null,
            "sources": [
                {"name": "store", "lightspeedXSeries": {"domainPrefix": "store", "credentialsSecretRef": {"name": "lightspeed"}}},
                {"name": "web", "shopify": {"shopDomain": "test.myshopify.com", "credentialsSecretRef": {"name": "shopify"}}},
            ],
            "target": {"mailchimp": {"audienceId": LIST}},
            "fieldMapping": {"phone": "PHONE"},
            "fieldPrecedence": {"FNAME": ["web", "store"], "PHONE": ["store", "web"]},
        }),
    );
    merge(&mut object["spec"], extra);
    object
}

#[tokio::test]
async fn a_pos_and_a_web_shop_feed_one_audience_with_the_strictest_consent_and_one_owner_per_field()
{
    let h = harness("op-sources", true).await;
    h.default_secrets().await;
    h.secret("lightspeed", &[("token", DEMO_TOKEN)]).await;
    // Both systems last edited their records an hour ago, before any run.
    let an_hour_ago = Utc::now() - Duration::hours(1);
    let pos = &h.sandbox.sandbox.lightspeed_x;
    for (email, first, phone, opted_out) in [
        ("ann@gmail.com", "Ann at the till", "+4930111", false),
        ("bob@gmail.com", "Bob", "", true),
        ("cat@gmail.com", "Cat", "+4930333", false),
        ("dan@gmail.com", "Dan", "", false),
    ] {
        pos.add_customer(PosCustomer {
            email: Some(email.into()),
            first_name: Some(first.into()),
            phone: (!phone.is_empty()).then(|| phone.to_string()),
            do_not_email: opted_out,
            updated_at: an_hour_ago.format("%Y-%m-%dT%H:%M:%S+00:00").to_string(),
            ..Default::default()
        });
    }
    for (email, first, state) in [
        ("ann@gmail.com", "Ann", "SUBSCRIBED"),
        ("bob@gmail.com", "Bob", "SUBSCRIBED"),
        ("dan@gmail.com", "Dan", "NOT_SUBSCRIBED"),
        ("eve@gmail.com", "Eve", "UNSUBSCRIBED"),
    ] {
        h.shopify().add_customer(WebCustomer {
            email: Some(email.into()),
            first_name: Some(first.into()),
            last_name: Some("Berg".into()),
            marketing_state: state.into(),
            updated_at: an_hour_ago,
            ..Default::default()
        });
    }
    let mc = h.mailchimp();
    mc.create_list(LIST, "Store and web shop");
    let api = h.api::<AudienceSync>();
    h.create::<AudienceSync>(combined_sync(json!({}))).await;

    let synced = wait_reason(&api, "store-and-web", "Synced").await;
    let counts = synced.status.unwrap().last_run.unwrap().counts;
    assert_eq!(
        (counts.created, counts.consent_by_rule, counts.drift),
        (5, 1, 0),
        "{counts:?}"
    );
    let member = |email: &str| mc.member(LIST, email).expect(email);
    let status = |email: &str| member(email).status.as_str().to_string();
    let field = |email: &str, tag: &str| {
        member(email)
            .merge_fields
            .get(tag)
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    };
    // Consent: the strictest known; the POS's silence defers to Shopify's opt-in.
    assert_eq!(status("ann@gmail.com"), "subscribed", "opted in online");
    assert_eq!(
        status("bob@gmail.com"),
        "unsubscribed",
        "opted out at the till"
    );
    assert_eq!(
        status("cat@gmail.com"),
        "transactional",
        "the POS alone: no opt-in"
    );
    assert_eq!(
        status("dan@gmail.com"),
        "transactional",
        "Shopify: never opted in"
    );
    assert_eq!(status("eve@gmail.com"), "unsubscribed");
    // Fields: FNAME from the web shop, PHONE from the till, LNAME from whoever has one.
    assert_eq!(field("ann@gmail.com", "FNAME"), "Ann");
    assert_eq!(field("ann@gmail.com", "PHONE"), "+4930111");
    assert_eq!(
        field("ann@gmail.com", "LNAME"),
        "Berg",
        "a blank never erases"
    );
    assert_eq!(field("cat@gmail.com", "PHONE"), "+4930333");

    // A second round of both sources writes nothing.
    let before = vendor_writes(&h, Vendor::Mailchimp);
    let again = h.sync_now::<AudienceSync>("store-and-web", "2").await;
    // Neither source changed: an incremental round, each source read from its own checkpoint.
    let checkpoint = again.status.as_ref().unwrap().checkpoint.clone().unwrap();
    let checkpoints: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&checkpoint).unwrap();
    assert_eq!(
        checkpoints.keys().map(String::as_str).collect::<Vec<_>>(),
        ["store", "web"]
    );
    let last = again.status.as_ref().unwrap().last_run.clone().unwrap();
    assert_eq!(last.mode.as_deref(), Some("incremental"));
    let counts = again.status.unwrap().last_run.unwrap().counts;
    assert_eq!(vendor_writes(&h, Vendor::Mailchimp), before, "{counts:?}");
    assert_eq!((counts.created, counts.updated, counts.drift), (0, 0, 0));

    // Someone renames Ann in Mailchimp by hand: the sources win, and the run calls it drift.
    assert!(mc.edit_merge_field(LIST, "ann@gmail.com", "FNAME", "Annie"));
    // Drift is found by a full reconcile (an incremental run reads only the sources' changes).
    let corrected = h.sync_now::<AudienceSync>("store-and-web", "full-3").await;
    let message = ready(&corrected).unwrap().message.clone();
    let counts = corrected.status.unwrap().last_run.unwrap().counts;
    assert_eq!((counts.updated, counts.drift), (1, 1), "{counts:?}");
    assert_eq!(field("ann@gmail.com", "FNAME"), "Ann");
    assert!(message.contains("drift: 1"), "{message}");

    // Still unsubscribed after both sources synced again, whatever the web shop says.
    assert_eq!(status("bob@gmail.com"), "unsubscribed");

    // The switch: a POS customer with no opt-out becomes a subscriber, counted as the rule's.
    h.patch_spec::<AudienceSync>(
        "store-and-web",
        json!({"consentPolicy": {"whenSourceCannotOptIn": "subscribed"}}),
    )
    .await;
    let switched = wait_for(
        &api,
        "store-and-web",
        "a run of the new spec",
        |s: &AudienceSync| {
            s.status.as_ref().is_some_and(|st| {
                st.observed_generation == s.metadata.generation
                    && st
                        .last_run
                        .as_ref()
                        .is_some_and(|r| r.counts.consent_by_rule > 0)
                    && reason(s).as_deref() == Some("Synced")
            })
        },
    )
    .await;
    let counts = switched.status.unwrap().last_run.unwrap().counts;
    assert_eq!(
        (counts.updated, counts.consent_by_rule, counts.drift),
        (1, 1, 0),
        "{counts:?}"
    );
    assert_eq!(
        status("cat@gmail.com"),
        "subscribed",
        "the switch, as Lightspeed's app"
    );
    // The drifted run's metrics were recorded before this later run of the same sync started.
    let metrics = audience_operator::metrics::Metrics::global().render();
    assert!(
        metrics.contains("audience_contacts_drift_corrected_total{kind=\"AudienceSync\"} 1"),
        "{metrics}"
    );
    assert_eq!(
        status("dan@gmail.com"),
        "transactional",
        "Shopify still knows better"
    );
    assert_eq!(status("bob@gmail.com"), "unsubscribed");
    h.assert_no_secret_leaked().await;
}
