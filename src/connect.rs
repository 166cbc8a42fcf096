//! Building connectors from a sync's spec and the credentials read from its Secret.
//!
//! The signatures are what the controller calls; the bodies are filled by the connector/CLI
//! engineer. `sandbox` (the `--sandbox URL` flag) sends every vendor call to the simulators
//! served at that URL (under `/{vendor}`), overriding any `endpoint` in the spec.

use std::collections::BTreeMap;
use std::fmt;

use audience_core::{Source, Target};
use url::Url;

use crate::crd::{AudienceTarget, SourceSpec};

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
    /// Another key of the same Secret.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.data.get(key).map(String::as_str)
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

/// Why a connector could not be built. Messages never contain a secret.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The spec names no usable source or target.
    #[error("invalid connection settings: {0}")]
    Invalid(String),
    /// The credentials are unusable as given (e.g. a Mailchimp key without a data-centre suffix).
    #[error("unusable credentials: {0}")]
    BadCredentials(String),
    /// This build cannot talk to that vendor (yet).
    #[error("unsupported: {0}")]
    Unsupported(String),
}

/// Builds the source a spec describes.
pub fn build_source(
    spec: &SourceSpec,
    creds: &Credentials,
    sandbox: Option<&Url>,
) -> Result<Box<dyn Source>, ConnectError> {
    let _ = (creds, sandbox);
    Err(ConnectError::Unsupported(format!(
        "source {} (connectors not yet wired)",
        spec.kind().map(|k| k.as_str()).unwrap_or("none")
    )))
}

/// Builds the target a spec describes (a SegmentSync's target converts to an [`AudienceTarget`]).
pub fn build_target(
    spec: &AudienceTarget,
    creds: &Credentials,
    sandbox: Option<&Url>,
) -> Result<Box<dyn Target>, ConnectError> {
    let _ = (spec, creds, sandbox);
    Err(ConnectError::Unsupported(
        "target mailchimp (connectors not yet wired)".into(),
    ))
}

/// Builds connectors for the controller. The default calls [`build_source`] and [`build_target`];
/// tests may inject scripted connectors.
pub trait ConnectorFactory: Send + Sync {
    fn source(
        &self,
        spec: &SourceSpec,
        creds: &Credentials,
        sandbox: Option<&Url>,
    ) -> Result<Box<dyn Source>, ConnectError>;

    fn target(
        &self,
        spec: &AudienceTarget,
        creds: &Credentials,
        sandbox: Option<&Url>,
    ) -> Result<Box<dyn Target>, ConnectError>;
}

/// The real connectors.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultConnectors;

impl ConnectorFactory for DefaultConnectors {
    fn source(
        &self,
        spec: &SourceSpec,
        creds: &Credentials,
        sandbox: Option<&Url>,
    ) -> Result<Box<dyn Source>, ConnectError> {
        build_source(spec, creds, sandbox)
    }

    fn target(
        &self,
        spec: &AudienceTarget,
        creds: &Credentials,
        sandbox: Option<&Url>,
    ) -> Result<Box<dyn Target>, ConnectError> {
        build_target(spec, creds, sandbox)
    }
}
