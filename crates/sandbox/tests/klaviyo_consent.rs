//! Consent rules of the Klaviyo simulator's subscription jobs.

mod klaviyo_support;

use klaviyo_support::*;

const PAST: &str = "2024-03-01T10:00:00+00:00";

#[tokio::test]
async fn subscribe_clears_unsubscribe_and_spam_but_not_bounces() {
    let kl = Kl::start().await;
    let list = kl.sim().create_list("News", OptIn::Single);
    for (email, consent) in [
        ("never@example.com", SeedConsent::NeverSubscribed),
        ("unsub@example.com", SeedConsent::Unsubscribed),
        ("bounced@example.com", SeedConsent::Bounced),
        ("spam@example.com", SeedConsent::SpamReported),
        ("manual@example.com", SeedConsent::UserSuppressed),
    ] {
        kl.sim().seed_profile(email, None, None, consent);
    }
    let emails = [
        "never@example.com",
        "unsub@example.com",
        "bounced@example.com",
        "spam@example.com",
        "manual@example.com",
        "new@example.com",
    ];
    let r = kl
        .post(
            "/api/profile-subscription-bulk-create-jobs",
            &subscribe_job(
                emails.iter().map(|e| subscriber(e, None)).collect(),
                Some(&list),
                false,
            ),
        )
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert_eq!(r.body, serde_json::Value::Null);
    for email in emails {
        let p = kl.sim().profile_by_email(email).expect(email);
        assert_eq!(p.email_marketing.consent, Consent::Subscribed, "{email}");
    }
    let bounced = kl.sim().profile_by_email("bounced@example.com").unwrap();
    assert!(
        bounced
            .email_marketing
            .is_suppressed(Suppression::HardBounce)
    );
    assert!(!bounced.email_marketing.can_receive());
    for email in [
        "unsub@example.com",
        "spam@example.com",
        "manual@example.com",
    ] {
        let p = kl.sim().profile_by_email(email).unwrap();
        assert!(
            p.email_marketing.suppressions.is_empty(),
            "{email}: {:?}",
            p.email_marketing
        );
        assert!(p.email_marketing.can_receive());
    }
    assert_eq!(kl.sim().list_members(&list).len(), 6);
    // Each join through a non-historical subscribe starts the list's "added to list" flow.
    assert_eq!(kl.sim().list_flows(&list), 6);

    // And the API shows it.
    let r = kl
        .get("/api/profiles?filter=equals(email,\"bounced@example.com\")&additional-fields[profile]=subscriptions")
        .await;
    let m = &r.body["data"][0]["attributes"]["subscriptions"]["email"]["marketing"];
    assert_eq!(m["consent"], "SUBSCRIBED");
    assert_eq!(m["can_receive_email_marketing"], false);
    assert_eq!(m["suppression"][0]["reason"], "HARD_BOUNCE");
}

