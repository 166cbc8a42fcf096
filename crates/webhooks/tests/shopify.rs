mod support;

use std::time::Duration;

use audience_webhooks::{Config, RateLimit, Scope, Vendor};
use axum::http::StatusCode;
use support::*;

const CUSTOMER: &str = r#"{"id":7000001,"email":"Ada@Example.com","created_at":"2026-11-30T10:00:00-05:00","updated_at":"2026-12-01T09:15:00-05:00","first_name":"Ada","email_marketing_consent":{"state":"subscribed","opt_in_level":"single_opt_in","consent_updated_at":null}}"#;

#[tokio::test]
async fn a_signed_delivery_becomes_one_hint() {
    let mut h = Harness::new();
    let (status, _, _) = h
        .send(shopify(
            "customers/update",
            CUSTOMER,
            SHOPIFY_SECRET,
            "wh-1",
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    let hints = h.drain();
    assert_eq!(hints.len(), 1);
    let hint = &hints[0];
    assert_eq!(hint.vendor, Vendor::Shopify);
    assert_eq!(hint.account, SHOP);
    assert_eq!(hint.topic, "customers/update");
    assert_eq!(hint.scope, Scope::Customers);
    assert_eq!(hint.emails, vec!["ada@example.com".to_string()]);
    assert_eq!(h.webhooks.counters().accepted, 1);
}

#[tokio::test]
async fn the_previous_secret_of_a_rotation_still_verifies() {
    let mut h = Harness::new();
    let (status, _, _) = h
        .send(shopify(
            "customers/create",
            CUSTOMER,
            SHOPIFY_OLD_SECRET,
            "wh-1",
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h.drain().len(), 1);
}

#[tokio::test]
async fn forged_missing_or_foreign_signatures_are_401_and_emit_nothing() {
    let mut h = Harness::new();
    // Signed with a secret the shop does not have.
    let (status, _, body) = h
        .send(shopify(
            "customers/update",
            CUSTOMER,
            "attacker-secret",
            "wh-1",
        ))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        &body[..],
        b"unauthorized",
        "nothing of the request is echoed"
    );

    // A genuine signature over a different body.
    let mut tampered = shopify("customers/update", CUSTOMER, SHOPIFY_SECRET, "wh-2");
    *tampered.body_mut() = axum::body::Body::from(CUSTOMER.replace("Ada@", "Eve@"));
    assert_eq!(h.send(tampered).await.0, StatusCode::UNAUTHORIZED);

    // No signature at all, and a signature that is not base64.
    let mut unsigned = shopify("customers/update", CUSTOMER, SHOPIFY_SECRET, "wh-3");
    unsigned.headers_mut().remove("x-shopify-hmac-sha256");
    assert_eq!(h.send(unsigned).await.0, StatusCode::UNAUTHORIZED);
    let mut garbage = shopify("customers/update", CUSTOMER, SHOPIFY_SECRET, "wh-4");
    garbage
        .headers_mut()
        .insert("x-shopify-hmac-sha256", "not base64!".parse().unwrap());
    assert_eq!(h.send(garbage).await.0, StatusCode::UNAUTHORIZED);

    // A shop no secret is known for, signed with the real app secret.
    let mut other_shop = shopify("customers/update", CUSTOMER, SHOPIFY_SECRET, "wh-5");
    other_shop.headers_mut().insert(
        "x-shopify-shop-domain",
        "other-shop.myshopify.com".parse().unwrap(),
    );
    assert_eq!(h.send(other_shop).await.0, StatusCode::UNAUTHORIZED);

    assert!(h.drain().is_empty());
    let c = h.webhooks.counters();
    assert_eq!((c.unauthorized, c.accepted), (5, 0));
    assert_eq!(
        h.webhooks.remembered_ids(),
        0,
        "forgeries do not poison the dedupe memory"
    );
}

#[tokio::test]
async fn the_same_webhook_id_twice_is_one_hint() {
    let mut h = Harness::new();
    for _ in 0..2 {
        let (status, _, _) = h
            .send(shopify(
                "customers/update",
                CUSTOMER,
                SHOPIFY_SECRET,
                "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
            ))
            .await;
        assert_eq!(
            status,
            StatusCode::OK,
            "a duplicate is acknowledged so Shopify stops retrying"
        );
    }
    assert_eq!(h.drain().len(), 1);
    // A different delivery id is a different delivery.
    h.send(shopify(
        "customers/update",
        CUSTOMER,
        SHOPIFY_SECRET,
        "another-id",
    ))
    .await;
    assert_eq!(h.drain().len(), 1);
    let c = h.webhooks.counters();
    assert_eq!((c.accepted, c.duplicate), (2, 1));
}

#[tokio::test]
async fn stale_and_far_future_deliveries_are_acknowledged_and_dropped() {
    let mut h = Harness::with(
        Config {
            shopify_max_age: Duration::from_secs(600),
            max_clock_skew: Duration::from_secs(60),
            ..Config::default()
        },
        64,
    );
    let old = (chrono::Utc::now() - chrono::Duration::seconds(601)).to_rfc3339();
    let (status, _, _) = h
        .send(shopify_at(
            "customers/update",
            CUSTOMER,
            SHOPIFY_SECRET,
            "wh-old",
            Some(old),
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    let future = (chrono::Utc::now() + chrono::Duration::seconds(120)).to_rfc3339();
    h.send(shopify_at(
        "customers/update",
        CUSTOMER,
        SHOPIFY_SECRET,
        "wh-future",
        Some(future),
    ))
    .await;
    assert!(h.drain().is_empty());
    assert_eq!(h.webhooks.counters().stale, 2);

    // Inside the window (and without the header at all) it is a hint.
    let recent = (chrono::Utc::now() - chrono::Duration::seconds(500)).to_rfc3339();
    h.send(shopify_at(
        "customers/update",
        CUSTOMER,
        SHOPIFY_SECRET,
        "wh-recent",
        Some(recent),
    ))
    .await;
    h.send(shopify_at(
        "customers/update",
        CUSTOMER,
        SHOPIFY_SECRET,
        "wh-none",
        None,
    ))
    .await;
    assert_eq!(h.drain().len(), 2);
}

#[tokio::test]
async fn malformed_but_signed_deliveries_are_400_and_emit_nothing() {
    let mut h = Harness::new();
    assert_eq!(
        h.send(shopify(
            "customers/update",
            "{not json",
            SHOPIFY_SECRET,
            "1"
        ))
        .await
        .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        h.send(shopify("customers/update", "[1,2]", SHOPIFY_SECRET, "2"))
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        h.send(shopify_at(
            "customers/update",
            CUSTOMER,
            SHOPIFY_SECRET,
            "3",
            Some("yesterday".into())
        ))
        .await
        .0,
        StatusCode::BAD_REQUEST
    );
    let mut no_topic = shopify("customers/update", CUSTOMER, SHOPIFY_SECRET, "4");
    no_topic.headers_mut().remove("x-shopify-topic");
    assert_eq!(h.send(no_topic).await.0, StatusCode::BAD_REQUEST);
    let mut bad_shop = shopify("customers/update", CUSTOMER, SHOPIFY_SECRET, "5");
    bad_shop
        .headers_mut()
        .insert("x-shopify-shop-domain", "evil.example.com".parse().unwrap());
    assert_eq!(h.send(bad_shop).await.0, StatusCode::BAD_REQUEST);
    assert!(h.drain().is_empty());
    assert_eq!(h.webhooks.counters().malformed, 5);
}

#[tokio::test]
async fn oversized_bodies_are_413_and_emit_nothing() {
    let mut h = Harness::with(
        Config {
            max_body_bytes: 1024,
            ..Config::default()
        },
        64,
    );
    let big = format!(
        r#"{{"id":1,"email":"a@b.co","note":"{}"}}"#,
        "x".repeat(2000)
    );
    let (status, _, _) = h
        .send(shopify("customers/update", &big, SHOPIFY_SECRET, "big"))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(h.drain().is_empty());
    assert_eq!(h.webhooks.counters().too_large, 1);
    // The same delivery under the limit goes through.
    h.send(shopify(
        "customers/update",
        CUSTOMER,
        SHOPIFY_SECRET,
        "small",
    ))
    .await;
    assert_eq!(h.drain().len(), 1);
}

#[tokio::test]
async fn topics_no_sync_cares_about_are_acknowledged_and_ignored() {
    let mut h = Harness::new();
    let (status, _, _) = h
        .send(shopify(
            "app/uninstalled",
            r#"{"id":1}"#,
            SHOPIFY_SECRET,
            "u",
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(h.drain().is_empty());
    assert_eq!(h.webhooks.counters().ignored, 1);
}

#[tokio::test]
async fn order_and_consent_payloads_name_their_addresses() {
    let mut h = Harness::new();
    h.send(shopify(
        "orders/create",
        r#"{"id":450789469,"email":"","contact_email":"buyer@example.com","customer":{"id":1,"email":"Buyer@example.com"}}"#,
        SHOPIFY_SECRET,
        "o1",
    ))
    .await;
    h.send(shopify(
        "customers_email_marketing_consent/update",
        r#"{"customer_id":706405506930370084,"email_address":"bob@example.com","email_marketing_consent":{"state":"unsubscribed","opt_in_level":null,"consent_updated_at":"2026-12-01T10:00:00-05:00"}}"#,
        SHOPIFY_SECRET,
        "c1",
    ))
    .await;
    h.send(shopify(
        "customers/delete",
        r#"{"id":7000001,"phone":null,"addresses":[]}"#,
        SHOPIFY_SECRET,
        "d1",
    ))
    .await;
    let hints = h.drain();
    assert_eq!(hints.len(), 3);
    assert_eq!(
        (hints[0].scope, hints[0].emails.clone()),
        (Scope::Orders, vec!["buyer@example.com".to_string()])
    );
    assert_eq!(hints[1].emails, vec!["bob@example.com".to_string()]);
    assert_eq!(hints[1].scope, Scope::Customers);
    assert!(
        hints[2].emails.is_empty(),
        "a deletion names no address, still a hint"
    );
}

#[tokio::test]
async fn a_shop_over_its_rate_limit_gets_429_and_forgeries_do_not_spend_its_budget() {
    let mut h = Harness::with(
        Config {
            per_account: RateLimit::new(1, 2),
            ..Config::default()
        },
        64,
    );
    for i in 0..5 {
        let (status, _, _) = h
            .send(shopify(
                "customers/update",
                CUSTOMER,
                "forged",
                &format!("f{i}"),
            ))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    for id in ["a", "b"] {
        assert_eq!(
            h.send(shopify("customers/update", CUSTOMER, SHOPIFY_SECRET, id))
                .await
                .0,
            StatusCode::OK
        );
    }
    let (status, headers, _) = h
        .send(shopify("customers/update", CUSTOMER, SHOPIFY_SECRET, "c"))
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(headers.get("retry-after").is_some());
    assert_eq!(h.drain().len(), 2);
    assert_eq!(
        h.webhooks.remembered_ids(),
        2,
        "the limited delivery is not remembered, so its retry counts"
    );
}

#[tokio::test]
async fn a_full_hint_channel_is_503_and_the_retry_is_not_a_duplicate() {
    let mut h = Harness::with(Config::default(), 1);
    assert_eq!(
        h.send(shopify("customers/update", CUSTOMER, SHOPIFY_SECRET, "1"))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        h.send(shopify("customers/update", CUSTOMER, SHOPIFY_SECRET, "2"))
            .await
            .0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(h.drain().len(), 1);
    assert_eq!(
        h.send(shopify("customers/update", CUSTOMER, SHOPIFY_SECRET, "2"))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(h.drain().len(), 1);
}
