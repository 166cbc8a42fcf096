mod support;

use audience_webhooks::{Scope, Vendor};
use axum::http::StatusCode;
use support::*;

fn customer_update(prefix: &str) -> String {
    let payload = serde_json::json!({
        "id": "0adfd74a-153e-11e9-fa42-67b5781ba1fb",
        "customer_code": "ADA-0001",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": "ada@example.com",
        "updated_at": "2026-12-01 17:00:00",
    });
    form(&[
        ("domain_prefix", prefix),
        ("environment", "prod"),
        ("payload", &payload.to_string()),
        ("retailer_id", "b1e1d4a6-0000-11e9-f8d0-fe0a1b0e6d11"),
        ("type", "customer.update"),
    ])
}

#[tokio::test]
async fn a_signed_customer_update_becomes_a_hint() {
    let mut h = Harness::new();
    let (status, _, _) = h
        .send(lightspeed(
            "/webhooks/lightspeed-x",
            customer_update(PREFIX),
            LIGHTSPEED_SECRET,
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    let hints = h.drain();
    assert_eq!(hints.len(), 1);
    assert_eq!(hints[0].vendor, Vendor::LightspeedX);
    assert_eq!(hints[0].account, PREFIX);
    assert_eq!(hints[0].topic, "customer.update");
    assert_eq!(hints[0].scope, Scope::Customers);
    assert_eq!(hints[0].emails, vec!["ada@example.com".to_string()]);
}

#[tokio::test]
async fn a_sale_names_its_customer_and_the_prefix_may_come_from_the_path() {
    let mut h = Harness::new();
    let payload =
        r#"{"id":"s1","status":"CLOSED","customer":{"id":"c1","email":"buyer@example.com"}}"#;
    let body = form(&[("payload", payload), ("type", "sale.update")]);
    let (status, _, _) = h
        .send(lightspeed(
            &format!("/webhooks/lightspeed-x/{PREFIX}"),
            body.clone(),
            LIGHTSPEED_SECRET,
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    let hints = h.drain();
    assert_eq!(hints.len(), 1);
    assert_eq!(
        (hints[0].scope, hints[0].emails.clone()),
        (Scope::Orders, vec!["buyer@example.com".to_string()])
    );

    // Without a prefix anywhere the store is unknown.
    assert_eq!(
        h.send(lightspeed(
            "/webhooks/lightspeed-x",
            body,
            LIGHTSPEED_SECRET
        ))
        .await
        .0,
        StatusCode::BAD_REQUEST
    );
    // Path and form disagreeing is refused.
    assert_eq!(
        h.send(lightspeed(
            "/webhooks/lightspeed-x/otherstore",
            customer_update(PREFIX),
            LIGHTSPEED_SECRET
        ))
        .await
        .0,
        StatusCode::BAD_REQUEST
    );
    assert!(h.drain().is_empty());
}

#[tokio::test]
async fn wrong_or_missing_signatures_are_401_and_emit_nothing() {
    let mut h = Harness::new();
    assert_eq!(
        h.send(lightspeed(
            "/webhooks/lightspeed-x",
            customer_update(PREFIX),
            "not-the-secret"
        ))
        .await
        .0,
        StatusCode::UNAUTHORIZED
    );
    let mut unsigned = lightspeed(
        "/webhooks/lightspeed-x",
        customer_update(PREFIX),
        LIGHTSPEED_SECRET,
    );
    unsigned.headers_mut().remove("x-signature");
    assert_eq!(h.send(unsigned).await.0, StatusCode::UNAUTHORIZED);
    let mut md5 = lightspeed(
        "/webhooks/lightspeed-x",
        customer_update(PREFIX),
        LIGHTSPEED_SECRET,
    );
    let value = md5.headers()["x-signature"]
        .to_str()
        .unwrap()
        .replace("HMAC-SHA256", "MD5");
    md5.headers_mut()
        .insert("x-signature", value.parse().unwrap());
    assert_eq!(h.send(md5).await.0, StatusCode::UNAUTHORIZED);
    // A store no secret is known for.
    assert_eq!(
        h.send(lightspeed(
            "/webhooks/lightspeed-x",
            customer_update("otherstore"),
            LIGHTSPEED_SECRET
        ))
        .await
        .0,
        StatusCode::UNAUTHORIZED
    );
    assert!(h.drain().is_empty());
}

#[tokio::test]
async fn a_signed_body_whose_payload_is_not_json_is_400() {
    let mut h = Harness::new();
    for body in [
        form(&[
            ("domain_prefix", PREFIX),
            ("type", "customer.update"),
            ("payload", "{nope"),
        ]),
        form(&[("domain_prefix", PREFIX), ("type", "customer.update")]),
        form(&[("domain_prefix", PREFIX), ("payload", "{}")]),
    ] {
        let (status, _, _) = h
            .send(lightspeed(
                "/webhooks/lightspeed-x",
                body.clone(),
                LIGHTSPEED_SECRET,
            ))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }
    assert!(h.drain().is_empty());
}

#[tokio::test]
async fn product_updates_are_acknowledged_and_ignored() {
    let mut h = Harness::new();
    let body = form(&[
        ("domain_prefix", PREFIX),
        ("type", "product.update"),
        ("payload", r#"{"id":"p1"}"#),
    ]);
    assert_eq!(
        h.send(lightspeed(
            "/webhooks/lightspeed-x",
            body,
            LIGHTSPEED_SECRET
        ))
        .await
        .0,
        StatusCode::OK
    );
    assert!(h.drain().is_empty());
    assert_eq!(h.webhooks.counters().ignored, 1);
}
