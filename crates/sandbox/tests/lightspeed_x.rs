//! The X-Series simulator keeps the vendor's rules: version paging, deleted records, bearer auth
//! and the per-retailer rate limit with its headers and 429 format.

use std::time::{Duration, SystemTime};

use audience_sandbox::lightspeed_x::{Customer, DEMO_TOKEN, MAX_PAGE_SIZE};
use audience_sandbox::{RunningSandbox, Sandbox, SandboxOptions, Vendor};
use serde_json::Value;

async fn start(customers: usize) -> RunningSandbox {
    Sandbox::new(SandboxOptions { customers, seed: 7 })
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .expect("sandbox serves")
}

fn customers_url(running: &RunningSandbox) -> String {
    format!(
        "{}/api/2.0/customers",
        running.vendor_url(Vendor::LightspeedX)
    )
}

async fn get(running: &RunningSandbox, query: &[(&str, &str)], token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(customers_url(running))
        .query(query)
        .bearer_auth(token)
        .send()
        .await
        .expect("request sent")
}

async fn get_json(running: &RunningSandbox, query: &[(&str, &str)]) -> Value {
    let response = get(running, query, DEMO_TOKEN).await;
    assert_eq!(response.status(), 200);
    response.json().await.expect("json body")
}

#[tokio::test]
async fn pages_by_version_until_data_is_empty() {
    let running = start(250).await;
    let mut after = 0u64;
    let mut seen = Vec::new();
    let mut calls = 0;
    loop {
        let after_text = after.to_string();
        let body = get_json(&running, &[("after", &after_text), ("page_size", "100")]).await;
        calls += 1;
        let data = body["data"].as_array().expect("data list");
        if data.is_empty() {
            break;
        }
        let versions: Vec<u64> = data
            .iter()
            .map(|c| c["version"].as_u64().unwrap())
            .collect();
        assert!(
            versions.windows(2).all(|w| w[0] < w[1]),
            "ordered by version"
        );
        assert!(versions[0] > after, "only versions after the cursor");
        assert_eq!(body["version"]["min"].as_u64(), Some(versions[0]));
        assert_eq!(body["version"]["max"].as_u64(), versions.last().copied());
        after = body["version"]["max"].as_u64().unwrap();
        seen.extend(data.iter().map(|c| c["id"].as_str().unwrap().to_string()));
    }
    assert_eq!(seen.len(), 250);
    assert_eq!(calls, 4, "3 pages of data and the empty one");
    assert!(after > u64::from(u32::MAX), "versions are 64-bit");
    assert_eq!(
        running
            .sandbox
            .stats
            .count(Vendor::LightspeedX, Some("GET"), "/api/2.0/customers"),
        4
    );
}

#[tokio::test]
async fn customers_have_the_spec_fields_and_zoned_times() {
    let running = start(3).await;
    let body = get_json(&running, &[]).await;
    let first = &body["data"][0];
    for field in [
        "id",
        "customer_code",
        "name",
        "first_name",
        "last_name",
        "email",
        "do_not_email",
        "phone",
        "mobile",
        "company_name",
        "physical_address_1",
        "physical_address_2",
        "physical_suburb",
        "physical_city",
        "physical_postcode",
        "physical_state",
        "physical_country_id",
        "custom_field_1",
        "custom_field_2",
        "custom_field_3",
        "custom_field_4",
        "note",
        "created_at",
        "updated_at",
        "deleted_at",
        "version",
    ] {
        assert!(first.get(field).is_some(), "field {field} present");
    }
    assert!(first["do_not_email"].is_boolean());
    let updated = first["updated_at"].as_str().unwrap();
    assert!(updated.ends_with("+00:00"), "explicit zone: {updated}");
    assert!(chrono::DateTime::parse_from_rfc3339(updated).is_ok());
    assert_eq!(first["id"].as_str().unwrap().len(), 36, "uuid");
}

