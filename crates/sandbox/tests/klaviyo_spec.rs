//! Conformance of the Klaviyo simulator to the OpenAPI document it was written from
//! (`shared/specs/klaviyo/klaviyo-openapi-stable-2026-07-15.json`, next to the repository
//! checkout): every served route exists in the spec with that method and the rate limits of its
//! `x-klaviyo-ratelimit`; every answer of a scenario touching every route has a status the spec
//! lists, and its body matches the spec's schema for that status: required members present, no
//! member the schema does not declare, types, nullability and enums as declared.

mod klaviyo_support;

use std::collections::BTreeSet;

use audience_sandbox::klaviyo::ROUTES;
use klaviyo_support::*;
use reqwest::Method;
use serde_json::{Value, json};

const SPEC: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/specs/klaviyo/klaviyo-openapi-stable-2026-07-15.json"
);

fn load_spec() -> Option<Value> {
    match std::fs::read_to_string(SPEC) {
        Ok(text) => Some(serde_json::from_str(&text).expect("spec is JSON")),
        Err(e) => {
            eprintln!("SKIPPED: Klaviyo OpenAPI document not found at {SPEC} ({e})");
            None
        }
    }
}

fn resolve<'a>(spec: &'a Value, schema: &'a Value) -> &'a Value {
    let mut s = schema;
    while let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let mut node = spec;
        for part in r.trim_start_matches("#/").split('/') {
            node = &node[part];
        }
        s = node;
    }
    s
}

