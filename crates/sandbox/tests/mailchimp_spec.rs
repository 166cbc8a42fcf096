//! Conformance of the Mailchimp simulator to the OpenAPI document it was written from
//! (`shared/specs/mailchimp/mailchimp-marketing-3.0.55.openapi.yaml`, next to the repository
//! checkout): every served route exists in the spec with that method, and the answers of the
//! main endpoints carry the spec's required fields, only the spec's properties, and only the
//! spec's enum values (notably for `status`).

mod mailchimp_support;

use std::collections::{BTreeMap, BTreeSet};

/// Member fields Mailchimp added after the stored 3.0.55 spec (its SMS channel; see the
/// simulator's `mailchimp::sms`): the simulator renders them, the stored spec cannot know them.
const NEWER_MEMBER_FIELDS: &[&str] = &[
    "sms_phone_number",
    "sms_subscription_status",
    "sms_subscription_last_updated",
    "consents_to_one_to_one_messaging",
];

use audience_sandbox::mailchimp::{ROUTES, SPEC_OPERATIONS};
use mailchimp_support::*;
use reqwest::Method;
use serde_json::{Map, Value, json};

const SPEC: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/specs/mailchimp/mailchimp-marketing-3.0.55.openapi.yaml"
);

/// Schemas the generator made refer to themselves for their items (`items: $ref` to the
/// collection itself), so the stored spec has no item schema: the item fields are taken from
/// Mailchimp's API reference [U], and the collection's own fields from the schema.
const SELF_REFERENCING: &[(&str, &str, &[&str])] = &[
    (
        "Sent_To",
        "sent_to",
        &[
            "email_id",
            "email_address",
            "merge_fields",
            "vip",
            "status",
            "open_count",
            "last_open",
            "absplit_group",
            "gmt_offset",
            "campaign_id",
            "list_id",
            "list_is_active",
            "_links",
        ],
    ),
    (
        "Email_Activity",
        "emails",
        &[
            "campaign_id",
            "list_id",
            "list_is_active",
            "email_id",
            "email_address",
            "activity",
            "_links",
        ],
    ),
    (
        "List_Webhooks",
        "webhooks",
        &["id", "url", "events", "sources", "list_id", "_links"],
    ),
];

fn load_spec() -> Option<Value> {
    let text = match std::fs::read_to_string(SPEC) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("SKIPPED: Mailchimp OpenAPI document not found at {SPEC} ({e})");
            return None;
        }
    };
    let yaml: serde_yaml::Value = serde_yaml::from_str(&text).expect("spec is YAML");
    Some(serde_json::to_value(yaml).expect("spec converts to JSON"))
}

/// The spec's path for a served route template (`/3.0/lists/{list_id}` → `/lists/{list_id}`).
fn spec_path(template: &str) -> String {
    match template.strip_prefix("/3.0").unwrap_or(template) {
        "" => "/".to_string(),
        rest => rest.to_string(),
    }
}

/// Builds one request (path below `/3.0`, body) from the ids gathered so far.
type Step = Box<dyn Fn(&BTreeMap<&str, String>) -> (String, Option<Value>)>;

struct Spec {
    doc: Value,
    /// Schemas replaced for the check (see `member_schema`).
    overrides: BTreeMap<String, Value>,
}

