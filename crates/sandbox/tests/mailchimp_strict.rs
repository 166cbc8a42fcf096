//! The Mailchimp simulator is as strict as Mailchimp (issue 18): every request here is one
//! Mailchimp refuses, and each test failed against the kinder simulator it replaces. The tests
//! use only the HTTP API and the set-up helpers that predate the fix.

mod mailchimp_support;

use mailchimp_support::*;
use reqwest::Method;
use serde_json::{Value, json};

const COMPLIANCE: &str = "Member In Compliance State";

fn assert_compliance(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 400, "{what}: {:?}", reply.body);
    assert_eq!(reply.title(), COMPLIANCE, "{what}: {:?}", reply.body);
}

/// A batch subscribe of `members` (with `update_existing`) to the audience `list`.
async fn batch(mc: &Mc, members: Value) -> Reply {
    let reply = mc
        .post(
            "/lists/list",
            json!({"members": members, "update_existing": true}),
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    reply
}

/// The batch answer's error entry for `email`, if any.
fn batch_error<'a>(reply: &'a Reply, email: &str) -> Option<&'a Value> {
    reply.body["errors"]
        .as_array()
        .expect("errors array")
        .iter()
        .find(|e| e["email_address"] == email)
}

fn status_of(mc: &Mc, email: &str) -> MemberStatus {
    mc.sim().member("list", email).expect("member").status
}

#[tokio::test]
async fn an_unsubscribe_is_remembered_through_every_detour() {
    let mc = Mc::start().await;
    let email = "ulla@maplemail.net";
    mc.sim()
        .insert_member("list", email, MemberStatus::Unsubscribed);
    let path = member_path(email);

    // Through transactional (PUT): allowed, but the way to subscribed stays closed.
    let hop = mc
        .put(
            &path,
            json!({"email_address": email, "status_if_new": "subscribed", "status": "transactional"}),
        )
        .await;
    assert_eq!(hop.status, 200, "{:?}", hop.body);
    assert_compliance(
        &mc.patch(&path, json!({"status": "subscribed"})).await,
        "PATCH subscribed after transactional",
    );

    // Through pending (PATCH): a re-confirmation request is allowed, subscribing is not.
    let pending = mc.patch(&path, json!({"status": "pending"})).await;
    assert_eq!(pending.status, 200, "{:?}", pending.body);
    assert_compliance(
        &mc.put(
            &path,
            json!({"email_address": email, "status_if_new": "subscribed", "status": "subscribed"}),
        )
        .await,
        "PUT subscribed after pending",
    );

    // Through the archive: restoring as subscribed (POST) is refused.
    assert_eq!(mc.delete(&path).await.status, 204);
    assert_compliance(
        &mc.post(
            "/lists/list/members",
            json!({"email_address": email, "status": "subscribed"}),
        )
        .await,
        "POST subscribed after archive",
    );

    // Through batch subscribe: transactional in one call, subscribed in the next.
    let first = batch(
        &mc,
        json!([{"email_address": email, "status": "transactional"}]),
    )
    .await;
    assert!(batch_error(&first, email).is_none(), "{:?}", first.body);
    let second = batch(
        &mc,
        json!([{"email_address": email, "status": "subscribed"}]),
    )
    .await;
    let entry = batch_error(&second, email).expect("a per-member error");
    assert!(
        entry["error"]
            .as_str()
            .is_some_and(|e| e.contains("compliance state")),
        "{entry:?}"
    );
    assert_eq!(second.body["total_updated"], 0);

    assert_ne!(status_of(&mc, email), MemberStatus::Subscribed);
}

