//! The sandbox controls that go with the strict Mailchimp simulator: the person's own
//! confirmation (the only way back to subscribed), interests an audience defines, and the
//! account's data centre.

mod mailchimp_support;

use mailchimp_support::*;
use reqwest::Method;
use serde_json::{Value, json};

/// `POST /_sandbox/mailchimp/confirm` (no API key: a sandbox control, not the API).
async fn confirm_over_http(mc: &Mc, body: Value) -> (u16, Value) {
    let response = mc
        .client
        .post(format!("{}/_sandbox/mailchimp/confirm", mc.running.url()))
        .json(&body)
        .send()
        .await
        .expect("confirm request");
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("JSON body")
    };
    (status, body)
}

#[tokio::test]
async fn only_the_persons_confirmation_resubscribes_an_unsubscribed_member() {
    let mc = Mc::start().await;
    let email = "wanda@maplemail.net";
    mc.sim()
        .insert_member("list", email, MemberStatus::Unsubscribed);
    let path = member_path(email);
    assert_eq!(
        mc.sim().member("list", email).expect("wanda").compliance,
        Some(MemberStatus::Unsubscribed)
    );
    // The person has not confirmed anything yet: nothing to confirm.
    assert!(!mc.sim().confirm_subscription("list", email));

    // The API may ask for a re-confirmation (pending) ...
    let pending = mc.patch(&path, json!({"status": "pending"})).await;
    assert_eq!(pending.status, 200, "{:?}", pending.body);
    assert_eq!(pending.body["status"], "pending");
    assert_eq!(
        mc.patch(&path, json!({"status": "subscribed"}))
            .await
            .title(),
        "Member In Compliance State"
    );
    // ... and only the person's confirmation completes it.
    let before = mc.sim().now();
    assert!(mc.sim().confirm_subscription("list", email));
    let wanda = mc.sim().member("list", email).expect("wanda");
    assert_eq!(wanda.status, MemberStatus::Subscribed);
    assert_eq!(wanda.compliance, None);
    assert!(wanda.timestamp_opt.is_some_and(|t| t >= before));
    assert_eq!(mc.get(&path).await.body["status"], "subscribed");

    // A later unsubscribe locks again.
    mc.sim()
        .set_member_status("list", email, MemberStatus::Unsubscribed);
    assert_eq!(
        mc.patch(&path, json!({"status": "subscribed"}))
            .await
            .title(),
        "Member In Compliance State"
    );
}

#[tokio::test]
async fn the_confirm_control_over_http() {
    let mc = Mc::start().await;
    mc.sim()
        .insert_member("list", "xena@maplemail.net", MemberStatus::Unsubscribed);
    mc.sim()
        .insert_member("list", "yuri@maplemail.net", MemberStatus::Cleaned);
    // A new contact asked to confirm (double opt-in) gets there too.
    let created = mc
        .post(
            "/lists/list/members",
            json!({"email_address": "zoe@maplemail.net", "status": "pending"}),
        )
        .await;
    assert_eq!(created.status, 200, "{:?}", created.body);

    let (status, body) = confirm_over_http(
        &mc,
        json!({"list_id": "list", "email_address": "zoe@maplemail.net"}),
    )
    .await;
    assert_eq!(status, 204, "{body:?}");
    assert_eq!(
        mc.get(&member_path("zoe@maplemail.net")).await.body["status"],
        "subscribed"
    );

    // Not pending: refused, nothing changes.
    for email in ["xena@maplemail.net", "yuri@maplemail.net"] {
        let (status, body) =
            confirm_over_http(&mc, json!({"list_id": "list", "email_address": email})).await;
        assert_eq!(status, 400, "{email}: {body:?}");
        assert!(
            body["detail"]
                .as_str()
                .is_some_and(|d| d.contains("pending"))
        );
    }
    assert_eq!(
        mc.sim()
            .member("list", "xena@maplemail.net")
            .expect("xena")
            .status,
        MemberStatus::Unsubscribed
    );
    // The cleaned address cannot even be made pending by API, so it stays cleaned.
    assert_eq!(
        mc.sim()
            .member("list", "yuri@maplemail.net")
            .expect("yuri")
            .status,
        MemberStatus::Cleaned
    );

    // Unknown member or audience: 404; a malformed body: 400.
    let (status, _) = confirm_over_http(
        &mc,
        json!({"list_id": "list", "email_address": "nobody@maplemail.net"}),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = confirm_over_http(
        &mc,
        json!({"list_id": "nope", "email_address": "zoe@maplemail.net"}),
    )
    .await;
    assert_eq!(status, 404);
    let (status, body) = confirm_over_http(&mc, json!({"list_id": "list"})).await;
    assert_eq!(status, 400, "{body:?}");

    // A sandbox control is not an API request: not in the Mailchimp stats.
    let stats = mc.stats().await;
    let confirm_counted = stats["mailchimp"]["requests"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|r| r["route"].as_str().is_some_and(|t| t.contains("confirm")));
    assert!(!confirm_counted, "{stats}");
}

#[tokio::test]
async fn interests_the_audience_defines_are_accepted() {
    let mc = Mc::start().await;
    let vip = mc.sim().add_interest("list", "VIP news");
    let created = mc
        .post(
            "/lists/list/members",
            json!({"email_address": "aino@fjordmail.se", "status": "subscribed",
                   "interests": {vip.clone(): true}}),
        )
        .await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    assert_eq!(created.body["interests"][&vip], true);
    // The interest belongs to its audience only.
    mc.sim().create_list("other", "Other audience");
    let elsewhere = mc
        .post(
            "/lists/other/members",
            json!({"email_address": "aino@fjordmail.se", "status": "subscribed",
                   "interests": {vip.clone(): true}}),
        )
        .await;
    assert_eq!(elsewhere.status, 400, "{:?}", elsewhere.body);
    assert_eq!(elsewhere.detail(), format!("Invalid interest ID: '{vip}'."));
    // Values are booleans.
    let wrong_type = mc
        .patch(
            &member_path("aino@fjordmail.se"),
            json!({"interests": {vip.clone(): "yes"}}),
        )
        .await;
    assert_eq!(wrong_type.status, 400, "{:?}", wrong_type.body);
    assert_eq!(
        wrong_type.body["errors"][0]["field"],
        format!("interests.{vip}")
    );
}

#[tokio::test]
async fn the_account_data_centre_can_be_moved() {
    let mc = Mc::start().await;
    assert_eq!(mc.sim().data_center(), "us6");
    let us1 = "0123456789abcdef0123456789abcdef-us1";
    mc.sim().set_data_center("us1");
    let ok = mc
        .send_with_key(Method::GET, "/ping", None, Some(us1))
        .await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    let wrong = mc.get("/ping").await; // the -us6 example key
    assert_eq!(wrong.status, 403);
    assert_eq!(wrong.title(), "Wrong Datacenter");
    // A reset puts the account back in us6.
    mc.sandbox().reset();
    assert_eq!(mc.get("/ping").await.status, 200);
    // Keys without a data-centre suffix are simply invalid (401), not of another data centre.
    let malformed = mc
        .send_with_key(Method::GET, "/ping", None, Some("not-a-key"))
        .await;
    assert_eq!(malformed.status, 401);
}
