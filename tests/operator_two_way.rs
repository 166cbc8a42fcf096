//! Two-way consent on the real control plane (issue 12, seed 004): an AudienceSync from a
//! Shopify shop into a Mailchimp audience with `consentPolicy.twoWay: true`. The first sync keeps
//! Mailchimp's subscribers and marks them subscribed in Shopify; afterwards a subscribe or
//! unsubscribe on either side reaches the other, the later change winning; a re-opt-in is set
//! `pending`; a cleaned address is never resubscribed; and ten runs after that write nothing.

mod operator_support;

use audience_operator::crd::AudienceSync;
use audience_sandbox::Vendor;
use audience_sandbox::mailchimp::MemberStatus;
use audience_sandbox::shopify::Customer;
use chrono::{DateTime, Duration, Utc};
use operator_support::*;
use serde_json::json;

fn two_way_sync() -> serde_json::Value {
    audience_sync("two-way", json!({"consentPolicy": {"twoWay": true}}))
}

/// Consent updates Shopify applied so far.
fn shop_consent_writes(h: &Harness) -> u64 {
    h.shopify().counters().consent_updates
}

fn mutations(h: &Harness) -> u64 {
    h.shopify()
        .counters()
        .root_fields
        .get("customerEmailMarketingConsentUpdate")
        .copied()
        .unwrap_or(0)
}