#[tokio::test]
async fn historical_import_needs_a_past_consent_time_and_fires_no_flows() {
    let kl = Kl::start().await;
    let list = kl.sim().create_list("Double", OptIn::Double);
    let job =
        |at: Option<&str>| subscribe_job(vec![subscriber("h@example.com", at)], Some(&list), true);
    let r = kl
        .post("/api/profile-subscription-bulk-create-jobs", &job(None))
        .await;
    assert_eq!(r.status, 400);
    assert!(r.pointer().ends_with("/consented_at"), "{}", r.pointer());
    let r = kl
        .post(
            "/api/profile-subscription-bulk-create-jobs",
            &job(Some("2999-01-01T00:00:00Z")),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(kl.sim().profile_by_email("h@example.com").is_none());

    let r = kl
        .post(
            "/api/profile-subscription-bulk-create-jobs",
            &job(Some(PAST)),
        )
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let p = kl.sim().profile_by_email("h@example.com").unwrap();
    assert_eq!(p.email_marketing.consent, Consent::Subscribed);
    assert_eq!(
        p.email_marketing.consent_timestamp.unwrap().to_rfc3339(),
        PAST
    );
    // Skips double opt-in and the list's flows.
    assert_eq!(kl.sim().list_members(&list), ["h@example.com"]);
    assert_eq!(kl.sim().list_flows(&list), 0);
    assert_eq!(kl.sim().double_opt_in_sent(&list), 0);
}

#[tokio::test]
async fn double_opt_in_lists_wait_for_confirmation() {
    let kl = Kl::start().await;
    let list = kl.sim().create_list("Double", OptIn::Double);
    let r = kl
        .post(
            "/api/profile-subscription-bulk-create-jobs",
            &subscribe_job(vec![subscriber("d@example.com", None)], Some(&list), false),
        )
        .await;
    assert_eq!(r.status, 202);
    let p = kl.sim().profile_by_email("d@example.com").unwrap();
    assert_eq!(p.email_marketing.consent, Consent::NeverSubscribed);
    assert!(kl.sim().list_members(&list).is_empty());
    assert_eq!(kl.sim().double_opt_in_sent(&list), 1);
    assert!(kl.sim().confirm_double_opt_in(&list, "d@example.com"));
    assert_eq!(kl.sim().list_members(&list), ["d@example.com"]);
    assert_eq!(
        kl.sim()
            .profile_by_email("d@example.com")
            .unwrap()
            .email_marketing
            .consent,
        Consent::Subscribed
    );
}

#[tokio::test]
async fn unsubscribe_outside_the_list_is_global() {
    let kl = Kl::start().await;
    let list = kl.sim().create_list("News", OptIn::Single);
    let member = kl
        .sim()
        .seed_profile("member@example.com", None, None, SeedConsent::Subscribed);
    kl.sim()
        .seed_profile("outsider@example.com", None, None, SeedConsent::Subscribed);
    kl.sim().add_to_list(&list, &member);
    let r = kl
        .post(
            "/api/profile-subscription-bulk-delete-jobs",
            &unsubscribe_job(
                vec![
                    unsubscriber("member@example.com"),
                    unsubscriber("outsider@example.com"),
                ],
                Some(&list),
            ),
        )
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let inside = kl.sim().profile_by_email("member@example.com").unwrap();
    assert_eq!(inside.email_marketing.consent, Consent::Subscribed);
    assert_eq!(inside.email_marketing.list_suppressions.len(), 1);
    assert_eq!(inside.email_marketing.list_suppressions[0].0, list);
    let outside = kl.sim().profile_by_email("outsider@example.com").unwrap();
    assert_eq!(outside.email_marketing.consent, Consent::Unsubscribed);
    assert!(
        outside
            .email_marketing
            .is_suppressed(Suppression::Unsubscribe)
    );
}

#[tokio::test]
async fn job_limits_and_strict_bodies() {
    let kl = Kl::start().await;
    let many: Vec<_> = (0..1001)
        .map(|i| subscriber(&format!("s{i}@example.com"), None))
        .collect();
    let r = kl
        .post(
            "/api/profile-subscription-bulk-create-jobs",
            &subscribe_job(many, None, false),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.pointer(), "/data/attributes/profiles/data");
    let many: Vec<_> = (0..101)
        .map(|i| unsubscriber(&format!("u{i}@example.com")))
        .collect();
    let r = kl
        .post(
            "/api/profile-subscription-bulk-delete-jobs",
            &unsubscribe_job(many, None),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(kl.sim().profile_count(), 0);

    // Consent must be SUBSCRIBED in a subscribe job; list consent lives in subscriptions only.
    let mut wrong = subscriber("w@example.com", None);
    wrong["attributes"]["subscriptions"]["email"]["marketing"]["consent"] = "UNSUBSCRIBED".into();
    let r = kl
        .post(
            "/api/profile-subscription-bulk-create-jobs",
            &subscribe_job(vec![wrong], None, false),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.pointer().ends_with("/marketing/consent"));
    let r = kl
        .post(
            "/api/profile-subscription-bulk-create-jobs",
            &subscribe_job(vec![subscriber("w@example.com", None)], Some("NOPE"), false),
        )
        .await;
    assert_eq!(r.status, 404);
}
