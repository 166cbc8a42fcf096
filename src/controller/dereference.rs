//! Dereference: the Secrets a sync points at, in the sync's namespace: from the store the
//! controller's Secret watch keeps (no API call a run), else read from the API server (a Secret
//! the watch has not seen yet, or one that is missing or has not opted in, whose error names why).

use std::sync::Arc;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client};

use crate::crd::{CREDENTIALS_LABEL, SecretKeyRef};
use crate::sync::{CredentialSource, Credentials, Role, SyncError};

/// Credentials from the Secrets of one namespace.
pub struct KubeSecrets {
    pub client: Client,
    pub namespace: String,
    /// The opted-in Secrets the controller watches (`None`: always ask the API server).
    pub store: Option<Store<Secret>>,
}

impl KubeSecrets {
    /// The Secret `name`: the watch's copy when it has one, else the API server's.
    async fn secret(&self, role: &str, name: &str) -> Result<Arc<Secret>, SyncError> {
        let ns = &self.namespace;
        if let Some(kept) = self
            .store
            .as_ref()
            .and_then(|s| s.get(&ObjectRef::new(name).within(ns)))
        {
            return Ok(kept);
        }
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), ns);
        match secrets.get_opt(name).await {
            Ok(Some(s)) => Ok(Arc::new(s)),
            Ok(None) => Err(SyncError::CredentialsMissing(format!(
                "{role} credentials: Secret {ns}/{name} not found"
            ))),
            Err(kube::Error::Api(e)) if e.code == 403 => Err(SyncError::CredentialsMissing(
                format!("{role} credentials: not allowed to read Secret {ns}/{name}"),
            )),
            Err(e) => Err(e.into()),
        }
    }
}

#[async_trait]
impl CredentialSource for KubeSecrets {
    async fn credentials(
        &self,
        role: Role,
        reference: &SecretKeyRef,
        default_key: &str,
    ) -> Result<Credentials, SyncError> {
        let ns = &self.namespace;
        let role = role.as_str();
        let secret = self.secret(role, &reference.name).await?;
        let opted_in = secret
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(CREDENTIALS_LABEL))
            .is_some_and(|v| v == "true");
        if !opted_in {
            return Err(SyncError::CredentialsNotAllowed(format!(
                "{role} credentials: Secret {ns}/{name} is not labelled {CREDENTIALS_LABEL}=true; the operator reads only Secrets that opt in: kubectl -n {ns} label secret {name} {CREDENTIALS_LABEL}=true",
                name = reference.name
            )));
        }
        let data = secret
            .data
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0));
        Credentials::from_secret_data(&reference.name, reference.key_or(default_key), data).map_err(
            |why| {
                SyncError::CredentialsMissing(format!(
                    "{role} credentials: Secret {ns}/{} {why}",
                    reference.name
                ))
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::ByteString;
    use kube::runtime::watcher;

    use super::*;

    fn secret(name: &str, key: &str) -> Secret {
        let mut s = Secret::default();
        s.metadata.name = Some(name.into());
        s.metadata.namespace = Some("shop".into());
        s.metadata.labels = Some(BTreeMap::from([(CREDENTIALS_LABEL.into(), "true".into())]));
        s.data = Some(BTreeMap::from([(
            "apiKey".into(),
            ByteString(key.as_bytes().to_vec()),
        )]));
        s
    }

    /// An API server nobody answers at: a read that reaches it fails.
    fn unreachable_client() -> Client {
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        Client::try_from(config).unwrap()
    }

    fn reference(name: &str) -> SecretKeyRef {
        SecretKeyRef {
            name: name.into(),
            key: None,
        }
    }

    #[tokio::test]
    async fn a_watched_secret_is_read_from_the_store_without_an_api_call() {
        let (store, mut writer) = kube::runtime::reflector::store::<Secret>();
        writer.apply_watcher_event(&watcher::Event::Apply(secret("mailchimp", "k-us1")));
        let secrets = KubeSecrets {
            client: unreachable_client(),
            namespace: "shop".into(),
            store: Some(store),
        };
        let creds = secrets
            .credentials(Role::Target, &reference("mailchimp"), "apiKey")
            .await
            .expect("from the store");
        assert_eq!(creds.value, "k-us1");
        // One the watch has not seen goes to the API server (here: nobody answers).
        assert!(
            secrets
                .credentials(Role::Target, &reference("klaviyo"), "apiKey")
                .await
                .is_err()
        );
    }
}