#[tokio::test]
async fn a_cleaned_address_is_never_resubscribable_by_api() {
    let mc = Mc::start().await;
    let email = "bounce@northpost.io";
    mc.sim().insert_member("list", email, MemberStatus::Cleaned);
    let path = member_path(email);

    for status in ["subscribed", "pending"] {
        assert_compliance(
            &mc.patch(&path, json!({"status": status})).await,
            &format!("PATCH cleaned → {status}"),
        );
    }
    assert_compliance(
        &mc.put(
            &path,
            json!({"email_address": email, "status_if_new": "subscribed", "status": "transactional"}),
        )
        .await,
        "PUT cleaned → transactional",
    );
    // Unsubscribing is always allowed, and does not make the address any less cleaned.
    let unsubscribed = mc.patch(&path, json!({"status": "unsubscribed"})).await;
    assert_eq!(unsubscribed.status, 200, "{:?}", unsubscribed.body);
    for status in ["pending", "subscribed"] {
        assert_compliance(
            &mc.put(
                &path,
                json!({"email_address": email, "status_if_new": "subscribed", "status": status}),
            )
            .await,
            &format!("PUT once-cleaned → {status}"),
        );
    }
    // Archive and restore.
    assert_eq!(mc.delete(&path).await.status, 204);
    assert_compliance(
        &mc.post(
            "/lists/list/members",
            json!({"email_address": email, "status": "pending"}),
        )
        .await,
        "POST pending after archive",
    );
    let restored = batch(
        &mc,
        json!([{"email_address": email, "status": "transactional"}]),
    )
    .await;
    assert!(
        batch_error(&restored, email).is_some(),
        "{:?}",
        restored.body
    );
    let again = batch(
        &mc,
        json!([{"email_address": email, "status": "subscribed"}]),
    )
    .await;
    assert!(batch_error(&again, email).is_some(), "{:?}", again.body);

    assert_ne!(status_of(&mc, email), MemberStatus::Subscribed);
}

#[tokio::test]
async fn null_merge_values_are_refused_per_member() {
    let mc = Mc::start().await;
    let created = mc
        .post(
            "/lists/list/members",
            json!({"email_address": "nia@maplemail.net", "status": "subscribed",
                   "merge_fields": {"FNAME": null, "LNAME": "Ng"}}),
        )
        .await;
    assert_eq!(created.status, 400, "{:?}", created.body);
    assert_eq!(created.title(), "Invalid Resource");
    assert_eq!(created.body["errors"][0]["field"], "merge_fields.FNAME");
    assert!(mc.sim().member("list", "nia@maplemail.net").is_none());

    // An existing member's value cannot be "cleared" with null either (PATCH and PUT).
    mc.sim().insert_member_with(
        "list",
        "omar@maplemail.net",
        MemberStatus::Subscribed,
        json!({"FNAME": "Omar"}),
        &[],
    );
    let path = member_path("omar@maplemail.net");
    let patched = mc
        .patch(&path, json!({"merge_fields": {"FNAME": null}}))
        .await;
    assert_eq!(patched.status, 400, "{:?}", patched.body);
    let put = mc
        .put(
            &path,
            json!({"email_address": "omar@maplemail.net", "status_if_new": "subscribed",
                   "merge_fields": {"FNAME": null}}),
        )
        .await;
    assert_eq!(put.status, 400, "{:?}", put.body);
    let omar = mc.sim().member("list", "omar@maplemail.net").expect("omar");
    assert_eq!(omar.merge_fields["FNAME"], "Omar");

    // Inside a batch, only the member with the null fails.
    let reply = batch(
        &mc,
        json!([
            {"email_address": "pia@maplemail.net", "status": "subscribed", "merge_fields": {"FNAME": null}},
            {"email_address": "quinn@maplemail.net", "status": "subscribed", "merge_fields": {"FNAME": "Quinn"}},
        ]),
    )
    .await;
    assert_eq!(reply.body["error_count"], 1, "{:?}", reply.body);
    assert_eq!(reply.body["total_created"], 1);
    let entry = batch_error(&reply, "pia@maplemail.net").expect("error for pia");
    assert_eq!(entry["field"], "merge_fields.FNAME");
    assert!(mc.sim().member("list", "pia@maplemail.net").is_none());
}

#[tokio::test]
async fn patch_cannot_set_transactional() {
    let mc = Mc::start().await;
    mc.sim()
        .insert_member("list", "rosa@maplemail.net", MemberStatus::Subscribed);
    let reply = mc
        .patch(
            &member_path("rosa@maplemail.net"),
            json!({"status": "transactional"}),
        )
        .await;
    assert_eq!(reply.status, 400, "{:?}", reply.body);
    assert_eq!(reply.title(), "Invalid Resource");
    assert_eq!(reply.body["errors"][0]["field"], "status");
    assert_eq!(
        status_of(&mc, "rosa@maplemail.net"),
        MemberStatus::Subscribed
    );
}

