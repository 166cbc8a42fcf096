//! Contract tests of the Mailchimp member-event write and the activity-feed read against the
//! simulator: events land on known members only (404 = unknown contact, nothing created), names
//! are checked before sending, and the feed is read incrementally from a time.

mod mailchimp_support;

use std::collections::BTreeMap;

use audience_connectors::mailchimp::activity::ActivityKind;
use audience_connectors::mailchimp::member_events::{EventOutcome, MemberEvent};
use audience_sandbox::mailchimp::MemberStatus;
use chrono::{TimeZone, Utc};
use mailchimp_support::*;

fn event(name: &str) -> MemberEvent {
    MemberEvent {
        name: name.into(),
        properties: BTreeMap::from([("product_id".to_string(), "42".to_string())]),
        occurred_at: Utc.with_ymd_and_hms(2026, 11, 30, 9, 0, 0).unwrap(),
        is_syncing: false,
    }
}

#[tokio::test]
async fn events_reach_known_members_and_unknown_ones_are_reported_not_created() {
    let env = Env::start().await;
    let target = env.target();
    env.sim()
        .insert_member(LIST, "known@maplemail.net", MemberStatus::Subscribed);
    let sent = target
        .post_member_event("Known@MapleMail.net", &event("product_viewed"))
        .await
        .unwrap();
    assert_eq!(sent, EventOutcome::Sent);
    let unknown = target
        .post_member_event("stranger@maplemail.net", &event("product_viewed"))
        .await
        .unwrap();
    assert_eq!(unknown, EventOutcome::UnknownContact);
    let stored = env.sim().member_events(LIST, "known@maplemail.net");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].name, "product_viewed");
    assert_eq!(stored[0].properties["product_id"], "42");
    assert_eq!(
        stored[0].occurred_at,
        Utc.with_ymd_and_hms(2026, 11, 30, 9, 0, 0).unwrap()
    );
    assert!(env.sim().member(LIST, "stranger@maplemail.net").is_none());
    assert_eq!(env.sim().member_event_count(LIST), 1);
}

#[tokio::test]
async fn a_bad_event_name_is_refused_before_any_call() {
    let env = Env::start().await;
    env.sim()
        .insert_member(LIST, "known@maplemail.net", MemberStatus::Subscribed);
    let error = env
        .target()
        .post_member_event("known@maplemail.net", &event("page viewed!"))
        .await
        .unwrap_err();
    assert_eq!(error.kind, audience_core::ErrorKind::Rejected);
    assert_eq!(
        env.calls(
            "POST",
            "/3.0/lists/{list_id}/members/{subscriber_hash}/events"
        ),
        0
    );
}

#[tokio::test]
async fn activity_is_read_newest_first_and_only_after_the_cursor() {
    let env = Env::start().await;
    let target = env.target();
    let email = "reader@maplemail.net";
    env.sim()
        .insert_member(LIST, email, MemberStatus::Subscribed);
    assert_eq!(
        target.email_activity(email, None).await.unwrap(),
        Some(vec![])
    );
    assert_eq!(
        target
            .email_activity("nobody@maplemail.net", None)
            .await
            .unwrap(),
        None
    );
    env.sim().send_campaign(LIST, "c1", "Winter", &[email]);
    env.sim().advance_clock(chrono::Duration::minutes(2));
    assert!(env.sim().record_open(LIST, email, "c1"));
    let all = target.email_activity(email, None).await.unwrap().unwrap();
    let kinds: Vec<ActivityKind> = all.iter().map(|a| a.kind).collect();
    assert_eq!(kinds, [ActivityKind::Opened, ActivityKind::Received]);
    let cursor = all[0].at;
    assert_eq!(
        target.email_activity(email, Some(cursor)).await.unwrap(),
        Some(vec![])
    );
    env.sim().advance_clock(chrono::Duration::minutes(2));
    assert!(
        env.sim()
            .record_click(LIST, email, "c1", "https://shop.example/a")
    );
    let newer = target
        .email_activity(email, Some(cursor))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(newer.len(), 1);
    assert_eq!(newer[0].kind, ActivityKind::Clicked);
    assert_eq!(newer[0].campaign_id, "c1");
}

#[tokio::test]
async fn active_contacts_come_from_the_campaign_reports_not_one_call_per_contact() {
    let env = Env::start().await;
    let target = env.target();
    let (ann, bob, cat) = (
        "ann@maplemail.net",
        "bob@maplemail.net",
        "cat@maplemail.net",
    );
    for email in [ann, bob, cat] {
        env.sim()
            .insert_member(LIST, email, MemberStatus::Subscribed);
    }
    // 1,000 quiet members on top: they cost nothing.
    for i in 0..1000 {
        env.sim()
            .insert_member(LIST, email(i).as_str(), MemberStatus::Subscribed);
    }
    let none = target.active_contacts(None).await.unwrap();
    assert!(none.emails.is_empty() && none.newest.is_none(), "{none:?}");

    env.sim().send_campaign(LIST, "c1", "Winter", &[ann, bob]);
    let sent_at = env.sim().now();
    env.sim().advance_clock(chrono::Duration::minutes(5));
    assert!(env.sim().record_open(LIST, bob, "c1"));
    let opened_at = env.sim().now();
    env.clear_stats();
    let first = target.active_contacts(None).await.unwrap();
    assert_eq!(
        first.emails.iter().map(String::as_str).collect::<Vec<_>>(),
        [ann, bob]
    );
    assert_eq!(first.newest, Some(opened_at));
    // The campaign list, the one campaign's recipients and its activity.
    assert_eq!(env.reads(), 3);

    // After the cursor: nothing new, and a campaign sent before it is not re-counted.
    env.clear_stats();
    let quiet = target.active_contacts(first.newest).await.unwrap();
    assert!(
        quiet.emails.is_empty() && quiet.newest.is_none(),
        "{quiet:?}"
    );
    assert_eq!(env.reads(), 2, "campaigns + the recent campaign's activity");

    // New activity: a click on the old campaign, a new campaign to cat.
    env.sim().advance_clock(chrono::Duration::minutes(1));
    assert!(
        env.sim()
            .record_click(LIST, ann, "c1", "https://shop.example/a")
    );
    env.sim().advance_clock(chrono::Duration::minutes(1));
    env.sim().send_campaign(LIST, "c2", "Spring", &[cat]);
    let c2_at = env.sim().now();
    let next = target.active_contacts(first.newest).await.unwrap();
    assert_eq!(
        next.emails.iter().map(String::as_str).collect::<Vec<_>>(),
        [ann, cat]
    );
    assert_eq!(next.newest, Some(c2_at));
    assert!(sent_at < opened_at);
}
