//! Member events (`…/members/{hash}/events`) and the activity feed
//! (`…/members/{hash}/activity-feed`): strict bodies, the member must exist, and the feed shows
//! what the sandbox recorded when it "sent" a campaign.

mod mailchimp_support;

use mailchimp_support::*;
use serde_json::json;

fn events_path(email: &str) -> String {
    format!("{}/events", member_path(email))
}

#[tokio::test]
async fn an_event_for_a_member_is_stored_and_listed_newest_first() {
    let mc = Mc::start().await;
    let email = "ada@maplemail.net";
    mc.sim()
        .insert_member("list", email, MemberStatus::Subscribed);
    let first = mc
        .post(
            &events_path(email),
            json!({"name": "product_viewed", "properties": {"product_id": "42"},
                   "is_syncing": false, "occurred_at": "2026-11-30T10:00:00+00:00"}),
        )
        .await;
    assert_eq!(first.status, 204, "{:?}", first.body);
    let second = mc
        .post(&events_path(email), json!({"name": "checkout_started"}))
        .await;
    assert_eq!(second.status, 204, "{:?}", second.body);
    let stored = mc.sim().member_events("list", "ADA@maplemail.net");
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].name, "product_viewed");
    assert_eq!(stored[0].properties["product_id"], "42");
    let listed = mc.get(&events_path(email)).await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.body["total_items"], 2);
    assert_eq!(listed.body["events"][0]["name"], "checkout_started");
    assert_eq!(
        listed.body["events"][1]["occurred_at"],
        "2026-11-30T10:00:00+00:00"
    );
}

#[tokio::test]
async fn an_event_for_an_unknown_or_archived_member_is_404() {
    let mc = Mc::start().await;
    let unknown = mc
        .post(
            &events_path("nobody@maplemail.net"),
            json!({"name": "page_viewed"}),
        )
        .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.title(), "Resource Not Found");
    mc.sim()
        .insert_member("list", "gone@maplemail.net", MemberStatus::Archived);
    let archived = mc
        .post(
            &events_path("gone@maplemail.net"),
            json!({"name": "page_viewed"}),
        )
        .await;
    assert_eq!(archived.status, 404);
    assert_eq!(mc.sim().member_event_count("list"), 0);
}

#[tokio::test]
async fn bad_event_bodies_are_refused_and_nothing_is_stored() {
    let mc = Mc::start().await;
    let email = "bo@maplemail.net";
    mc.sim()
        .insert_member("list", email, MemberStatus::Subscribed);
    for body in [
        json!({}),
        json!({"name": "x"}),
        json!({"name": "a".repeat(31)}),
        json!({"name": "page viewed"}),
        json!({"name": "page_viewed", "properties": {"n": 3}}),
        json!({"name": "page_viewed", "is_syncing": "yes"}),
        json!({"name": "page_viewed", "occurred_at": "yesterday"}),
    ] {
        let reply = mc.post(&events_path(email), body.clone()).await;
        assert_eq!(reply.status, 400, "{body} → {:?}", reply.body);
        assert_eq!(reply.title(), "Invalid Resource", "{body}");
    }
    assert!(mc.sim().member_events("list", email).is_empty());
}

#[tokio::test]
async fn the_activity_feed_shows_sends_opens_and_clicks_newest_first() {
    let mc = Mc::start().await;
    let email = "cy@maplemail.net";
    mc.sim()
        .insert_member("list", email, MemberStatus::Subscribed);
    mc.sim()
        .insert_member("list", "off@maplemail.net", MemberStatus::Unsubscribed);
    // An open of a campaign never sent to the person cannot be recorded.
    assert!(!mc.sim().record_open("list", email, "c1"));
    let sent = mc
        .sim()
        .send_campaign("list", "c1", "Winter sale", &[email, "off@maplemail.net"]);
    assert_eq!(
        sent,
        vec![email.to_string()],
        "only subscribed members get it"
    );
    mc.sim().advance_clock(chrono::Duration::minutes(5));
    assert!(mc.sim().record_open("list", email, "c1"));
    mc.sim().advance_clock(chrono::Duration::minutes(1));
    assert!(
        mc.sim()
            .record_click("list", email, "c1", "https://shop.example/sale")
    );
    let feed = mc
        .get(&format!("{}/activity-feed", member_path(email)))
        .await;
    assert_eq!(feed.status, 200, "{:?}", feed.body);
    let kinds: Vec<&str> = feed.body["activity"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["activity_type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["click", "open", "sent"]);
    assert_eq!(
        feed.body["activity"][0]["link_clicked"],
        "https://shop.example/sale"
    );
    assert_eq!(feed.body["activity"][0]["campaign_title"], "Winter sale");
    assert_eq!(
        feed.body["email_id"],
        audience_sandbox::mailchimp::subscriber_hash(email)
    );

    let opens = mc
        .get(&format!(
            "{}/activity-feed?activity_filters=open&count=1",
            member_path(email)
        ))
        .await;
    assert_eq!(opens.body["activity"].as_array().unwrap().len(), 1);
    assert_eq!(opens.body["activity"][0]["activity_type"], "open");

    let bad = mc
        .get(&format!(
            "{}/activity-feed?activity_filters=nonsense",
            member_path(email)
        ))
        .await;
    assert_eq!(bad.status, 400);
    let too_many = mc
        .get(&format!("{}/activity-feed?count=1001", member_path(email)))
        .await;
    assert_eq!(too_many.status, 400);
    let unknown = mc
        .get(&format!(
            "{}/activity-feed",
            member_path("nobody@maplemail.net")
        ))
        .await;
    assert_eq!(unknown.status, 404);
}
