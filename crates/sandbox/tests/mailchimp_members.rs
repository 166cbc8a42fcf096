//! The Mailchimp simulator's members, lists, merge fields, tags, auth and stats, over HTTP.

mod mailchimp_support;

use chrono::Duration;
use mailchimp_support::*;
use md5::{Digest, Md5};
use reqwest::Method;
use serde_json::{Value, json};

fn md5_hex(text: &str) -> String {
    Md5::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn new_member(email: &str, status: &str) -> Value {
    json!({"email_address": email, "status": status})
}

#[tokio::test]
async fn requests_need_an_accepted_api_key() {
    let mc = Mc::start().await;

    let missing = mc.send_with_key(Method::GET, "/", None, None).await;
    assert_eq!(missing.status, 401);
    assert_eq!(missing.title(), "API Key Missing");
    assert!(missing.content_type.starts_with("application/problem+json"));

    let malformed = mc
        .send_with_key(Method::GET, "/lists", None, Some("not-a-key"))
        .await;
    assert_eq!(malformed.status, 401);
    assert_eq!(malformed.title(), "API Key Invalid");

    let ok = mc.get("/").await;
    assert_eq!(ok.status, 200);
    assert!(ok.body["account_id"].is_string());
    assert!(ok.body["account_name"].is_string());
    assert!(ok.body["email"].is_string());
    assert_eq!(ok.body["total_subscribers"], 0);

    // Only registered keys once keys are registered; a revoked key stops working.
    let registered = "ffffffffffffffffffffffffffffffff-us6";
    mc.sim().set_valid_keys([registered]);
    assert_eq!(mc.get("/ping").await.status, 401);
    let with_registered = mc
        .send_with_key(Method::GET, "/ping", None, Some(registered))
        .await;
    assert_eq!(with_registered.status, 200);
    assert_eq!(
        with_registered.body["health_status"],
        "Everything's Chimpy!"
    );
    mc.sim().revoke_key(registered);
    let revoked = mc
        .send_with_key(Method::GET, "/ping", None, Some(registered))
        .await;
    assert_eq!(revoked.status, 401);
    assert_eq!(revoked.title(), "API Key Invalid");
}

#[tokio::test]
async fn subscriber_hash_is_the_md5_of_the_lowercased_address() {
    let mc = Mc::start().await;
    let email = "Ada.Lovelace@MapleMail.net";
    let created = mc
        .post("/lists/list/members", new_member(email, "subscribed"))
        .await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    let lowercased = md5_hex("ada.lovelace@maplemail.net");
    assert_eq!(created.body["id"], lowercased.as_str());
    assert_eq!(created.body["email_address"], email);

    assert_eq!(
        mc.get(&format!("/lists/list/members/{lowercased}"))
            .await
            .status,
        200
    );
    // The address itself is accepted in place of the hash.
    assert_eq!(
        mc.get(&format!("/lists/list/members/{email}")).await.status,
        200
    );
    // The MD5 of the address as typed (not lowercased) names nobody.
    let unlowered = md5_hex(email);
    let missing = mc.get(&format!("/lists/list/members/{unlowered}")).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.title(), "Resource Not Found");
    // Neither does something that is neither a hash nor an address.
    assert_eq!(mc.get("/lists/list/members/not-a-hash").await.status, 404);
    // PUT to the wrong hash tries to insert the address, which exists: "Member Exists".
    let put = mc
        .put(
            &format!("/lists/list/members/{unlowered}"),
            json!({"email_address": email, "status_if_new": "subscribed"}),
        )
        .await;
    assert_eq!(put.status, 400);
    assert_eq!(put.title(), "Member Exists");
}