impl Spec {
    fn schema(&self, name: &str) -> &Value {
        self.overrides
            .get(name)
            .unwrap_or_else(|| &self.doc["components"]["schemas"][name])
    }

    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(reference) => self.schema(reference.rsplit('/').next().expect("ref name")),
            None => schema,
        }
    }

    fn operation(&self, method: &str, template: &str) -> &Value {
        &self.doc["paths"][spec_path(template)][method.to_lowercase()]
    }

    /// The `$ref` name of an operation's success schema, and its success status codes.
    fn success(&self, method: &str, template: &str) -> (Option<String>, Vec<u16>) {
        let responses = self.operation(method, template)["responses"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let codes: Vec<u16> = responses.keys().filter_map(|k| k.parse().ok()).collect();
        let name = codes.iter().find_map(|code| {
            responses[&code.to_string()]["content"]["application/json"]["schema"]["$ref"]
                .as_str()
                .map(|r| r.rsplit('/').next().expect("name").to_string())
        });
        (name, codes)
    }

    /// The properties of a member document: the union of the spec's two member schemas
    /// (`List_Members_2`, named by the single-member operations, is a generator artefact whose
    /// `members` items refer to itself), with `status` allowed to be any value of the member
    /// schemas' enum or of the `status` filter of `GET /lists/{list_id}/members` (which adds
    /// `archived`).
    fn member_schema(doc: &Value) -> Value {
        let schemas = &doc["components"]["schemas"];
        let mut properties = Map::new();
        for name in ["List_Members", "List_Members_1"] {
            for (k, v) in schemas[name]["properties"].as_object().expect("properties") {
                properties.insert(k.clone(), v.clone());
            }
        }
        let mut statuses: BTreeSet<String> = BTreeSet::new();
        for name in ["List_Members", "List_Members_1"] {
            for s in schemas[name]["properties"]["status"]["enum"]
                .as_array()
                .expect("status enum")
            {
                statuses.insert(s.as_str().expect("status").to_string());
            }
        }
        let filter = doc["paths"]["/lists/{list_id}/members"]["get"]["parameters"]
            .as_array()
            .expect("parameters")
            .iter()
            .find(|p| p["name"] == "status")
            .expect("status filter");
        for s in filter["schema"]["enum"].as_array().expect("enum") {
            statuses.insert(s.as_str().expect("status").to_string());
        }
        properties.insert(
            "status".to_string(),
            json!({"type": "string", "enum": statuses.into_iter().collect::<Vec<_>>()}),
        );
        json!({"type": "object", "properties": properties})
    }

    /// Checks `doc` against `schema`: required fields present, no field the schema does not
    /// declare, enum values respected; recursively.
    fn check(&self, doc: &Value, schema: &Value, at: &str, problems: &mut Vec<String>, depth: u32) {
        if depth > 12 {
            return;
        }
        let schema = self.resolve(schema);
        if let (Some(allowed), Some(text)) =
            (schema.get("enum").and_then(Value::as_array), doc.as_str())
            && !allowed.iter().any(|a| a == text)
        {
            problems.push(format!("{at}: {text:?} is not one of {allowed:?}"));
        }
        match doc {
            Value::Object(map) => {
                for required in schema["required"].as_array().into_iter().flatten() {
                    let required = required.as_str().expect("name");
                    if !map.contains_key(required) {
                        problems.push(format!("{at}: required field {required} missing"));
                    }
                }
                if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                    for (key, value) in map {
                        match properties.get(key) {
                            Some(property) => self.check(
                                value,
                                property,
                                &format!("{at}.{key}"),
                                problems,
                                depth + 1,
                            ),
                            None if schema.get("additionalProperties").is_some() => {}
                            None if NEWER_MEMBER_FIELDS.contains(&key.as_str()) => {}
                            None => problems.push(format!("{at}: field {key} not in the spec")),
                        }
                    }
                }
            }
            Value::Array(items) => {
                if let Some(item_schema) = schema.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        self.check(
                            item,
                            item_schema,
                            &format!("{at}[{i}]"),
                            problems,
                            depth + 1,
                        );
                    }
                }
            }
            _ => {}
        }
    }

    /// Checks a successful answer against the schema its operation declares.
    fn check_answer(&self, method: &str, template: &str, body: &Value, problems: &mut Vec<String>) {
        let (name, _) = self.success(method, template);
        let Some(name) = name else {
            return;
        };
        let at = format!("{method} {template}");
        if let Some((_, items_key, item_fields)) =
            SELF_REFERENCING.iter().find(|(n, _, _)| *n == name)
        {
            let object = body.as_object().expect("an object");
            let known = |key: &str| item_fields.contains(&key);
            match object.get(*items_key).and_then(Value::as_array) {
                Some(items) => {
                    let collection = &self.doc["components"]["schemas"][name.as_str()];
                    for key in object.keys() {
                        if collection["properties"].get(key).is_none() {
                            problems.push(format!("{at}: field {key} not in the spec"));
                        }
                    }
                    for (i, item) in items.iter().enumerate() {
                        for key in item.as_object().expect("an item object").keys() {
                            if !known(key) {
                                problems.push(format!(
                                    "{at}.{items_key}[{i}]: field {key} not in Mailchimp's reference"
                                ));
                            }
                        }
                    }
                }
                None => {
                    for key in object.keys() {
                        if !known(key) {
                            problems
                                .push(format!("{at}: field {key} not in Mailchimp's reference"));
                        }
                    }
                }
            }
            return;
        }
        if name == "List_Members_2" {
            if body.get("members").is_some() {
                // The collection: top-level fields from List_Members_2, members as members.
                let collection = &self.doc["components"]["schemas"]["List_Members_2"];
                for key in body.as_object().expect("object").keys() {
                    if collection["properties"].get(key).is_none() {
                        problems.push(format!("{at}: field {key} not in the spec"));
                    }
                }
                for (i, member) in body["members"]
                    .as_array()
                    .expect("members")
                    .iter()
                    .enumerate()
                {
                    self.check(
                        member,
                        self.schema("List_Members"),
                        &format!("{at}.members[{i}]"),
                        problems,
                        0,
                    );
                }
            } else {
                self.check(body, self.schema("List_Members"), &at, problems, 0);
            }
        } else {
            self.check(
                body,
                &json!({"$ref": format!("#/components/schemas/{name}")}),
                &at,
                problems,
                0,
            );
        }
    }
}

