//! The secrets that verify deliveries, looked up by the caller.

use std::fmt;
use std::sync::Arc;

use crate::hint::Vendor;

/// A shared secret (Shopify app client secret, Mailchimp URL secret, Lightspeed X client secret).
/// Its `Debug` never shows the bytes, so it can sit in structs that are logged.
#[derive(Clone)]
pub struct Secret(Arc<[u8]>);

impl Secret {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Secret {
        Secret(Arc::from(bytes.into()))
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Secret {
        Secret::new(s.as_bytes().to_vec())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Secret {
        Secret::new(s.into_bytes())
    }
}

/// "Which secrets may verify a delivery for this account?" Supplied by the caller (the operator
/// maps it to the Secrets its syncs reference). Several candidates are allowed: two syncs of one
/// shop may use different apps, and a rotation has an old and a new secret for a while. An empty
/// answer means the account is unknown here and the delivery is refused (401).
///
/// Called on the request path for every delivery, so it must answer from memory (a cache or a
/// reflector store), never block on I/O.
pub trait SecretResolver: Send + Sync + 'static {
    fn secrets(&self, vendor: Vendor, account: &str) -> Vec<Secret>;
}

impl<F> SecretResolver for F
where
    F: Fn(Vendor, &str) -> Vec<Secret> + Send + Sync + 'static,
{
    fn secrets(&self, vendor: Vendor, account: &str) -> Vec<Secret> {
        self(vendor, account)
    }
}