#[tokio::test]
async fn adding_an_address_twice_is_member_exists() {
    let mc = Mc::start().await;
    let first = mc
        .post(
            "/lists/list/members",
            new_member("ivan@northpost.io", "subscribed"),
        )
        .await;
    assert_eq!(first.status, 200);
    let again = mc
        .post(
            "/lists/list/members",
            new_member("IVAN@northpost.io", "pending"),
        )
        .await;
    assert_eq!(again.status, 400);
    assert_eq!(again.title(), "Member Exists");
    assert!(again.detail().contains("is already a list member"));
    assert_eq!(mc.sim().member_count("list"), 1);

    // Missing required fields are validation errors with an `errors` array.
    let invalid = mc
        .post(
            "/lists/list/members",
            json!({"email_address": "x@northpost.io"}),
        )
        .await;
    assert_eq!(invalid.status, 400);
    assert_eq!(invalid.title(), "Invalid Resource");
    assert_eq!(invalid.body["errors"][0]["field"], "status");
    let bad_json = mc
        .client
        .post(format!("{}/lists/list/members", mc.base))
        .basic_auth("u", Some(&mc.key))
        .body("{not json")
        .send()
        .await
        .expect("sent");
    assert_eq!(bad_json.status().as_u16(), 400);
    let bad_json: Value = bad_json.json().await.expect("problem");
    assert_eq!(bad_json["title"], "JSON Parse Error");
}

#[tokio::test]
async fn fake_or_invalid_addresses_are_refused() {
    let mc = Mc::start().await;
    for email in [
        "ada@example.com",
        "ada@example.org",
        "ada@shop.example",
        "ada@foo.test",
        "ada@bar.invalid",
        "ada@localhost",
        "no-at-sign",
        "two@@ats.com",
    ] {
        let reply = mc
            .post("/lists/list/members", new_member(email, "subscribed"))
            .await;
        assert_eq!(reply.status, 400, "{email}");
        assert_eq!(reply.title(), "Invalid Resource", "{email}");
        assert!(
            reply.detail().contains("looks fake or invalid"),
            "{email}: {}",
            reply.detail()
        );
    }
    assert_eq!(mc.sim().member_count("list"), 0);
}

#[tokio::test]
async fn an_unsubscribed_member_cannot_be_resubscribed_but_can_be_sent_a_confirmation() {
    let mc = Mc::start().await;
    let email = "maja@fjordmail.se";
    mc.post("/lists/list/members", new_member(email, "subscribed"))
        .await;
    // The person clicks "unsubscribe".
    assert!(
        mc.sim()
            .set_member_status("list", email, MemberStatus::Unsubscribed)
    );

    let patch = mc
        .patch(&member_path(email), json!({"status": "subscribed"}))
        .await;
    assert_eq!(patch.status, 400);
    assert_eq!(patch.title(), "Member In Compliance State");
    let put = mc
        .put(
            &member_path(email),
            json!({"email_address": email, "status_if_new": "subscribed", "status": "subscribed"}),
        )
        .await;
    assert_eq!(put.title(), "Member In Compliance State");
    assert_eq!(
        mc.sim().member("list", email).expect("member").status,
        MemberStatus::Unsubscribed
    );

    // Other fields may still change, and `pending` (a re-confirmation email) is allowed.
    let rename = mc
        .patch(
            &member_path(email),
            json!({"merge_fields": {"FNAME": "Maja"}}),
        )
        .await;
    assert_eq!(rename.status, 200);
    assert_eq!(rename.body["status"], "unsubscribed");
    let pending = mc
        .patch(&member_path(email), json!({"status": "pending"}))
        .await;
    assert_eq!(pending.status, 200);
    assert_eq!(pending.body["status"], "pending");
}

#[tokio::test]
async fn a_cleaned_member_cannot_be_resubscribed() {
    let mc = Mc::start().await;
    let email = "finn@kiwimail.co.nz";
    mc.sim().insert_member("list", email, MemberStatus::Cleaned);
    for status in ["subscribed", "pending"] {
        let reply = mc
            .put(
                &member_path(email),
                json!({"email_address": email, "status_if_new": status, "status": status}),
            )
            .await;
        assert_eq!(reply.status, 400, "{status}");
        assert_eq!(reply.title(), "Member In Compliance State");
    }
    assert_eq!(
        mc.sim().member("list", email).expect("member").status,
        MemberStatus::Cleaned
    );
}