#[test]
fn every_served_route_is_in_the_spec_with_its_method() {
    let Some(spec) = load_spec() else {
        return;
    };
    for (method, template) in ROUTES {
        let path = spec_path(template);
        let operations = &spec["paths"][&path];
        assert!(
            operations.is_object(),
            "{template}: no path {path} in the spec"
        );
        assert!(
            operations.get(method.to_lowercase()).is_some(),
            "{method} {template}: the spec's {path} has no {method}"
        );
    }
}

/// The simulator's table of the spec's operations (which decides 501 / 405 / 404 for routes it
/// does not serve) is the spec's, operation for operation.
#[test]
fn spec_operation_table_matches_the_spec() {
    let Some(spec) = load_spec() else {
        return;
    };
    let from_spec: BTreeSet<(String, String)> = spec["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, operations)| {
            ["get", "post", "put", "patch", "delete"]
                .into_iter()
                .filter(|m| operations.get(*m).is_some())
                .map(move |m| (path.clone(), m.to_uppercase()))
        })
        .collect();
    let table: BTreeSet<(String, String)> = SPEC_OPERATIONS
        .iter()
        .flat_map(|(path, methods)| methods.iter().map(|m| (path.to_string(), m.to_string())))
        .collect();
    assert_eq!(table, from_spec);
}

