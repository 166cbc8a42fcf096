//! SMS subscribers and Mailchimp → Shopify new customers on the real control plane (issue 12,
//! seed 004): `spec.sms.since` syncs SMS opt-ins made after the date, in E.164, once the first
//! email sync has completed; `spec.writeBack.createCustomers` (off by default) creates exactly
//! the missing customers, once, and never one that exists with another letter case.

mod operator_support;

use audience_operator::crd::AudienceSync;
use audience_sandbox::mailchimp::MemberStatus;
use audience_sandbox::shopify::Customer;
use chrono::{Duration, Utc};
use operator_support::*;
use serde_json::json;

#[tokio::test]
async fn sms_from_the_date_only_after_the_first_email_sync_and_no_write_back_by_default() {
    let h = harness("op-sms", true).await;
    h.default_secrets().await;
    let now = Utc::now();
    let since_day = (now - Duration::days(2)).date_naive();
    let since = since_day.and_hms_opt(0, 0, 0).unwrap().and_utc();
    let shop = h.shopify();
    let add = |email: &str, phone: &str, sms_at| {
        shop.add_customer(Customer {
            email: Some(email.into()),
            phone: Some(phone.into()),
            sms_marketing_state: Some("SUBSCRIBED".into()),
            sms_consent_updated_at: Some(sms_at),
            updated_at: now - Duration::hours(1),
            ..Default::default()
        })
    };
    add("old@gmail.com", "+491701111111", since - Duration::hours(1));
    let new_id = add("new@gmail.com", "+49 170 2222222", now - Duration::hours(1));
    add("bad@gmail.com", "0170 3333333", now - Duration::hours(1));
    let mc = h.mailchimp();
    // A Mailchimp-only member: write-back is off, so it creates no customer.
    mc.insert_member(
        AUDIENCE,
        "only-in-mailchimp@gmail.com",
        MemberStatus::Subscribed,
    );
    let customers_before = shop.customer_count();

    let api = h.api::<AudienceSync>();
    h.create::<AudienceSync>(audience_sync(
        "sms",
        json!({"sms": {"since": since_day.format("%Y-%m-%d").to_string()}}),
    ))
    .await;
    let first = wait_reason(&api, "sms", "Synced").await;
    let counts = first.status.clone().unwrap().last_run.unwrap().counts;
    assert!(counts.sms_waiting, "{counts:?}");
    assert_eq!(counts.sms_subscribed, 0);
    let message = ready(&first).unwrap().message.clone();
    assert!(
        message.contains("SMS waits for the first email sync"),
        "{message}"
    );
    let sms = |email: &str| {
        let m = mc.member(AUDIENCE, email).expect(email);
        (m.sms_subscription_status, m.sms_phone_number)
    };
    assert_eq!(sms("new@gmail.com").0, None, "SMS waits");

    let second = h.sync_now::<AudienceSync>("sms", "second").await;
    let counts = second.status.clone().unwrap().last_run.unwrap().counts;
    assert!(!counts.sms_waiting);
    assert_eq!(
        sms("new@gmail.com"),
        (Some("subscribed".into()), "+491702222222".into()),
        "subscribed after the date, phone in E.164"
    );
    assert_eq!(
        mc.member(AUDIENCE, "new@gmail.com")
            .unwrap()
            .status
            .as_str(),
        "transactional",
        "email consent untouched by the SMS write"
    );
    assert_eq!(sms("old@gmail.com").0, None, "subscribed before the date");
    assert_eq!(sms("bad@gmail.com").0, None, "not E.164-able");
    assert_eq!(
        (counts.sms_subscribed, counts.sms_rejected),
        (1, 1),
        "{counts:?}"
    );
    let rejected = second.status.clone().unwrap().rejected_sample;
    assert!(
        rejected
            .iter()
            .any(|r| r.email == "bad@gmail.com" && r.reason.contains("country code")),
        "{rejected:?}"
    );
    assert_eq!(shop.customer_count(), customers_before, "write-back is off");
    assert_eq!(shop.counters().customers_created, 0);

    // Nothing changed: nothing is written again.
    let third = h.sync_now::<AudienceSync>("sms", "third").await;
    let counts = third.status.clone().unwrap().last_run.unwrap().counts;
    assert_eq!(counts.sms_subscribed, 0, "{counts:?}");

    // The customer unsubscribes from SMS in the shop: only the SMS channel follows.
    shop.edit_customer(new_id, |c| {
        c.sms_marketing_state = Some("UNSUBSCRIBED".into());
        c.sms_consent_updated_at = Some(Utc::now());
    });
    let fourth = h.sync_now::<AudienceSync>("sms", "fourth").await;
    let counts = fourth.status.clone().unwrap().last_run.unwrap().counts;
    assert_eq!(
        (counts.sms_subscribed, counts.sms_unsubscribed),
        (0, 1),
        "{counts:?}"
    );
    assert_eq!(sms("new@gmail.com").0.as_deref(), Some("unsubscribed"));
    assert_eq!(
        mc.member(AUDIENCE, "new@gmail.com")
            .unwrap()
            .status
            .as_str(),
        "transactional",
        "email consent untouched by the SMS unsubscribe"
    );
}

