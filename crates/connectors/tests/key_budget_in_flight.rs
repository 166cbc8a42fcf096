//! The key budget counts a call until its answer's body has been read, as Mailchimp counts a
//! connection until its answer is complete: two syncs sharing one key push 20,000 contacts under
//! latency, with answers whose bodies arrive after their headers, and never have more than 10
//! calls in flight on the key (each sync alone would stay within 10; together they compete for
//! the budget's slots, and a slot freed at the headers lets an 11th call in).

mod vendor_faults_support;

use std::time::Duration;

use audience_connectors::mailchimp::MailchimpTarget;
use audience_core::{ApplyControl, Target};
use audience_sandbox::Vendor;
use vendor_faults_support::{MAILCHIMP_LIST, Rig, create_plan, mailchimp_config};

#[tokio::test]
async fn a_20000_contact_push_under_latency_never_has_11_calls_in_flight() {
    let rig = Rig::start(Vendor::Mailchimp, 0).await;
    let vendor_faults_support::Connector::Mailchimp(first) = &rig.connector else {
        unreachable!()
    };
    rig.sandbox()
        .mailchimp
        .create_list("second-audience", "Second");
    let url = rig.sandbox.vendor_url(Vendor::Mailchimp);
    let mut config = mailchimp_config(&url, &rig.secret);
    config.list_id = "second-audience".into();
    let second = MailchimpTarget::new(config).unwrap();

    let faults = &rig.sandbox().faults;
    // Scaled down from 500 ms: the race is between a body still arriving and the next call.
    faults.set_latency(Vendor::Mailchimp, Duration::from_millis(60));
    faults.set_body_latency(Vendor::Mailchimp, Duration::from_millis(60));
    rig.sandbox().stats.clear();

    let control = ApplyControl::default();
    let (plan_a, plan_b) = (create_plan(0..10_000), create_plan(10_000..20_000));
    let (a, b) = tokio::join!(
        first.apply(&plan_a, &control),
        second.apply(&plan_b, &control)
    );
    assert_eq!(a.unwrap().created + b.unwrap().created, 20_000);
    let sim = &rig.sandbox().mailchimp;
    assert_eq!(sim.member_count(MAILCHIMP_LIST), 10_000);
    assert_eq!(sim.member_count("second-audience"), 10_000);

    let peak = rig.sandbox().stats.peak_in_flight(Vendor::Mailchimp);
    assert!(peak <= 10, "{peak} calls in flight on one key");
    assert!(peak >= 5, "the pushes run calls concurrently (peak {peak})");
    let connections = sim.connections(&rig.secret);
    assert_eq!(
        connections.refused, 0,
        "Mailchimp never refused a connection: {connections:?}"
    );

    // Two syncs reading ahead on the key at once stay within it too.
    rig.sandbox().stats.clear();
    let (a, b) = tokio::join!(rig.read(), async {
        futures::TryStreamExt::try_collect::<Vec<_>>(second.members()).await
    });
    assert_eq!(a.unwrap().len(), 10_000);
    assert_eq!(b.unwrap().into_iter().flatten().count(), 10_000);
    let peak = rig.sandbox().stats.peak_in_flight(Vendor::Mailchimp);
    assert!(peak <= 10, "{peak} reads in flight on one key");
}
