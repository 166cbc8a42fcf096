//! Dereference: the Secrets a sync points at, read from Kubernetes in the sync's namespace.

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};

use crate::crd::{CREDENTIALS_LABEL, SecretKeyRef};
use crate::sync::{CredentialSource, Credentials, Role, SyncError};

/// Credentials from the Secrets of one namespace.
pub struct KubeSecrets {
    pub client: Client,
    pub namespace: String,
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
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), ns);
        let secret = match secrets.get_opt(&reference.name).await {
            Ok(Some(s)) => s,
            Ok(None) => {
                return Err(SyncError::CredentialsMissing(format!(
                    "{role} credentials: Secret {ns}/{} not found",
                    reference.name
                )));
            }
            Err(kube::Error::Api(e)) if e.code == 403 => {
                return Err(SyncError::CredentialsMissing(format!(
                    "{role} credentials: not allowed to read Secret {ns}/{}",
                    reference.name
                )));
            }
            Err(e) => return Err(e.into()),
        };
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
