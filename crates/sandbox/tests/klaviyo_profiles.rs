//! The Klaviyo simulator's gate (key, revision, media type) and its profile endpoints, over HTTP.

mod klaviyo_support;

use klaviyo_support::*;
use reqwest::Method;
use serde_json::json;

fn new_profile(email: &str) -> serde_json::Value {
    json!({"data": {"type": "profile", "attributes": {"email": email, "first_name": "Ava"}}})
}

#[tokio::test]
async fn refuses_missing_or_wrong_keys_revisions_and_media_types() {
    let kl = Kl::start().await;
    // No Authorization header.
    let r = kl
        .send(
            kl.client
                .get(kl.url("/api/profiles"))
                .header("revision", "2026-07-15"),
        )
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.code(), "not_authenticated");
    assert_eq!(r.content_type, "application/vnd.api+json");
    assert!(
        r.body["errors"][0]["id"]
            .as_str()
            .is_some_and(|id| !id.is_empty())
    );
    // The wrong scheme.
    let r = kl
        .send(
            kl.client
                .get(kl.url("/api/profiles"))
                .header("revision", "2026-07-15")
                .header("Authorization", format!("Bearer {}", kl.key)),
        )
        .await;
    assert_eq!(r.status, 401);
    // A key the account does not have.
    kl.sim().set_valid_keys(["pk_onlythisoneisvalid"]);
    let r = kl.get("/api/profiles").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.code(), "authentication_failed");
    assert!(
        !r.body.to_string().contains(&kl.key),
        "the key is not echoed"
    );
    kl.sim().reset();

    // No revision, a malformed one, one the simulator does not serve.
    for revision in [None, Some("July"), Some("2024-10-15")] {
        let mut request = kl
            .client
            .get(kl.url("/api/profiles"))
            .header("Authorization", format!("Klaviyo-API-Key {}", kl.key));
        if let Some(revision) = revision {
            request = request.header("revision", revision);
        }
        let r = kl.send(request).await;
        assert_eq!(r.status, 400, "{revision:?}");
        assert_eq!(r.body["errors"][0]["source"]["parameter"], "revision");
    }

    // A body as application/json.
    let r = kl
        .send(
            kl.request(Method::POST, "/api/profiles")
                .header("content-type", "application/json")
                .body(new_profile("a@example.com").to_string()),
        )
        .await;
    assert_eq!(r.status, 415);
    assert_eq!(kl.sim().profile_count(), 0);

    // Malformed JSON.
    let r = kl
        .send(
            kl.request(Method::POST, "/api/profiles")
                .header("content-type", "application/vnd.api+json")
                .body("{\"data\": "),
        )
        .await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn creates_reads_and_refuses_duplicates_unknown_attributes_and_wrong_types() {
    let kl = Kl::start().await;
    let r = kl
        .post("/api/profiles", &new_profile("Ava@Example.com"))
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let id = r.body["data"]["id"].as_str().expect("id").to_string();
    assert_eq!(id.len(), 26);
    assert_eq!(r.body["data"]["attributes"]["email"], "ava@example.com");
    assert!(r.body["data"]["attributes"].get("subscriptions").is_none());

    let r = kl
        .post("/api/profiles", &new_profile("ava@example.com"))
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(r.code(), "duplicate_profile");
    assert_eq!(
        r.body["errors"][0]["meta"]["duplicate_profile_id"],
        id.as_str()
    );

    let r = kl
        .post(
            "/api/profiles",
            &json!({"data": {"type": "profile", "attributes": {"email": "b@example.com", "company": "X"}}}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.pointer(), "/data/attributes/company");

    let r = kl
        .post(
            "/api/profiles",
            &json!({"data": {"type": "profiles", "attributes": {"email": "b@example.com"}}}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.pointer(), "/data/type");

    for (attrs, pointer) in [
        (json!({"email": "not-an-email"}), "/data/attributes/email"),
        (
            json!({"phone_number": "0612345678"}),
            "/data/attributes/phone_number",
        ),
        (json!({"first_name": "NoId"}), "/data/attributes"),
        (
            json!({"email": "c@example.com", "location": {"planet": "Mars"}}),
            "/data/attributes/location/planet",
        ),
    ] {
        let r = kl
            .post(
                "/api/profiles",
                &json!({"data": {"type": "profile", "attributes": attrs}}),
            )
            .await;
        assert_eq!(r.status, 400, "{attrs}");
        assert_eq!(r.pointer(), pointer, "{attrs}");
    }
    assert_eq!(kl.sim().profile_count(), 1);

    let r = kl
        .get(&format!(
            "/api/profiles/{id}?additional-fields[profile]=subscriptions"
        ))
        .await;
    assert_eq!(r.status, 200);
    let marketing = &r.body["data"]["attributes"]["subscriptions"]["email"]["marketing"];
    assert_eq!(marketing["consent"], "NEVER_SUBSCRIBED");
    assert_eq!(marketing["can_receive_email_marketing"], false);
    assert_eq!(kl.get("/api/profiles/01KNOPE").await.status, 404);
}

#[tokio::test]
async fn patch_clears_nulls_keeps_omitted_and_checks_the_id() {
    let kl = Kl::start().await;
    let r = kl
        .post(
            "/api/profiles",
            &json!({"data": {"type": "profile", "attributes": {
                "email": "p@example.com", "first_name": "Ava", "title": "Buyer",
                "location": {"city": "Berlin", "zip": "10115"}, "properties": {"tier": "gold"}
            }}}),
        )
        .await;
    let id = r.body["data"]["id"].as_str().unwrap().to_string();
    let r = kl
        .call(
            Method::PATCH,
            &format!("/api/profiles/{id}"),
            &json!({"data": {"type": "profile", "id": id, "attributes": {
                "title": null, "organization": "Acme", "location": {"city": "Hamburg"}
            }}}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let p = kl.sim().profile(&id).unwrap();
    assert_eq!(p.title, None);
    assert_eq!(p.first_name.as_deref(), Some("Ava"));
    assert_eq!(p.organization.as_deref(), Some("Acme"));
    assert_eq!(p.location["city"], "Hamburg");
    assert_eq!(p.location["zip"], "10115");
    assert_eq!(p.properties["tier"], "gold");

    let r = kl
        .call(
            Method::PATCH,
            &format!("/api/profiles/{id}"),
            &json!({"data": {"type": "profile", "id": "01KOTHER", "attributes": {}}}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.pointer(), "/data/id");
    let r = kl
        .call(
            Method::PATCH,
            &format!("/api/profiles/{id}"),
            &json!({"data": {"type": "profile", "id": id, "attributes": {"email": null}}}),
        )
        .await;
    assert_eq!(r.status, 400, "the last identifier cannot go");
}

#[tokio::test]
async fn profile_import_creates_then_updates() {
    let kl = Kl::start().await;
    let body = |name: &str| json!({"data": {"type": "profile", "attributes": {"email": "i@example.com", "last_name": name}}});
    let r = kl.post("/api/profile-import", &body("One")).await;
    assert_eq!(r.status, 201);
    let id = r.body["data"]["id"].clone();
    let r = kl.post("/api/profile-import", &body("Two")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["data"]["id"], id);
    assert_eq!(
        kl.sim()
            .profile_by_email("i@example.com")
            .unwrap()
            .last_name
            .as_deref(),
        Some("Two")
    );
    let big = "x".repeat(101 * 1024);
    let r = kl
        .post(
            "/api/profile-import",
            &json!({"data": {"type": "profile", "attributes": {"email": "i@example.com", "properties": {"big": big}}}}),
        )
        .await;
    assert_eq!(r.status, 413);
}

#[tokio::test]
async fn filters_by_email_and_pages_with_links_next() {
    let kl = Kl::start().await;
    for i in 0..45 {
        kl.sim().seed_profile(
            &format!("p{i:02}@example.com"),
            None,
            None,
            SeedConsent::Subscribed,
        );
    }
    let r = kl
        .get("/api/profiles?filter=equals(email,\"P07@example.com\")")
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["data"][0]["attributes"]["email"], "p07@example.com");

    let r = kl.get("/api/profiles?filter=contains(email,\"p\")").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["errors"][0]["source"]["parameter"], "filter");
    assert_eq!(kl.get("/api/profiles?page[size]=101").await.status, 400);
    assert_eq!(kl.get("/api/profiles?bogus=1").await.status, 400);

    let mut seen = Vec::new();
    let mut next =
        Some("/api/profiles?page[size]=20&additional-fields[profile]=subscriptions".to_string());
    let mut pages = 0;
    while let Some(url) = next {
        let r = kl.get(&url).await;
        assert_eq!(r.status, 200, "{url}");
        pages += 1;
        for p in r.body["data"].as_array().unwrap() {
            assert_eq!(
                p["attributes"]["subscriptions"]["email"]["marketing"]["consent"],
                "SUBSCRIBED"
            );
            seen.push(p["attributes"]["email"].as_str().unwrap().to_string());
        }
        next = r.body["links"]["next"].as_str().map(str::to_string);
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (0..45).map(|i| format!("p{i:02}@example.com")).collect();
    assert_eq!(seen, expected);
    assert_eq!(
        kl.get("/api/profiles?page[cursor]=garbage!").await.status,
        400
    );
}
