//! The Shopify simulator's rules: auth, versions, paging and search, query cost and throttling,
//! field selection, segments and the consent mutation.

use audience_sandbox::shopify::{Customer, DEFAULT_ACCESS_TOKEN};
use audience_sandbox::{RunningSandbox, Sandbox, SandboxOptions, Vendor};
use serde_json::{Value, json};

async fn start(customers: usize) -> RunningSandbox {
    Sandbox::new(SandboxOptions { customers, seed: 7 })
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn url(sandbox: &RunningSandbox, version: &str) -> String {
    format!(
        "{}/admin/api/{version}/graphql.json",
        sandbox.vendor_url(Vendor::Shopify)
    )
}

async fn post(sandbox: &RunningSandbox, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(url(sandbox, "2025-01"))
        .json(&body);
    if let Some(token) = token {
        request = request.header("X-Shopify-Access-Token", token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn gql(sandbox: &RunningSandbox, query: &str, variables: Value) -> Value {
    let (status, body) = post(
        sandbox,
        Some(DEFAULT_ACCESS_TOKEN),
        json!({"query": query, "variables": variables}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

const PAGE: &str = r#"query($first: Int!, $after: String, $query: String) {
  customers(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {
    edges { cursor node { id email updatedAt } }
    pageInfo { hasNextPage endCursor }
  }
}"#;

#[tokio::test]
async fn missing_or_wrong_token_is_401_with_shopifys_message() {
    let sandbox = start(3).await;
    let expected = json!({"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"});
    let body = json!({"query": "{ customers(first: 1) { nodes { id } } }"});
    assert_eq!(
        post(&sandbox, None, body.clone()).await,
        (401, expected.clone())
    );
    assert_eq!(
        post(&sandbox, Some("shpat_wrong"), body.clone()).await,
        (401, expected)
    );
    sandbox.sandbox.shopify.set_access_token("shpat_other");
    assert_eq!(
        post(&sandbox, Some("shpat_other"), body.clone()).await.0,
        200
    );
    assert_eq!(
        post(&sandbox, Some(DEFAULT_ACCESS_TOKEN), body).await.0,
        401
    );
}

#[tokio::test]
async fn only_the_pinned_version_is_served() {
    let sandbox = start(1).await;
    let response = reqwest::Client::new()
        .post(url(&sandbox, "2024-04"))
        .header("X-Shopify-Access-Token", DEFAULT_ACCESS_TOKEN)
        .json(&json!({"query": "{ customers(first: 1) { nodes { id } } }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
}

#[tokio::test]
async fn customers_page_in_updated_order_with_cursors_and_cost() {
    let sandbox = start(600).await;
    let mut after: Option<String> = None;
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    loop {
        let body = gql(&sandbox, PAGE, json!({"first": 250, "after": after})).await;
        let cost = &body["extensions"]["cost"];
        assert_eq!(cost["requestedQueryCost"], json!(252.0));
        let connection = &body["data"]["customers"];
        let edges = connection["edges"].as_array().unwrap();
        assert_eq!(cost["actualQueryCost"], json!(2.0 + edges.len() as f64));
        sizes.push(edges.len());
        for edge in edges {
            // Only what was selected comes back.
            assert_eq!(edge["node"].as_object().unwrap().len(), 3);
            seen.push((
                edge["node"]["updatedAt"].as_str().unwrap().to_string(),
                edge["node"]["id"].as_str().unwrap().to_string(),
            ));
        }
        if !connection["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            break;
        }
        after = Some(
            connection["pageInfo"]["endCursor"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(sizes, vec![250, 250, 100]);
    let mut sorted = seen.clone();
    sorted.sort_by_key(|(at, id)| {
        (
            at.clone(),
            id.trim_start_matches("gid://shopify/Customer/")
                .parse::<u64>()
                .unwrap(),
        )
    });
    assert_eq!(seen, sorted, "pages are in updatedAt order");
    let unique: std::collections::HashSet<_> = seen.iter().map(|(_, id)| id).collect();
    assert_eq!(unique.len(), 600);
    assert!(seen.iter().all(|(at, _)| at.ends_with('Z')));
}

#[tokio::test]
async fn updated_at_search_honours_the_operator_and_the_zone() {
    let sandbox = start(0).await;
    let shop = &sandbox.sandbox.shopify;
    let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc();
    let a = shop.add_customer(Customer {
        email: Some("a@example.com".into()),
        updated_at: at("2025-02-01T10:00:00Z"),
        ..Default::default()
    });
    let b = shop.add_customer(Customer {
        email: Some("b@example.com".into()),
        updated_at: at("2025-02-01T12:00:00Z"),
        ..Default::default()
    });
    let ids = |body: &Value| -> Vec<String> {
        body["data"]["customers"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["id"].as_str().unwrap().to_string())
            .collect()
    };
    let gid = |n: u64| format!("gid://shopify/Customer/{n}");
    let q = |query: &str| json!({"first": 10, "query": query});
    assert_eq!(
        ids(&gql(&sandbox, PAGE, q("updated_at:>'2025-02-01T10:00:00Z'")).await),
        vec![gid(b)]
    );
    assert_eq!(
        ids(&gql(&sandbox, PAGE, q("updated_at:>='2025-02-01T10:00:00Z'")).await),
        vec![gid(a), gid(b)]
    );
    assert_eq!(
        ids(&gql(&sandbox, PAGE, q("updated_at:<'2025-02-01T12:00:00+01:00'")).await),
        vec![gid(a)]
    );
    // No zone: the shop's (UTC-05:00 by default), so 06:00 local is 11:00Z.
    assert_eq!(
        ids(&gql(&sandbox, PAGE, q("updated_at:>'2025-02-01T06:00:00'")).await),
        vec![gid(b)]
    );
    let refused = gql(&sandbox, PAGE, q("total_spent:>5")).await;
    assert!(
        refused["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("total_spent")
    );
}

#[tokio::test]
async fn page_size_and_field_errors_are_graphql_errors() {
    let sandbox = start(2).await;
    let too_big = gql(&sandbox, PAGE, json!({"first": 251})).await;
    assert!(
        too_big["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("250"),
        "{too_big}"
    );
    let none = gql(&sandbox, "{ customers { nodes { id } } }", json!({})).await;
    assert!(
        none["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("first")
    );
    let unknown = gql(
        &sandbox,
        "{ customers(first: 2) { nodes { id shoeSize } } }",
        json!({}),
    )
    .await;
    let message = unknown["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("shoeSize") && message.contains("Customer"),
        "{message}"
    );
    let root = gql(&sandbox, "{ shopName }", json!({})).await;
    assert!(
        root["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("shopName")
    );
    let parse = gql(&sandbox, "{ customers(first: 2) { nodes { id }", json!({})).await;
    assert!(
        parse["errors"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("Parse error")
    );
}

#[tokio::test]
async fn a_query_costing_more_than_is_available_is_throttled_in_a_200() {
    let sandbox = start(600).await;
    let shop = &sandbox.sandbox.shopify;
    shop.set_bucket(300.0, 1.0);
    let first = gql(&sandbox, PAGE, json!({"first": 250})).await;
    assert!(first.get("errors").is_none());
    let left = first["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"]
        .as_f64()
        .unwrap();
    assert!((48.0..60.0).contains(&left), "{left}");
    let second = gql(&sandbox, PAGE, json!({"first": 250})).await;
    assert_eq!(second["errors"][0]["message"], "Throttled");
    assert_eq!(second["errors"][0]["extensions"]["code"], "THROTTLED");
    assert!(second.get("data").is_none());
    let status = &second["extensions"]["cost"]["throttleStatus"];
    assert_eq!(status["maximumAvailable"], json!(300.0));
    assert_eq!(status["restoreRate"], json!(1.0));
    assert_eq!(
        second["extensions"]["cost"]["requestedQueryCost"],
        json!(252.0)
    );
    // A cheaper query still fits.
    let small = gql(&sandbox, PAGE, json!({"first": 10})).await;
    assert!(small.get("errors").is_none(), "{small}");
    let counters = shop.counters();
    assert_eq!(counters.throttled, 1);
    assert_eq!(counters.executed, 2);
    assert!(counters.min_available >= 0.0);
    assert_eq!(counters.root_fields["customers"], 2);
}

#[tokio::test]
async fn a_query_over_the_single_query_limit_is_refused() {
    let sandbox = start(1).await;
    let query = "{ a: customers(first: 250) { nodes { id } } b: customers(first: 250) { nodes { id } } \
                 c: customers(first: 250) { nodes { id } } d: customers(first: 250) { nodes { id } } }";
    let body = gql(&sandbox, query, json!({})).await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "MAX_COST_EXCEEDED");
    assert_eq!(
        body["extensions"]["cost"]["requestedQueryCost"],
        json!(1008.0)
    );
    let three = gql(
        &sandbox,
        &query.replace(" d: customers(first: 250) { nodes { id } }", ""),
        json!({}),
    )
    .await;
    assert_eq!(three["data"]["a"]["nodes"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn segments_and_their_members() {
    let sandbox = start(40).await;
    let shop = &sandbox.sandbox.shopify;
    let ids = shop.customer_ids();
    let members: Vec<u64> = ids.iter().copied().step_by(2).collect();
    let segment = shop.create_segment("Even", "customer_tags CONTAINS 'even'", &members);
    let list = gql(
        &sandbox,
        "{ segments(first: 50) { nodes { id name query } pageInfo { hasNextPage } } }",
        json!({}),
    )
    .await;
    let nodes = list["data"]["segments"]["nodes"].as_array().unwrap();
    assert!(
        nodes
            .iter()
            .any(|n| n["id"] == format!("gid://shopify/Segment/{segment}") && n["name"] == "Even")
    );
    let query = r#"query($id: ID!, $after: String) { customerSegmentMembers(segmentId: $id, first: 15, after: $after) {
        totalCount edges { cursor node { id firstName defaultEmailAddress { emailAddress marketingState } } }
        pageInfo { hasNextPage endCursor } } }"#;
    let mut after: Option<String> = None;
    let mut got = Vec::new();
    loop {
        let body = gql(
            &sandbox,
            query,
            json!({"id": format!("gid://shopify/Segment/{segment}"), "after": after}),
        )
        .await;
        let conn = &body["data"]["customerSegmentMembers"];
        assert_eq!(conn["totalCount"], json!(20));
        for edge in conn["edges"].as_array().unwrap() {
            let id = edge["node"]["id"].as_str().unwrap();
            got.push(
                id.trim_start_matches("gid://shopify/CustomerSegmentMember/")
                    .parse::<u64>()
                    .unwrap(),
            );
            assert!(
                edge["node"]["defaultEmailAddress"]["emailAddress"]
                    .as_str()
                    .unwrap()
                    .contains('@')
            );
        }
        if !conn["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            break;
        }
        after = conn["pageInfo"]["endCursor"].as_str().map(str::to_string);
    }
    assert_eq!(got, members);
    // Deleted customers disappear from segments too.
    assert!(shop.delete_customer(members[0]));
    let body = gql(
        &sandbox,
        query,
        json!({"id": format!("gid://shopify/Segment/{segment}")}),
    )
    .await;
    assert_eq!(
        body["data"]["customerSegmentMembers"]["totalCount"],
        json!(19)
    );
    let missing = gql(&sandbox, query, json!({"id": "gid://shopify/Segment/1"})).await;
    assert_eq!(missing["errors"][0]["extensions"]["code"], "NOT_FOUND");
}

#[tokio::test]
async fn consent_mutation_updates_state_and_updated_at() {
    let sandbox = start(0).await;
    let shop = &sandbox.sandbox.shopify;
    let id = shop.add_customer(Customer {
        email: Some("c@example.com".into()),
        updated_at: chrono::DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z")
            .unwrap()
            .to_utc(),
        ..Default::default()
    });
    let mutation = r#"mutation($input: CustomerEmailMarketingConsentUpdateInput!) {
        customerEmailMarketingConsentUpdate(input: $input) {
          customer { id emailMarketingConsent { marketingState } }
          userErrors { field message code } } }"#;
    let input = |state: &str| {
        json!({"input": {"customerId": format!("gid://shopify/Customer/{id}"),
        "emailMarketingConsent": {"marketingState": state, "marketingOptInLevel": "SINGLE_OPT_IN"}}})
    };
    let body = gql(&sandbox, mutation, input("SUBSCRIBED")).await;
    let payload = &body["data"]["customerEmailMarketingConsentUpdate"];
    assert_eq!(payload["userErrors"], json!([]));
    assert_eq!(
        payload["customer"]["emailMarketingConsent"]["marketingState"],
        "SUBSCRIBED"
    );
    assert_eq!(body["extensions"]["cost"]["actualQueryCost"], json!(10.0));
    let customer = shop.customer(id).unwrap();
    assert_eq!(customer.marketing_state, "SUBSCRIBED");
    assert!(
        customer.updated_at
            > chrono::DateTime::parse_from_rfc3339("2025-06-01T00:00:00Z")
                .unwrap()
                .to_utc()
    );
    let refused = gql(&sandbox, mutation, input("REDACTED")).await;
    assert_eq!(
        refused["data"]["customerEmailMarketingConsentUpdate"]["userErrors"][0]["code"],
        "INCLUSION"
    );
}

#[tokio::test]
async fn consent_mutation_keeps_the_most_recent_record_and_refuses_bad_times_and_levels() {
    let sandbox = start(0).await;
    let shop = &sandbox.sandbox.shopify;
    let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc();
    let id = shop.add_customer(Customer {
        email: Some("c@example.com".into()),
        marketing_state: "UNSUBSCRIBED".into(),
        consent_updated_at: Some(at("2026-01-10T00:00:00Z")),
        ..Default::default()
    });
    let mutation = r#"mutation($input: CustomerEmailMarketingConsentUpdateInput!) {
        customerEmailMarketingConsentUpdate(input: $input) {
          customer { id emailMarketingConsent { marketingState consentUpdatedAt } }
          userErrors { field message code } } }"#;
    let send = |consent: Value| {
        let vars = json!({"input": {"customerId": format!("gid://shopify/Customer/{id}"),
            "emailMarketingConsent": consent}});
        let sandbox = &sandbox;
        async move {
            gql(sandbox, mutation, vars).await["data"]["customerEmailMarketingConsentUpdate"]
                .clone()
        }
    };
    // Older than the customer's record: answered, state unchanged.
    let older =
        send(json!({"marketingState": "SUBSCRIBED", "consentUpdatedAt": "2026-01-09T00:00:00Z"}))
            .await;
    assert_eq!(older["userErrors"], json!([]));
    assert_eq!(
        older["customer"]["emailMarketingConsent"]["marketingState"],
        "UNSUBSCRIBED"
    );
    assert_eq!(shop.counters().consent_updates, 0);
    // Later: taken, with that time.
    let later =
        send(json!({"marketingState": "SUBSCRIBED", "consentUpdatedAt": "2026-01-11T00:00:00Z"}))
            .await;
    assert_eq!(
        later["customer"]["emailMarketingConsent"]["marketingState"],
        "SUBSCRIBED"
    );
    assert_eq!(
        shop.customer(id).unwrap().consent_updated_at,
        Some(at("2026-01-11T00:00:00Z"))
    );
    assert_eq!(shop.counters().consent_updates, 1);
    for (consent, code, field) in [
        (
            json!({"marketingState": "UNSUBSCRIBED", "consentUpdatedAt": "yesterday"}),
            "INVALID",
            "consentUpdatedAt",
        ),
        (
            json!({"marketingState": "UNSUBSCRIBED", "consentUpdatedAt": "2099-01-01T00:00:00Z"}),
            "INVALID",
            "consentUpdatedAt",
        ),
        (
            json!({"marketingState": "UNSUBSCRIBED", "marketingOptInLevel": "DOUBLE"}),
            "INCLUSION",
            "marketingOptInLevel",
        ),
    ] {
        let refused = send(consent).await;
        assert_eq!(refused["customer"], Value::Null);
        assert_eq!(refused["userErrors"][0]["code"], code);
        assert_eq!(refused["userErrors"][0]["field"][2], field);
    }
    assert_eq!(shop.customer(id).unwrap().marketing_state, "SUBSCRIBED");
}

#[tokio::test]
async fn deleted_customers_disappear() {
    let sandbox = start(5).await;
    let shop = &sandbox.sandbox.shopify;
    let victim = shop.customer_ids()[2];
    assert!(shop.delete_customer(victim));
    let body = gql(&sandbox, PAGE, json!({"first": 10})).await;
    let edges = body["data"]["customers"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 4);
    assert!(
        edges
            .iter()
            .all(|e| e["node"]["id"] != format!("gid://shopify/Customer/{victim}"))
    );
}
