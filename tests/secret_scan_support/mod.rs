//! No secret anywhere: the one check every test with credentials ends with.
//!
//! Every credential a test hands out is registered here ([`register`]; the operator harness does
//! it for each Secret it writes, `cli_sync` for each Secret of a manifest and each environment
//! variable it passes). [`leaks_in_namespace`] then scans what the test can observe: the status of
//! every AudienceSync and SegmentSync of the namespace, every Event in it (both Event APIs), the
//! operator's logs captured in-process ([`capture_layer`]) and any error text the test hands in.
//! A value is looked for as given and base64-encoded (the form a Secret's `data` takes, should an
//! object ever be copied into status).
//!
//! Values shorter than [`MIN_LEN`] are not registered: a short value ("t", "us6") would match
//! ordinary text and prove nothing.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Mutex, OnceLock};

use kube::api::{ApiResource, DynamicObject, ListParams};
use kube::{Api, Client};

pub const MIN_LEN: usize = 8;

fn registry() -> &'static Mutex<BTreeMap<String, String>> {
    static R: OnceLock<Mutex<BTreeMap<String, String>>> = OnceLock::new();
    R.get_or_init(Default::default)
}

/// Registers a credential the test used; `label` names it in failures (never the value).
pub fn register(label: &str, value: &str) {
    let value = value.trim();
    if value.chars().count() >= MIN_LEN {
        registry()
            .lock()
            .unwrap()
            .entry(value.to_string())
            .or_insert_with(|| label.to_string());
    }
}

/// Every registered credential: `(label, value)`.
pub fn registered() -> Vec<(String, String)> {
    registry()
        .lock()
        .unwrap()
        .iter()
        .map(|(v, l)| (l.clone(), v.clone()))
        .collect()
}

fn base64(value: &str) -> String {
    // ByteString serialises as standard base64, the encoding of a Secret's data.
    serde_json::to_value(k8s_openapi::ByteString(value.as_bytes().to_vec()))
        .unwrap()
        .as_str()
        .unwrap()
        .to_string()
}

/// Where in `text` (observed at `place`) a registered credential appears, one line per finding.
pub fn leaks_in_text(place: &str, text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (label, value) in registered() {
        for (form, needle) in [("as is", value.clone()), ("base64", base64(&value))] {
            if let Some(at) = text.find(&needle) {
                let start = text[..at]
                    .char_indices()
                    .rev()
                    .nth(60)
                    .map_or(0, |(i, _)| i);
                let context = text[start..at].replace('\n', " ");
                found.push(format!(
                    "the credential {label} ({} chars, {form}) appears in {place}, after: {context:?}",
                    value.len()
                ));
            }
        }
    }
    found
}

/// The operator's log lines, captured in-process.
fn logs() -> &'static Mutex<Vec<u8>> {
    static L: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    L.get_or_init(Default::default)
}

pub fn captured_logs() -> String {
    String::from_utf8_lossy(&logs().lock().unwrap()).into_owned()
}

/// Appends to the shared log buffer.
pub struct CaptureWriter;

impl Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        logs().lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A tracing layer that writes every event (debug and up for this project's crates, info for the
/// rest, whatever `RUST_LOG` says for the test output) with all its fields into the buffer the
/// scan reads.
pub fn capture_layer<S>() -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use tracing_subscriber::Layer as _;
    tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(|| CaptureWriter)
        .with_filter(tracing_subscriber::EnvFilter::new(
            "info,audience_operator=debug,audience_connectors=debug,audience_core=debug",
        ))
}

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: "sync.audience-operator.io".into(),
        version: "v1alpha1".into(),
        api_version: "sync.audience-operator.io/v1alpha1".into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// Every place a registered credential appears among what a test in `ns` can observe: statuses,
/// Events, the captured logs and `texts` (`(place, text)`, e.g. an error message).
pub async fn leaks_in_namespace(client: &Client, ns: &str, texts: &[(&str, &str)]) -> Vec<String> {
    let mut found = Vec::new();
    for (kind, plural) in [
        ("AudienceSync", "audiencesyncs"),
        ("SegmentSync", "segmentsyncs"),
        ("OrderSync", "ordersyncs"),
    ] {
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), ns, &resource(kind, plural));
        for obj in api
            .list(&ListParams::default())
            .await
            .expect("listing syncs")
            .items
        {
            let name = obj.metadata.name.clone().unwrap_or_default();
            let status = serde_json::to_string(&obj.data["status"]).unwrap();
            found.extend(leaks_in_text(
                &format!("the status of {kind} {ns}/{name}"),
                &status,
            ));
        }
    }
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), ns);
    for e in events
        .list(&ListParams::default())
        .await
        .expect("listing events")
        .items
    {
        let name = e.metadata.name.clone().unwrap_or_default();
        let text = serde_json::to_string(&e).unwrap();
        found.extend(leaks_in_text(&format!("Event {ns}/{name}"), &text));
    }
    let core: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), ns);
    for e in core
        .list(&ListParams::default())
        .await
        .expect("listing core events")
        .items
    {
        let name = e.metadata.name.clone().unwrap_or_default();
        let text = serde_json::to_string(&e).unwrap();
        found.extend(leaks_in_text(&format!("core Event {ns}/{name}"), &text));
    }
    found.extend(leaks_in_text("the operator's logs", &captured_logs()));
    for (place, text) in texts {
        found.extend(leaks_in_text(place, text));
    }
    found
}

/// Panics naming every place a registered credential appears (see [`leaks_in_namespace`]).
pub async fn assert_no_secret_in_namespace(client: &Client, ns: &str, texts: &[(&str, &str)]) {
    assert!(
        !registered().is_empty(),
        "no credential registered: the scan would prove nothing"
    );
    let found = leaks_in_namespace(client, ns, texts).await;
    assert!(found.is_empty(), "secrets leaked:\n{}", found.join("\n"));
}

/// Panics naming every place a registered credential appears in `texts` (`(place, text)`).
#[track_caller]
pub fn assert_no_secret_in(texts: &[(&str, &str)]) {
    let found: Vec<String> = texts
        .iter()
        .flat_map(|(place, text)| leaks_in_text(place, text))
        .collect();
    assert!(found.is_empty(), "secrets leaked:\n{}", found.join("\n"));
}

/// Registers every value of every Secret in a manifest (`stringData`, and `data` decoded).
pub fn register_manifest_secrets(origin: &str, text: &str) {
    for doc in serde_yaml::Deserializer::from_str(text) {
        let Ok(v) = <serde_json::Value as serde::Deserialize>::deserialize(doc) else {
            continue;
        };
        if v["kind"] != "Secret" {
            continue;
        }
        let name = v["metadata"]["name"].as_str().unwrap_or_default();
        for (key, value) in v["stringData"].as_object().into_iter().flatten() {
            if let Some(value) = value.as_str() {
                register(&format!("{origin}: Secret {name} key {key}"), value);
            }
        }
        for (key, value) in v["data"].as_object().into_iter().flatten() {
            if let Ok(bytes) = serde_json::from_value::<k8s_openapi::ByteString>(value.clone()) {
                register(
                    &format!("{origin}: Secret {name} key {key}"),
                    &String::from_utf8_lossy(&bytes.0),
                );
            }
        }
    }
}