#[tokio::test]
async fn a_permanently_deleted_address_can_never_be_added_again() {
    let mc = Mc::start().await;
    let email = "omar@maplemail.net";
    mc.post("/lists/list/members", new_member(email, "subscribed"))
        .await;
    let erased = mc
        .send(
            Method::POST,
            &format!("{}/actions/delete-permanent", member_path(email)),
            None,
        )
        .await;
    assert_eq!(erased.status, 204);
    assert_eq!(mc.get(&member_path(email)).await.status, 404);
    assert!(mc.sim().is_forgotten("list", email));

    let post = mc
        .post("/lists/list/members", new_member(email, "pending"))
        .await;
    assert_eq!(post.status, 400);
    assert_eq!(post.title(), "Forgotten Email Not Subscribed");
    let put = mc
        .put(
            &member_path(email),
            json!({"email_address": email, "status_if_new": "subscribed"}),
        )
        .await;
    assert_eq!(put.title(), "Forgotten Email Not Subscribed");
    let batch = mc
        .post(
            "/lists/list",
            json!({"members": [new_member(email, "subscribed")]}),
        )
        .await;
    assert_eq!(batch.status, 200);
    assert_eq!(batch.body["error_count"], 1);
    assert!(
        batch.body["errors"][0]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("permanently deleted")
    );
    assert!(mc.sim().member("list", email).is_none());
}

#[tokio::test]
async fn delete_archives_and_a_status_write_brings_the_member_back() {
    let mc = Mc::start().await;
    let kept = "ines@northpost.io";
    let gone = "hugo@northpost.io";
    let unsubscribed = "zoe@northpost.io";
    for email in [kept, gone, unsubscribed] {
        mc.post("/lists/list/members", new_member(email, "subscribed"))
            .await;
    }
    mc.sim()
        .set_member_status("list", unsubscribed, MemberStatus::Unsubscribed);
    assert_eq!(mc.delete(&member_path(gone)).await.status, 204);
    assert_eq!(mc.delete(&member_path(unsubscribed)).await.status, 204);
    assert_eq!(mc.delete(&member_path(gone)).await.status, 404);

    let archived = mc.get(&member_path(gone)).await;
    assert_eq!(archived.status, 200);
    assert_eq!(archived.body["status"], "archived");
    let default_view = mc.get("/lists/list/members").await;
    assert_eq!(emails(&default_view.body), vec![kept]);
    assert_eq!(default_view.body["total_items"], 1);
    let archived_view = mc.get("/lists/list/members?status=archived").await;
    assert_eq!(archived_view.body["total_items"], 2);
    let subscribed_view = mc.get("/lists/list/members?status=subscribed").await;
    assert_eq!(emails(&subscribed_view.body), vec![kept]);

    // A write with a status un-archives, under the compliance rules of the status it had.
    let back = mc
        .put(
            &member_path(gone),
            json!({"email_address": gone, "status_if_new": "subscribed", "status": "subscribed"}),
        )
        .await;
    assert_eq!(back.status, 200);
    assert_eq!(back.body["status"], "subscribed");
    let refused = mc
        .patch(&member_path(unsubscribed), json!({"status": "subscribed"}))
        .await;
    assert_eq!(refused.title(), "Member In Compliance State");
    let list = mc.get("/lists/list").await;
    assert_eq!(list.body["stats"]["member_count"], 2);
}

#[tokio::test]
async fn members_are_paged_with_count_offset_and_total_items() {
    let mc = Mc::start().await;
    for i in 0..25 {
        mc.sim().insert_member(
            "list",
            &format!("person{i:02}@maplemail.net"),
            if i % 5 == 0 {
                MemberStatus::Unsubscribed
            } else {
                MemberStatus::Subscribed
            },
        );
    }
    let first = mc.get("/lists/list/members").await;
    assert_eq!(first.body["members"].as_array().map(Vec::len), Some(10));
    assert_eq!(first.body["total_items"], 25);
    assert_eq!(first.body["list_id"], "list");

    let last = mc.get("/lists/list/members?count=10&offset=20").await;
    assert_eq!(
        emails(&last.body),
        (20..25)
            .map(|i| format!("person{i:02}@maplemail.net"))
            .collect::<Vec<_>>()
    );
    assert_eq!(last.body["total_items"], 25);

    let mut all = Vec::new();
    let mut offset = 0;
    loop {
        let page = mc
            .get(&format!(
                "/lists/list/members?status=subscribed&count=7&offset={offset}"
            ))
            .await;
        assert_eq!(page.body["total_items"], 20);
        let got = emails(&page.body);
        if got.is_empty() {
            break;
        }
        offset += got.len();
        all.extend(got);
    }
    assert_eq!(all.len(), 20);

    let max = mc.get("/lists/list/members?count=1000").await;
    assert_eq!(max.status, 200);
    let over = mc.get("/lists/list/members?count=1001").await;
    assert_eq!(over.status, 400);
    assert_eq!(over.title(), "Invalid Resource");
    assert_eq!(over.body["errors"][0]["field"], "count");
    assert_eq!(mc.get("/lists/list/segments?count=1001").await.status, 400);
}

