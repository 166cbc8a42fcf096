//! Contract tests of the SMS write (Mailchimp `PATCH` of the SMS fields alone) and of the
//! write-back (Shopify `customerCreate`) against the simulators: what each call changes, what
//! it leaves alone, how many calls it takes, and refusals reported per record.

mod mailchimp_support;
mod shopify_support;

use audience_connectors::shopify::ShopifySource;
use audience_core::{
    ApplyControl, CustomerCreate, CustomerCreator, Email, SmsChange, SmsWrite, Target,
};
use audience_sandbox::mailchimp::MemberStatus;
use audience_sandbox::shopify::Customer;
use audience_sandbox::{RunningSandbox, Vendor};
use chrono::{TimeZone, Utc};
use mailchimp_support::*;
use shopify_support::start_shop;

fn sms(email: &str, change: SmsChange) -> SmsWrite {
    SmsWrite {
        email: Email::parse(email).unwrap(),
        change,
    }
}

#[tokio::test]
async fn sms_writes_set_the_sms_fields_only_and_refusals_are_per_member() {
    let env = Env::start().await;
    let target = env.target();
    let mc = env.sim();
    mc.insert_member(LIST, "ann@maplemail.net", MemberStatus::Transactional);
    mc.insert_member(LIST, "bob@maplemail.net", MemberStatus::Subscribed);
    let writes = [
        sms(
            "ann@maplemail.net",
            SmsChange::Subscribe {
                phone: "+491701234567".into(),
            },
        ),
        sms("bob@maplemail.net", SmsChange::Unsubscribe),
        // Not a member: refused for that record, the others still written.
        sms(
            "nobody@maplemail.net",
            SmsChange::Subscribe {
                phone: "+491709999999".into(),
            },
        ),
    ];
    env.clear_stats();
    let report = target
        .write_sms(&writes, &ApplyControl::default())
        .await
        .unwrap();
    assert_eq!(report.written, 2, "{report:?}");
    assert_eq!(report.rejected.len(), 1, "{report:?}");
    assert_eq!(report.rejected[0].email, "nobody@maplemail.net");
    assert_eq!(
        env.calls("PATCH", "/3.0/lists/{list_id}/members/{subscriber_hash}"),
        3
    );
    let ann = mc.member(LIST, "ann@maplemail.net").unwrap();
    assert_eq!(ann.sms_subscription_status.as_deref(), Some("subscribed"));
    assert_eq!(ann.sms_phone_number, "+491701234567");
    assert_eq!(
        ann.status,
        MemberStatus::Transactional,
        "email consent untouched"
    );
    let bob = mc.member(LIST, "bob@maplemail.net").unwrap();
    assert_eq!(bob.sms_subscription_status.as_deref(), Some("unsubscribed"));
    assert_eq!(
        bob.status,
        MemberStatus::Subscribed,
        "email consent untouched"
    );
    assert!(
        mc.member(LIST, "nobody@maplemail.net").is_none(),
        "no member created"
    );
}

async fn shop() -> (RunningSandbox, ShopifySource) {
    start_shop("writeback").await
}

fn create(email: &str, subscribed: bool) -> CustomerCreate {
    CustomerCreate {
        email: Email::parse(email).unwrap(),
        first_name: "Eve".into(),
        last_name: "Stone".into(),
        subscribed,
        consented_at: subscribed.then(|| Utc.with_ymd_and_hms(2026, 11, 30, 8, 0, 0).unwrap()),
    }
}

#[tokio::test]
async fn customer_create_sets_names_and_consent_and_refuses_a_taken_address() {
    let (sandbox, source) = shop().await;
    let shop = &sandbox.sandbox.shopify;
    shop.add_customer(Customer {
        email: Some("Taken@MapleMail.net".into()),
        ..Default::default()
    });
    let mut creates: Vec<CustomerCreate> = (0..12)
        .map(|i| create(&format!("new{i}@maplemail.net"), i % 2 == 0))
        .collect();
    creates.push(create("taken@maplemail.net", true));
    let before = sandbox.sandbox.stats.total(Vendor::Shopify);
    let report = source
        .create_customers(&creates, &ApplyControl::default())
        .await
        .unwrap();
    assert_eq!(report.written, 12, "{report:?}");
    assert_eq!(report.rejected.len(), 1);
    assert_eq!(report.rejected[0].email, "taken@maplemail.net");
    assert!(
        report.rejected[0].reason.to_lowercase().contains("taken"),
        "{:?}",
        report.rejected[0]
    );
    // 13 creates, ten aliased mutations a call.
    assert_eq!(report.write_calls, 2);
    assert_eq!(sandbox.sandbox.stats.total(Vendor::Shopify) - before, 2);
    let id = shop.customer_id_by_email("new0@maplemail.net").unwrap();
    let c = shop.customer(id).unwrap();
    assert_eq!(
        (c.first_name.as_deref(), c.last_name.as_deref()),
        (Some("Eve"), Some("Stone"))
    );
    assert_eq!(c.marketing_state, "SUBSCRIBED");
    assert_eq!(
        c.consent_updated_at,
        Some(Utc.with_ymd_and_hms(2026, 11, 30, 8, 0, 0).unwrap())
    );
    let unsubscribed = shop
        .customer(shop.customer_id_by_email("new1@maplemail.net").unwrap())
        .unwrap();
    assert_eq!(unsubscribed.marketing_state, "NOT_SUBSCRIBED");
    assert_eq!(shop.customer_count(), 13, "one taken, twelve new");
}
