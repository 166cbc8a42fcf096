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