#[tokio::test]
async fn answers_follow_the_spec_schemas() {
    let Some(doc) = load_spec() else {
        return;
    };
    let member = Spec::member_schema(&doc);
    let spec = Spec {
        overrides: BTreeMap::from([
            ("List_Members".to_string(), member.clone()),
            ("List_Members_1".to_string(), member),
        ]),
        doc,
    };
    // The checker itself finds what it should: an unknown field, a status outside the enum, a
    // missing required field.
    let mut self_test = Vec::new();
    spec.check(
        &json!({"email_address": "a@b.co", "status": "gone", "bogus": 1}),
        spec.schema("List_Members"),
        "member",
        &mut self_test,
        0,
    );
    spec.check(
        &json!({"title": "x"}),
        spec.schema("Problem_Detail_Document"),
        "problem",
        &mut self_test,
        0,
    );
    assert_eq!(self_test.len(), 6, "{self_test:#?}");

    let mc = Mc::start().await;
    let mut problems = Vec::new();
    let mut seen: BTreeSet<(String, String)> = BTreeSet::new();

    // Each step: method, route template, concrete path, body. Later steps use ids from earlier.
    let mut ids: BTreeMap<&str, String> = BTreeMap::new();
    let a = "ana@maplemail.net";
    let b = "ben@maplemail.net";
    let c = "cai@maplemail.net";
    let d = "dee@maplemail.net";
    let steps: Vec<(&str, &str, Step)> = vec![
        ("GET", "/3.0/", Box::new(|_| ("/".into(), None))),
        ("GET", "/3.0", Box::new(|_| ("".into(), None))),
        ("GET", "/3.0/ping", Box::new(|_| ("/ping".into(), None))),
        (
            "POST",
            "/3.0/lists",
            Box::new(|_| {
                (
                    "/lists".into(),
                    Some(json!({
                        "name": "Spec", "permission_reminder": "Bought from us.", "email_type_option": true,
                        "contact": {"company": "Shop", "address1": "1 Main St", "city": "Austin", "state": "TX", "zip": "73301", "country": "US"},
                        "campaign_defaults": {"from_name": "Shop", "from_email": "shop@maplemail.net", "subject": "Hi", "language": "en"}
                    })),
                )
            }),
        ),
        ("GET", "/3.0/lists", Box::new(|_| ("/lists".into(), None))),
        (
            "GET",
            "/3.0/lists/{list_id}",
            Box::new(|i| {
                (
                    format!("/lists/{}?include_total_contacts=true", i["list"]),
                    None,
                )
            }),
        ),
        (
            "POST",
            "/3.0/lists/{list_id}/merge-fields",
            Box::new(|i| {
                (
                    format!("/lists/{}/merge-fields", i["list"]),
                    Some(json!({
                        "tag": "SIZE", "name": "Size", "type": "dropdown", "options": {"choices": ["S", "M"]}
                    })),
                )
            }),
        ),
        (
            "GET",
            "/3.0/lists/{list_id}/merge-fields",
            Box::new(|i| (format!("/lists/{}/merge-fields", i["list"]), None)),
        ),
        (
            "GET",
            "/3.0/lists/{list_id}/merge-fields/{merge_id}",
            Box::new(|i| {
                (
                    format!("/lists/{}/merge-fields/{}", i["list"], i["merge"]),
                    None,
                )
            }),
        ),
        (
            "POST",
            "/3.0/lists/{list_id}/members",
            Box::new(move |i| {
                (
                    format!("/lists/{}/members", i["list"]),
                    Some(json!({
                        "email_address": a, "status": "subscribed", "tags": ["vip"],
                        "merge_fields": {"FNAME": "Ana", "SIZE": "M", "ADDRESS": {"addr1": "1 Main St", "city": "Austin", "state": "TX", "zip": "73301"}}
                    })),
                )
            }),
        ),
        (
            "PUT",
            "/3.0/lists/{list_id}/members/{subscriber_hash}",
            Box::new(move |i| {
                (
                    format!("/lists/{}/members/{}", i["list"], subscriber_hash(b)),
                    Some(json!({
                        "email_address": b, "status_if_new": "pending"
                    })),
                )
            }),
        ),
        (
            "PATCH",
            "/3.0/lists/{list_id}/members/{subscriber_hash}",
            Box::new(move |i| {
                (
                    format!("/lists/{}/members/{}", i["list"], subscriber_hash(a)),
                    Some(json!({
                        "vip": true, "language": "en"
                    })),
                )
            }),
        ),
        (
            "GET",
            "/3.0/lists/{list_id}/members/{subscriber_hash}",
            Box::new(move |i| {
                (
                    format!("/lists/{}/members/{}", i["list"], subscriber_hash(a)),
                    None,
                )
            }),
        ),
        (
            "POST",
            "/3.0/lists/{list_id}",
            Box::new(move |i| {
                (
                    format!("/lists/{}", i["list"]),
                    Some(json!({
                        "update_existing": true,
                        "members": [
                            {"email_address": c, "status": "subscribed"},
                            {"email_address": d, "status": "transactional"},
                            {"email_address": b, "status": "unsubscribed"},
                            {"email_address": "bad@example.com", "status": "subscribed"}
                        ]
                    })),
                )
            }),
        ),
        (
            "GET",
            "/3.0/lists/{list_id}/members",
            Box::new(|i| (format!("/lists/{}/members?count=1000", i["list"]), None)),
        ),
        (
            "POST",
            "/3.0/lists/{list_id}/members/{subscriber_hash}/tags",
            Box::new(move |i| {
                (
                    format!("/lists/{}/members/{}/tags", i["list"], subscriber_hash(a)),
                    Some(json!({
                        "tags": [{"name": "loyalty", "status": "active"}], "is_syncing": false
                    })),
                )
            }),
        ),
        (
            "GET",
            "/3.0/lists/{list_id}/members/{subscriber_hash}/tags",
            Box::new(move |i| {
                (
                    format!("/lists/{}/members/{}/tags", i["list"], subscriber_hash(a)),
                    None,
                )
            }),
        ),
        (
            "POST",
            "/3.0/lists/{list_id}/members/{subscriber_hash}/events",
            Box::new(move |i| {
                (
                    format!("/lists/{}/members/{}/events", i["list"], subscriber_hash(a)),
                    Some(json!({
                        "name": "product_viewed", "properties": {"product_id": "1"},
                        "is_syncing": true, "occurred_at": "2026-11-30T10:00:00+00:00"
                    })),
                )
            }),
        ),
        (
            "GET",
            "/3.0/lists/{list_id}/members/{subscriber_hash}/events",
            Box::new(move |i| {
                (
                    format!("/lists/{}/members/{}/events", i["list"], subscriber_hash(a)),
                    None,
                )
            }),
        ),
        (
            "GET",
            "/3.0/lists/{list_id}/members/{subscriber_hash}/activity-feed",
            Box::new(move |i| {
                (
                    format!(
                        "/lists/{}/members/{}/activity-feed?activity_filters=open,click",
                        i["list"],
                        subscriber_hash(a)
                    ),
                    None,
                )
            }),
        ),
        // Campaigns and their reports: the sandbox sends one to `a`, who opens it (below).
        (
            "GET",
            "/3.0/campaigns",
            Box::new(|i| {
                (
                    format!("/campaigns?list_id={}&status=sent&count=1000", i["list"]),
                    None,
                )
            }),
        ),
        (
            "GET",
            "/3.0/reports/{campaign_id}/sent-to",
            Box::new(|_| ("/reports/spec-campaign/sent-to".into(), None)),
        ),
        (
            "GET",
            "/3.0/reports/{campaign_id}/email-activity",
            Box::new(|_| {
                (
                    "/reports/spec-campaign/email-activity?since=2000-01-01T00:00:00%2B00:00"
                        .into(),
                    None,
                )
            }),
        ),
        // List webhooks, to a receiver that answers Mailchimp's validation GET.
        (
            "POST",
            "/3.0/lists/{list_id}/webhooks",
            Box::new(|i| {
                (
                    format!("/lists/{}/webhooks", i["list"]),
                    Some(json!({
                        "url": i["receiver"],
                        "events": {"subscribe": true, "unsubscribe": true},
                        "sources": {"user": true, "admin": true, "api": false}
                    })),
                )
            }),
        ),
        (
            "GET",
            "/3.0/lists/{list_id}/webhooks",
            Box::new(|i| (format!("/lists/{}/webhooks", i["list"]), None)),
        ),
        (
            "GET",
            "/3.0/lists/{list_id}/webhooks/{webhook_id}",
            Box::new(|i| {
                (
                    format!("/lists/{}/webhooks/{}", i["list"], i["webhook"]),
                    None,
                )
            }),
        ),
        (
            "DELETE",
            "/3.0/lists/{list_id}/webhooks/{webhook_id}",
            Box::new(|i| {
                (
                    format!("/lists/{}/webhooks/{}", i["list"], i["webhook"]),
                    None,
                )
            }),
        ),
        (
            "POST",
            "/3.0/lists/{list_id}/segments",
            Box::new(move |i| {
                (
                    format!("/lists/{}/segments", i["list"]),
                    Some(json!({
                        "name": "Spec segment", "static_segment": [a]
                    })),
                )
            }),
        ),
        (
            "GET",
            "/3.0/lists/{list_id}/segments",
            Box::new(|i| (format!("/lists/{}/segments?type=static", i["list"]), None)),
        ),
        (
            "GET",
            "/3.0/lists/{list_id}/segments/{segment_id}",
            Box::new(|i| {
                (
                    format!("/lists/{}/segments/{}", i["list"], i["segment"]),
                    None,
                )
            }),
        ),
        (
            "POST",
            "/3.0/lists/{list_id}/segments/{segment_id}",
            Box::new(move |i| {
                (
                    format!("/lists/{}/segments/{}", i["list"], i["segment"]),
                    Some(json!({
                        "members_to_add": [b, "stranger@maplemail.net"], "members_to_remove": [a]
                    })),
                )
            }),
        ),
        (
            "POST",
            "/3.0/lists/{list_id}/segments/{segment_id}/members",
            Box::new(move |i| {
                (
                    format!("/lists/{}/segments/{}/members", i["list"], i["segment"]),
                    Some(json!({
                        "email_address": c
                    })),
                )
            }),
        ),
        (
            "GET",
            "/3.0/lists/{list_id}/segments/{segment_id}/members",
            Box::new(|i| {
                (
                    format!(
                        "/lists/{}/segments/{}/members?include_unsubscribed=true",
                        i["list"], i["segment"]
                    ),
                    None,
                )
            }),
        ),
        (
            "DELETE",
            "/3.0/lists/{list_id}/segments/{segment_id}/members/{subscriber_hash}",
            Box::new(move |i| {
                (
                    format!(
                        "/lists/{}/segments/{}/members/{}",
                        i["list"],
                        i["segment"],
                        subscriber_hash(c)
                    ),
                    None,
                )
            }),
        ),
        (
            "DELETE",
            "/3.0/lists/{list_id}/segments/{segment_id}",
            Box::new(|i| {
                (
                    format!("/lists/{}/segments/{}", i["list"], i["segment"]),
                    None,
                )
            }),
        ),
        (
            "DELETE",
            "/3.0/lists/{list_id}/members/{subscriber_hash}",
            Box::new(move |i| {
                (
                    format!("/lists/{}/members/{}", i["list"], subscriber_hash(c)),
                    None,
                )
            }),
        ),
        (
            "POST",
            "/3.0/lists/{list_id}/members/{subscriber_hash}/actions/delete-permanent",
            Box::new(move |i| {
                (
                    format!(
                        "/lists/{}/members/{}/actions/delete-permanent",
                        i["list"],
                        subscriber_hash(d)
                    ),
                    None,
                )
            }),
        ),
        (
            "GET",
            "/3.0/lists/{list_id}/members",
            Box::new(|i| {
                (
                    format!("/lists/{}/members?status=archived", i["list"]),
                    None,
                )
            }),
        ),
    ];

    // A receiver for the webhook steps: answers every GET (Mailchimp's validation) with 200.
    let receiver = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    ids.insert(
        "receiver",
        format!("http://{}/hook", receiver.local_addr().unwrap()),
    );
    tokio::spawn(async move {
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::get(|| async { "ok" }).post(|| async { "ok" }),
        );
        axum::serve(receiver, app).await
    });
    for (method, template, request) in &steps {
        if *template == "/3.0/campaigns" {
            let sim = &mc.running.sandbox.mailchimp;
            let sent = sim.send_campaign(&ids["list"], "spec-campaign", "Spec campaign", &[a]);
            assert_eq!(sent.len(), 1, "the campaign reaches the subscribed member");
            assert!(sim.record_open(&ids["list"], a, "spec-campaign"));
        }
        let (path, body) = request(&ids);
        let method_value = Method::from_bytes(method.as_bytes()).expect("method");
        let reply = mc.send(method_value, &path, body).await;
        let (_, codes) = spec.success(method, template);
        assert!(
            codes.contains(&reply.status),
            "{method} {path}: status {} is not a success status of the spec ({codes:?}): {:?}",
            reply.status,
            reply.body
        );
        if reply.status == 200 {
            spec.check_answer(method, template, &reply.body, &mut problems);
        }
        seen.insert((method.to_string(), template.to_string()));
        match *template {
            "/3.0/lists" if *method == "POST" => {
                ids.insert(
                    "list",
                    reply.body["id"].as_str().expect("list id").to_string(),
                );
            }
            "/3.0/lists/{list_id}/merge-fields" if *method == "POST" => {
                ids.insert("merge", reply.body["merge_id"].to_string());
            }
            "/3.0/lists/{list_id}/segments" if *method == "POST" => {
                ids.insert("segment", reply.body["id"].to_string());
            }
            "/3.0/lists/{list_id}/webhooks" if *method == "POST" => {
                ids.insert(
                    "webhook",
                    reply.body["id"].as_str().expect("webhook id").to_string(),
                );
            }
            _ => {}
        }
    }

    // The batch answer above carried per-member errors with the spec's error codes.
    // Error documents follow Problem_Detail_Document (plus `errors` on validation errors).
    for (method, path, body, status) in [
        (Method::GET, "/lists/none".to_string(), None, 404),
        (
            Method::POST,
            format!("/lists/{}/members", ids["list"]),
            Some(json!({"email_address": ""})),
            400,
        ),
        (
            Method::POST,
            format!("/lists/{}/members", ids["list"]),
            Some(json!({"email_address": a, "status": "subscribed"})),
            400,
        ),
    ] {
        let reply = mc.send(method, &path, body).await;
        assert_eq!(reply.status, status, "{path}: {:?}", reply.body);
        assert!(reply.content_type.starts_with("application/problem+json"));
        let mut problem_schema = spec.schema("Problem_Detail_Document").clone();
        problem_schema["additionalProperties"] = json!(true);
        spec.check(&reply.body, &problem_schema, &path, &mut problems, 0);
        assert_eq!(reply.body["status"], status);
    }

    assert!(
        problems.is_empty(),
        "answers differ from the spec:\n{}",
        problems.join("\n")
    );

    // Every served route was exercised and answered.
    let missing: Vec<_> = ROUTES
        .iter()
        .filter(|(m, t)| !seen.contains(&(m.to_string(), t.to_string())))
        .collect();
    assert!(missing.is_empty(), "routes not exercised: {missing:?}");
    let stats = mc.stats().await;
    let counted: BTreeSet<(String, String)> = stats["mailchimp"]["requests"]
        .as_array()
        .expect("requests")
        .iter()
        .filter(|r| r["status"].as_u64().is_some_and(|s| s < 300))
        .map(|r| {
            (
                r["method"].as_str().unwrap_or_default().to_string(),
                r["route"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    for (method, template) in ROUTES {
        assert!(
            counted.contains(&(method.to_string(), template.to_string())),
            "stats have no successful {method} {template}"
        );
    }
}
