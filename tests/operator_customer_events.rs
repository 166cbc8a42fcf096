//! Customer events both ways on the real control plane (issue 12, seed 004): shopper events a
//! web pixel posts reach Mailchimp as member events for known contacts only; opens and clicks
//! recorded in Mailchimp reach the Shopify customer as metafields after the next run, and a run
//! with no new activity writes none; `enabled: false` turns both off.

mod operator_support;

use audience_operator::crd::AudienceSync;
use audience_operator::operator::Operator;
use operator_support::*;
use serde_json::{Value, json};

const PIXEL_SECRET: &str = "pixel-publishable-secret-5a7c";
const ORIGIN: &str = "https://test.myshopify.com";

/// Starts the operator with the receiver; returns the pixel URL of the sync `name`.
async fn start(h: &mut Harness, name: &str) -> String {
    let mut options = h.options();
    options.webhook_addr = Some("127.0.0.1:0".parse().unwrap());
    let operator = Operator::start(h.client.clone(), options)
        .await
        .expect("starting the operator");
    let url = format!(
        "http://{}/events/shopify/{}/{name}",
        operator.webhook_addr.expect("the receiver listens"),
        h.ns
    );
    h.operator = Some(operator);
    h.default_secrets().await;
    let token = h.shopify().access_token();
    h.secret(
        "shopify",
        &[("accessToken", &token), ("pixelSecret", PIXEL_SECRET)],
    )
    .await;
    url
}

async fn post(url: &str, secret: &str, body: Value) -> u16 {
    reqwest::Client::new()
        .post(url)
        .header("x-audience-pixel-secret", secret)
        .header("origin", ORIGIN)
        .json(&body)
        .send()
        .await
        .expect("pixel post")
        .status()
        .as_u16()
}

fn viewed(email: &str) -> Value {
    json!({"event": "product_viewed", "email": email, "occurredAt": "2026-12-01T10:00:00Z",
           "properties": {"productId": "gid://shopify/Product/7", "price": 19.5}})
}

fn counts(s: &AudienceSync) -> audience_operator::crd::RunCounts {
    s.status
        .as_ref()
        .and_then(|s| s.last_run.as_ref())
        .map(|r| r.counts)
        .unwrap_or_default()
}

/// Mailchimp calls of one route template since the stats were last cleared.
fn route_calls(h: &Harness, route: &str) -> u64 {
    h.sandbox
        .sandbox
        .stats
        .snapshot()
        .into_iter()
        .filter(|(k, _)| k.vendor == audience_sandbox::Vendor::Mailchimp && k.route == route)
        .map(|(_, n)| n)
        .sum()
}

fn metafield(h: &Harness, id: u64, key: &str) -> Option<String> {
    h.shopify()
        .customer_metafields(id)
        .get(&("audience_operator".to_string(), key.to_string()))
        .map(|m| m.value.clone())
}

