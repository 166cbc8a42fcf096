mod support;

use audience_webhooks::{Scope, Vendor};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use support::*;

fn unsubscribe() -> String {
    form(&[
        ("type", "unsubscribe"),
        ("fired_at", "2026-12-01 17:02:11"),
        ("data[action]", "unsub"),
        ("data[reason]", "manual"),
        ("data[id]", "8a25ff1d98"),
        ("data[list_id]", LIST),
        ("data[email]", "api+unsub@mailchimp.com"),
        ("data[email_type]", "html"),
        ("data[merges][EMAIL]", "api+unsub@mailchimp.com"),
        ("data[merges][FNAME]", "Mailchimp"),
        ("data[ip_opt]", "10.20.10.30"),
        ("data[campaign_id]", "cb398d21d2"),
    ])
}

#[tokio::test]
async fn the_validation_get_is_answered_200_and_emits_nothing() {
    let mut h = Harness::new();
    let (status, _, body) = h
        .send(
            Request::get(format!("/webhooks/mailchimp/{MAILCHIMP_SECRET}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.is_empty());
    assert!(h.drain().is_empty());
    assert_eq!(h.webhooks.counters().validated, 1);
}

#[tokio::test]
async fn a_form_body_with_the_right_secret_becomes_a_hint() {
    let mut h = Harness::new();
    let (status, _, _) = h
        .send(mailchimp_post(MAILCHIMP_SECRET, unsubscribe()))
        .await;
    assert_eq!(status, StatusCode::OK);
    let hints = h.drain();
    assert_eq!(hints.len(), 1);
    assert_eq!(hints[0].vendor, Vendor::Mailchimp);
    assert_eq!(hints[0].account, LIST);
    assert_eq!(hints[0].topic, "unsubscribe");
    assert_eq!(hints[0].scope, Scope::Customers);
    assert_eq!(hints[0].emails, vec!["api+unsub@mailchimp.com".to_string()]);
}

#[tokio::test]
async fn upemail_names_both_addresses_and_campaign_names_none() {
    let mut h = Harness::new();
    h.send(mailchimp_post(
        MAILCHIMP_SECRET,
        form(&[
            ("type", "upemail"),
            ("fired_at", "2026-12-01 17:02:11"),
            ("data[list_id]", LIST),
            ("data[new_id]", "51da8c3259"),
            ("data[new_email]", "new@example.com"),
            ("data[old_email]", "old@example.com"),
        ]),
    ))
    .await;
    h.send(mailchimp_post(
        MAILCHIMP_SECRET,
        form(&[
            ("type", "campaign"),
            ("data[id]", "5aa2102003"),
            ("data[subject]", "Campaign Subject"),
            ("data[status]", "sent"),
            ("data[list_id]", LIST),
        ]),
    ))
    .await;
    let hints = h.drain();
    assert_eq!(hints.len(), 2);
    assert_eq!(
        hints[0].emails,
        vec!["new@example.com".to_string(), "old@example.com".to_string()]
    );
    assert_eq!(
        (hints[1].scope, hints[1].emails.len()),
        (Scope::Campaigns, 0)
    );
}

#[tokio::test]
async fn a_wrong_secret_or_an_unknown_list_is_401_and_emits_nothing() {
    let mut h = Harness::new();
    for secret in ["wrong", "mc-url-secret-7f3a", "mc-url-secret-7f3a9x"] {
        let (status, _, _) = h.send(mailchimp_post(secret, unsubscribe())).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{secret}");
    }
    let other_list = unsubscribe().replace(LIST, "ffffffffff");
    assert_eq!(
        h.send(mailchimp_post(MAILCHIMP_SECRET, other_list)).await.0,
        StatusCode::UNAUTHORIZED
    );
    let long = "s".repeat(10_000);
    assert_eq!(
        h.send(mailchimp_post(&long, unsubscribe())).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert!(h.drain().is_empty());
    assert_eq!(h.webhooks.counters().unauthorized, 5);
}

#[tokio::test]
async fn forms_without_type_or_list_are_400() {
    let mut h = Harness::new();
    for body in [
        form(&[("data[list_id]", LIST), ("data[email]", "a@b.co")]),
        form(&[("type", "subscribe"), ("data[email]", "a@b.co")]),
        form(&[("type", "subscribe"), ("data[list_id]", "../../etc")]),
        "\u{0}\u{1}garbage".to_string(),
    ] {
        let (status, _, _) = h.send(mailchimp_post(MAILCHIMP_SECRET, body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body:?}");
    }
    assert!(h.drain().is_empty());
}

#[tokio::test]
async fn an_unknown_type_from_a_verified_sender_is_ignored() {
    let mut h = Harness::new();
    let (status, _, _) = h
        .send(mailchimp_post(
            MAILCHIMP_SECRET,
            form(&[("type", "something_new"), ("data[list_id]", LIST)]),
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(h.drain().is_empty());
    assert_eq!(h.webhooks.counters().ignored, 1);
}
