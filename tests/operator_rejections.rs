//! A record the target refuses is remembered (issue 14, item 8): not sent again while the source
//! record stays the same, shown in status with the vendor's reason, and sent again at once when
//! the source changes it.

mod operator_support;

use audience_operator::crd::AudienceSync;
use audience_sandbox::Vendor;
use operator_support::*;
use serde_json::json;

#[tokio::test]
async fn a_refused_record_is_not_sent_again_until_the_source_changes_it() {
    let h = harness("op-rejections", true).await;
    h.default_secrets().await;
    h.add_shopify("ann@gmail.com", "Ann", "Lee");
    // Mailchimp refuses throw-away domains: "… looks fake or invalid".
    let fake = h.add_shopify("bob@yopmail.com", "Bob", "Stone");
    h.create::<AudienceSync>(audience_sync("shop", json!({})))
        .await;
    let first = wait_reason(&h.api::<AudienceSync>(), "shop", "Synced").await;
    let status = first.status.clone().unwrap();
    let counts = status.last_run.unwrap().counts;
    assert_eq!((counts.created, counts.rejected), (1, 1), "{counts:?}");
    assert_eq!(
        status.held_rejections.len(),
        1,
        "{:?}",
        status.held_rejections
    );
    let held = &status.held_rejections[0];
    assert_eq!(held.email, "bob@yopmail.com");
    assert!(held.reason.contains("looks fake"), "{}", held.reason);

    // Unchanged: not sent again, reported as a skip with the remembered reason.
    let writes = vendor_writes(&h, Vendor::Mailchimp);
    // A full run, so the unchanged record is read and held back (an incremental run would not
    // read it at all).
    let second = h.sync_now::<AudienceSync>("shop", "full-1").await;
    let status = second.status.clone().unwrap();
    let counts = status.last_run.unwrap().counts;
    assert_eq!(
        (counts.created, counts.rejected, counts.skipped),
        (0, 0, 1),
        "{counts:?}"
    );
    assert_eq!(vendor_writes(&h, Vendor::Mailchimp), writes, "nothing sent");
    assert_eq!(
        status.held_rejections,
        first.status.unwrap().held_rejections
    );
    let message = &ready(&second).unwrap().message;
    assert!(message.contains("skipped 1"), "{message}");

    // Changed at the source: sent at once (and refused again, remembered anew).
    h.shopify()
        .edit_customer(fake, |c| c.first_name = Some("Robert".into()));
    let third = h.sync_now::<AudienceSync>("shop", "2").await;
    let status = third.status.unwrap();
    let counts = status.last_run.unwrap().counts;
    assert_eq!(counts.rejected, 1, "{counts:?}");
    assert!(vendor_writes(&h, Vendor::Mailchimp) > writes, "sent again");
    assert_eq!(status.held_rejections.len(), 1);
    assert_ne!(
        status.held_rejections[0].fingerprint, held.fingerprint,
        "the fingerprint follows the record"
    );
    h.assert_no_secret_leaked().await;
}
