//! The Shopify simulator's `metafieldsSet`: at most 25 per call, atomic, names and types
//! checked, the owner must exist, 10 points a call.

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

async fn set(sandbox: &RunningSandbox, metafields: Value) -> Value {
    let response = reqwest::Client::new()
        .post(format!(
            "{}/admin/api/2025-01/graphql.json",
            sandbox.vendor_url(Vendor::Shopify)
        ))
        .header("X-Shopify-Access-Token", DEFAULT_ACCESS_TOKEN)
        .json(&json!({
            "query": "mutation($m: [MetafieldsSetInput!]!) { metafieldsSet(metafields: $m) { metafields { key namespace value type } userErrors { field message code elementIndex } } }",
            "variables": {"m": metafields},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn field(owner: &str, key: &str, kind: &str, value: &str) -> Value {
    json!({"ownerId": owner, "namespace": "audience_operator", "key": key, "type": kind, "value": value})
}

#[tokio::test]
async fn metafields_are_set_on_the_customer_and_cost_ten() {
    let sandbox = start().await;
    let shop = &sandbox.sandbox.shopify;
    let id = shop.add_customer(Customer {
        email: Some("m@example.com".into()),
        ..Default::default()
    });
    let gid = format!("gid://shopify/Customer/{id}");
    let body = set(
        &sandbox,
        json!([
            field(&gid, "email_opens", "number_integer", "3"),
            field(
                &gid,
                "last_email_opened_at",
                "date_time",
                "2026-12-01T10:00:00Z"
            ),
        ]),
    )
    .await;
    let payload = &body["data"]["metafieldsSet"];
    assert_eq!(payload["userErrors"], json!([]), "{body}");
    assert_eq!(payload["metafields"].as_array().unwrap().len(), 2);
    assert_eq!(body["extensions"]["cost"]["actualQueryCost"], json!(10.0));
    let stored = shop.customer_metafields(id);
    let opens = &stored[&("audience_operator".to_string(), "email_opens".to_string())];
    assert_eq!(
        (opens.kind.as_str(), opens.value.as_str()),
        ("number_integer", "3")
    );
    assert_eq!(shop.metafield_writes(), (1, 2));
    // Setting the same value again changes nothing.
    set(
        &sandbox,
        json!([field(&gid, "email_opens", "number_integer", "3")]),
    )
    .await;
    assert_eq!(shop.metafield_writes(), (2, 2));
}

#[tokio::test]
async fn one_bad_entry_refuses_the_whole_call() {
    let sandbox = start().await;
    let shop = &sandbox.sandbox.shopify;
    let id = shop.add_customer(Customer {
        email: Some("n@example.com".into()),
        ..Default::default()
    });
    let gid = format!("gid://shopify/Customer/{id}");
    let cases = [
        (
            field(
                "gid://shopify/Customer/1",
                "email_opens",
                "number_integer",
                "1",
            ),
            "ownerId",
            "INVALID_VALUE",
        ),
        (field(&gid, "k", "number_integer", "1"), "key", "TOO_SHORT"),
        (
            field(&gid, "bad key", "number_integer", "1"),
            "key",
            "INVALID_VALUE",
        ),
        (
            field(&gid, "email_opens", "number_integer", "many"),
            "value",
            "INVALID_VALUE",
        ),
        (
            field(&gid, "email_opens", "no_such_type", "1"),
            "type",
            "INVALID_TYPE",
        ),
        (
            json!({"ownerId": gid, "namespace": "audience_operator", "key": "email_opens", "value": "1"}),
            "type",
            "BLANK",
        ),
        (
            json!({"ownerId": gid, "namespace": "ao", "key": "email_opens", "type": "number_integer", "value": "1"}),
            "namespace",
            "TOO_SHORT",
        ),
    ];
    for (bad, input_field, code) in cases {
        let body = set(
            &sandbox,
            json!([
                field(&gid, "email_clicks", "number_integer", "1"),
                bad.clone()
            ]),
        )
        .await;
        let errors = &body["data"]["metafieldsSet"]["userErrors"];
        assert_eq!(errors[0]["code"], code, "{bad} → {body}");
        assert_eq!(errors[0]["elementIndex"], 1, "{bad}");
        assert_eq!(
            errors[0]["field"],
            json!(["metafields", "1", input_field]),
            "{bad}"
        );
        assert!(shop.customer_metafields(id).is_empty(), "{bad}: atomic");
    }
    let many: Vec<Value> = (0..26)
        .map(|i| field(&gid, &format!("key_{i}"), "number_integer", "1"))
        .collect();
    let body = set(&sandbox, json!(many)).await;
    assert_eq!(
        body["data"]["metafieldsSet"]["userErrors"][0]["code"],
        "LESS_THAN_OR_EQUAL_TO"
    );
    assert!(shop.customer_metafields(id).is_empty());
    // A metafield keeps its type.
    set(
        &sandbox,
        json!([field(&gid, "email_opens", "number_integer", "1")]),
    )
    .await;
    let body = set(
        &sandbox,
        json!([field(&gid, "email_opens", "single_line_text_field", "1")]),
    )
    .await;
    assert_eq!(
        body["data"]["metafieldsSet"]["userErrors"][0]["code"],
        "INVALID_TYPE"
    );
}
