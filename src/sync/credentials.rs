//! The credentials a sync's connectors are built with, and where they come from: Kubernetes
//! Secrets in the controller, the manifest's Secrets or environment variables in `sync -f`. Both
//! turn a Secret's data into [`Credentials`] the same way ([`Credentials::from_secret_data`]).

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;

use super::error::SyncError;
use crate::crd::SecretKeyRef;

/// Which side of a sync a credential unlocks (for messages and reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Source,
    Target,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Source => "source",
            Role::Target => "target",
        }
    }
}

/// The data of a Secret a sync references, with the one key the spec points at.
#[derive(Clone)]
pub struct Credentials {
    /// The Secret's name (for messages).
    pub secret_name: String,
    /// The key read (the spec's `key`, or the vendor's default).
    pub key: String,
    /// The value under `key`, trimmed.
    pub value: String,
    /// Every key of the Secret that holds UTF-8 text (for vendors that need more than one value).
    pub data: BTreeMap<String, String>,
}

impl Credentials {
    /// The credentials under `key` of a Secret's data, or why there are none (naming the key and
    /// the keys there are, never a value; the caller names the Secret). Keys that are not UTF-8
    /// text are left out.
    pub fn from_secret_data(
        secret_name: &str,
        key: &str,
        data: impl IntoIterator<Item = (String, Vec<u8>)>,
    ) -> Result<Credentials, String> {
        let data: BTreeMap<String, String> = data
            .into_iter()
            .filter_map(|(k, v)| String::from_utf8(v).ok().map(|v| (k, v)))
            .collect();
        let value = data
            .get(key)
            .map(|v| v.trim().to_string())
            .unwrap_or_default();
        if value.is_empty() {
            let keys: Vec<&str> = data.keys().map(String::as_str).collect();
            return Err(format!(
                "has no non-empty key {key:?} (it has: {})",
                if keys.is_empty() {
                    "no keys".to_string()
                } else {
                    keys.join(", ")
                }
            ));
        }
        Ok(Credentials {
            secret_name: secret_name.to_string(),
            key: key.to_string(),
            value,
            data,
        })
    }

    /// Another key of the same Secret.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.data.get(key).map(String::as_str)
    }

    /// `text` with every value of the Secret (four characters or more) masked.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        let values =
            std::iter::once(self.value.as_str()).chain(self.data.values().map(String::as_str));
        for value in values {
            let value = value.trim();
            if value.chars().count() >= 4 && out.contains(value) {
                out = out.replace(value, "<redacted>");
            }
        }
        out
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("secret_name", &self.secret_name)
            .field("key", &self.key)
            .field("value", &"<redacted>")
            .field("keys", &self.data.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Where a sync's credentials are read from.
#[async_trait]
pub trait CredentialSource: Send + Sync {
    /// The credentials `reference` points at (its key, or `default_key`). A missing Secret or key
    /// is [`SyncError::CredentialsMissing`] with a message naming them.
    async fn credentials(
        &self,
        role: Role,
        reference: &SecretKeyRef,
        default_key: &str,
    ) -> Result<Credentials, SyncError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "s3cr3t-Value-0f-the-Secret";

    fn data(pairs: &[(&str, &[u8])]) -> Vec<(String, Vec<u8>)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_vec()))
            .collect()
    }

    #[test]
    fn the_key_is_read_trimmed_and_binary_keys_are_left_out() {
        let creds = Credentials::from_secret_data(
            "vendor",
            "apiKey",
            data(&[("apiKey", b"  key-1 \n"), ("binary", &[0xff, 0xfe])]),
        )
        .unwrap();
        assert_eq!(creds.value, "key-1");
        assert_eq!(creds.get("binary"), None);
        assert!(!format!("{creds:?}").contains("key-1"));
    }

    #[test]
    fn a_missing_or_empty_key_names_the_secret_and_its_keys_not_values() {
        let err = Credentials::from_secret_data(
            "vendor",
            "apiKey",
            data(&[("token", SECRET.as_bytes())]),
        )
        .unwrap_err();
        assert!(err.contains("\"apiKey\"") && err.contains("token"), "{err}");
        assert!(!err.contains(SECRET), "{err}");
        let err = Credentials::from_secret_data("vendor", "apiKey", data(&[("apiKey", b"  ")]))
            .unwrap_err();
        assert!(err.contains("no non-empty key"), "{err}");
        let err = Credentials::from_secret_data("vendor", "apiKey", Vec::new()).unwrap_err();
        assert!(err.contains("no keys"), "{err}");
    }

    #[test]
    fn redaction_masks_every_value_of_the_secret() {
        let creds = Credentials::from_secret_data(
            "vendor",
            "apiKey",
            data(&[
                ("apiKey", SECRET.as_bytes()),
                ("other", b"another-secret"),
                ("short", b"ab"),
            ]),
        )
        .unwrap();
        let text = format!("failed with {SECRET} and another-secret near ab");
        assert_eq!(
            creds.redact(&text),
            "failed with <redacted> and <redacted> near ab"
        );
    }
}