#[tokio::test]
async fn write_back_creates_exactly_the_missing_customers_once() {
    let h = harness("op-writeback", true).await;
    h.default_secrets().await;
    let shop = h.shopify();
    shop.add_customer(Customer {
        email: Some("Ann@Gmail.com".into()),
        marketing_state: "NOT_SUBSCRIBED".into(),
        updated_at: Utc::now() - Duration::hours(1),
        ..Default::default()
    });
    let mc = h.mailchimp();
    // The shop's Ann in another letter case: one customer, nothing to create.
    mc.insert_member(AUDIENCE, "ann@gmail.com", MemberStatus::Subscribed);
    mc.insert_member(AUDIENCE, "newbie@gmail.com", MemberStatus::Subscribed);
    mc.edit_merge_field(AUDIENCE, "newbie@gmail.com", "FNAME", "Nia");
    mc.insert_member(AUDIENCE, "reader@gmail.com", MemberStatus::Transactional);
    let before = shop.customer_count();

    let api = h.api::<AudienceSync>();
    h.create::<AudienceSync>(audience_sync(
        "write-back",
        json!({"writeBack": {"createCustomers": true}}),
    ))
    .await;
    let first = wait_reason(&api, "write-back", "Synced").await;
    let counts = first.status.clone().unwrap().last_run.unwrap().counts;
    assert_eq!(counts.customers_created, 2, "{counts:?}");
    assert_eq!(shop.customer_count(), before + 2);
    let created: Vec<Customer> = shop
        .customer_ids()
        .into_iter()
        .filter_map(|id| shop.customer(id))
        .filter(|c| c.email.as_deref() != Some("Ann@Gmail.com"))
        .collect();
    let newbie = created
        .iter()
        .find(|c| c.email.as_deref() == Some("newbie@gmail.com"))
        .expect("newbie created");
    assert_eq!(newbie.first_name.as_deref(), Some("Nia"));
    assert_eq!(newbie.marketing_state, "SUBSCRIBED");
    assert_eq!(
        newbie.marketing_opt_in_level.as_deref(),
        Some("SINGLE_OPT_IN")
    );
    assert_eq!(
        newbie.consent_updated_at,
        mc.member(AUDIENCE, "newbie@gmail.com")
            .unwrap()
            .timestamp_opt
    );
    let reader = created
        .iter()
        .find(|c| c.email.as_deref() == Some("reader@gmail.com"))
        .expect("reader created");
    assert_eq!(reader.marketing_state, "NOT_SUBSCRIBED");

    let second = h.sync_now::<AudienceSync>("write-back", "again").await;
    let counts = second.status.clone().unwrap().last_run.unwrap().counts;
    assert_eq!(counts.customers_created, 0, "{counts:?}");
    assert_eq!(counts.customers_create_rejected, 0);
    assert_eq!(
        shop.customer_count(),
        before + 2,
        "a second run creates nothing"
    );
    assert_eq!(shop.counters().customers_created, 2);
}
