//! Batch subscribe (`POST /lists/{list_id}`) and static segments (tags) of the Mailchimp
//! simulator, over HTTP.

mod mailchimp_support;

use mailchimp_support::*;
use serde_json::{Value, json};

fn entry(email: &str, status: &str) -> Value {
    json!({"email_address": email, "status": status})
}

fn error_for<'a>(reply: &'a Reply, email: &str) -> &'a Value {
    reply.body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .find(|e| e["email_address"] == email)
        .unwrap_or_else(|| panic!("no error for {email}: {:?}", reply.body))
}

#[tokio::test]
async fn batch_subscribe_reports_failures_per_member_inside_a_200() {
    let mc = Mc::start().await;
    mc.sim()
        .insert_member("list", "existing@maplemail.net", MemberStatus::Subscribed);
    mc.sim()
        .insert_member("list", "gone@maplemail.net", MemberStatus::Unsubscribed);
    mc.sim()
        .insert_member("list", "bounced@maplemail.net", MemberStatus::Cleaned);

    let reply = mc
        .post(
            "/lists/list",
            json!({"members": [
                entry("new1@maplemail.net", "subscribed"),
                entry("new2@maplemail.net", "transactional"),
                entry("existing@maplemail.net", "subscribed"),
                entry("fake@example.com", "subscribed"),
            ]}),
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["total_created"], 2);
    assert_eq!(reply.body["total_updated"], 0);
    assert_eq!(reply.body["error_count"], 2);
    assert_eq!(
        reply.body["new_members"][0]["email_address"],
        "new1@maplemail.net"
    );
    assert_eq!(reply.body["new_members"][1]["status"], "transactional");
    let exists = error_for(&reply, "existing@maplemail.net");
    assert_eq!(exists["error_code"], "ERROR_CONTACT_EXISTS");
    let fake = error_for(&reply, "fake@example.com");
    assert_eq!(fake["error_code"], "ERROR_GENERIC");
    assert!(
        fake["error"]
            .as_str()
            .unwrap_or_default()
            .contains("looks fake or invalid")
    );

    // With update_existing, existing members change, but compliance still holds per member.
    let update = mc
        .post(
            "/lists/list",
            json!({"update_existing": true, "members": [
                {"email_address": "existing@maplemail.net", "status": "subscribed", "merge_fields": {"FNAME": "Ex"}},
                entry("gone@maplemail.net", "subscribed"),
                entry("bounced@maplemail.net", "subscribed"),
                entry("new3@maplemail.net", "pending"),
            ]}),
        )
        .await;
    assert_eq!(update.status, 200);
    assert_eq!(update.body["total_updated"], 1);
    assert_eq!(update.body["total_created"], 1);
    assert_eq!(update.body["error_count"], 2);
    assert_eq!(
        update.body["updated_members"][0]["merge_fields"]["FNAME"],
        "Ex"
    );
    for email in ["gone@maplemail.net", "bounced@maplemail.net"] {
        let error = error_for(&update, email);
        assert_eq!(error["error_code"], "ERROR_GENERIC");
        assert!(
            error["error"]
                .as_str()
                .unwrap_or_default()
                .contains("compliance state"),
            "{error}"
        );
    }
    assert_eq!(
        mc.sim()
            .member("list", "gone@maplemail.net")
            .expect("member")
            .status,
        MemberStatus::Unsubscribed
    );
    // `pending` is allowed for an unsubscribed member (a confirmation email goes out).
    let pending = mc
        .post(
            "/lists/list",
            json!({"update_existing": true, "members": [entry("gone@maplemail.net", "pending")]}),
        )
        .await;
    assert_eq!(pending.body["total_updated"], 1);
}

#[tokio::test]
async fn batch_subscribe_takes_at_most_500_members() {
    let mc = Mc::start().await;
    let members = |n: usize| -> Vec<Value> {
        (0..n)
            .map(|i| entry(&format!("bulk{i}@northpost.io"), "subscribed"))
            .collect()
    };
    let too_many = mc
        .post("/lists/list", json!({"members": members(501)}))
        .await;
    assert_eq!(too_many.status, 400);
    assert_eq!(too_many.title(), "Invalid Resource");
    assert_eq!(mc.sim().member_count("list"), 0);

    let at_limit = mc
        .post("/lists/list", json!({"members": members(500)}))
        .await;
    assert_eq!(at_limit.status, 200);
    assert_eq!(at_limit.body["total_created"], 500);
    assert_eq!(at_limit.body["error_count"], 0);
    assert_eq!(mc.sim().member_count("list"), 500);
    assert_eq!(mc.get("/lists/list/members").await.body["total_items"], 500);
}

