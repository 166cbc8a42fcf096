//! End to end over real HTTP: the sandbox's Mailchimp simulator posts an unsubscribe made outside
//! the API (the person's unsubscribe link) to this receiver's secret URL; it arrives as a hint for
//! the audience. The same post to a URL with another secret changes nothing.

use std::time::Duration;

use audience_sandbox::mailchimp::{Mailchimp, MemberStatus};
use audience_webhooks::{Config, Scope, Secret, Vendor, Webhooks};
use tokio::sync::mpsc;

const LIST: &str = "a1b2c3d4e5";
const URL_SECRET: &str = "mc-hook-secret-41d9";

#[tokio::test]
async fn an_unsubscribe_in_the_simulator_arrives_as_a_hint_and_a_wrong_secret_does_not() {
    let (tx, mut hints) = mpsc::channel(16);
    let resolver = |vendor: Vendor, account: &str| -> Vec<Secret> {
        if vendor == Vendor::Mailchimp && account == LIST {
            vec![URL_SECRET.into()]
        } else {
            vec![]
        }
    };
    let webhooks = Webhooks::new(Config::default(), resolver, tx);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!(
        "http://{}/webhooks/mailchimp",
        listener.local_addr().unwrap()
    );
    let app = webhooks.router();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mc = Mailchimp::default();
    mc.create_list(LIST, "Newsletter");
    mc.insert_member(LIST, "Ada@Example.com", MemberStatus::Subscribed);
    mc.insert_member(LIST, "bob@example.com", MemberStatus::Subscribed);

    mc.send_webhooks_to(LIST, &format!("{base}/{URL_SECRET}"));
    assert!(mc.set_member_status(LIST, "Ada@Example.com", MemberStatus::Unsubscribed));
    let outbox = mc.webhook_outbox(LIST).unwrap();
    tokio::time::timeout(Duration::from_secs(30), outbox.wait_for(1))
        .await
        .expect("delivered");
    let hint = hints.try_recv().expect("one hint");
    assert_eq!(
        (hint.vendor, hint.account.as_str()),
        (Vendor::Mailchimp, LIST)
    );
    assert_eq!(
        (hint.topic.as_str(), hint.scope),
        ("unsubscribe", Scope::Customers)
    );
    assert_eq!(hint.emails, vec!["ada@example.com".to_string()]);

    mc.send_webhooks_to(LIST, &format!("{base}/guessed-secret"));
    assert!(mc.set_member_status(LIST, "bob@example.com", MemberStatus::Unsubscribed));
    let outbox = mc.webhook_outbox(LIST).unwrap();
    tokio::time::timeout(Duration::from_secs(30), outbox.wait_for(1))
        .await
        .expect("answered");
    assert_eq!(outbox.records()[0].attempts, vec![Some(401)]);
    assert!(hints.try_recv().is_err(), "nothing emitted");
    assert_eq!(webhooks.counters().unauthorized, 1);
}