/// Errors of `value` against `schema` at `path`.
fn check(spec: &Value, schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    let schema = resolve(spec, schema);
    if value.is_null() {
        if schema.get("nullable") != Some(&Value::Bool(true)) && schema.get("type").is_some() {
            errors.push(format!("{path}: null, but the schema is not nullable"));
        }
        return;
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        let objects = all.iter().any(|p| {
            let p = resolve(spec, p);
            p.get("properties").is_some() || p.get("type") == Some(&json!("object"))
        });
        if !objects {
            for part in all {
                check(spec, part, value, path, errors);
            }
            return;
        }
        // Merge the parts' properties so "no undeclared member" sees all of them.
        let mut merged = json!({"type": "object", "properties": {}, "required": []});
        for part in all {
            let part = resolve(spec, part);
            if let Some(props) = part.get("properties").and_then(Value::as_object) {
                for (k, v) in props {
                    // A member declared by several parts must satisfy all of them.
                    merged["properties"][k] = match merged["properties"].get(k) {
                        Some(old) => json!({"allOf": [old.clone(), v.clone()]}),
                        None => v.clone(),
                    };
                }
            }
            if let Some(req) = part.get("required").and_then(Value::as_array) {
                merged["required"]
                    .as_array_mut()
                    .unwrap()
                    .extend(req.iter().cloned());
            }
        }
        return check(spec, &merged, value, path, errors);
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(options) = schema.get(key).and_then(Value::as_array) {
            let fits = options.iter().any(|o| {
                let mut e = Vec::new();
                check(spec, o, value, path, &mut e);
                e.is_empty()
            });
            if !fits {
                errors.push(format!("{path}: fits none of {key}"));
            }
            return;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        errors.push(format!("{path}: {value} not in enum {allowed:?}"));
    }
    let ty = schema.get("type").and_then(Value::as_str);
    let ok = match ty {
        Some("string") => value.is_string(),
        Some("boolean") => value.is_boolean(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("array") => value.is_array(),
        Some("object") => value.is_object(),
        _ => true,
    };
    if !ok {
        errors.push(format!("{path}: {value} is not a {}", ty.unwrap_or("?")));
        return;
    }
    if let (Some("string"), Some("date-time")) = (ty, schema.get("format").and_then(Value::as_str))
        && chrono::DateTime::parse_from_rfc3339(value.as_str().unwrap()).is_err()
    {
        errors.push(format!("{path}: {value} is not a date-time"));
    }
    if let Value::Array(items) = value
        && let Some(item_schema) = schema.get("items")
    {
        for (i, item) in items.iter().enumerate() {
            check(spec, item_schema, item, &format!("{path}/{i}"), errors);
        }
    }
    if let Value::Object(map) = value {
        let props = schema.get("properties").and_then(Value::as_object);
        for req in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let req = req.as_str().unwrap();
            if !map.contains_key(req) {
                errors.push(format!("{path}: required '{req}' missing"));
            }
        }
        let free = schema
            .get("additionalProperties")
            .is_some_and(|a| a != &Value::Bool(false))
            || props.is_none();
        for (k, v) in map {
            match props.and_then(|p| p.get(k)) {
                Some(s) => check(spec, s, v, &format!("{path}/{k}"), errors),
                // Klaviyo's error objects carry `status` (and `meta` on a duplicate) besides the
                // spec's members [D].
                None if path.starts_with("/errors/") && (k == "status" || k == "meta") => {}
                None if free => {}
                None => errors.push(format!("{path}: '{k}' is not in the schema")),
            }
        }
    }
}

fn rate_limit(text: &str) -> u32 {
    text.split('/').next().unwrap().parse().unwrap()
}

#[test]
fn every_served_route_is_in_the_spec_with_its_method_and_limits() {
    let Some(spec) = load_spec() else { return };
    for (method, path, limits) in ROUTES {
        let op = &spec["paths"][path][method.to_lowercase()];
        assert!(op.is_object(), "{method} {path} is not in the spec");
        let rl = &op["x-klaviyo-ratelimit"];
        assert_eq!(
            rate_limit(rl["burst"].as_str().unwrap()),
            limits.burst_per_second,
            "{method} {path} burst"
        );
        assert_eq!(
            rate_limit(rl["steady"].as_str().unwrap()),
            limits.steady_per_minute,
            "{method} {path} steady"
        );
        assert_eq!(
            rl["daily"].as_str().map(rate_limit),
            limits.daily,
            "{method} {path} daily"
        );
    }
}

/// One request of the scenario and the route it exercises.
struct Step {
    method: &'static str,
    route: &'static str,
    path: String,
    body: Option<Value>,
}

fn step(method: &'static str, route: &'static str, path: String, body: Option<Value>) -> Step {
    Step {
        method,
        route,
        path,
        body,
    }
}

#[tokio::test]
async fn answers_follow_the_spec_schemas() {
    let Some(spec) = load_spec() else { return };
    let kl = Kl::start().await;
    kl.sim().set_job_stage_polls(1);
    let list = kl.sim().create_list("Spec list", OptIn::Single);
    let seeded = kl.sim().seed_profile(
        "bounced@example.com",
        Some("Bo"),
        None,
        SeedConsent::Bounced,
    );
    kl.sim().add_to_list(&list, &seeded);
    let segment = kl
        .sim()
        .create_segment("Spec segment", std::slice::from_ref(&seeded));
    let full_profile = json!({"data": {"type": "profile", "attributes": {
        "email": "spec@example.com", "phone_number": "+15555550123", "external_id": "x-1",
        "first_name": "Spec", "last_name": "Check", "organization": "Acme", "title": "Buyer",
        "locale": "en-US", "location": {"address1": "1 Main St", "city": "Austin", "region": "TX",
        "zip": "73301", "country": "US", "latitude": 30.2}, "properties": {"tier": "gold"}
    }}});

    // First the writes that create what later steps read.
    let created = kl
        .post(
            "/api/profiles?additional-fields[profile]=subscriptions",
            &full_profile,
        )
        .await;
    let id = created.body["data"]["id"].as_str().unwrap().to_string();
    let job = kl
        .post(
            "/api/profile-bulk-import-jobs",
            &json!({"data": {"type": "profile-bulk-import-job", "attributes": {"profiles": {"data": [
                profile("bulk@example.com"), profile("broken")
            ]}}, "relationships": {"lists": {"data": [{"type": "list", "id": list}]}}}}),
        )
        .await;
    let job_id = job.body["data"]["id"].as_str().unwrap().to_string();
    let event = json!({"data": {"type": "event", "attributes": {"properties": {"a": 1},
        "metric": {"data": {"type": "metric", "attributes": {"name": "Placed Order"}}},
        "profile": {"data": {"type": "profile", "attributes": {"email": "spec@example.com"}}}}}});
    let _ = kl.post("/api/events", &event).await;
    let metric_id = kl.get("/api/metrics").await.body["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let account_id = kl.get("/api/accounts").await.body["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    kl.sim().advance_clock(chrono::Duration::seconds(2));

    let mut answers = vec![
        ("POST", "/api/profiles", created),
        ("POST", "/api/profile-bulk-import-jobs", job),
    ];
    let steps = vec![
        step(
            "GET",
            "/api/profiles",
            "/api/profiles?additional-fields[profile]=subscriptions&page[size]=1".into(),
            None,
        ),
        step(
            "GET",
            "/api/profiles/{id}",
            format!("/api/profiles/{seeded}?additional-fields[profile]=subscriptions"),
            None,
        ),
        step(
            "PATCH",
            "/api/profiles/{id}",
            format!("/api/profiles/{id}"),
            Some(json!({"data": {"type": "profile", "id": id, "attributes": {"title": null}}})),
        ),
        step(
            "POST",
            "/api/profile-import",
            "/api/profile-import".into(),
            Some(
                json!({"data": {"type": "profile", "attributes": {"email": "import@example.com"}}}),
            ),
        ),
        step(
            "GET",
            "/api/profile-bulk-import-jobs",
            "/api/profile-bulk-import-jobs".into(),
            None,
        ),
        step(
            "GET",
            "/api/profile-bulk-import-jobs/{job_id}",
            format!("/api/profile-bulk-import-jobs/{job_id}"),
            None,
        ),
        step(
            "GET",
            "/api/profile-bulk-import-jobs/{job_id}",
            format!("/api/profile-bulk-import-jobs/{job_id}"),
            None,
        ),
        step(
            "GET",
            "/api/profile-bulk-import-jobs/{id}/import-errors",
            format!("/api/profile-bulk-import-jobs/{job_id}/import-errors"),
            None,
        ),
        step("GET", "/api/lists", "/api/lists".into(), None),
        step(
            "POST",
            "/api/lists",
            "/api/lists".into(),
            Some(
                json!({"data": {"type": "list", "attributes": {"name": "New", "opt_in_process": "double_opt_in"}}}),
            ),
        ),
        step("GET", "/api/lists/{id}", format!("/api/lists/{list}"), None),
        step(
            "GET",
            "/api/lists/{id}/profiles",
            format!("/api/lists/{list}/profiles?additional-fields[profile]=subscriptions"),
            None,
        ),
        step(
            "POST",
            "/api/lists/{id}/relationships/profiles",
            format!("/api/lists/{list}/relationships/profiles"),
            Some(json!({"data": [{"type": "profile", "id": id}]})),
        ),
        step(
            "DELETE",
            "/api/lists/{id}/relationships/profiles",
            format!("/api/lists/{list}/relationships/profiles"),
            Some(json!({"data": [{"type": "profile", "id": id}]})),
        ),
        step(
            "POST",
            "/api/profile-subscription-bulk-create-jobs",
            "/api/profile-subscription-bulk-create-jobs".into(),
            Some(subscribe_job(
                vec![subscriber("sub@example.com", None)],
                Some(&list),
                false,
            )),
        ),
        step(
            "POST",
            "/api/profile-subscription-bulk-delete-jobs",
            "/api/profile-subscription-bulk-delete-jobs".into(),
            Some(unsubscribe_job(
                vec![unsubscriber("sub@example.com")],
                Some(&list),
            )),
        ),
        step("GET", "/api/segments", "/api/segments".into(), None),
        step(
            "GET",
            "/api/segments/{id}",
            format!("/api/segments/{segment}"),
            None,
        ),
        step(
            "GET",
            "/api/segments/{id}/profiles",
            format!("/api/segments/{segment}/profiles"),
            None,
        ),
        step(
            "POST",
            "/api/events",
            "/api/events".into(),
            Some(event.clone()),
        ),
        step(
            "POST",
            "/api/event-bulk-create-jobs",
            "/api/event-bulk-create-jobs".into(),
            Some(
                json!({"data": {"type": "event-bulk-create-job", "attributes": {"events-bulk-create": {"data": [
                    {"type": "event-bulk-create", "attributes": {
                        "profile": {"data": {"type": "profile", "attributes": {"email": "spec@example.com"}}},
                        "events": {"data": [{"type": "event", "attributes": {"properties": {},
                            "metric": {"data": {"type": "metric", "attributes": {"name": "Viewed"}}}}}]}}}
                ]}}}}),
            ),
        ),
        step("GET", "/api/metrics", "/api/metrics".into(), None),
        step(
            "GET",
            "/api/metrics/{id}",
            format!("/api/metrics/{metric_id}"),
            None,
        ),
        step("GET", "/api/accounts", "/api/accounts".into(), None),
        step(
            "GET",
            "/api/accounts/{id}",
            format!("/api/accounts/{account_id}"),
            None,
        ),
    ];
    for s in steps {
        // The account routes allow one call a second.
        kl.sim().advance_clock(chrono::Duration::seconds(1));
        let method = Method::from_bytes(s.method.as_bytes()).unwrap();
        let reply = match &s.body {
            Some(body) => kl.call(method, &s.path, body).await,
            None => kl.get(&s.path).await,
        };
        answers.push((s.method, s.route, reply));
    }
    // Error answers are documents of the spec's ClientError.
    answers.push((
        "GET",
        "/api/profiles",
        kl.get("/api/profiles?filter=bogus").await,
    ));
    answers.push((
        "POST",
        "/api/profiles",
        kl.post("/api/profiles", &full_profile).await,
    ));
    answers.push(("GET", "/api/lists/{id}", kl.get("/api/lists/NOPE").await));

    let served: BTreeSet<(&str, &str)> = ROUTES.iter().map(|(m, p, _)| (*m, *p)).collect();
    let exercised: BTreeSet<(&str, &str)> = answers.iter().map(|(m, r, _)| (*m, *r)).collect();
    assert_eq!(served, exercised, "the scenario covers every served route");

    let mut errors = Vec::new();
    for (method, route, reply) in &answers {
        let responses = &spec["paths"][route][method.to_lowercase()]["responses"];
        let status = reply.status.to_string();
        let response = if responses.get(&status).is_some() {
            &responses[&status]
        } else if (400..500).contains(&reply.status) {
            &responses["4XX"]
        } else {
            errors.push(format!(
                "{method} {route}: status {status} not in the spec ({:?})",
                reply.body
            ));
            continue;
        };
        let response = resolve(&spec, response);
        match response["content"]["application/vnd.api+json"].get("schema") {
            Some(schema) => {
                if reply.content_type != "application/vnd.api+json" {
                    errors.push(format!(
                        "{method} {route}: content type {}",
                        reply.content_type
                    ));
                }
                let mut e = Vec::new();
                check(&spec, schema, &reply.body, "", &mut e);
                errors.extend(
                    e.into_iter()
                        .map(|e| format!("{method} {route} {status}: {e}")),
                );
            }
            None => {
                if !reply.body.is_null() {
                    errors.push(format!(
                        "{method} {route}: body {} where the spec has none",
                        reply.body
                    ));
                }
            }
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}
