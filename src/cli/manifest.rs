//! Reading a manifest outside a cluster: AudienceSync and SegmentSync objects, and the Secrets
//! they reference (or environment variables standing in for them).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use serde::Deserialize;

use crate::crd::{AudienceSync, GROUP, OrderSync, SecretKeyRef, SegmentSync};
use crate::sync::Credentials;

/// The prefix of the environment variables that stand in for Secrets.
pub const ENV_PREFIX: &str = "AUDIENCE_OPERATOR_SECRET_";

/// The `apiVersion` of the sync kinds.
pub fn api_version() -> String {
    format!("{GROUP}/v1alpha1")
}

/// One sync of a manifest, in file order.
#[derive(Debug, Clone)]
pub enum SyncManifest {
    Audience(Box<AudienceSync>),
    Segment(Box<SegmentSync>),
    Order(Box<OrderSync>),
}

impl SyncManifest {
    pub fn kind(&self) -> &'static str {
        match self {
            SyncManifest::Audience(_) => "AudienceSync",
            SyncManifest::Segment(_) => "SegmentSync",
            SyncManifest::Order(_) => "OrderSync",
        }
    }

    pub fn name(&self) -> &str {
        let meta = match self {
            SyncManifest::Audience(s) => &s.metadata,
            SyncManifest::Segment(s) => &s.metadata,
            SyncManifest::Order(s) => &s.metadata,
        };
        meta.name.as_deref().unwrap_or("")
    }

    pub fn namespace(&self) -> Option<&str> {
        let meta = match self {
            SyncManifest::Audience(s) => &s.metadata,
            SyncManifest::Segment(s) => &s.metadata,
            SyncManifest::Order(s) => &s.metadata,
        };
        meta.namespace.as_deref()
    }
}

/// A Secret of the manifest: its keys with `stringData` merged over `data`, as the API server does.
#[derive(Debug, Clone)]
pub struct SecretManifest {
    pub name: String,
    pub namespace: Option<String>,
    pub data: BTreeMap<String, Vec<u8>>,
}

/// Everything a manifest holds that `sync` uses.
#[derive(Debug, Clone, Default)]
pub struct Manifests {
    pub syncs: Vec<SyncManifest>,
    pub secrets: Vec<SecretManifest>,
    /// Documents of other kinds, skipped (`Kind/name`).
    pub ignored: Vec<String>,
}

/// Why a manifest could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("document {doc}: not YAML: {source}")]
    Yaml {
        doc: usize,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("document {doc} ({kind} {name:?}): {message}")]
    Invalid {
        doc: usize,
        kind: String,
        name: String,
        message: String,
    },
    #[error(
        "no AudienceSync, SegmentSync or OrderSync in the manifest (apiVersion {})",
        api_version()
    )]
    NoSyncs,
}

/// Parses a multi-document YAML stream. `kind: List` documents are flattened.
pub fn parse(text: &str) -> Result<Manifests, ManifestError> {
    let mut manifests = Manifests::default();
    for (i, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let doc = i + 1;
        let value = serde_yaml::Value::deserialize(document)
            .map_err(|source| ManifestError::Yaml { doc, source })?;
        add(&mut manifests, doc, value)?;
    }
    if manifests.syncs.is_empty() {
        return Err(ManifestError::NoSyncs);
    }
    Ok(manifests)
}

fn text_of<'a>(value: &'a serde_yaml::Value, key: &str) -> &'a str {
    value.get(key).and_then(|v| v.as_str()).unwrap_or("")
}

