//! The activity log in the cluster: a ConfigMap per sync, owned by it (deleted with it), holding
//! the last record changes as JSON lines (`audience_core::activity`) under [`DATA_KEY`].
//!
//! `kubectl get configmap NAME-activity -o jsonpath='{.data.entries\.jsonl}'` shows it;
//! `audience-operator activity NAME` reads it through [`read`]. The ConfigMap is written with
//! server-side apply by the operator's field manager, only after a run that changed records.

use std::collections::BTreeMap;

use audience_core::activity::{ActivityEntry, ActivityLimits, merge_lines, parse_lines, stamp};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::DeleteParams;
use kube::{Api, Client, Resource, ResourceExt};

use crate::crd::audience::ActivityLogSpec;
use crate::owned_configmap;

/// The data key of the JSON lines.
pub const DATA_KEY: &str = "entries.jsonl";
/// The label naming the sync a log belongs to (its name, made a valid label value).
pub const FOR_LABEL: &str = "sync.audience-operator.io/activity-for";
/// The label naming the sync's kind (`AudienceSync`, `SegmentSync`).
pub const KIND_LABEL: &str = "sync.audience-operator.io/kind";
/// Set to `"true"` on a log whose addresses are SHA-256 hex digests.
pub const HASHED_ANNOTATION: &str = "sync.audience-operator.io/activity-hashed";

const NAME_MAX: usize = 253;
const LABEL_MAX: usize = 63;

fn short_hash(s: &str) -> String {
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(s.as_bytes()))
}

/// The ConfigMap of the sync `name` of `kind`: `<name>-activity` for an AudienceSync,
/// `<name>-segment-activity` for a SegmentSync; a name that would pass Kubernetes' 253
/// characters is cut and a hash of the whole name appended, so two long names never share one.
pub fn configmap_name(kind: &str, name: &str) -> String {
    let suffix = match kind {
        "AudienceSync" => "-activity".to_string(),
        other => format!(
            "-{}-activity",
            other.trim_end_matches("Sync").to_ascii_lowercase()
        ),
    };
    object_name(name, &suffix)
}

/// `{name}{suffix}` as a Kubernetes object name: a name that would pass 253 characters is cut
/// and a hash of the whole name appended, so two long names never share one.
pub fn object_name(name: &str, suffix: &str) -> String {
    let full = format!("{name}{suffix}");
    if full.len() <= NAME_MAX {
        return full;
    }
    let hash = short_hash(name);
    let keep = NAME_MAX - suffix.len() - hash.len() - 1;
    let prefix = name[..keep].trim_end_matches(['-', '.']);
    format!("{prefix}-{hash}{suffix}")
}

/// `name` as a label value (63 characters at most, alphanumeric at both ends): cut with a hash
/// when longer.
pub fn label_value(name: &str) -> String {
    if name.len() <= LABEL_MAX {
        return name.to_string();
    }
    let hash = short_hash(name);
    let prefix = name[..LABEL_MAX - hash.len() - 1].trim_end_matches(['-', '.']);
    format!("{prefix}-{hash}")
}

/// Why the log could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ActivityError {
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error("ConfigMap {0} exists and is not owned by this sync; not overwriting it")]
    NotOurs(String),
}

/// After a run: appends `entries` (stamped with `run`, hashed when the spec says) to the log of
/// `sync`, or deletes the log when the spec turned it off. No entries, no write.
pub async fn record<K>(
    client: &Client,
    sync: &K,
    spec: &ActivityLogSpec,
    mut entries: Vec<ActivityEntry>,
    run: &str,
) -> Result<(), ActivityError>
where
    K: Resource<DynamicType = ()>,
{
    let namespace = sync.namespace().unwrap_or_default();
    let kind = K::kind(&()).to_string();
    let name = configmap_name(&kind, &sync.name_any());
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    if !spec.enabled {
        return match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(e.into()),
        };
    }
    if entries.is_empty() {
        return Ok(());
    }
    let existing = api.get_opt(&name).await?;
    if let Some(cm) = &existing
        && !owned_configmap::is_owned_by(cm, sync)
    {
        return Err(ActivityError::NotOurs(name));
    }
    let was_hashed = existing.as_ref().is_some_and(|cm| {
        cm.annotations().get(HASHED_ANNOTATION).map(String::as_str) == Some("true")
    });
    // Turning hashing on drops the plain entries (and off, the hashed ones): one log never mixes.
    let old = existing
        .as_ref()
        .filter(|_| was_hashed == spec.hash_emails)
        .and_then(|cm| cm.data.as_ref())
        .and_then(|d| d.get(DATA_KEY))
        .cloned()
        .unwrap_or_default();
    stamp(&mut entries, run, spec.hash_emails);
    let data = merge_lines(&old, &entries, ActivityLimits::default());
    let cm = owned_configmap::manifest(
        sync,
        &name,
        FOR_LABEL,
        serde_json::json!({ HASHED_ANNOTATION: spec.hash_emails.to_string() }),
        serde_json::json!({ "data": { DATA_KEY: data } }),
    );
    owned_configmap::apply(&api, &name, &cm).await?;
    Ok(())
}

/// The stored log of a sync: its entries (oldest first) and whether addresses are hashed;
/// `None` when the sync has no log (yet).
pub async fn read(
    client: &Client,
    namespace: &str,
    kind: &str,
    name: &str,
) -> Result<Option<(Vec<ActivityEntry>, bool)>, kube::Error> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let Some(cm) = api.get_opt(&configmap_name(kind, name)).await? else {
        return Ok(None);
    };
    let hashed = cm.annotations().get(HASHED_ANNOTATION).map(String::as_str) == Some("true");
    let data: BTreeMap<String, String> = cm.data.unwrap_or_default();
    let entries = parse_lines(data.get(DATA_KEY).map(String::as_str).unwrap_or(""));
    Ok(Some((entries, hashed)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_the_limits_and_stay_distinct() {
        assert_eq!(configmap_name("AudienceSync", "shop"), "shop-activity");
        assert_eq!(configmap_name("SegmentSync", "vip"), "vip-segment-activity");
        let long_a = format!("{}a", "x".repeat(252));
        let long_b = format!("{}b", "x".repeat(252));
        let a = configmap_name("AudienceSync", &long_a);
        assert!(a.len() <= 253 && a.ends_with("-activity"));
        assert_ne!(a, configmap_name("AudienceSync", &long_b));
        assert_eq!(label_value("shop"), "shop");
        let l = label_value(&long_a);
        assert!(l.len() <= 63);
        assert_ne!(l, label_value(&long_b));
    }
}