#[tokio::test]
async fn batch_adds_tags_to_existing_members_and_replaces_them_only_with_sync_tags() {
    let mc = Mc::start().await;
    let email = "tagged@maplemail.net";
    let created = mc
        .post(
            "/lists/list",
            json!({"members": [{"email_address": email, "status": "subscribed", "tags": ["vip", "loyalty"]}]}),
        )
        .await;
    assert_eq!(created.body["new_members"][0]["tags_count"], 2);

    let without_sync = mc
        .post(
            "/lists/list",
            json!({"update_existing": true, "members": [{"email_address": email, "tags": ["wholesale"]}]}),
        )
        .await;
    assert_eq!(without_sync.body["total_updated"], 1);
    assert_eq!(
        mc.sim().member("list", email).expect("member").tags,
        vec!["vip", "loyalty", "wholesale"]
    );

    let synced = mc
        .post(
            "/lists/list",
            json!({"update_existing": true, "sync_tags": true,
                   "members": [{"email_address": email, "tags": ["wholesale", "VIP"]}]}),
        )
        .await;
    assert_eq!(synced.body["total_updated"], 1);
    assert_eq!(
        mc.sim().member("list", email).expect("member").tags,
        vec!["vip", "wholesale"]
    );
}

#[tokio::test]
async fn repeated_addresses_in_one_batch_are_errors_unless_skipped() {
    let mc = Mc::start().await;
    let body = json!({"members": [
        entry("twice@maplemail.net", "subscribed"),
        entry("Twice@maplemail.net", "unsubscribed"),
    ]});
    let checked = mc.post("/lists/list", body.clone()).await;
    assert_eq!(checked.body["total_created"], 1);
    assert_eq!(checked.body["error_count"], 1);
    mc.sim().create_list("other", "Other");
    let skipped = mc
        .post("/lists/other?skip_duplicate_check=true", body)
        .await;
    assert_eq!(skipped.body["total_created"], 1);
    assert_eq!(skipped.body["error_count"], 0);
    assert_eq!(
        mc.sim()
            .member("other", "twice@maplemail.net")
            .expect("member")
            .status,
        MemberStatus::Subscribed
    );
}

#[tokio::test]
async fn static_segments_are_created_listed_and_read() {
    let mc = Mc::start().await;
    for email in ["s1@maplemail.net", "s2@maplemail.net", "s3@maplemail.net"] {
        mc.sim()
            .insert_member("list", email, MemberStatus::Subscribed);
    }
    mc.sim()
        .insert_member("list", "s4@maplemail.net", MemberStatus::Unsubscribed);
    let created = mc
        .post(
            "/lists/list/segments",
            json!({"name": "Shoppers", "static_segment": ["s1@maplemail.net", "s4@maplemail.net", "stranger@maplemail.net"]}),
        )
        .await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    assert_eq!(created.body["type"], "static");
    assert_eq!(created.body["member_count"], 1); // active subscribers only
    let id = created.body["id"].as_u64().expect("id");
    assert_eq!(
        mc.sim().segment_members("list", id),
        vec!["s1@maplemail.net", "s4@maplemail.net"]
    );

    let duplicate = mc
        .post(
            "/lists/list/segments",
            json!({"name": "shoppers", "static_segment": []}),
        )
        .await;
    assert_eq!(duplicate.status, 400);
    mc.post(
        "/lists/list/segments",
        json!({"name": "Second", "static_segment": []}),
    )
    .await;
    let listed = mc
        .get("/lists/list/segments?type=static&count=1&offset=1")
        .await;
    assert_eq!(listed.body["total_items"], 2);
    assert_eq!(listed.body["segments"][0]["name"], "Second");
    assert_eq!(
        mc.get("/lists/list/segments?type=saved").await.body["total_items"],
        0
    );
    assert_eq!(
        mc.get(&format!("/lists/list/segments/{id}")).await.body["name"],
        "Shoppers"
    );
    assert_eq!(mc.get("/lists/list/segments/999999").await.status, 404);

    // Segment members leave out unsubscribed members unless asked.
    let members = mc.get(&format!("/lists/list/segments/{id}/members")).await;
    assert_eq!(emails(&members.body), vec!["s1@maplemail.net"]);
    let with_unsubscribed = mc
        .get(&format!(
            "/lists/list/segments/{id}/members?include_unsubscribed=true&count=1&offset=1"
        ))
        .await;
    assert_eq!(with_unsubscribed.body["total_items"], 2);
    assert_eq!(emails(&with_unsubscribed.body), vec!["s4@maplemail.net"]);

    // Single add and remove.
    let added = mc
        .post(
            &format!("/lists/list/segments/{id}/members"),
            json!({"email_address": "s2@maplemail.net"}),
        )
        .await;
    assert_eq!(added.status, 200);
    assert_eq!(added.body["email_address"], "s2@maplemail.net");
    let stranger = mc
        .post(
            &format!("/lists/list/segments/{id}/members"),
            json!({"email_address": "stranger@maplemail.net"}),
        )
        .await;
    assert_eq!(stranger.status, 404);
    let removed = mc
        .delete(&format!(
            "/lists/list/segments/{id}/members/{}",
            subscriber_hash("s2@maplemail.net")
        ))
        .await;
    assert_eq!(removed.status, 204);
    let again = mc
        .delete(&format!(
            "/lists/list/segments/{id}/members/{}",
            subscriber_hash("s2@maplemail.net")
        ))
        .await;
    assert_eq!(again.status, 404);
}