fn add(
    manifests: &mut Manifests,
    doc: usize,
    value: serde_yaml::Value,
) -> Result<(), ManifestError> {
    if value.is_null() {
        return Ok(());
    }
    let kind = text_of(&value, "kind").to_string();
    let api = text_of(&value, "apiVersion").to_string();
    let name = value
        .get("metadata")
        .map(|m| text_of(m, "name"))
        .unwrap_or("")
        .to_string();
    let invalid = |message: String| ManifestError::Invalid {
        doc,
        kind: kind.clone(),
        name: name.clone(),
        message,
    };
    match kind.as_str() {
        "List" => {
            if let Some(items) = value.get("items").and_then(|i| i.as_sequence()) {
                for item in items.clone() {
                    add(manifests, doc, item)?;
                }
            }
            Ok(())
        }
        "AudienceSync" | "SegmentSync" | "OrderSync" => {
            if api != api_version() {
                return Err(invalid(format!(
                    "apiVersion {api:?} is not {}",
                    api_version()
                )));
            }
            if name.is_empty() {
                return Err(invalid("metadata.name is missing".into()));
            }
            // The API server's own checks first, so `sync -f` refuses what `kubectl apply` would.
            let json = serde_json::to_value(&value).map_err(|e| invalid(e.to_string()))?;
            let errors = super::crd_check::check(&kind, &json);
            if !errors.is_empty() {
                return Err(invalid(errors.join("; ")));
            }
            let sync = match kind.as_str() {
                "AudienceSync" => serde_yaml::from_value::<AudienceSync>(value)
                    .map(|s| SyncManifest::Audience(Box::new(s))),
                "SegmentSync" => serde_yaml::from_value::<SegmentSync>(value)
                    .map(|s| SyncManifest::Segment(Box::new(s))),
                _ => serde_yaml::from_value::<OrderSync>(value)
                    .map(|s| SyncManifest::Order(Box::new(s))),
            }
            .map_err(|e| invalid(e.to_string()))?;
            if manifests.syncs.iter().any(|s| {
                s.kind() == sync.kind() && s.name() == name && s.namespace() == sync.namespace()
            }) {
                return Err(invalid("appears twice in the manifest".into()));
            }
            manifests.syncs.push(sync);
            Ok(())
        }
        "Secret" if api == "v1" => {
            let secret: Secret =
                serde_yaml::from_value(value).map_err(|e| invalid(e.to_string()))?;
            if name.is_empty() {
                return Err(invalid("metadata.name is missing".into()));
            }
            let mut data: BTreeMap<String, Vec<u8>> = secret
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect();
            for (k, v) in secret.string_data.unwrap_or_default() {
                data.insert(k, v.into_bytes());
            }
            manifests.secrets.push(SecretManifest {
                name,
                namespace: secret.metadata.namespace,
                data,
            });
            Ok(())
        }
        "" => Err(invalid("a document without a kind".into())),
        _ => {
            manifests.ignored.push(format!("{kind}/{name}"));
            Ok(())
        }
    }
}

/// The environment variable standing in for key `key` of Secret `secret`:
/// `AUDIENCE_OPERATOR_SECRET_<SECRET>_<KEY>` in upper snake case (camelCase split at each capital,
/// every other character but letters and digits turned into `_`).
pub fn env_var_name(secret: &str, key: &str) -> String {
    format!("{ENV_PREFIX}{}_{}", upper_snake(secret), upper_snake(key))
}

fn upper_snake(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    let mut previous: Option<char> = None;
    for c in s.chars() {
        if c.is_ascii_uppercase()
            && previous.is_some_and(|p| p.is_ascii_lowercase() || p.is_ascii_digit())
        {
            out.push('_');
        }
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_uppercase());
        } else {
            out.push('_');
        }
        previous = Some(c);
    }
    out
}

/// Where a credential came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialOrigin {
    /// A Secret of the manifest.
    Manifest,
    /// An environment variable (named).
    Environment(String),
}

impl Manifests {
    /// The Secret `name` visible from a sync in `namespace` (namespaces must agree when both say one).
    pub fn secret(&self, name: &str, namespace: Option<&str>) -> Option<&SecretManifest> {
        self.secrets.iter().find(|s| {
            s.name == name
                && match (namespace, s.namespace.as_deref()) {
                    (Some(a), Some(b)) => a == b,
                    _ => true,
                }
        })
    }

