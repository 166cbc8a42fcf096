//! The RetailCRM simulator's rules: auth, `limit` validation, paging and filters, the history
//! (`sinceId` never with `page`), account-zone datetimes and the per-key rate limit.

use audience_sandbox::retailcrm::{Customer, DEFAULT_API_KEY, account_time};
use audience_sandbox::{RunningSandbox, Sandbox, SandboxOptions, Vendor};
use serde_json::{Value, json};

async fn start(customers: usize) -> RunningSandbox {
    let sandbox = Sandbox::new(SandboxOptions {
        customers,
        seed: 11,
    })
    .serve("127.0.0.1:0".parse().unwrap())
    .await
    .unwrap();
    // Most rules are easier to show without the rate limit; its own test turns it back on.
    sandbox.sandbox.retailcrm.set_rate_limit(None);
    sandbox
}

async fn get(sandbox: &RunningSandbox, path_and_query: &str, key: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new().get(format!(
        "{}{path_and_query}",
        sandbox.vendor_url(Vendor::Retailcrm)
    ));
    if let Some(key) = key {
        request = request.header("X-API-KEY", key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn ok(sandbox: &RunningSandbox, path_and_query: &str) -> Value {
    let (status, body) = get(sandbox, path_and_query, Some(DEFAULT_API_KEY)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], json!(true));
    body
}

#[tokio::test]
async fn missing_or_wrong_key_is_403() {
    let sandbox = start(3).await;
    let expected = json!({"success": false, "errorMsg": "Wrong \"apiKey\" value."});
    assert_eq!(
        get(&sandbox, "/api/v5/customers", None).await,
        (403, expected.clone())
    );
    assert_eq!(
        get(&sandbox, "/api/v5/customers", Some("nope")).await,
        (403, expected)
    );
    // The key may also come as the apiKey query parameter.
    let (status, _) = get(
        &sandbox,
        &format!("/api/v5/customers?apiKey={DEFAULT_API_KEY}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    sandbox.sandbox.retailcrm.set_api_key("other");
    assert_eq!(
        get(&sandbox, "/api/v5/customers", Some(DEFAULT_API_KEY))
            .await
            .0,
        403
    );
    assert_eq!(
        get(&sandbox, "/api/v5/customers", Some("other")).await.0,
        200
    );
}

#[tokio::test]
async fn limit_must_be_20_50_or_100() {
    let sandbox = start(130).await;
    for bad in ["25", "0", "1000", "x"] {
        let (status, body) = get(
            &sandbox,
            &format!("/api/v5/customers?limit={bad}"),
            Some(DEFAULT_API_KEY),
        )
        .await;
        assert_eq!(status, 400, "limit={bad}");
        assert_eq!(body["success"], json!(false));
        assert!(body["errorMsg"].is_string());
        assert!(body["errors"]["limit"].is_string(), "{body}");
    }
    let default = ok(&sandbox, "/api/v5/customers").await;
    assert_eq!(default["customers"].as_array().unwrap().len(), 20);
    assert_eq!(
        default["pagination"],
        json!({"limit": 20, "totalCount": 130, "currentPage": 1, "totalPageCount": 7})
    );
    let last = ok(&sandbox, "/api/v5/customers?limit=100&page=2").await;
    assert_eq!(last["customers"].as_array().unwrap().len(), 30);
    assert_eq!(last["customers"][0]["id"], json!(101));
    let (status, _) = get(&sandbox, "/api/v5/customers?page=0", Some(DEFAULT_API_KEY)).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn customers_filters_and_fields() {
    let sandbox = start(60).await;
    let crm = &sandbox.sandbox.retailcrm;
    let by_ids = ok(
        &sandbox,
        "/api/v5/customers?limit=100&filter[ids][]=3&filter[ids][]=7&filter%5Bids%5D%5B%5D=9",
    )
    .await;
    let ids: Vec<u64> = by_ids["customers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![3, 7, 9]);
    let seven = crm.customer(7).unwrap();
    let email = seven.email.clone().unwrap();
    let by_email = ok(
        &sandbox,
        &format!("/api/v5/customers?filter[email]={}", email.to_uppercase()),
    )
    .await;
    assert_eq!(by_email["customers"][0]["id"], json!(7));
    let c = &by_email["customers"][0];
    // Datetimes are Y-m-d H:i:s in the account's zone (Europe/Moscow, UTC+3).
    assert_eq!(c["createdAt"], json!(account_time(&seven.created_at)));
    let utc = seven.created_at.format("%Y-%m-%d %H:%M:%S").to_string();
    assert_ne!(c["createdAt"], json!(utc));
    assert_eq!(c["phones"][0]["number"], json!(seven.phones[0]));
    assert!(c["address"]["countryIso"].is_string());
    assert!(c["customFields"].is_object() || c["customFields"] == json!([]));
    assert!(c["subscribed"].is_boolean());
    let members = [2, 4, 8];
    crm.create_segment("test-seg", "Test segment", &members);
    let seg = ok(&sandbox, "/api/v5/customers?filter[segment]=test-seg").await;
    let got: Vec<u64> = seg["customers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_u64().unwrap())
        .collect();
    assert_eq!(got, members);
    assert!(
        seg["customers"][0]["segments"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["code"] == "test-seg")
    );
    let none = ok(&sandbox, "/api/v5/customers?filter[segment]=no-such").await;
    assert_eq!(none["customers"], json!([]));
    let (status, _) = get(
        &sandbox,
        "/api/v5/customers?filter[ids][]=abc",
        Some(DEFAULT_API_KEY),
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn segments_list() {
    let sandbox = start(50).await;
    sandbox
        .sandbox
        .retailcrm
        .create_segment("club", "Club", &[1, 2, 3]);
    let body = ok(&sandbox, "/api/v5/segments?limit=20").await;
    let club = body["segments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["code"] == "club")
        .unwrap()
        .clone();
    assert_eq!(club["customersCount"], json!(3));
    assert_eq!(club["name"], json!("Club"));
    for key in ["id", "createdAt", "isDynamic", "active"] {
        assert!(club.get(key).is_some(), "{key}");
    }
    let (status, _) = get(&sandbox, "/api/v5/segments?limit=10", Some(DEFAULT_API_KEY)).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn history_records_changes_and_refuses_since_id_with_page() {
    let sandbox = start(30).await;
    let crm = &sandbox.sandbox.retailcrm;
    let seeded = crm.max_history_id();
    assert_eq!(seeded, 30, "one creation entry per seeded customer");
    assert!(crm.edit_customer(5, |c| c.first_name = Some("Renamed".into())));
    assert!(crm.delete_customer(6));
    let added = crm.add_customer(Customer {
        email: Some("new@example.com".into()),
        subscribed: true,
        ..Default::default()
    });
    let body = ok(
        &sandbox,
        &format!("/api/v5/customers/history?filter[sinceId]={seeded}&limit=20"),
    )
    .await;
    let history = body["history"].as_array().unwrap();
    assert_eq!(history.len(), 3);
    assert_eq!(history[0]["field"], json!("first_name"));
    assert_eq!(history[0]["newValue"], json!("Renamed"));
    assert_eq!(history[0]["customer"]["id"], json!(5));
    assert_eq!(history[1]["deleted"], json!(true));
    assert_eq!(history[1]["customer"]["id"], json!(6));
    assert_eq!(history[2]["created"], json!(true));
    assert_eq!(history[2]["customer"]["id"], json!(added));
    let ids: Vec<u64> = history.iter().map(|h| h["id"].as_u64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ordered by id");
    let caught_up = ok(
        &sandbox,
        &format!(
            "/api/v5/customers/history?filter[sinceId]={}&limit=20",
            ids[2]
        ),
    )
    .await;
    assert_eq!(caught_up["history"], json!([]));

    let (status, body) = get(
        &sandbox,
        "/api/v5/customers/history?filter[sinceId]=1&page=2",
        Some(DEFAULT_API_KEY),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["success"], json!(false));
    let (status, _) = get(
        &sandbox,
        "/api/v5/customers/history?filter[sinceId]=1&page=1",
        Some(DEFAULT_API_KEY),
    )
    .await;
    assert_eq!(status, 400);
    // page alone is fine.
    let paged = ok(&sandbox, "/api/v5/customers/history?limit=20&page=2").await;
    assert_eq!(paged["pagination"]["totalCount"], json!(33));
    assert_eq!(paged["history"].as_array().unwrap().len(), 13);
    // Deleted customers are gone from the list.
    let list = ok(&sandbox, "/api/v5/customers?limit=100").await;
    assert!(
        list["customers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["id"] != json!(6))
    );
}

#[tokio::test]
async fn history_start_date_is_read_in_the_account_zone() {
    let sandbox = start(0).await;
    let crm = &sandbox.sandbox.retailcrm;
    crm.add_customer(Customer::default());
    let entry = crm.history()[0].clone();
    let local = account_time(&entry.created_at);
    let from = ok(
        &sandbox,
        &format!("/api/v5/customers/history?filter[startDate]={local}"),
    )
    .await;
    assert_eq!(from["history"].as_array().unwrap().len(), 1);
    let later = account_time(&(entry.created_at + chrono::Duration::seconds(1)));
    let none = ok(
        &sandbox,
        &format!("/api/v5/customers/history?filter[startDate]={later}"),
    )
    .await;
    assert_eq!(none["history"], json!([]));
    // One hour after the change on a UTC wall clock is still two hours before it in Moscow.
    let utc_wall = (entry.created_at + chrono::Duration::hours(1))
        .format("%Y-%m-%d %H:%M:%S")
        .to_string();
    let body = ok(
        &sandbox,
        &format!("/api/v5/customers/history?filter[startDate]={utc_wall}"),
    )
    .await;
    assert_eq!(body["history"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn more_than_the_limit_per_second_is_503() {
    let sandbox = start(1).await;
    let crm = &sandbox.sandbox.retailcrm;
    crm.set_rate_limit(Some(3));
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(
            get(&sandbox, "/api/v5/customers", Some(DEFAULT_API_KEY))
                .await
                .0,
        );
    }
    assert_eq!(&statuses[..3], &[200, 200, 200]);
    assert!(statuses[3..].contains(&503), "{statuses:?}");
    let counters = crm.counters();
    assert!(counters.rate_limited >= 1);
    assert_eq!(counters.max_per_second, 3);
    assert_eq!(counters.key_in_query, 0);
    let stats = &sandbox.sandbox.stats;
    assert_eq!(
        stats.count(Vendor::Retailcrm, Some("GET"), "/api/v5/customers"),
        6
    );
}

#[tokio::test]
async fn orders_list_filters_and_shapes() {
    let sandbox = start(10).await;
    let all = ok(&sandbox, "/api/v5/orders?limit=100").await;
    let orders = all["orders"].as_array().unwrap();
    assert_eq!(
        orders.len(),
        audience_sandbox::retailcrm::DEMO_ORDERS,
        "{all}"
    );
    assert_eq!(all["pagination"]["totalCount"], json!(orders.len()));
    let first = &orders[0];
    // 2 × (450 − 45) + 890 + 300 delivery.
    assert_eq!(first["totalSumm"], json!(2000));
    assert_eq!(first["items"][0]["initialPrice"], json!(450));
    assert_eq!(first["items"][0]["discountTotal"], json!(45));
    assert_eq!(first["items"][0]["offer"]["article"], json!("TEA-01"));
    assert_eq!(first["status"], json!("complete"));
    assert_eq!(first["currency"], json!("RUB"));
    assert_eq!(first["number"], json!("1A"));
    // Page size rules as for customers.
    let (status, _) = get(&sandbox, "/api/v5/orders?limit=30", Some(DEFAULT_API_KEY)).await;
    assert_eq!(status, 400);
    // Ids filter.
    let two = ok(&sandbox, "/api/v5/orders?filter[ids][]=2&filter[ids][]=4").await;
    let ids: Vec<&Value> = two["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| &o["id"])
        .collect();
    assert_eq!(ids, [&json!(2), &json!(4)]);
    // createdAtFrom is a date in the account's zone; a datetime is refused [U].
    let created = sandbox.sandbox.retailcrm.order(5).unwrap().created_at;
    let date = account_time(&created)[..10].to_string();
    let from = ok(
        &sandbox,
        &format!("/api/v5/orders?filter[createdAtFrom]={date}"),
    )
    .await;
    assert!(
        from["orders"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["createdAt"].as_str().unwrap()[..10] >= *date),
        "{from}"
    );
    assert!(
        from["orders"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["id"] == json!(5))
    );
    let (status, body) = get(
        &sandbox,
        "/api/v5/orders?filter[createdAtFrom]=2026-01-01%2010:00:00",
        Some(DEFAULT_API_KEY),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["errors"]["filter[createdAtFrom]"].is_string(),
        "{body}"
    );
}

#[tokio::test]
async fn orders_history_statuses_sites_and_settings() {
    let sandbox = start(10).await;
    let crm = &sandbox.sandbox.retailcrm;
    let history = ok(&sandbox, "/api/v5/orders/history?limit=100").await;
    let entries = history["history"].as_array().unwrap();
    assert_eq!(entries.len(), audience_sandbox::retailcrm::DEMO_ORDERS);
    assert!(entries.iter().all(|e| e["created"] == json!(true)));
    // A creation entry carries the whole order.
    assert!(entries[0]["order"]["items"].is_array());
    let last = entries.last().unwrap()["id"].as_u64().unwrap();
    assert!(crm.set_order_status(6, "complete"));
    let since = ok(
        &sandbox,
        &format!("/api/v5/orders/history?filter[sinceId]={last}"),
    )
    .await;
    let change = &since["history"][0];
    assert_eq!(change["field"], json!("status"));
    assert_eq!(change["oldValue"], json!({"code": "new"}));
    assert_eq!(change["newValue"], json!({"code": "complete"}));
    assert_eq!(change["order"]["id"], json!(6));
    assert_eq!(since["history"].as_array().unwrap().len(), 1);
    let (status, _) = get(
        &sandbox,
        &format!("/api/v5/orders/history?filter[sinceId]={last}&page=1"),
        Some(DEFAULT_API_KEY),
    )
    .await;
    assert_eq!(status, 400, "sinceId with page is refused");
    assert!(!crm.set_order_status(6, "no-such-status"));

    let statuses = ok(&sandbox, "/api/v5/reference/statuses").await;
    assert_eq!(statuses["statuses"]["return"]["group"], json!("cancel"));
    assert_eq!(statuses["statuses"]["complete"]["group"], json!("complete"));
    let sites = ok(&sandbox, "/api/v5/reference/sites").await;
    assert_eq!(
        sites["sites"][audience_sandbox::retailcrm::SITE]["currency"],
        json!("RUB")
    );
    let settings = ok(&sandbox, "/api/v5/settings").await;
    assert_eq!(
        settings["settings"]["timezone"]["value"],
        json!("Europe/Moscow")
    );
    let (status, _) = get(&sandbox, "/api/v5/settings", Some("nope")).await;
    assert_eq!(status, 403);
}
