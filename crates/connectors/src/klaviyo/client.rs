//! The Klaviyo HTTP client: one place that builds requests (base URL, `Klaviyo-API-Key` auth, the
//! `revision` header, JSON:API media types), paces them per endpoint, sends them through the shared
//! key budget and retry loop of [`crate::http`], and turns an answer into a value or a
//! [`ConnectorError`] that names the endpoint and never the key.

use std::sync::Arc;

use audience_core::{ConnectorError, ErrorKind};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use reqwest::{Method, Response, StatusCode};
use serde::de::DeserializeOwned;

use super::pacing::{self, Window};
use super::wire::ErrorDocument;
use crate::http::{self, KeyBudget, RetryPolicy, Verdict};

pub(crate) const VENDOR: &str = "klaviyo";

/// JSON:API's media type, which Klaviyo requires on bodies and answers with.
pub(crate) const JSON_API: &str = "application/vnd.api+json";

/// Largest error body read to find the vendor's message.
const MAX_ERROR_BODY: usize = 16 * 1024;

/// A request: method, concrete path (under the base URL), route template (for errors, metrics and
/// pacing), query pairs and an optional body.
pub(crate) struct Call<'a> {
    pub method: Method,
    pub path: String,
    pub endpoint: &'static str,
    /// The pacing window (usually the endpoint; some parameters have their own limits).
    pub window: &'static str,
    pub query: Vec<(&'static str, String)>,
    pub body: Option<Vec<u8>>,
    /// What a 404 means here (e.g. "list Xy12 does not exist in this account").
    pub not_found: Option<&'a str>,
}

impl<'a> Call<'a> {
    pub fn new(method: Method, endpoint: &'static str, path: String) -> Self {
        Call {
            method,
            path,
            endpoint,
            window: endpoint,
            query: Vec::new(),
            body: None,
            not_found: None,
        }
    }

    pub fn query(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.query.push((name, value.into()));
        self
    }

    pub fn window(mut self, window: &'static str) -> Self {
        self.window = window;
        self
    }

    pub fn json(mut self, body: &impl serde::Serialize) -> Result<Self, ConnectorError> {
        let bytes = serde_json::to_vec(body).map_err(|e| {
            ConnectorError::new(
                VENDOR,
                self.endpoint,
                ErrorKind::InvalidConfig,
                format!("request body could not be encoded: {e}"),
            )
        })?;
        self.body = Some(bytes);
        Ok(self)
    }

    pub fn raw_body(mut self, bytes: Vec<u8>) -> Self {
        self.body = Some(bytes);
        self
    }

    pub fn not_found(mut self, meaning: &'a str) -> Self {
        self.not_found = Some(meaning);
        self
    }
}

/// The connection to one Klaviyo account (one private API key).
pub(crate) struct Client {
    http: reqwest::Client,
    base: String,
    api_key: Arc<str>,
    revision: HeaderValue,
    budget: Arc<KeyBudget>,
    policy: RetryPolicy,
    pacing_scale: f64,
    pacing: bool,
}

impl Client {
    /// Who this client is at Klaviyo (base URL and key, hashed): the key of what is learnt
    /// about the account beyond one run.
    pub fn account(&self) -> u64 {
        xxhash_rust::xxh3::xxh3_64(format!("{}\u{0}{}", self.base, self.api_key).as_bytes())
    }

    pub fn new(
        base: String,
        api_key: &str,
        revision: HeaderValue,
        budget: Arc<KeyBudget>,
        policy: RetryPolicy,
        pacing: Option<f64>,
    ) -> Self {
        Client {
            http: http::client(),
            base,
            api_key: Arc::from(api_key),
            revision,
            budget,
            policy,
            pacing_scale: pacing.unwrap_or(1.0),
            pacing: pacing.is_some(),
        }
    }

    fn window(&self, endpoint: &'static str) -> Option<Arc<Window>> {
        self.pacing
            .then(|| pacing::window_for(&self.api_key, endpoint, self.pacing_scale))
    }

    /// Sends `call` and maps every non-success status to an error.
    pub async fn send(&self, call: &Call<'_>) -> Result<Response, ConnectorError> {
        self.send_allowing(call, None).await
    }

