//! End to end over real HTTP: the sandbox's Lightspeed X-Series simulator posts a customer edit
//! to this receiver, signed with the app's client secret; it arrives as a hint for the store.

use std::time::Duration;

use audience_sandbox::lightspeed_x::{Customer, LightspeedX};
use audience_webhooks::{Config, Scope, Secret, Vendor, Webhooks};
use tokio::sync::mpsc;

#[tokio::test]
async fn a_customer_edit_in_the_simulator_arrives_as_a_verified_hint() {
    let (tx, mut hints) = mpsc::channel(16);
    let resolver = |vendor: Vendor, account: &str| -> Vec<Secret> {
        if vendor == Vendor::LightspeedX && account == "mystore" {
            vec!["ls-client-secret".into()]
        } else {
            vec![]
        }
    };
    let webhooks = Webhooks::new(Config::default(), resolver, tx);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/webhooks/lightspeed-x",
        listener.local_addr().unwrap()
    );
    let app = webhooks.router();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let store = LightspeedX::default();
    let id = store.add_customer(Customer {
        email: Some("ada@example.com".into()),
        ..Customer::default()
    });
    store.send_webhooks_to("mystore", &url, "ls-client-secret");
    store.edit_customer(&id, |c| c.do_not_email = true);
    store.send_webhooks_to("mystore", &url, "wrong-secret");
    store.edit_customer(&id, |c| c.do_not_email = false);
    let outbox = store.webhook_outbox();
    tokio::time::timeout(Duration::from_secs(30), outbox.wait_for(2))
        .await
        .expect("both answered");

    let hint = hints.try_recv().expect("the signed edit is a hint");
    assert_eq!(
        (hint.vendor, hint.account.as_str()),
        (Vendor::LightspeedX, "mystore")
    );
    assert_eq!(
        (hint.topic.as_str(), hint.scope),
        ("customer.update", Scope::Customers)
    );
    assert_eq!(hint.emails, vec!["ada@example.com".to_string()]);
    assert!(hints.try_recv().is_err(), "the wrongly signed one is not");
    let c = webhooks.counters();
    assert_eq!((c.accepted, c.unauthorized), (1, 1));
}