#[tokio::test]
async fn since_last_changed_returns_members_changed_after_the_time() {
    let mc = Mc::start().await;
    let old = "ava@maplemail.net";
    let touched = "liam@maplemail.net";
    let added = "mia@maplemail.net";
    mc.post("/lists/list/members", new_member(old, "subscribed"))
        .await;
    mc.post("/lists/list/members", new_member(touched, "subscribed"))
        .await;
    mc.sim().advance_clock(Duration::hours(1));
    let cutoff = mc.sim().now();
    mc.sim().advance_clock(Duration::minutes(5));
    let patched = mc
        .patch(
            &member_path(touched),
            json!({"merge_fields": {"FNAME": "Liam"}}),
        )
        .await;
    assert_eq!(patched.status, 200);
    mc.post("/lists/list/members", new_member(added, "subscribed"))
        .await;
    // A write that changes nothing does not move `last_changed`.
    mc.patch(&member_path(old), json!({"merge_fields": {}}))
        .await;

    let since = cutoff.format("%Y-%m-%dT%H:%M:%S+00:00").to_string();
    let url = reqwest::Url::parse_with_params(
        &format!("{}/lists/list/members", mc.base),
        &[("since_last_changed", since.as_str())],
    )
    .expect("url");
    let changed: Value = mc
        .client
        .get(url)
        .basic_auth("u", Some(&mc.key))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    let mut got = emails(&changed);
    got.sort();
    assert_eq!(got, vec![touched, added]);
    assert_eq!(changed["total_items"], 2);
    let last_changed = changed["members"][0]["last_changed"].as_str().expect("ts");
    assert!(last_changed.ends_with("+00:00"), "{last_changed}");

    // The same instant in another zone selects the same members.
    let shifted = (cutoff + Duration::hours(2))
        .format("%Y-%m-%dT%H:%M:%S+02:00")
        .to_string();
    let url = reqwest::Url::parse_with_params(
        &format!("{}/lists/list/members", mc.base),
        &[("since_last_changed", shifted.as_str())],
    )
    .expect("url");
    let same: Value = mc
        .client
        .get(url)
        .basic_auth("u", Some(&mc.key))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(same["total_items"], 2);

    // A time without a zone (or whose `+` arrived as a space) is refused, not guessed.
    let zoneless = mc
        .get("/lists/list/members?since_last_changed=2025-01-01T00:00:00")
        .await;
    assert_eq!(zoneless.status, 400);
    let unencoded = mc
        .get("/lists/list/members?since_last_changed=2025-01-01T00:00:00+00:00")
        .await;
    assert_eq!(unencoded.status, 400);
}

#[tokio::test]
async fn fields_and_exclude_fields_trim_the_document() {
    let mc = Mc::start().await;
    mc.post(
        "/lists/list/members",
        new_member("elin@fjordmail.se", "subscribed"),
    )
    .await;
    let trimmed = mc
        .get("/lists/list/members?fields=members.email_address,members.status,total_items")
        .await;
    assert_eq!(
        trimmed.body,
        json!({"members": [{"email_address": "elin@fjordmail.se", "status": "subscribed"}], "total_items": 1})
    );
    let excluded = mc
        .get("/lists/list/members?exclude_fields=members._links,members.merge_fields,_links")
        .await;
    let member = &excluded.body["members"][0];
    assert!(member.get("_links").is_none());
    assert!(member.get("merge_fields").is_none());
    assert!(member.get("email_address").is_some());
    assert!(excluded.body.get("_links").is_none());
    assert!(excluded.body.get("total_items").is_some());
    let one = mc
        .get(&format!(
            "{}?fields=id,status",
            member_path("elin@fjordmail.se")
        ))
        .await;
    assert_eq!(
        one.body,
        json!({"id": subscriber_hash("elin@fjordmail.se"), "status": "subscribed"})
    );
}

