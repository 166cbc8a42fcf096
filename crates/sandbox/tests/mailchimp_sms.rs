//! The Mailchimp simulator's SMS member fields: written with the member, validated (E.164, the
//! status enum, a number to subscribe), separate from the email status, rendered.

mod mailchimp_support;

use mailchimp_support::*;
use serde_json::json;

#[tokio::test]
async fn sms_fields_are_stored_rendered_and_leave_the_email_status_alone() {
    let mc = Mc::start().await;
    let email = "ava@freddiehats.io";
    let created = mc
        .post(
            "/lists/list/members",
            json!({"email_address": email, "status": "transactional"}),
        )
        .await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    assert_eq!(created.body["sms_subscription_status"], "");
    assert_eq!(created.body["sms_phone_number"], "");

    let patched = mc
        .patch(
            &member_path(email),
            json!({"sms_phone_number": "+491701234567", "sms_subscription_status": "subscribed"}),
        )
        .await;
    assert_eq!(patched.status, 200, "{:?}", patched.body);
    assert_eq!(patched.body["sms_phone_number"], "+491701234567");
    assert_eq!(patched.body["sms_subscription_status"], "subscribed");
    assert_eq!(
        patched.body["status"], "transactional",
        "email status untouched"
    );
    assert!(
        !patched.body["sms_subscription_last_updated"]
            .as_str()
            .unwrap()
            .is_empty()
    );

    let read = mc
        .get("/lists/list/members?fields=members.email_address,members.sms_phone_number,members.sms_subscription_status")
        .await;
    assert_eq!(
        read.body["members"][0]["sms_subscription_status"],
        "subscribed"
    );
    assert_eq!(read.body["members"][0]["sms_phone_number"], "+491701234567");

    let unsubscribed = mc
        .patch(
            &member_path(email),
            json!({"sms_subscription_status": "unsubscribed"}),
        )
        .await;
    assert_eq!(unsubscribed.status, 200);
    assert_eq!(unsubscribed.body["sms_subscription_status"], "unsubscribed");
    assert_eq!(unsubscribed.body["status"], "transactional");
}

#[tokio::test]
async fn sms_fields_are_validated() {
    let mc = Mc::start().await;
    let email = "bo@freddiehats.io";
    mc.post(
        "/lists/list/members",
        json!({"email_address": email, "status": "subscribed"}),
    )
    .await;
    for phone in ["0170 1234567", "+49 170 1234567", "+0123456789", "+12"] {
        let refused = mc
            .patch(
                &member_path(email),
                json!({"sms_phone_number": phone, "sms_subscription_status": "subscribed"}),
            )
            .await;
        assert_eq!(refused.status, 400, "{phone}");
        assert_eq!(refused.body["errors"][0]["field"], "sms_phone_number");
    }
    let bad_status = mc
        .patch(
            &member_path(email),
            json!({"sms_phone_number": "+15555550100", "sms_subscription_status": "yes"}),
        )
        .await;
    assert_eq!(bad_status.status, 400);
    assert_eq!(
        bad_status.body["errors"][0]["field"],
        "sms_subscription_status"
    );

    let no_number = mc
        .patch(
            &member_path(email),
            json!({"sms_subscription_status": "subscribed"}),
        )
        .await;
    assert_eq!(no_number.status, 400);
    assert!(
        no_number.detail().contains("phone number"),
        "{}",
        no_number.detail()
    );
    let member = mc.get(&member_path(email)).await;
    assert_eq!(member.body["sms_subscription_status"], "");
    assert_eq!(member.body["status"], "subscribed");
}
