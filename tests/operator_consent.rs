//! Consent rules on the real control plane (issue 15): a source that records opt-outs only
//! (Lightspeed X-Series `do_not_email`) gives transactional contacts by default, the switch
//! `consentPolicy.whenSourceCannotOptIn: subscribed` gives subscribers, and status counts how many
//! contacts the rule decided either way; an opt-out is an unsubscribe whatever the switch says.

mod operator_support;

use audience_operator::crd::AudienceSync;
use audience_sandbox::lightspeed_x::{Customer, DEMO_TOKEN};
use operator_support::*;
use serde_json::json;

fn lightspeed_sync(name: &str, audience: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut object = audience_sync(
        name,
        json!({
            "source": {"shopify": null, "lightspeedXSeries": {"domainPrefix": "store", "credentialsSecretRef": {"name": "lightspeed"}}},
            "target": {"mailchimp": {"audienceId": audience}},
        }),
    );
    merge(&mut object["spec"], extra);
    object
}

#[tokio::test]
async fn lightspeed_customers_without_an_opt_out_are_transactional_unless_the_switch_says_subscribed()
 {
    let h = harness("op-consent", true).await;
    h.default_secrets().await;
    h.secret("lightspeed", &[("token", DEMO_TOKEN)]).await;
    let ls = &h.sandbox.sandbox.lightspeed_x;
    for (email, opted_out) in [
        ("ann@gmail.com", false),
        ("bob@gmail.com", false),
        ("cat@gmail.com", true),
    ] {
        ls.add_customer(Customer {
            email: Some(email.into()),
            first_name: Some(email[..3].into()),
            do_not_email: opted_out,
            ..Default::default()
        });
    }
    // Two audiences, one per policy, fed by the same source.
    let mc = h.mailchimp();
    mc.create_list("strict", "Default policy");
    mc.create_list("asvendor", "As Lightspeed's app");
    let api = h.api::<AudienceSync>();
    h.create::<AudienceSync>(lightspeed_sync("default", "strict", json!({})))
        .await;
    h.create::<AudienceSync>(lightspeed_sync(
        "subscribed",
        "asvendor",
        json!({"consentPolicy": {"whenSourceCannotOptIn": "subscribed"}}),
    ))
    .await;

    let statuses = |list: &str| {
        let mut m: Vec<(String, String)> = mc
            .members(list)
            .into_iter()
            .map(|m| (m.email_address, m.status.as_str().to_string()))
            .collect();
        m.sort();
        m
    };
    let default = wait_reason(&api, "default", "Synced").await;
    let counts = default.status.unwrap().last_run.unwrap().counts;
    assert_eq!(
        (counts.created, counts.consent_by_rule),
        (3, 2),
        "{counts:?}"
    );
    assert_eq!(
        statuses("strict"),
        [
            ("ann@gmail.com".to_string(), "transactional".to_string()),
            ("bob@gmail.com".into(), "transactional".into()),
            ("cat@gmail.com".into(), "unsubscribed".into()),
        ],
        "absence of an opt-out is not an opt-in"
    );

    let switched = wait_reason(&api, "subscribed", "Synced").await;
    let counts = switched.status.unwrap().last_run.unwrap().counts;
    assert_eq!(
        (counts.created, counts.consent_by_rule),
        (3, 2),
        "{counts:?}"
    );
    assert_eq!(
        statuses("asvendor"),
        [
            ("ann@gmail.com".to_string(), "subscribed".to_string()),
            ("bob@gmail.com".into(), "subscribed".into()),
            ("cat@gmail.com".into(), "unsubscribed".into()),
        ],
        "the switch reproduces the vendor app; an opt-out still wins"
    );
    // The rule's decision is in an Event too, so a merchant sees it without reading status.
    let events = h.events("default").await;
    assert!(
        events.iter().any(|e| e
            .note
            .as_deref()
            .unwrap_or("")
            .contains("whenSourceCannotOptIn")),
        "{:?}",
        events.iter().map(|e| e.note.clone()).collect::<Vec<_>>()
    );
    h.assert_no_secret_leaked().await;
}