#[tokio::test]
async fn merge_fields_have_mailchimps_defaults_and_are_validated() {
    let mc = Mc::start().await;
    let fields = mc.get("/lists/list/merge-fields").await;
    let tags: Vec<(&str, &str)> = fields.body["merge_fields"]
        .as_array()
        .expect("merge fields")
        .iter()
        .map(|f| {
            (
                f["tag"].as_str().unwrap_or_default(),
                f["type"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        tags,
        vec![
            ("FNAME", "text"),
            ("LNAME", "text"),
            ("ADDRESS", "address"),
            ("PHONE", "phone"),
            ("BIRTHDAY", "birthday")
        ]
    );

    let created = mc
        .post(
            "/lists/list/merge-fields",
            json!({"tag": "shoe_size", "name": "Shoe size", "type": "number"}),
        )
        .await;
    assert_eq!(created.status, 200);
    assert_eq!(created.body["tag"], "SHOE_SIZE");
    let duplicate = mc
        .post(
            "/lists/list/merge-fields",
            json!({"tag": "SHOE_SIZE", "name": "Again", "type": "text"}),
        )
        .await;
    assert_eq!(duplicate.status, 400);
    let too_long = mc
        .post(
            "/lists/list/merge-fields",
            json!({"tag": "ELEVENCHARS", "name": "Long", "type": "text"}),
        )
        .await;
    assert_eq!(too_long.status, 400);

    let email = "chloe@maplemail.net";
    let address = json!({"addr1": "1 Main St", "addr2": "", "city": "Austin", "state": "TX", "zip": "73301", "country": "US"});
    let member = mc
        .post(
            "/lists/list/members",
            json!({"email_address": email, "status": "subscribed",
                   "merge_fields": {"FNAME": "Chloe", "ADDRESS": address, "SHOE_SIZE": "38"}}),
        )
        .await;
    assert_eq!(member.status, 200, "{:?}", member.body);
    assert_eq!(member.body["merge_fields"]["ADDRESS"], address);
    assert_eq!(member.body["merge_fields"]["SHOE_SIZE"], 38);
    assert_eq!(member.body["merge_fields"]["LNAME"], "");
    assert_eq!(member.body["full_name"], "Chloe");

    let incomplete = mc
        .patch(
            &member_path(email),
            json!({"merge_fields": {"ADDRESS": {"addr1": "1 Main St"}}}),
        )
        .await;
    assert_eq!(incomplete.status, 400);
    assert_eq!(incomplete.detail(), "Your merge fields were invalid.");
    assert_eq!(incomplete.body["errors"][0]["field"], "ADDRESS");

    let unknown = mc
        .patch(&member_path(email), json!({"merge_fields": {"NOPE": "x"}}))
        .await;
    assert_eq!(unknown.status, 400);
    assert_eq!(unknown.title(), "Invalid Resource");
    assert_eq!(unknown.body["errors"][0]["field"], "NOPE");
    let skipped = mc
        .patch(
            &format!("{}?skip_merge_validation=true", member_path(email)),
            json!({"merge_fields": {"NOPE": "x", "LNAME": "Costa"}}),
        )
        .await;
    assert_eq!(skipped.status, 200);
    assert_eq!(skipped.body["merge_fields"]["LNAME"], "Costa");
    assert!(skipped.body["merge_fields"].get("NOPE").is_none());

    // A required field must be filled for a new contact, unless validation is skipped.
    mc.sim().add_merge_field("list", "COMPANY", "text", true);
    let missing = mc
        .post(
            "/lists/list/members",
            new_member("finn@maplemail.net", "subscribed"),
        )
        .await;
    assert_eq!(missing.status, 400);
    assert_eq!(missing.body["errors"][0]["field"], "COMPANY");
    let accepted = mc
        .post(
            "/lists/list/members?skip_merge_validation=true",
            new_member("finn@maplemail.net", "subscribed"),
        )
        .await;
    assert_eq!(accepted.status, 200);
}

#[tokio::test]
async fn tags_are_added_removed_and_listed() {
    let mc = Mc::start().await;
    let email = "noah@northpost.io";
    mc.post(
        "/lists/list/members",
        json!({"email_address": email, "status": "subscribed", "tags": ["VIP"]}),
    )
    .await;
    let tagged = mc
        .post(
            &format!("{}/tags", member_path(email)),
            json!({"tags": [{"name": "wholesale", "status": "active"}, {"name": "vip", "status": "inactive"}], "is_syncing": true}),
        )
        .await;
    assert_eq!(tagged.status, 204);
    let member = mc.get(&member_path(email)).await;
    assert_eq!(member.body["tags_count"], 1);
    assert_eq!(member.body["tags"][0]["name"], "wholesale");
    let tags = mc.get(&format!("{}/tags", member_path(email))).await;
    assert_eq!(tags.body["total_items"], 1);
    assert_eq!(tags.body["tags"][0]["name"], "wholesale");
    assert!(tags.body["tags"][0]["date_added"].is_string());
    // A tag is a static segment.
    let id = mc.sim().segment_id("list", "wholesale").expect("segment");
    assert_eq!(tags.body["tags"][0]["id"], id);
    assert_eq!(mc.sim().segment_members("list", id), vec![email]);

    let bad = mc
        .post(
            &format!("{}/tags", member_path(email)),
            json!({"tags": [{"name": "x", "status": "on"}]}),
        )
        .await;
    assert_eq!(bad.status, 400);
    let nobody = mc
        .post(
            &format!("{}/tags", member_path("nobody@northpost.io")),
            json!({"tags": [{"name": "x", "status": "active"}]}),
        )
        .await;
    assert_eq!(nobody.status, 404);
}

#[tokio::test]
async fn the_plan_contact_limit_refuses_new_contacts() {
    let mc = Mc::start().await;
    // The demo audience's hand-unsubscribed contact already counts.
    let already = mc.sim().contact_count();
    mc.sim().set_contact_limit(Some(already + 2));
    assert_eq!(mc.get("/").await.body["pricing_plan_type"], "forever_free");
    mc.sim()
        .insert_member("list", "bounced@maplemail.net", MemberStatus::Cleaned);
    for email in ["a1@maplemail.net", "a2@maplemail.net"] {
        let reply = mc
            .post("/lists/list/members", new_member(email, "subscribed"))
            .await;
        assert_eq!(reply.status, 200, "{email}");
    }
    let refused = mc
        .post(
            "/lists/list/members",
            new_member("a3@maplemail.net", "subscribed"),
        )
        .await;
    assert_eq!(refused.status, 400);
    assert!(
        refused.detail().contains("contact limit"),
        "{}",
        refused.detail()
    );
    let batch = mc
        .post(
            "/lists/list",
            json!({"members": [new_member("a4@maplemail.net", "subscribed")]}),
        )
        .await;
    assert_eq!(batch.body["error_count"], 1);
    assert!(
        batch.body["errors"][0]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("contact limit")
    );
    // Updating existing contacts is still fine; archiving one frees a place.
    assert_eq!(
        mc.patch(&member_path("a1@maplemail.net"), json!({"vip": true}))
            .await
            .status,
        200
    );
    assert_eq!(
        mc.delete(&member_path("a2@maplemail.net")).await.status,
        204
    );
    let now_fits = mc
        .post(
            "/lists/list/members",
            new_member("a3@maplemail.net", "subscribed"),
        )
        .await;
    assert_eq!(now_fits.status, 200);
    assert_eq!(mc.sim().contact_count(), already + 2);
}

#[tokio::test]
async fn lists_can_be_created_read_and_counted() {
    let mc = Mc::start().await;
    let created = mc
        .post(
            "/lists",
            json!({
                "name": "Newsletter",
                "contact": {"company": "Shop", "address1": "1 Main St", "city": "Austin", "state": "TX", "zip": "73301", "country": "US"},
                "permission_reminder": "You bought from us.",
                "campaign_defaults": {"from_name": "Shop", "from_email": "shop@maplemail.net", "subject": "", "language": "en"},
                "email_type_option": false
            }),
        )
        .await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    let id = created.body["id"].as_str().expect("id").to_string();
    assert_eq!(created.body["name"], "Newsletter");
    assert_eq!(created.body["stats"]["member_count"], 0);

    let invalid = mc.post("/lists", json!({"name": "No contact"})).await;
    assert_eq!(invalid.status, 400);
    assert!(
        invalid.body["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .any(|e| e["field"] == "contact")
    );

    mc.post(
        &format!("/lists/{id}/members"),
        new_member("lars@fjordmail.se", "subscribed"),
    )
    .await;
    mc.sim()
        .insert_member(&id, "anna@fjordmail.se", MemberStatus::Unsubscribed);
    let list = mc
        .get(&format!("/lists/{id}?include_total_contacts=true"))
        .await;
    assert_eq!(list.body["stats"]["member_count"], 1);
    assert_eq!(list.body["stats"]["unsubscribe_count"], 1);
    assert_eq!(list.body["stats"]["total_contacts"], 2);

    let lists = mc.get("/lists").await;
    assert_eq!(lists.body["total_items"], 5); // demo, combined (several sources), two-way, "list" and the new one
    let containing = mc.get("/lists?email=lars@fjordmail.se").await;
    assert_eq!(containing.body["total_items"], 1);
    assert_eq!(containing.body["lists"][0]["id"], id.as_str());
    assert_eq!(mc.get("/lists/nope").await.status, 404);
    assert_eq!(mc.get("/no/such/path").await.status, 404);
    let not_allowed = mc.delete("/lists").await;
    assert_eq!(not_allowed.status, 405);
    assert_eq!(not_allowed.title(), "Method Not Allowed");
    let nobody = mc
        .patch(&member_path("nobody@fjordmail.se"), json!({"vip": true}))
        .await;
    assert_eq!(nobody.status, 404);
    // PUT adds a new member with `status_if_new`.
    let upserted = mc
        .put(
            &format!("/lists/{id}/members/{}", subscriber_hash("new@fjordmail.se")),
            json!({"email_address": "new@fjordmail.se", "status_if_new": "pending", "status": "subscribed"}),
        )
        .await;
    assert_eq!(upserted.status, 200);
    assert_eq!(upserted.body["status"], "pending");
    let missing_status_if_new = mc
        .put(
            &format!(
                "/lists/{id}/members/{}",
                subscriber_hash("new2@fjordmail.se")
            ),
            json!({"email_address": "new2@fjordmail.se", "status": "subscribed"}),
        )
        .await;
    assert_eq!(missing_status_if_new.status, 400);
    assert_eq!(
        missing_status_if_new.body["errors"][0]["field"],
        "status_if_new"
    );
}

#[tokio::test]
async fn the_demo_audience_holds_two_hand_changed_contacts() {
    let mc = Mc::start().await;
    let members = mc.sim().members(audience_sandbox::mailchimp::DEMO_LIST_ID);
    let statuses: Vec<MemberStatus> = members.iter().map(|m| m.status).collect();
    assert_eq!(
        statuses,
        vec![MemberStatus::Unsubscribed, MemberStatus::Cleaned]
    );
    let people = audience_sandbox::seed::people(64, 42);
    for member in &members {
        assert!(people.iter().any(|p| p.email == member.email_address));
    }
    let refused = mc
        .put(
            &format!(
                "/lists/{}/members/{}",
                audience_sandbox::mailchimp::DEMO_LIST_ID,
                subscriber_hash(&members[0].email_address)
            ),
            json!({"email_address": members[0].email_address, "status_if_new": "subscribed", "status": "subscribed"}),
        )
        .await;
    assert_eq!(refused.title(), "Member In Compliance State");
}

#[tokio::test]
async fn stats_count_requests_by_route_template() {
    let mc = Mc::start().await;
    mc.post(
        "/lists/list/members",
        new_member("sofia@maplemail.net", "subscribed"),
    )
    .await;
    mc.get(&member_path("sofia@maplemail.net")).await;
    mc.get(&member_path("nobody@maplemail.net")).await;
    mc.send_with_key(Method::GET, "/lists", None, None).await;

    let stats = mc.stats().await;
    let requests = stats["mailchimp"]["requests"].as_array().expect("requests");
    let count = |method: &str, route: &str, status: u16| {
        requests
            .iter()
            .filter(|r| r["method"] == method && r["route"] == route && r["status"] == status)
            .map(|r| r["count"].as_u64().unwrap_or(0))
            .sum::<u64>()
    };
    let member_route = "/3.0/lists/{list_id}/members/{subscriber_hash}";
    assert_eq!(count("POST", "/3.0/lists/{list_id}/members", 200), 1);
    assert_eq!(count("GET", member_route, 200), 1);
    assert_eq!(count("GET", member_route, 404), 1);
    assert_eq!(count("GET", "/3.0/lists", 401), 1);
    assert_eq!(stats["mailchimp"]["total"], 4);
    assert_eq!(
        mc.sandbox().stats.count(
            audience_sandbox::Vendor::Mailchimp,
            Some("GET"),
            "{subscriber_hash}"
        ),
        2
    );
}
