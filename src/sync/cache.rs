//! The connectors of each sync, kept between its runs.
//!
//! Building a sync's connectors for every run repeats the same work for a thousand syncs every
//! few minutes, and drops what a connector has learnt that stays true (a Klaviyo list's id, the
//! query costs Shopify reported). So the controller keeps each sync's connectors, keyed by the
//! sync, while the [`Resolved::fingerprint`] of what they were built from (each connection's spec
//! and the Secret data read for it) stays the same: an edited connection or a rotated Secret
//! builds new ones at the next run. What each run must read afresh is forgotten by the
//! connectors' own `reset_run_state`. The HTTP clients and per-key rate budgets are shared by every
//! connector of the process already (`audience_connectors::http`), so kept connectors add no
//! connection pools.
//!
//! One sync's runs never overlap (the controller reconciles an object once at a time), so a kept
//! connector serves one run at a time and its `reset_run_state` never races a run. A run that fails
//! drops the sync's connectors: whatever went wrong, the next run starts from new ones.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use url::Url;

use super::{ConnectorFactory, CredentialSource, Prepared, SyncError, SyncObject, resolve};

/// Each sync's connectors, by the sync's key (`Kind/namespace/name`).
#[derive(Default)]
pub struct ConnectorCache {
    entries: Mutex<HashMap<String, Kept>>,
    builds: AtomicU64,
}

struct Kept {
    fingerprint: u128,
    prepared: Arc<Prepared>,
}