#[tokio::test]
async fn unknown_interest_ids_are_refused() {
    let mc = Mc::start().await;
    let reply = mc
        .post(
            "/lists/list/members",
            json!({"email_address": "sven@fjordmail.se", "status": "subscribed",
                   "interests": {"c06bb4b529": true}}),
        )
        .await;
    assert_eq!(reply.status, 400, "{:?}", reply.body);
    assert_eq!(reply.title(), "Invalid Resource");
    assert_eq!(reply.detail(), "Invalid interest ID: 'c06bb4b529'.");
    assert!(mc.sim().member("list", "sven@fjordmail.se").is_none());

    mc.sim()
        .insert_member("list", "tove@fjordmail.se", MemberStatus::Subscribed);
    let patched = mc
        .patch(
            &member_path("tove@fjordmail.se"),
            json!({"interests": {"0000000000": false}}),
        )
        .await;
    assert_eq!(patched.status, 400, "{:?}", patched.body);

    let reply = batch(
        &mc,
        json!([
            {"email_address": "ulf@fjordmail.se", "status": "subscribed", "interests": {"c06bb4b529": true}},
            {"email_address": "vera@fjordmail.se", "status": "subscribed"},
        ]),
    )
    .await;
    assert_eq!(reply.body["error_count"], 1, "{:?}", reply.body);
    let entry = batch_error(&reply, "ulf@fjordmail.se").expect("error for ulf");
    assert_eq!(entry["error"], "Invalid interest ID: 'c06bb4b529'.");
}

#[tokio::test]
async fn a_key_of_another_data_centre_is_forbidden() {
    let mc = Mc::start().await;
    let other_dc = "0123456789abcdef0123456789abcdef-us1";
    let reply = mc
        .send_with_key(Method::GET, "/ping", None, Some(other_dc))
        .await;
    assert_eq!(reply.status, 403, "{:?}", reply.body);
    assert_eq!(reply.title(), "Wrong Datacenter");
    assert!(reply.content_type.starts_with("application/problem+json"));
    assert!(
        !reply.body.to_string().contains("0123456789abcdef"),
        "the key is echoed: {:?}",
        reply.body
    );
    // The account's own data centre (that of the example key) is served.
    assert_eq!(mc.get("/ping").await.status, 200);
}

#[tokio::test]
async fn fake_looking_addresses_are_refused_per_member() {
    let mc = Mc::start().await;
    let fakes = [
        "ada@test.com",
        "ada@test.org",
        "ada@mail.test.net",
        "ada@printer.internal",
        "ada@nas.lan",
        "ada@dc1.corp",
        "ada@hidden.onion",
        "ada@router.home.arpa",
    ];
    for email in fakes {
        let reply = mc
            .post(
                "/lists/list/members",
                json!({"email_address": email, "status": "subscribed"}),
            )
            .await;
        assert_eq!(reply.status, 400, "{email}: {:?}", reply.body);
        assert!(
            reply.detail().contains("looks fake or invalid"),
            "{email}: {:?}",
            reply.body
        );
    }
    let mut members: Vec<Value> = fakes
        .iter()
        .map(|e| json!({"email_address": e, "status": "subscribed"}))
        .collect();
    members.push(json!({"email_address": "real@contest.org", "status": "subscribed"}));
    let reply = batch(&mc, Value::Array(members)).await;
    assert_eq!(reply.body["error_count"], fakes.len(), "{:?}", reply.body);
    assert_eq!(reply.body["total_created"], 1);
    for email in fakes {
        let entry = batch_error(&reply, email).expect("error entry");
        assert_eq!(entry["field"], "email_address");
    }
    assert_eq!(mc.sim().member_count("list"), 1);
}

#[tokio::test]
async fn routes_the_simulator_does_not_serve_are_not_implemented() {
    let mc = Mc::start().await;
    // Operations of the spec the simulator lacks: 501, never "Resource Not Found".
    for (method, path) in [
        (Method::GET, "/lists/list/interest-categories".to_string()),
        (
            Method::GET,
            format!("{}/notes", member_path("ada@maplemail.net")),
        ),
        (Method::DELETE, "/lists/list".to_string()),
        (Method::GET, "/batches".to_string()),
    ] {
        let reply = mc.send(method.clone(), &path, None).await;
        assert_eq!(reply.status, 501, "{method} {path}: {:?}", reply.body);
        assert_ne!(reply.title(), "Resource Not Found");
        assert!(reply.content_type.starts_with("application/problem+json"));
    }
    // Mailchimp's own answers stay: a method the API lacks on a path, a path outside the API.
    assert_eq!(mc.delete("/lists").await.status, 405);
    assert_eq!(mc.get("/no/such/path").await.status, 404);
    // And a served route still says 404 for a missing record.
    let missing = mc.get(&member_path("nobody@maplemail.net")).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.title(), "Resource Not Found");
}
