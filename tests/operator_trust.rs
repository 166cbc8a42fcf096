//! Trust on the real control plane: a sync's author cannot make the operator read a Secret that
//! did not opt in, nor send a credential to a host the operator was not told to trust.

mod operator_support;

use std::sync::Arc;

use audience_operator::crd::AudienceSync;
use audience_operator::operator::Operator;
use audience_operator::sync::connect::EndpointPolicy;
use audience_operator::sync::{ConnectOptions, DefaultConnectors};
use audience_sandbox::{Sandbox, SandboxOptions, Vendor};
use operator_support::*;
use serde_json::json;

#[tokio::test]
async fn a_secret_without_the_opt_in_label_is_not_used_until_labelled() {
    let h = harness("op-optin", true).await;
    h.default_secrets().await;
    h.add_shopify("a@gmail.com", "A", "A");
    let token = h.shopify().access_token();
    h.secret_opting_in("shopify", &[("accessToken", &token)], false)
        .await;
    let api = h.api::<AudienceSync>();
    h.create::<AudienceSync>(audience_sync("optin", json!({})))
        .await;
    let o = wait_reason(&api, "optin", "CredentialsNotAllowed").await;
    let c = ready(&o).unwrap();
    assert_eq!(c.status, "False");
    assert!(
        c.message
            .contains("sync.audience-operator.io/credentials=true")
            && c.message.contains("kubectl"),
        "the message says how to allow it: {}",
        c.message
    );
    assert!(!c.message.contains(&token), "{}", c.message);
    h.wait_event("optin", "CredentialsNotAllowed", "Warning")
        .await;
    assert_eq!(
        h.sandbox.sandbox.stats.total(Vendor::Shopify),
        0,
        "no request was made with the refused Secret"
    );

    // Labelling the Secret is seen by the (label-selected) Secret watch and retries at once.
    h.secret("shopify", &[("accessToken", &token)]).await;
    wait_reason(&api, "optin", "Synced").await;
    assert_eq!(h.members().len(), 1);
    h.assert_no_secret_leaked().await;
}

#[tokio::test]
async fn an_endpoint_on_a_host_not_allowed_gets_no_request_until_the_operator_allows_it() {
    let mut h = harness("op-endpoint", false).await;
    h.default_secrets().await;
    // A second simulator plays the host a tenant points the sync at.
    let collector = Sandbox::new(SandboxOptions::default())
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    collector
        .sandbox
        .shopify
        .add_customer(audience_sandbox::shopify::Customer {
            email: Some("b@gmail.com".into()),
            marketing_state: "SUBSCRIBED".into(),
            ..Default::default()
        });
    collector
        .sandbox
        .mailchimp
        .create_list(AUDIENCE, "Collector");
    let start = |h: &mut Harness, endpoints: EndpointPolicy| {
        let mut options = h.options();
        // No sandbox: the spec's endpoints decide where calls go.
        options.settings.sandbox = None;
        options.connectors = Arc::new(DefaultConnectors::new(ConnectOptions {
            retry: Some(quick_retries()),
            endpoints,
        }));
        options
    };

    let options = start(&mut h, EndpointPolicy::default());
    let operator = Operator::start(h.client.clone(), options).await.unwrap();
    let api = h.api::<AudienceSync>();
    let url = collector.url();
    h.create::<AudienceSync>(audience_sync(
        "elsewhere",
        json!({
            "source": {"shopify": {"endpoint": format!("{url}/shopify")}},
            "target": {"mailchimp": {"endpoint": format!("{url}/mailchimp")}},
        }),
    ))
    .await;
    let o = wait_reason(&api, "elsewhere", "CredentialsNotAllowed").await;
    let message = &ready(&o).unwrap().message;
    assert!(
        message.contains("127.0.0.1") && message.contains("--allow-endpoint-host"),
        "{message}"
    );
    for vendor in [Vendor::Shopify, Vendor::Mailchimp] {
        assert_eq!(
            collector.sandbox.stats.total(vendor),
            0,
            "{vendor:?} got a request"
        );
    }
    operator.shutdown().await.unwrap();

    // An operator started with the host allowed syncs through it.
    let options = start(&mut h, EndpointPolicy::Listed(vec!["127.0.0.1".into()]));
    let operator = Operator::start(h.client.clone(), options).await.unwrap();
    h.annotate::<AudienceSync>("elsewhere", "sync.audience-operator.io/sync-now", "1")
        .await;
    wait_reason(&api, "elsewhere", "Synced").await;
    assert_eq!(collector.sandbox.mailchimp.member_count(AUDIENCE), 1);
    operator.shutdown().await.unwrap();
    h.assert_no_secret_leaked().await;
}
