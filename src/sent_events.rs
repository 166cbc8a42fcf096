//! Where an OrderSync keeps the ids of the events its target accepted
//! ([`audience_core::SentLedger`]) from one run to the next, so an order that changed (a refund,
//! a shipment) and is read again whole sends only its new event.
//!
//! In the cluster: a ConfigMap `NAME-sent-events` per OrderSync, owned by it (deleted with it),
//! the fingerprints under `binaryData.ids` (8 bytes an event, at most
//! [`SentLedger::DEFAULT_CAPACITY`]), and the target they were sent to in an annotation: a ledger
//! kept for another target (a new Klaviyo account or endpoint) is not used, since that target has
//! none of the events. `sync -f` keeps the same in its state file ([`encode`], [`decode`]).
//!
//! The ledger saves calls and keeps the counts honest; it is never what prevents a duplicate:
//! the target records each unique id once, so a ledger lost, damaged, cut short or not written
//! (a crash) only sends known ids again.

use audience_core::SentLedger;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, Client, Resource, ResourceExt};

use crate::activity::object_name;
use crate::owned_configmap;

/// The key of the fingerprints in the ConfigMap's `binaryData`.
pub const DATA_KEY: &str = "ids";
/// The annotation naming (by a fingerprint) the target the ids were accepted by.
pub const TARGET_ANNOTATION: &str = "sync.audience-operator.io/sent-events-target";
/// The label naming the sync a ledger belongs to.
pub const FOR_LABEL: &str = "sync.audience-operator.io/sent-events-for";

/// The ConfigMap of the OrderSync `name`.
pub fn configmap_name(name: &str) -> String {
    object_name(name, "-sent-events")
}

/// The ledger as text (base64 of its bytes), for the state file.
pub fn encode(ledger: &SentLedger) -> String {
    STANDARD.encode(ledger.to_bytes())
}

/// A ledger [`encode`] wrote; `None` when the text is not one (start afresh).
pub fn decode(text: &str) -> Option<SentLedger> {
    let bytes = STANDARD.decode(text.trim()).ok()?;
    SentLedger::from_bytes(&bytes, SentLedger::DEFAULT_CAPACITY)
}

/// The ledger of `sync` for `target`, `None` when it has none (yet), it was kept for another
/// target, or the ConfigMap is not the sync's own.
pub async fn load<K>(
    client: &Client,
    sync: &K,
    target: &str,
) -> Result<Option<SentLedger>, kube::Error>
where
    K: Resource<DynamicType = ()>,
{
    let api: Api<ConfigMap> =
        Api::namespaced(client.clone(), &sync.namespace().unwrap_or_default());
    let Some(cm) = api.get_opt(&configmap_name(&sync.name_any())).await? else {
        return Ok(None);
    };
    let ours = owned_configmap::is_owned_by(&cm, sync);
    let same_target = cm.annotations().get(TARGET_ANNOTATION).map(String::as_str) == Some(target);
    if !ours || !same_target {
        return Ok(None);
    }
    let bytes = cm
        .binary_data
        .as_ref()
        .and_then(|d| d.get(DATA_KEY))
        .map(|b| b.0.as_slice())
        .unwrap_or_default();
    Ok(SentLedger::from_bytes(bytes, SentLedger::DEFAULT_CAPACITY))
}

/// Why the ledger could not be kept.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error("ConfigMap {0} exists and is not owned by this sync; not overwriting it")]
    NotOurs(String),
}

/// Keeps `ledger` as the ids `target` accepted for `sync` (server-side apply, the whole map).
pub async fn save<K>(
    client: &Client,
    sync: &K,
    target: &str,
    ledger: &SentLedger,
) -> Result<(), SaveError>
where
    K: Resource<DynamicType = ()>,
{
    let namespace = sync.namespace().unwrap_or_default();
    let name = configmap_name(&sync.name_any());
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    if let Some(cm) = api.get_metadata_opt(&name).await?
        && !owned_configmap::is_owned_by(&cm, sync)
    {
        return Err(SaveError::NotOurs(name));
    }
    let cm = owned_configmap::manifest(
        sync,
        &name,
        FOR_LABEL,
        serde_json::json!({ TARGET_ANNOTATION: target }),
        serde_json::json!({ "binaryData": { DATA_KEY: encode(ledger) } }),
    );
    owned_configmap::apply(&api, &name, &cm).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_file_text_round_trips_and_refuses_garbage() {
        let mut ledger = SentLedger::new();
        ledger.insert("shopify:1:placed");
        ledger.insert("shopify:1:refunded:2");
        let text = encode(&ledger);
        assert_eq!(decode(&text), Some(ledger));
        assert_eq!(decode("not base64!"), None);
        assert_eq!(decode(&STANDARD.encode([1u8, 2, 3])), None, "not whole ids");
    }

    #[test]
    fn names_end_in_sent_events_and_fit() {
        assert_eq!(configmap_name("ls-orders"), "ls-orders-sent-events");
        assert!(configmap_name(&"x".repeat(300)).len() <= 253);
    }
}