    /// Reads one credential: from the manifest's Secret when it has one of that name, else from
    /// the environment (`env` looks a variable up). The message of an error names the Secret, the
    /// key and the variable, never a value.
    pub fn credentials(
        &self,
        role: &str,
        reference: &SecretKeyRef,
        default_key: &str,
        namespace: Option<&str>,
        env: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<(Credentials, CredentialOrigin), String> {
        let key = reference.key_or(default_key).to_string();
        let name = reference.name.clone();
        if let Some(secret) = self.secret(&name, namespace) {
            let data = secret.data.iter().map(|(k, v)| (k.clone(), v.clone()));
            return Credentials::from_secret_data(&name, &key, data)
                .map(|creds| (creds, CredentialOrigin::Manifest))
                .map_err(|why| format!("{role} credentials: Secret {name:?} {why}"));
        }
        let var = env_var_name(&name, &key);
        match env(&var).map(|v| v.trim().to_string()) {
            Some(value) if !value.is_empty() => Ok((
                Credentials {
                    secret_name: name,
                    data: BTreeMap::from([(key.clone(), value.clone())]),
                    key,
                    value,
                },
                CredentialOrigin::Environment(var),
            )),
            Some(_) => Err(format!(
                "{role} credentials: Secret {name:?} is not in the manifest and {var} is empty"
            )),
            None => Err(format!(
                "{role} credentials: Secret {name:?} (key {key:?}) is not in the manifest and {var} is not set; add the Secret to the manifest or export {var}"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"
# a comment before the first document
---
apiVersion: v1
kind: Secret
metadata:
  name: mailchimp-credentials
type: Opaque
stringData:
  apiKey: "  0123456789abcdef0123456789abcdef-us6 \n"
---
apiVersion: v1
kind: Secret
metadata:
  name: lightspeed
data:
  token: bHN4LXNhbmRib3gtdG9rZW4=   # lsx-sandbox-token
  binary: //79
---
apiVersion: sync.audience-operator.io/v1alpha1
kind: AudienceSync
metadata:
  name: lightspeed-to-mailchimp
spec:
  source:
    lightspeedXSeries:
      domainPrefix: demo
      credentialsSecretRef: {name: lightspeed}
  target:
    mailchimp:
      audienceId: a1b2c3
      credentialsSecretRef: {name: mailchimp-credentials}
  mode: mirror
---
apiVersion: v1
kind: ConfigMap
metadata: {name: unrelated}
---
apiVersion: sync.audience-operator.io/v1alpha1
kind: SegmentSync
metadata:
  name: vip
spec:
  source:
    retailcrm:
      account: demo
      credentialsSecretRef: {name: retailcrm}
  sourceSegment: {retailcrmSegment: vip}
  target:
    mailchimp:
      audienceId: a1b2c3
      segment: VIP
      credentialsSecretRef: {name: mailchimp-credentials}
  mode: union
---
"#;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn parses_syncs_and_secrets_in_order() {
        let m = parse(MANIFEST).unwrap();
        assert_eq!(m.syncs.len(), 2);
        assert_eq!(m.syncs[0].kind(), "AudienceSync");
        assert_eq!(m.syncs[0].name(), "lightspeed-to-mailchimp");
        assert_eq!(m.syncs[1].kind(), "SegmentSync");
        match &m.syncs[0] {
            SyncManifest::Audience(s) => {
                assert_eq!(s.spec.mode, crate::crd::AudienceMode::Mirror);
                assert!(s.spec.safety.enabled, "defaults apply");
            }
            _ => unreachable!(),
        }
        assert_eq!(m.ignored, vec!["ConfigMap/unrelated".to_string()]);
        assert_eq!(m.secrets.len(), 2);
    }

    #[test]
    fn credentials_from_string_data_and_base64_data() {
        let m = parse(MANIFEST).unwrap();
        let mc = SecretKeyRef {
            name: "mailchimp-credentials".into(),
            key: None,
        };
        let (creds, origin) = m
            .credentials("target", &mc, "apiKey", None, &no_env)
            .unwrap();
        assert_eq!(creds.value, "0123456789abcdef0123456789abcdef-us6");
        assert_eq!(creds.key, "apiKey");
        assert_eq!(origin, CredentialOrigin::Manifest);

        let ls = SecretKeyRef {
            name: "lightspeed".into(),
            key: None,
        };
        let (creds, _) = m
            .credentials("source", &ls, "token", None, &no_env)
            .unwrap();
        assert_eq!(creds.value, "lsx-sandbox-token");
        assert!(
            !creds.data.contains_key("binary"),
            "non-UTF-8 values are left out"
        );

        let err = m
            .credentials("source", &ls, "apiKey", None, &no_env)
            .unwrap_err();
        assert!(err.contains("has no non-empty key \"apiKey\""), "{err}");
        assert!(err.contains("token"), "lists the keys it has: {err}");
        assert!(!err.contains("lsx-sandbox-token"), "{err}");
    }

    #[test]
    fn a_missing_secret_falls_back_to_the_environment() {
        let m = parse(MANIFEST).unwrap();
        let crm = SecretKeyRef {
            name: "retailcrm".into(),
            key: None,
        };
        let err = m
            .credentials("source", &crm, "apiKey", None, &no_env)
            .unwrap_err();
        assert!(err.contains("Secret \"retailcrm\""), "{err}");
        assert!(
            err.contains("AUDIENCE_OPERATOR_SECRET_RETAILCRM_API_KEY"),
            "{err}"
        );

        let env = |name: &str| {
            (name == "AUDIENCE_OPERATOR_SECRET_RETAILCRM_API_KEY").then(|| " k3y ".to_string())
        };
        let (creds, origin) = m.credentials("source", &crm, "apiKey", None, &env).unwrap();
        assert_eq!(creds.value, "k3y");
        assert_eq!(
            origin,
            CredentialOrigin::Environment("AUDIENCE_OPERATOR_SECRET_RETAILCRM_API_KEY".into())
        );
        let empty = |_: &str| Some("  ".to_string());
        assert!(
            m.credentials("source", &crm, "apiKey", None, &empty)
                .unwrap_err()
                .contains("is empty")
        );
    }

    #[test]
    fn namespaces_must_agree_when_both_are_given() {
        let m = parse(
            "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: a}\nstringData: {k: v}\n---\n\
             apiVersion: sync.audience-operator.io/v1alpha1\nkind: AudienceSync\nmetadata: {name: x}\n\
             spec:\n  source: {lightspeedXSeries: {domainPrefix: d, credentialsSecretRef: {name: s}}}\n\
             \x20 target: {mailchimp: {audienceId: a, credentialsSecretRef: {name: s}}}\n",
        )
        .unwrap();
        assert!(m.secret("s", Some("a")).is_some());
        assert!(m.secret("s", None).is_some());
        assert!(m.secret("s", Some("b")).is_none());
    }

    #[test]
    fn env_var_names_are_upper_snake() {
        assert_eq!(
            env_var_name("mailchimp-credentials", "apiKey"),
            "AUDIENCE_OPERATOR_SECRET_MAILCHIMP_CREDENTIALS_API_KEY"
        );
        assert_eq!(
            env_var_name("shopify.demo", "accessToken"),
            "AUDIENCE_OPERATOR_SECRET_SHOPIFY_DEMO_ACCESS_TOKEN"
        );
        assert_eq!(
            env_var_name("lightspeed-x", "token"),
            "AUDIENCE_OPERATOR_SECRET_LIGHTSPEED_X_TOKEN"
        );
        assert_eq!(
            env_var_name("s3", "oauth2Token"),
            "AUDIENCE_OPERATOR_SECRET_S3_OAUTH2_TOKEN"
        );
    }

    #[test]
    fn refuses_what_it_cannot_use() {
        let no_syncs = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n";
        assert!(matches!(parse(no_syncs), Err(ManifestError::NoSyncs)));
        let wrong_version = "apiVersion: sync.audience-operator.io/v1\nkind: AudienceSync\nmetadata: {name: x}\nspec: {}\n";
        let err = parse(wrong_version).unwrap_err().to_string();
        assert!(err.contains("apiVersion"), "{err}");
        let bad_spec = "apiVersion: sync.audience-operator.io/v1alpha1\nkind: AudienceSync\nmetadata: {name: x}\nspec: {mode: sideways}\n";
        let err = parse(bad_spec).unwrap_err().to_string();
        assert!(err.contains("document 1 (AudienceSync \"x\")"), "{err}");
        let bad_base64 = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {k: '%%%'}\n";
        assert!(parse(bad_base64).is_err());
        assert!(parse("a: [unclosed").is_err());
    }
}