#[tokio::test]
async fn shopper_events_reach_known_contacts_and_email_activity_reaches_the_shop() {
    let mut h = harness("op-cust-events", false).await;
    let url = start(&mut h, "events").await;
    let ann = h.add_shopify("ann@gmail.com", "Ann", "Lee");
    h.add_shopify("bob@gmail.com", "Bob", "Ray");
    let api = h.api::<AudienceSync>();
    h.create::<AudienceSync>(audience_sync("events", json!({"customerEvents": {}})))
        .await;
    let first = wait_reason(&api, "events", "Synced").await;
    assert_eq!(runs(&first), 1);
    assert!(h.mailchimp().member(AUDIENCE, "ann@gmail.com").is_some());

    // A forged post is refused; a known and an unknown contact's events are accepted.
    assert_eq!(post(&url, "guessed", viewed("ann@gmail.com")).await, 401);
    assert_eq!(post(&url, PIXEL_SECRET, viewed("ann@gmail.com")).await, 202);
    assert_eq!(
        post(&url, PIXEL_SECRET, viewed("stranger@gmail.com")).await,
        202
    );
    // The batcher asks for a run (the schedule is hourly): exactly one event lands.
    let second = wait_for(
        &api,
        "events",
        "the shopper events sent",
        |s: &AudienceSync| {
            runs(s) >= 2 && counts(s).shopper_events + counts(s).shopper_events_unknown >= 2
        },
    )
    .await;
    let c = counts(&second);
    assert_eq!(
        (c.shopper_events, c.shopper_events_unknown),
        (1, 1),
        "{c:?}"
    );
    let events = h.mailchimp().member_events(AUDIENCE, "ann@gmail.com");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].name, "product_viewed");
    assert_eq!(events[0].properties["price"], "19.5");
    assert_eq!(h.mailchimp().member_event_count(AUDIENCE), 1);
    assert!(
        h.mailchimp()
            .member(AUDIENCE, "stranger@gmail.com")
            .is_none()
    );
    assert_eq!(h.shopify().metafield_writes(), (0, 0), "no activity yet");
    // The receiver's answers are counted for Prometheus (the registry is process-wide: other
    // tests of this binary may add to it, never take away).
    let scraped = audience_operator::metrics::Metrics::global().render();
    let count = |outcome: &str| -> u64 {
        scraped
            .lines()
            .find(|l| {
                l.starts_with("audience_pixel_posts_total{")
                    && l.contains(&format!("outcome=\"{outcome}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    assert!(count("unauthorized") >= 1, "{scraped}");
    assert!(count("queued") >= 2, "{scraped}");

    // Mailchimp sends a campaign; Ann opens it and clicks.
    let sent = h
        .mailchimp()
        .send_campaign(AUDIENCE, "camp1", "Winter sale", &["ann@gmail.com"]);
    assert_eq!(sent.len(), 1);
    h.mailchimp().advance_clock(chrono::Duration::minutes(3));
    assert!(
        h.mailchimp()
            .record_open(AUDIENCE, "ann@gmail.com", "camp1")
    );
    h.mailchimp().advance_clock(chrono::Duration::minutes(1));
    assert!(h.mailchimp().record_click(
        AUDIENCE,
        "ann@gmail.com",
        "camp1",
        "https://shop.example/sale"
    ));
    let third = h.sync_now::<AudienceSync>("events", "activity-1").await;
    assert_eq!(
        counts(&third).email_activity_written,
        6,
        "{:?}",
        counts(&third)
    );
    assert_eq!(metafield(&h, ann, "email_received").as_deref(), Some("1"));
    assert_eq!(metafield(&h, ann, "email_opens").as_deref(), Some("1"));
    assert_eq!(metafield(&h, ann, "email_clicks").as_deref(), Some("1"));
    let opened_at = h
        .mailchimp()
        .last_activity_at(AUDIENCE, "ann@gmail.com", "camp1", "open")
        .expect("the open was recorded");
    assert_eq!(
        metafield(&h, ann, "last_email_opened_at"),
        Some(opened_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    );
    let writes = h.shopify().metafield_writes();
    assert_eq!(writes.1, 6);

    // The cursor is kept in the status (a restarted operator goes on from it): the click.
    let clicked_at = h
        .mailchimp()
        .last_activity_at(AUDIENCE, "ann@gmail.com", "camp1", "click")
        .unwrap();
    let cursor = third
        .status
        .as_ref()
        .and_then(|s| s.email_activity_cursor.as_ref())
        .map(|t| t.0.as_second());
    assert_eq!(cursor, Some(clicked_at.timestamp()));

    // No new activity: the next run writes nothing, and finds that out from the campaign
    // reports, not by asking for every contact's feed.
    h.sandbox.sandbox.stats.clear();
    let fourth = h.sync_now::<AudienceSync>("events", "activity-2").await;
    assert_eq!(counts(&fourth).email_activity_written, 0);
    assert_eq!(h.shopify().metafield_writes(), writes);
    assert_eq!(
        route_calls(
            &h,
            "/3.0/lists/{list_id}/members/{subscriber_hash}/activity-feed"
        ),
        0
    );
    assert_eq!(
        route_calls(&h, "/3.0/reports/{campaign_id}/email-activity"),
        1
    );

    // A second open: only the changed totals move.
    h.mailchimp().advance_clock(chrono::Duration::minutes(1));
    assert!(
        h.mailchimp()
            .record_open(AUDIENCE, "ann@gmail.com", "camp1")
    );
    h.sandbox.sandbox.stats.clear();
    h.sync_now::<AudienceSync>("events", "activity-3").await;
    assert_eq!(metafield(&h, ann, "email_opens").as_deref(), Some("2"));
    assert_eq!(h.shopify().metafield_writes().0, writes.0 + 1);
    // Only Ann's feed is read (Bob had no activity).
    assert_eq!(
        route_calls(
            &h,
            "/3.0/lists/{list_id}/members/{subscriber_hash}/activity-feed"
        ),
        1
    );
    h.assert_no_secret_leaked().await;
}

#[tokio::test]
async fn customer_events_off_sends_nothing_either_way() {
    let mut h = harness("op-cust-events-off", false).await;
    let url = start(&mut h, "quiet").await;
    let ann = h.add_shopify("ann@gmail.com", "Ann", "Lee");
    let api = h.api::<AudienceSync>();
    h.create::<AudienceSync>(audience_sync(
        "quiet",
        json!({"customerEvents": {"enabled": false}}),
    ))
    .await;
    wait_reason(&api, "quiet", "Synced").await;
    // Accepted (the pixel need not know) and dropped.
    assert_eq!(post(&url, PIXEL_SECRET, viewed("ann@gmail.com")).await, 202);
    h.mailchimp()
        .send_campaign(AUDIENCE, "camp1", "Winter sale", &["ann@gmail.com"]);
    h.mailchimp().advance_clock(chrono::Duration::minutes(1));
    assert!(
        h.mailchimp()
            .record_open(AUDIENCE, "ann@gmail.com", "camp1")
    );
    let after = h.sync_now::<AudienceSync>("quiet", "off-1").await;
    let c = counts(&after);
    assert_eq!((c.shopper_events, c.email_activity_written), (0, 0));
    assert!(
        h.mailchimp()
            .member_events(AUDIENCE, "ann@gmail.com")
            .is_empty()
    );
    assert!(h.shopify().customer_metafields(ann).is_empty());
    assert_eq!(h.shopify().metafield_writes(), (0, 0));
}
