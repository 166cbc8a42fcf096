//! The key budget counts a call until its answer's body has been read, as Mailchimp counts a
//! connection until its answer is complete: a push under latency, with answers whose bodies
//! arrive after their headers, never has more than 10 calls in flight on one key.

mod vendor_faults_support;

use std::time::Duration;

use audience_sandbox::Vendor;
use vendor_faults_support::Rig;

#[tokio::test]
async fn a_20000_contact_push_under_latency_never_has_11_calls_in_flight() {
    let rig = Rig::start(Vendor::Mailchimp, 0).await;
    let faults = &rig.sandbox().faults;
    // Scaled down from 500 ms: the race is between a body still arriving and the next call.
    faults.set_latency(Vendor::Mailchimp, Duration::from_millis(60));
    faults.set_body_latency(Vendor::Mailchimp, Duration::from_millis(60));
    rig.sandbox().stats.clear();

    let created = rig.push(20_000).await.unwrap();
    assert_eq!(created, 20_000);
    assert_eq!(
        rig.sandbox()
            .mailchimp
            .member_count(vendor_faults_support::MAILCHIMP_LIST),
        20_000
    );

    let peak = rig.sandbox().stats.peak_in_flight(Vendor::Mailchimp);
    assert!(peak <= 10, "{peak} calls in flight on one key");
    assert!(peak >= 5, "the push runs calls concurrently (peak {peak})");
    let connections = rig.sandbox().mailchimp.connections(&rig.secret);
    assert_eq!(
        connections.refused, 0,
        "Mailchimp never refused a connection: {connections:?}"
    );

    // Reads ahead too.
    rig.sandbox().stats.clear();
    let members = rig.read().await.unwrap();
    assert_eq!(members.len(), 20_000);
    let peak = rig.sandbox().stats.peak_in_flight(Vendor::Mailchimp);
    assert!(peak <= 10, "{peak} reads in flight on one key");
}
