//! Bulk profile import jobs and list membership calls of the Klaviyo simulator.

mod klaviyo_support;

use klaviyo_support::*;
use reqwest::Method;
use serde_json::{Value, json};

fn import_job(profiles: Vec<Value>, list: Option<&str>) -> Value {
    let mut body = json!({"data": {"type": "profile-bulk-import-job",
        "attributes": {"profiles": {"data": profiles}}}});
    if let Some(list) = list {
        body["data"]["relationships"] = json!({"lists": {"data": [{"type": "list", "id": list}]}});
    }
    body
}

#[tokio::test]
async fn import_job_goes_queued_processing_complete_and_reports_errors() {
    let kl = Kl::start().await;
    let list = kl.sim().create_list("Customers", OptIn::Single);
    let mut profiles: Vec<Value> = (0..5)
        .map(|i| profile(&format!("b{i}@example.com")))
        .collect();
    profiles.push(profile("not-an-email"));
    profiles.push(json!({"type": "profile", "attributes": {"first_name": "NoIdentifier"}}));
    let r = kl
        .post(
            "/api/profile-bulk-import-jobs",
            &import_job(profiles, Some(&list)),
        )
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let job = r.body["data"]["id"].as_str().unwrap().to_string();
    assert_eq!(r.body["data"]["attributes"]["status"], "queued");
    assert_eq!(r.body["data"]["attributes"]["total_count"], 7);
    // Nothing applied until the job completes.
    assert_eq!(kl.sim().profile_count(), 0);

    let path = format!("/api/profile-bulk-import-jobs/{job}");
    let statuses: Vec<String> = {
        let mut out = Vec::new();
        for _ in 0..3 {
            let r = kl.get(&path).await;
            assert_eq!(r.status, 200);
            out.push(
                r.body["data"]["attributes"]["status"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
        }
        out
    };
    assert_eq!(statuses, ["queued", "processing", "complete"]);
    let r = kl.get(&path).await;
    assert_eq!(r.body["data"]["attributes"]["completed_count"], 5);
    assert_eq!(r.body["data"]["attributes"]["failed_count"], 2);
    assert_eq!(kl.sim().profile_count(), 5);
    assert_eq!(kl.sim().list_members(&list).len(), 5);

    let r = kl.get(&format!("{path}/import-errors")).await;
    assert_eq!(r.status, 200);
    let errors = r.body["data"].as_array().unwrap();
    assert_eq!(errors.len(), 2);
    let pointers: Vec<&str> = errors
        .iter()
        .map(|e| e["attributes"]["source"]["pointer"].as_str().unwrap())
        .collect();
    assert!(
        pointers.contains(&"/data/attributes/profiles/data/5/attributes/email"),
        "{pointers:?}"
    );
    assert!(
        pointers.contains(&"/data/attributes/profiles/data/6/attributes"),
        "{pointers:?}"
    );
    assert_eq!(
        kl.get("/api/profile-bulk-import-jobs/nope").await.status,
        404
    );
}

#[tokio::test]
async fn import_job_limits_refuse_the_whole_request() {
    let kl = Kl::start().await;
    let too_many: Vec<Value> = (0..10_001)
        .map(|i| profile(&format!("m{i}@example.com")))
        .collect();
    let r = kl
        .post("/api/profile-bulk-import-jobs", &import_job(too_many, None))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.pointer(), "/data/attributes/profiles/data");

    // 10,000 is fine.
    let max: Vec<Value> = (0..10_000)
        .map(|i| profile(&format!("m{i}@example.com")))
        .collect();
    let r = kl
        .post("/api/profile-bulk-import-jobs", &import_job(max, None))
        .await;
    assert_eq!(r.status, 202);

    // Over 5 MB.
    let big = "x".repeat(90 * 1024);
    let heavy: Vec<Value> = (0..60)
        .map(|i| json!({"type": "profile", "attributes": {"email": format!("h{i}@example.com"), "properties": {"p": big}}}))
        .collect();
    let r = kl
        .post("/api/profile-bulk-import-jobs", &import_job(heavy, None))
        .await;
    assert_eq!(r.status, 413);

    // One profile over 100 KB fails alone.
    let huge = "x".repeat(101 * 1024);
    let r = kl
        .post(
            "/api/profile-bulk-import-jobs",
            &import_job(
                vec![
                    profile("ok@example.com"),
                    json!({"type": "profile", "attributes": {"email": "big@example.com", "properties": {"p": huge}}}),
                ],
                None,
            ),
        )
        .await;
    assert_eq!(r.status, 202);
    assert_eq!(r.body["data"]["attributes"]["failed_count"], 1);

    // Unknown attributes, a wrong type, an unknown list.
    let r = kl
        .post(
            "/api/profile-bulk-import-jobs",
            &import_job(vec![json!({"type": "profile", "attributes": {"email": "a@example.com", "company": "X"}})], None),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.pointer(),
        "/data/attributes/profiles/data/0/attributes/company"
    );
    let r = kl
        .post(
            "/api/profile-bulk-import-jobs",
            &json!({"data": {"type": "profile-import-job", "attributes": {"profiles": {"data": [profile("a@example.com")]}}}}),
        )
        .await;
    assert_eq!(r.pointer(), "/data/type");
    let r = kl
        .post(
            "/api/profile-bulk-import-jobs",
            &import_job(vec![profile("a@example.com")], Some("NOPE")),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.pointer(), "/data/relationships/lists/data/0/id");
}

#[tokio::test]
async fn list_relationships_take_at_most_1000_and_do_not_touch_consent() {
    let kl = Kl::start().await;
    let r = kl
        .post(
            "/api/lists",
            &json!({"data": {"type": "list", "attributes": {"name": "VIP"}}}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let list = r.body["data"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        r.body["data"]["attributes"]["opt_in_process"],
        "single_opt_in"
    );
    let ids: Vec<String> = (0..1001)
        .map(|i| {
            kl.sim().seed_profile(
                &format!("r{i}@example.com"),
                None,
                None,
                SeedConsent::NeverSubscribed,
            )
        })
        .collect();
    let refs = |ids: &[String]| json!({"data": ids.iter().map(|id| json!({"type": "profile", "id": id})).collect::<Vec<_>>()});
    let path = format!("/api/lists/{list}/relationships/profiles");
    let r = kl.post(&path, &refs(&ids)).await;
    assert_eq!(r.status, 400);
    assert!(kl.sim().list_members(&list).is_empty());
    let r = kl.post(&path, &refs(&ids[..1000])).await;
    assert_eq!(r.status, 204);
    assert_eq!(r.body, Value::Null);
    assert_eq!(kl.sim().list_members(&list).len(), 1000);
    let p = kl.sim().profile(&ids[0]).unwrap();
    assert_eq!(p.email_marketing.consent, Consent::NeverSubscribed);

    let r = kl.call(Method::DELETE, &path, &refs(&ids[..10])).await;
    assert_eq!(r.status, 204);
    assert_eq!(kl.sim().list_members(&list).len(), 990);

    let r = kl
        .post(
            &path,
            &json!({"data": [{"type": "profile", "id": "01KNOPE"}]}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.pointer(), "/data/0/id");
    let r = kl
        .post(&path, &json!({"data": [{"type": "list", "id": ids[0]}]}))
        .await;
    assert_eq!(r.pointer(), "/data/0/type");

    // Members in pages of at most 100.
    let r = kl
        .get(&format!("/api/lists/{list}/profiles?page[size]=100"))
        .await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 100);
    assert!(r.body["links"]["next"].is_string());
    assert_eq!(
        kl.get(&format!("/api/lists/{list}/profiles?page[size]=101"))
            .await
            .status,
        400
    );
}

#[tokio::test]
async fn lists_page_by_ten_and_filter_by_name() {
    let kl = Kl::start().await;
    for i in 0..12 {
        kl.sim().create_list(&format!("List {i}"), OptIn::Single);
    }
    let r = kl.get("/api/lists").await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 10);
    let next = r.body["links"]["next"].as_str().unwrap().to_string();
    let r = kl.get(&next).await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 2);
    assert_eq!(kl.get("/api/lists?page[size]=11").await.status, 400);
    let r = kl.get("/api/lists?filter=equals(name,\"List 3\")").await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["data"][0]["attributes"]["name"], "List 3");
}