    /// As [`Client::send`], but an answer with status `allow` (e.g. a 400 whose error document
    /// names the refused record) is returned to the caller to read.
    pub async fn send_allowing(
        &self,
        call: &Call<'_>,
        allow: Option<StatusCode>,
    ) -> Result<Response, ConnectorError> {
        let url = format!("{}{}", self.base, call.path);
        let auth = HeaderValue::from_str(&format!("Klaviyo-API-Key {}", self.api_key))
            .map_err(|_| {
                ConnectorError::new(
                    VENDOR,
                    call.endpoint,
                    ErrorKind::InvalidConfig,
                    "the API key holds characters an HTTP header cannot carry",
                )
            })?
            .tap_sensitive();
        let media = HeaderValue::from_static(JSON_API);
        let window = self.window(call.window);
        if let Some(window) = &window {
            window.acquire().await;
        }
        let response = http::send(
            VENDOR,
            call.endpoint,
            &self.budget,
            &self.policy,
            || {
                let mut request = self
                    .http
                    .request(call.method.clone(), &url)
                    .header(AUTHORIZATION, auth.clone())
                    .header("revision", self.revision.clone())
                    .header(ACCEPT, media.clone());
                if !call.query.is_empty() {
                    request = request.query(&call.query);
                }
                if let Some(body) = &call.body {
                    request = request
                        .header(CONTENT_TYPE, media.clone())
                        .body(body.clone());
                }
                request
            },
            |response| verdict(response, window.as_deref()),
        )
        .await
        .map_err(|e| self.redact(e))?;
        let status = response.status();
        if status.is_success() || Some(status) == allow {
            return Ok(response);
        }
        let message = read_errors(response).await;
        let error = match (status, call.not_found) {
            (StatusCode::NOT_FOUND, Some(meaning)) => {
                let mut text = format!("not found: {meaning}");
                if !message.is_empty() {
                    text.push_str(&format!(" (HTTP 404: {})", truncate(&message, 200)));
                }
                ConnectorError::new(VENDOR, call.endpoint, ErrorKind::NotFound, text)
            }
            _ => http::status_error(VENDOR, call.endpoint, status, &message),
        };
        Err(self.redact(error))
    }

    /// Sends `call` and reads its JSON answer.
    pub async fn json<T: DeserializeOwned>(&self, call: &Call<'_>) -> Result<T, ConnectorError> {
        let response = self.send(call).await?;
        http::json_body(VENDOR, call.endpoint, response)
            .await
            .map_err(|e| self.redact(e))
    }

    /// Whatever a vendor message echoes, the key never leaves in an error.
    pub fn redact(&self, mut error: ConnectorError) -> ConnectorError {
        error.message = self.redact_text(&error.message);
        error
    }

    pub fn redact_text(&self, text: &str) -> String {
        redact(text, &self.api_key)
    }
}

/// A 429 pauses the endpoint's window (Klaviyo limits endpoints separately, so the key's other
/// endpoints go on) and is retried after `Retry-After`; 5xx are retried; the rest is the caller's.
fn verdict(response: &Response, window: Option<&Window>) -> Verdict {
    if response.status() == StatusCode::TOO_MANY_REQUESTS {
        let retry_after = http::retry_after(response);
        if let Some(window) = window {
            window.pause_for(retry_after.unwrap_or(std::time::Duration::from_secs(1)));
        }
        return Verdict::Retry {
            retry_after,
            pause_key: window.is_none(),
        };
    }
    http::default_verdict(response)
}

trait Sensitive {
    fn tap_sensitive(self) -> Self;
}

impl Sensitive for HeaderValue {
    /// Marks the header sensitive, so reqwest's and hyper's debug output never shows it.
    fn tap_sensitive(mut self) -> Self {
        self.set_sensitive(true);
        self
    }
}

/// Replaces the key with `***`.
pub(crate) fn redact(text: &str, api_key: &str) -> String {
    let key = api_key.trim();
    if key.len() < 4 {
        return text.to_string();
    }
    text.replace(key, "***")
}

/// The vendor's words from a JSON:API error document (or the plain body, if it is not HTML).
async fn read_errors(response: Response) -> String {
    let bytes = match response.bytes().await {
        Ok(bytes) => bytes,
        Err(_) => return String::new(),
    };
    let bytes = &bytes[..bytes.len().min(MAX_ERROR_BODY)];
    match serde_json::from_slice::<ErrorDocument>(bytes) {
        Ok(doc) => doc.text(),
        Err(_) => {
            let text = String::from_utf8_lossy(bytes).trim().to_string();
            if text.starts_with('<') {
                String::new()
            } else {
                truncate(&text, 300)
            }
        }
    }
}

pub(crate) use crate::http::truncate;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_the_key() {
        assert_eq!(
            redact("bad key pk_abcdef123456 given", "pk_abcdef123456"),
            "bad key *** given"
        );
        assert_eq!(redact("nothing here", "pk_abcdef123456"), "nothing here");
    }
}