#[tokio::test]
async fn segment_bulk_updates_take_at_most_500_addresses_and_report_strangers() {
    let mc = Mc::start().await;
    let people: Vec<String> = (0..501).map(|i| format!("p{i}@fjordmail.se")).collect();
    let batch: Vec<Value> = people[..500]
        .iter()
        .map(|e| entry(e, "subscribed"))
        .collect();
    assert_eq!(
        mc.post("/lists/list", json!({"members": batch})).await.body["total_created"],
        500
    );
    mc.sim()
        .insert_member("list", &people[500], MemberStatus::Subscribed);
    let segment = mc
        .post(
            "/lists/list/segments",
            json!({"name": "Big", "static_segment": []}),
        )
        .await;
    let id = segment.body["id"].as_u64().expect("id");
    let path = format!("/lists/list/segments/{id}");

    let too_many = mc.post(&path, json!({"members_to_add": people})).await;
    assert_eq!(too_many.status, 400);
    assert!(too_many.detail().contains("at most 500"));
    let too_many_removed = mc
        .post(
            &path,
            json!({"members_to_add": [], "members_to_remove": people}),
        )
        .await;
    assert_eq!(too_many_removed.status, 400);
    assert!(mc.sim().segment_members("list", id).is_empty());

    let mut to_add: Vec<String> = people[..499].to_vec();
    to_add.push("stranger@fjordmail.se".to_string());
    let added = mc.post(&path, json!({"members_to_add": to_add})).await;
    assert_eq!(added.status, 200);
    assert_eq!(added.body["total_added"], 499);
    assert_eq!(added.body["error_count"], 1);
    assert_eq!(
        added.body["errors"][0]["email_addresses"],
        json!(["stranger@fjordmail.se"])
    );
    assert_eq!(mc.sim().segment_members("list", id).len(), 499);
    assert!(
        !mc.sim()
            .segment_members("list", id)
            .contains(&"stranger@fjordmail.se".to_string())
    );

    let changed = mc
        .post(
            &path,
            json!({"members_to_add": [people[500]], "members_to_remove": [people[0], people[1]]}),
        )
        .await;
    assert_eq!(changed.body["total_added"], 1);
    assert_eq!(changed.body["total_removed"], 2);
    assert_eq!(
        changed.body["members_removed"][0]["email_address"],
        people[0].as_str()
    );
    assert_eq!(mc.sim().segment_members("list", id).len(), 498);
    let member = mc.sim().member("list", &people[500]).expect("member");
    assert_eq!(member.tags, vec!["Big"]);
}

#[tokio::test]
async fn a_tag_name_over_100_characters_is_refused() {
    let mc = Mc::start().await;
    let long = "t".repeat(101);
    let answer = mc
        .post(
            "/lists/list",
            json!({"members": [
                {"email_address": "long@maplemail.net", "status": "subscribed", "tags": [long]},
                {"email_address": "fits@maplemail.net", "status": "subscribed", "tags": ["t".repeat(100)]},
            ]}),
        )
        .await;
    assert_eq!(answer.body["total_created"], 1);
    assert_eq!(answer.body["error_count"], 1);
    assert_eq!(
        answer.body["errors"][0]["email_address"],
        "long@maplemail.net"
    );
    assert!(mc.sim().member("list", "long@maplemail.net").is_none());
    assert_eq!(
        mc.sim()
            .member("list", "fits@maplemail.net")
            .expect("member")
            .tags
            .len(),
        1
    );
}