#[tokio::test]
async fn consent_travels_both_ways_the_later_change_wins_and_nothing_loops() {
    let h = harness("op-two-way", true).await;
    h.default_secrets().await;
    let an_hour_ago = Utc::now() - Duration::hours(1);
    let shop = h.shopify();
    let add = |email: &str, state: &str, consent_at: Option<DateTime<Utc>>| {
        shop.add_customer(Customer {
            email: Some(email.into()),
            first_name: Some(email.split('@').next().unwrap().into()),
            marketing_state: state.into(),
            consent_updated_at: consent_at,
            updated_at: an_hour_ago,
            ..Default::default()
        })
    };
    let ids: std::collections::BTreeMap<&str, u64> = [
        // Subscribed in Mailchimp already; the shop says no (first-sync rule, both flavours).
        ("ann@gmail.com", "UNSUBSCRIBED", Some(an_hour_ago)),
        ("bob@gmail.com", "NOT_SUBSCRIBED", None),
        // Subscribed on both sides: not sent again.
        ("cat@gmail.com", "SUBSCRIBED", Some(an_hour_ago)),
        // New customers: opted in at checkout, and not.
        ("dan@gmail.com", "SUBSCRIBED", Some(an_hour_ago)),
        ("eve@gmail.com", "NOT_SUBSCRIBED", None),
        // Bounced in Mailchimp, subscribed in the shop.
        ("fay@gmail.com", "SUBSCRIBED", Some(an_hour_ago)),
        // Unsubscribed in Mailchimp after the shop's (older) opt-in: Mailchimp's change wins.
        ("gus@gmail.com", "SUBSCRIBED", Some(an_hour_ago)),
        // Subscribed on both sides, for the ongoing changes.
        ("ida@gmail.com", "SUBSCRIBED", Some(an_hour_ago)),
        ("jon@gmail.com", "SUBSCRIBED", Some(an_hour_ago)),
        ("kim@gmail.com", "SUBSCRIBED", Some(an_hour_ago)),
    ]
    .into_iter()
    .map(|(email, state, at)| (email, add(email, state, at)))
    .collect();
    let mc = h.mailchimp();
    for (email, status) in [
        ("ann@gmail.com", MemberStatus::Subscribed),
        ("bob@gmail.com", MemberStatus::Subscribed),
        ("cat@gmail.com", MemberStatus::Subscribed),
        ("fay@gmail.com", MemberStatus::Cleaned),
        ("gus@gmail.com", MemberStatus::Unsubscribed),
        ("ida@gmail.com", MemberStatus::Subscribed),
        ("jon@gmail.com", MemberStatus::Subscribed),
        ("kim@gmail.com", MemberStatus::Subscribed),
    ] {
        mc.insert_member(AUDIENCE, email, status);
    }
    let status = |email: &str| {
        mc.member(AUDIENCE, email)
            .expect(email)
            .status
            .as_str()
            .to_string()
    };
    let shop_state = |email: &str| shop.customer(ids[email]).expect(email).marketing_state;

    // ---------------------------------------------------------------- first sync
    let api = h.api::<AudienceSync>();
    h.create::<AudienceSync>(two_way_sync()).await;
    let synced = wait_reason(&api, "two-way", "Synced").await;
    let st = synced.status.clone().unwrap();
    let counts = st.last_run.clone().unwrap().counts;
    for email in ["ann@gmail.com", "bob@gmail.com"] {
        assert_eq!(
            status(email),
            "subscribed",
            "{email}: not unsubscribed by the first sync"
        );
        assert_eq!(
            shop_state(email),
            "SUBSCRIBED",
            "{email}: marked subscribed in Shopify"
        );
    }
    // Mailchimp's consent time travels with it (it is later than the shop's record).
    let ann = shop.customer(ids["ann@gmail.com"]).unwrap();
    assert_eq!(
        ann.consent_updated_at,
        mc.member(AUDIENCE, "ann@gmail.com").unwrap().timestamp_opt
    );
    assert_eq!(ann.marketing_opt_in_level.as_deref(), Some("SINGLE_OPT_IN"));
    let cat = mc.member(AUDIENCE, "cat@gmail.com").unwrap();
    assert_eq!(
        (cat.status.as_str(), cat.merge_fields.get("FNAME")),
        ("subscribed", None),
        "a subscriber already in Mailchimp is not sent again (no name, no status written)"
    );
    assert!(
        cat.tags.iter().any(|t| t.starts_with("audience-operator:")),
        "only the owner tag: the sync has handled it"
    );
    assert_eq!(
        status("dan@gmail.com"),
        "subscribed",
        "opted in at checkout"
    );
    assert_eq!(status("eve@gmail.com"), "transactional", "did not opt in");
    assert_eq!(status("fay@gmail.com"), "cleaned", "never resubscribed");
    assert_eq!(
        shop_state("fay@gmail.com"),
        "SUBSCRIBED",
        "the shop is not told a bounce"
    );
    assert_eq!(status("gus@gmail.com"), "unsubscribed");
    assert_eq!(
        shop_state("gus@gmail.com"),
        "UNSUBSCRIBED",
        "Mailchimp's later unsubscribe"
    );
    assert_eq!(
        (
            counts.already_subscribed,
            counts.consent_written_back,
            counts.cleaned_not_resubscribed
        ),
        (6, 3, 1),
        "{counts:?}"
    );
    let first_message = ready(&synced).unwrap().message.clone();
    assert!(
        first_message.contains("3 written back to the source"),
        "{first_message}"
    );
    assert!(
        first_message.contains("1 cleaned (bounced) not resubscribed"),
        "{first_message}"
    );

    // ---------------------------------------------------------------- ongoing changes
    // Mailchimp's changes happen two seconds on (its timestamps have one-second resolution), the
    // shop's two seconds after those: each side's change is strictly the later where it must be.
    mc.advance_clock(Duration::seconds(2));
    // In Mailchimp: an unsubscribe link (ann), a signup-form subscribe of a transactional
    // contact (eve), and ida's unsubscribe while the shop re-records an older opt-in.
    assert!(mc.set_member_status(AUDIENCE, "ann@gmail.com", MemberStatus::Unsubscribed));
    // The time the run reads for it (Mailchimp's clock has one-second resolution, so a later
    // write to the member in another second would move `last_changed` past what was read).
    let ann_unsubscribed_at = mc.member(AUDIENCE, "ann@gmail.com").unwrap().last_changed;
    assert!(mc.set_member_status(AUDIENCE, "eve@gmail.com", MemberStatus::Subscribed));
    assert!(mc.set_member_status(AUDIENCE, "ida@gmail.com", MemberStatus::Unsubscribed));
    shop.edit_customer(ids["ida@gmail.com"], |c| {
        c.consent_updated_at = Some(Utc::now() - Duration::minutes(30));
    });
    // jon unsubscribes in Mailchimp, then the merchant marks him subscribed in Shopify (later).
    assert!(mc.set_member_status(AUDIENCE, "jon@gmail.com", MemberStatus::Unsubscribed));
    let later = mc.now() + Duration::seconds(2);
    let in_shop = |email: &str, state: &str| {
        shop.edit_customer(ids[email], |c| {
            c.marketing_state = state.into();
            c.consent_updated_at = Some(later);
        })
    };
    in_shop("jon@gmail.com", "SUBSCRIBED");
    // In Shopify: kim unsubscribes; gus (unsubscribed in Mailchimp) opts in again at checkout.
    in_shop("kim@gmail.com", "UNSUBSCRIBED");
    in_shop("gus@gmail.com", "SUBSCRIBED");
    // fay, bounced, is marked subscribed in the shop once more.
    in_shop("fay@gmail.com", "SUBSCRIBED");
    // A Mailchimp subscriber comes to the shop's checkout without opting in.
    mc.insert_member(AUDIENCE, "liv@gmail.com", MemberStatus::Subscribed);
    let liv = add("liv@gmail.com", "NOT_SUBSCRIBED", None);

    let after = h.sync_now::<AudienceSync>("two-way", "changes").await;
    let counts = after.status.clone().unwrap().last_run.unwrap().counts;
    // Mailchimp → Shopify.
    assert_eq!(
        shop_state("ann@gmail.com"),
        "UNSUBSCRIBED",
        "Mailchimp unsubscribe reached Shopify"
    );
    assert_eq!(
        shop.customer(ids["ann@gmail.com"])
            .unwrap()
            .consent_updated_at,
        Some(ann_unsubscribed_at),
        "with Mailchimp's time"
    );
    assert_eq!(
        shop_state("eve@gmail.com"),
        "SUBSCRIBED",
        "Mailchimp subscribe reached Shopify"
    );
    assert_eq!(
        shop_state("ida@gmail.com"),
        "UNSUBSCRIBED",
        "the later change (Mailchimp's) wins"
    );
    assert_eq!(status("ida@gmail.com"), "unsubscribed");
    // Shopify → Mailchimp.
    assert_eq!(
        status("kim@gmail.com"),
        "unsubscribed",
        "Shopify unsubscribe reached Mailchimp"
    );
    assert_eq!(
        status("jon@gmail.com"),
        "pending",
        "the later change (the shop's), as pending"
    );
    assert_eq!(shop_state("jon@gmail.com"), "SUBSCRIBED");
    assert_eq!(
        status("gus@gmail.com"),
        "pending",
        "re-opt-in at checkout: Mailchimp asks them"
    );
    assert_eq!(
        status("fay@gmail.com"),
        "cleaned",
        "still never resubscribed"
    );
    assert_eq!(
        status("liv@gmail.com"),
        "subscribed",
        "stays subscribed without a new opt-in"
    );
    assert_eq!(shop.customer(liv).unwrap().marketing_state, "SUBSCRIBED");
    assert_eq!(
        (
            counts.pending_reconfirm,
            counts.cleaned_not_resubscribed,
            counts.consent_written_back
        ),
        (2, 1, 4),
        "{counts:?}"
    );
    let message = ready(&after).unwrap().message.clone();
    assert!(message.contains("2 set pending to reconfirm"), "{message}");

    // ---------------------------------------------------------------- no loops
    let (mc_before, shop_before, mutations_before) = (
        vendor_writes(&h, Vendor::Mailchimp),
        shop_consent_writes(&h),
        mutations(&h),
    );
    for round in 0..10 {
        let run = h
            .sync_now::<AudienceSync>("two-way", &format!("quiet-{round}"))
            .await;
        let counts = run.status.unwrap().last_run.unwrap().counts;
        assert_eq!(
            (
                counts.created,
                counts.updated,
                counts.unsubscribed,
                counts.consent_written_back
            ),
            (0, 0, 0, 0),
            "round {round}: {counts:?}"
        );
    }
    assert_eq!(
        vendor_writes(&h, Vendor::Mailchimp),
        mc_before,
        "no Mailchimp writes in ten runs"
    );
    assert_eq!(
        mutations(&h),
        mutations_before,
        "no Shopify consent mutations in ten runs"
    );
    assert_eq!(shop_consent_writes(&h), shop_before);
    h.assert_no_secret_leaked().await;
}

#[tokio::test]
async fn two_way_with_several_sources_is_refused_by_the_api_server() {
    let h = harness("op-two-way-bad", false).await;
    let mut object = two_way_sync();
    object["spec"]["source"] = serde_json::Value::Null;
    object["spec"]["sources"] = json!([
        {"name": "a", "shopify": {"shopDomain": "a.myshopify.com", "credentialsSecretRef": {"name": "shopify"}}},
        {"name": "b", "shopify": {"shopDomain": "b.myshopify.com", "credentialsSecretRef": {"name": "shopify"}}},
    ]);
    let object: AudienceSync = serde_json::from_value(object).unwrap();
    let refused = h
        .api::<AudienceSync>()
        .create(&Default::default(), &object)
        .await
        .expect_err("the CEL rule refuses it");
    assert!(
        refused
            .to_string()
            .contains("consentPolicy.twoWay needs a single Shopify source"),
        "{refused}"
    );
}
