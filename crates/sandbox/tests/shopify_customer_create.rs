//! The Shopify simulator's `customerCreate`: emails unique case-insensitively, user errors in
//! Shopify's shape, consent on create, cost; and `smsMarketingConsent` with its time.

use audience_sandbox::shopify::{Customer, DEFAULT_ACCESS_TOKEN};
use audience_sandbox::{RunningSandbox, Sandbox, SandboxOptions, Vendor};
use serde_json::{Value, json};

async fn start() -> RunningSandbox {
    Sandbox::new(SandboxOptions {
        customers: 0,
        seed: 7,
    })
    .serve("127.0.0.1:0".parse().unwrap())
    .await
    .unwrap()
}

async fn gql(sandbox: &RunningSandbox, query: &str, variables: Value) -> Value {
    let response = reqwest::Client::new()
        .post(format!(
            "{}/admin/api/2025-01/graphql.json",
            sandbox.vendor_url(Vendor::Shopify)
        ))
        .header("X-Shopify-Access-Token", DEFAULT_ACCESS_TOKEN)
        .json(&json!({"query": query, "variables": variables}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

const CREATE: &str = r#"mutation($a: CustomerInput!, $b: CustomerInput!) {
  a: customerCreate(input: $a) { customer { id email firstName emailMarketingConsent { marketingState marketingOptInLevel consentUpdatedAt } } userErrors { field message } }
  b: customerCreate(input: $b) { customer { id email } userErrors { field message } }
}"#;

#[tokio::test]
async fn customer_create_refuses_an_email_taken_in_any_case() {
    let sandbox = start().await;
    let shop = &sandbox.sandbox.shopify;
    shop.add_customer(Customer {
        email: Some("ann@x-shop.com".into()),
        ..Default::default()
    });
    let answer = gql(
        &sandbox,
        CREATE,
        json!({
            "a": {"email": "New@X-Shop.com", "firstName": "Neu",
                  "emailMarketingConsent": {"marketingState": "SUBSCRIBED", "marketingOptInLevel": "SINGLE_OPT_IN",
                                            "consentUpdatedAt": "2026-10-01T09:00:00Z"}},
            "b": {"email": "Ann@X-Shop.com"},
        }),
    )
    .await;
    let a = &answer["data"]["a"];
    assert_eq!(a["userErrors"], json!([]), "{answer}");
    assert_eq!(a["customer"]["email"], "New@X-Shop.com");
    assert_eq!(a["customer"]["firstName"], "Neu");
    assert_eq!(
        a["customer"]["emailMarketingConsent"],
        json!({"marketingState": "SUBSCRIBED", "marketingOptInLevel": "SINGLE_OPT_IN", "consentUpdatedAt": "2026-10-01T09:00:00Z"})
    );
    let b = &answer["data"]["b"];
    assert_eq!(b["customer"], Value::Null);
    assert_eq!(
        b["userErrors"],
        json!([{"field": ["email"], "message": "Email has already been taken"}])
    );
    // Two mutations: 20 points.
    assert_eq!(answer["extensions"]["cost"]["actualQueryCost"], 20.0);
    assert_eq!(shop.customer_count(), 2);
    assert_eq!(shop.counters().customers_created, 1);

    // The new one is taken now too, in any case.
    let again = gql(
        &sandbox,
        CREATE,
        json!({"a": {"email": "new@x-shop.com"}, "b": {"email": "not-an-address"}}),
    )
    .await;
    assert_eq!(
        again["data"]["a"]["userErrors"][0]["message"],
        "Email has already been taken"
    );
    assert_eq!(
        again["data"]["b"]["userErrors"],
        json!([{"field": ["email"], "message": "Email is invalid"}])
    );
    assert_eq!(shop.customer_count(), 2);
}

#[tokio::test]
async fn customer_create_checks_consent_inputs() {
    let sandbox = start().await;
    let answer = gql(
        &sandbox,
        CREATE,
        json!({
            "a": {"firstName": "Noemail", "emailMarketingConsent": {"marketingState": "SUBSCRIBED"}},
            "b": {"email": "c@x-shop.com", "emailMarketingConsent": {"marketingState": "MAYBE"}},
        }),
    )
    .await;
    assert_eq!(
        answer["data"]["a"]["userErrors"][0]["field"],
        json!(["emailMarketingConsent"])
    );
    assert_eq!(
        answer["data"]["b"]["userErrors"][0]["field"],
        json!(["emailMarketingConsent", "marketingState"])
    );
    let empty = gql(&sandbox, CREATE, json!({"a": {}, "b": {"phone": "0170 1"}})).await;
    assert!(
        empty["data"]["a"]["userErrors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("name, phone number or email")
    );
    assert_eq!(
        empty["data"]["b"]["userErrors"][0]["message"],
        "Phone is invalid"
    );
    assert_eq!(sandbox.sandbox.shopify.customer_count(), 0);
}

#[tokio::test]
async fn sms_consent_is_read_with_its_time() {
    let sandbox = start().await;
    let at = chrono::DateTime::parse_from_rfc3339("2026-11-02T08:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    sandbox.sandbox.shopify.add_customer(Customer {
        email: Some("sms@x-shop.com".into()),
        phone: Some("+491701234567".into()),
        sms_marketing_state: Some("SUBSCRIBED".into()),
        sms_consent_updated_at: Some(at),
        ..Default::default()
    });
    let answer = gql(
        &sandbox,
        "{ customers(first: 5) { nodes { phone smsMarketingConsent { marketingState consentUpdatedAt } } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        answer["data"]["customers"]["nodes"][0]["smsMarketingConsent"],
        json!({"marketingState": "SUBSCRIBED", "consentUpdatedAt": "2026-11-02T08:00:00Z"})
    );
}
