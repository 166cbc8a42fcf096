//! ConfigMaps a sync owns (its activity log, its ledger of sent events): owned by the sync as
//! controller (deleted with it), written whole with server-side apply by the operator's field
//! manager, and never written over when someone else's ConfigMap has the name.

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};

use crate::controller::FIELD_MANAGER;

/// The owner reference naming `sync` as the controller of what it owns.
pub fn owner<K: Resource<DynamicType = ()>>(sync: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).to_string(),
        kind: K::kind(&()).to_string(),
        name: sync.name_any(),
        uid: sync.meta().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(false),
    }
}

/// Whether `object` is owned by `sync` as its controller.
pub fn is_owned_by<K: Resource<DynamicType = ()>>(object: &impl Resource, sync: &K) -> bool {
    let uid = sync.meta().uid.clone().unwrap_or_default();
    object
        .owner_references()
        .iter()
        .any(|o| o.uid == uid && o.controller == Some(true))
}

/// The whole ConfigMap `name` owned by `sync`: labelled with `for_label` (the sync's name, made a
/// label value), its kind and the operator as manager, carrying `annotations` and `content`
/// (`{"data": …}` or `{"binaryData": …}`).
pub fn manifest<K: Resource<DynamicType = ()>>(
    sync: &K,
    name: &str,
    for_label: &str,
    annotations: serde_json::Value,
    content: serde_json::Value,
) -> serde_json::Value {
    let mut cm = serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": sync.namespace().unwrap_or_default(),
            "labels": {
                for_label: crate::activity::label_value(&sync.name_any()),
                crate::activity::KIND_LABEL: K::kind(&()),
                "app.kubernetes.io/managed-by": "audience-operator",
            },
            "annotations": annotations,
            "ownerReferences": [owner(sync)],
        },
    });
    if let (Some(cm), Some(content)) = (cm.as_object_mut(), content.as_object()) {
        cm.extend(content.clone());
    }
    cm
}

/// Applies `body` (a whole ConfigMap) as the operator's field manager.
pub async fn apply(
    api: &Api<ConfigMap>,
    name: &str,
    body: &serde_json::Value,
) -> Result<(), kube::Error> {
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(body),
    )
    .await?;
    Ok(())
}