impl ConnectorCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// The connectors of `obj` (kept under `key`): the kept ones while they were built from the
    /// same connections and credentials, else new ones (kept for the next run).
    pub async fn prepare<K: SyncObject>(
        &self,
        key: &str,
        obj: &K,
        credentials: &dyn CredentialSource,
        connectors: &dyn ConnectorFactory,
        sandbox: Option<&Url>,
    ) -> Result<Arc<Prepared>, SyncError> {
        let resolved = match resolve(obj, credentials).await {
            Ok(resolved) => resolved,
            Err(e) => {
                self.forget(key);
                return Err(e);
            }
        };
        let fingerprint = resolved.fingerprint(sandbox);
        if let Some(kept) = self.entries.lock().expect("connector cache lock").get(key)
            && kept.fingerprint == fingerprint
        {
            return Ok(kept.prepared.clone());
        }
        let prepared = match resolved.build(connectors, sandbox) {
            Ok(prepared) => Arc::new(prepared),
            Err(e) => {
                self.forget(key);
                return Err(e);
            }
        };
        self.builds.fetch_add(1, Ordering::Relaxed);
        self.entries.lock().expect("connector cache lock").insert(
            key.to_string(),
            Kept {
                fingerprint,
                prepared: prepared.clone(),
            },
        );
        Ok(prepared)
    }

    /// Drops the connectors kept for `key` (its run failed, or it is gone).
    pub fn forget(&self, key: &str) {
        self.entries
            .lock()
            .expect("connector cache lock")
            .remove(key);
    }

    /// Keeps only the syncs whose key `keep` accepts.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.entries
            .lock()
            .expect("connector cache lock")
            .retain(|key, _| keep(key));
    }

    /// Syncs with connectors kept.
    pub fn len(&self) -> usize {
        self.entries.lock().expect("connector cache lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Connector sets built so far (each a sync's sources and target).
    pub fn builds(&self) -> u64 {
        self.builds.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use async_trait::async_trait;
    use serde_json::json;

    use super::*;
    use crate::crd::{AudienceSync, SecretKeyRef};
    use crate::sync::{Credentials, DefaultConnectors, Role};

    /// Secrets by name, editable between runs.
    #[derive(Default)]
    struct Secrets(Mutex<BTreeMap<String, String>>);

    impl Secrets {
        fn set(&self, name: &str, value: &str) {
            self.0
                .lock()
                .unwrap()
                .insert(name.to_string(), value.to_string());
        }
    }

    #[async_trait]
    impl CredentialSource for Secrets {
        async fn credentials(
            &self,
            _role: Role,
            reference: &SecretKeyRef,
            default_key: &str,
        ) -> Result<Credentials, SyncError> {
            let key = reference.key.clone().unwrap_or(default_key.to_string());
            let value = self
                .0
                .lock()
                .unwrap()
                .get(&reference.name)
                .cloned()
                .ok_or_else(|| SyncError::CredentialsMissing(reference.name.clone()))?;
            Ok(Credentials {
                secret_name: reference.name.clone(),
                key: key.clone(),
                value: value.clone(),
                data: BTreeMap::from([(key, value)]),
            })
        }
    }

    fn sync(endpoint: Option<&str>) -> AudienceSync {
        let mut mailchimp = json!({
            "audienceId": "aud1",
            "credentialsSecretRef": {"name": "mailchimp"},
        });
        if let Some(endpoint) = endpoint {
            mailchimp["endpoint"] = json!(endpoint);
        }
        serde_json::from_value(json!({
            "apiVersion": "audience-operator.io/v1alpha1",
            "kind": "AudienceSync",
            "metadata": {"name": "s", "namespace": "ns"},
            "spec": {
                "source": {"shopify": {
                    "shopDomain": "demo.myshopify.com",
                    "credentialsSecretRef": {"name": "shopify"},
                }},
                "target": {"mailchimp": mailchimp},
            },
        }))
        .expect("an AudienceSync")
    }

    fn secrets() -> Secrets {
        let secrets = Secrets::default();
        secrets.set("shopify", "shpat_0123456789");
        secrets.set("mailchimp", "0123456789abcdef0123456789abcdef-us6");
        secrets
    }

    const KEY: &str = "AudienceSync/ns/s";

    #[tokio::test]
    async fn a_syncs_connectors_are_kept_until_its_connection_or_secret_changes() {
        let cache = ConnectorCache::new();
        let factory = DefaultConnectors::default();
        let secrets = secrets();
        let obj = sync(None);
        let first = cache
            .prepare(KEY, &obj, &secrets, &factory, None)
            .await
            .unwrap();
        let second = cache
            .prepare(KEY, &obj, &secrets, &factory, None)
            .await
            .unwrap();
        assert!(Arc::ptr_eq(&first, &second), "the second run reuses them");
        assert_eq!(cache.builds(), 1);

        // A rotated Secret builds new ones, once.
        secrets.set("mailchimp", "fedcba9876543210fedcba9876543210-us6");
        let rotated = cache
            .prepare(KEY, &obj, &secrets, &factory, None)
            .await
            .unwrap();
        assert!(!Arc::ptr_eq(&second, &rotated));
        let again = cache
            .prepare(KEY, &obj, &secrets, &factory, None)
            .await
            .unwrap();
        assert!(Arc::ptr_eq(&rotated, &again));
        assert_eq!(cache.builds(), 2);

        // So does an edited connection, and another sandbox.
        let moved = sync(Some("https://us6.api.mailchimp.com"));
        cache
            .prepare(KEY, &moved, &secrets, &factory, None)
            .await
            .unwrap();
        assert_eq!(cache.builds(), 3);
        let sandbox = Url::parse("http://127.0.0.1:8089/").unwrap();
        cache
            .prepare(KEY, &moved, &secrets, &factory, Some(&sandbox))
            .await
            .unwrap();
        assert_eq!(cache.builds(), 4);
        assert_eq!(cache.len(), 1, "one entry per sync");
    }

    #[tokio::test]
    async fn forgotten_failed_and_pruned_syncs_build_anew() {
        let cache = ConnectorCache::new();
        let factory = DefaultConnectors::default();
        let secrets = secrets();
        let obj = sync(None);
        cache
            .prepare(KEY, &obj, &secrets, &factory, None)
            .await
            .unwrap();
        cache.forget(KEY);
        assert!(cache.is_empty());
        cache
            .prepare(KEY, &obj, &secrets, &factory, None)
            .await
            .unwrap();
        assert_eq!(cache.builds(), 2);

        // Credentials that no longer resolve drop what was kept.
        let missing = Secrets::default();
        missing.set("shopify", "shpat_0123456789");
        assert!(
            cache
                .prepare(KEY, &obj, &missing, &factory, None)
                .await
                .is_err()
        );
        assert!(cache.is_empty());

        cache
            .prepare(KEY, &obj, &secrets, &factory, None)
            .await
            .unwrap();
        cache
            .prepare("AudienceSync/ns/other", &obj, &secrets, &factory, None)
            .await
            .unwrap();
        cache.retain(|key| key != KEY);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn the_fingerprint_tells_apart_what_concatenates_alike() {
        // A name and value that run together differently digest differently.
        let mut a = Digest::default();
        a.part("ab");
        a.part("c");
        let mut b = Digest::default();
        b.part("a");
        b.part("bc");
        assert_ne!(a.0, b.0);
    }

    use crate::sync::Digest;
}