#[tokio::test]
async fn page_size_is_clamped_to_the_maximum() {
    let running = start(MAX_PAGE_SIZE + 20).await;
    let body = get_json(&running, &[("page_size", "5000")]).await;
    assert_eq!(body["data"].as_array().unwrap().len(), MAX_PAGE_SIZE);
    let body = get_json(&running, &[]).await;
    assert_eq!(body["data"].as_array().unwrap().len(), MAX_PAGE_SIZE);
    let bad = get(&running, &[("page_size", "zero")], DEMO_TOKEN).await;
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn edits_bump_the_version_and_deleted_records_need_deleted_true() {
    let running = start(5).await;
    let sim = &running.sandbox.lightspeed_x;
    let before = sim.max_version();
    let ids = sim.live_ids();
    assert!(sim.edit_customer(&ids[0], |c| c.email = Some("new@example.com".into())));
    assert!(sim.delete_customer(&ids[1]));
    let added = sim.add_customer(Customer {
        first_name: Some("Ada".into()),
        last_name: Some("Lovelace".into()),
        email: Some("ada@example.com".into()),
        ..Customer::default()
    });

    let since = before.to_string();
    let live = get_json(&running, &[("after", &since)]).await;
    let live_ids: Vec<&str> = live["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(live_ids, vec![ids[0].as_str(), added.as_str()]);
    assert_eq!(live["data"][0]["email"], "new@example.com");
    assert_eq!(live["data"][1]["name"], "Ada Lovelace");

    let all = get_json(&running, &[("after", &since), ("deleted", "true")]).await;
    let data = all["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    let deleted = data.iter().find(|c| c["id"] == ids[1].as_str()).unwrap();
    let deleted_at = deleted["deleted_at"].as_str().expect("deleted_at set");
    assert!(chrono::DateTime::parse_from_rfc3339(deleted_at).is_ok());
    assert!(data.iter().all(|c| c["version"].as_u64().unwrap() > before));

    // A full listing without deleted=true no longer has the deleted customer.
    let full = get_json(&running, &[]).await;
    assert_eq!(full["data"].as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn a_wrong_or_missing_token_is_401_in_the_vendor_shape() {
    let running = start(1).await;
    let response = get(&running, &[], "not-the-token").await;
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "Access token is not valid");

    let response = reqwest::get(customers_url(&running)).await.unwrap();
    assert_eq!(response.status(), 401);

    running.sandbox.lightspeed_x.set_token("rotated");
    assert_eq!(get(&running, &[], DEMO_TOKEN).await.status(), 401);
    assert_eq!(get(&running, &[], "rotated").await.status(), 200);
}

#[tokio::test]
async fn the_rate_limit_counts_down_then_refuses_with_an_http_date() {
    let running = start(1).await;
    let sim = &running.sandbox.lightspeed_x;
    sim.set_rate_limit(3, Duration::from_secs(60));
    for expected_remaining in ["2", "1", "0"] {
        let response = get(&running, &[], DEMO_TOKEN).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-ratelimit-limit"], "3");
        assert_eq!(
            response.headers()["x-ratelimit-remaining"],
            expected_remaining
        );
        let reset = response.headers()["x-ratelimit-reset"].to_str().unwrap();
        assert!(httpdate::parse_http_date(reset).is_ok());
    }
    let refused = get(&running, &[], DEMO_TOKEN).await;
    assert_eq!(refused.status(), 429);
    let retry_after = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .to_string();
    let when = httpdate::parse_http_date(&retry_after).expect("RFC 1123 date");
    let wait = when.duration_since(SystemTime::now()).unwrap();
    assert!(wait > Duration::from_secs(55) && wait <= Duration::from_secs(61));
    let body: Value = refused.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"error": "Too Many Requests", "message": "Rate limiting enforced"})
    );
    assert_eq!(sim.refused(), 1);
}

#[tokio::test]
async fn the_window_reopens_after_it_ends() {
    let running = start(1).await;
    let sim = &running.sandbox.lightspeed_x;
    sim.set_rate_limit(1, Duration::from_millis(300));
    assert_eq!(get(&running, &[], DEMO_TOKEN).await.status(), 200);
    let refused = get(&running, &[], DEMO_TOKEN).await;
    assert_eq!(refused.status(), 429);
    // Wait as a client would: until the Retry-After date (rounded up to the second).
    let when =
        httpdate::parse_http_date(refused.headers()["retry-after"].to_str().unwrap()).unwrap();
    tokio::time::sleep(when.duration_since(SystemTime::now()).unwrap_or_default()).await;
    assert_eq!(get(&running, &[], DEMO_TOKEN).await.status(), 200);
    assert_eq!(sim.refused(), 1);
}

#[tokio::test]
async fn the_documented_limit_follows_registers() {
    assert_eq!(audience_sandbox::lightspeed_x::limit_for_registers(1), 350);
    assert_eq!(audience_sandbox::lightspeed_x::limit_for_registers(3), 950);
    let running = start(1).await;
    running.sandbox.lightspeed_x.set_registers(2);
    let response = get(&running, &[], DEMO_TOKEN).await;
    assert_eq!(response.headers()["x-ratelimit-limit"], "650");
}
