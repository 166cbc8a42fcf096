//! The shared secret check can fail: credentials planted in a status message, an Event, a log
//! line and an error text are each found and named, and a clean namespace passes. (Its own test
//! binary, so the planted log line cannot fail the scans of other tests.)

mod operator_support;

use audience_operator::crd::AudienceSync;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use operator_support::secret_scan::{self, leaks_in_namespace, leaks_in_text};
use operator_support::*;
use serde_json::json;

#[tokio::test]
async fn planted_secrets_are_found_where_they_were_planted() {
    let h = harness("scan-planted", false).await;
    let in_status = "pk_planted0status0secret0000000001";
    let in_event = "planted-event-token-0000000002";
    let in_log = "planted-log-key-0000000003";
    let in_error = "planted-error-key-0000000004";
    h.secret(
        "planted",
        &[
            ("status", in_status),
            ("event", in_event),
            ("log", in_log),
            ("error", in_error),
        ],
    )
    .await;

    // A clean namespace passes: the sync exists, nothing carries a credential yet.
    h.create::<AudienceSync>(audience_sync("leaky", json!({})))
        .await;
    assert_eq!(
        leaks_in_namespace(&h.client, &h.ns, &[]).await,
        Vec::<String>::new()
    );

    let status = json!({
        "apiVersion": "sync.audience-operator.io/v1alpha1",
        "kind": "AudienceSync",
        "status": {"conditions": [{
            "type": "Ready", "status": "False", "reason": "AuthFailed",
            "message": format!("mailchimp answered 401 for key {in_status}"),
            "lastTransitionTime": "2025-01-01T00:00:00Z", "observedGeneration": 1
        }]}
    });
    h.api::<AudienceSync>()
        .patch_status(
            "leaky",
            &PatchParams::apply("scan-test").force(),
            &Patch::Apply(&status),
        )
        .await
        .expect("status apply");
    // The Event carries the value base64-encoded, as a Secret's data would.
    let encoded = serde_json::to_value(k8s_openapi::ByteString(in_event.as_bytes().to_vec()))
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    let event = Event {
        metadata: ObjectMeta {
            name: Some("leaky.planted".into()),
            ..Default::default()
        },
        event_time: Some(MicroTime(k8s_openapi::jiff::Timestamp::now())),
        reporting_controller: Some("scan-test".into()),
        reporting_instance: Some("scan-test".into()),
        action: Some("Sync".into()),
        reason: Some("Planted".into()),
        regarding: Some(k8s_openapi::api::core::v1::ObjectReference {
            api_version: Some("sync.audience-operator.io/v1alpha1".into()),
            kind: Some("AudienceSync".into()),
            name: Some("leaky".into()),
            namespace: Some(h.ns.to_string()),
            ..Default::default()
        }),
        type_: Some("Warning".into()),
        note: Some(format!("data: {encoded}")),
        ..Default::default()
    };
    h.api::<Event>()
        .create(&PostParams::default(), &event)
        .await
        .expect("creating the Event");
    tracing::warn!(key = in_log, "a log line that should never be");

    let found = leaks_in_namespace(&h.client, &h.ns, &[("the planted error", in_error)]).await;
    let text = found.join("\n");
    let place = |label: &str, place: &str| {
        found
            .iter()
            .any(|f| f.contains(&format!("planted.{label}")) && f.contains(place))
    };
    assert!(
        place(
            "status",
            &format!("the status of AudienceSync {}/leaky", h.ns)
        ),
        "{text}"
    );
    assert!(
        place("event", &format!("Event {}/leaky.planted", h.ns)) && text.contains("base64"),
        "{text}"
    );
    assert!(place("log", "the operator's logs"), "{text}");
    assert!(place("error", "the planted error"), "{text}");
    for value in [in_status, in_event, in_log, in_error] {
        assert!(
            !text.contains(value),
            "a finding repeats the secret: {text}"
        );
    }

    // The asserting form fails, and short values are not registered (they would match anything).
    let r = std::panic::catch_unwind(|| {
        secret_scan::assert_no_secret_in(&[("stdout", &format!("key={in_error}"))])
    });
    assert!(r.is_err(), "assert_no_secret_in passed a leaked secret");
    secret_scan::register("short", "us6");
    assert!(leaks_in_text("text", "us6 us6").is_empty());
}
