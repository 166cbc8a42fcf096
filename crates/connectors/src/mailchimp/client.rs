//! The Mailchimp HTTP client: one place that builds requests (base URL, Basic auth, JSON), sends
//! them through the shared key budget and retry loop of [`crate::http`], and turns an answer into a
//! value or a [`ConnectorError`] that names the endpoint and never the API key.

use std::sync::Arc;

use audience_core::{ConnectorError, ErrorKind};
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use reqwest::{Method, Response, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::http::{self, KeyBudget, RetryPolicy};

pub(crate) const VENDOR: &str = "mailchimp";

/// Largest error body read to find the vendor's message.
const MAX_ERROR_BODY: usize = 16 * 1024;

/// A request to send: method, concrete path (under the base URL), route template for errors and
/// metrics, query pairs and an optional JSON body.
pub(crate) struct Call<'a> {
    pub method: Method,
    pub path: String,
    pub endpoint: &'static str,
    pub query: Vec<(&'static str, String)>,
    pub body: Option<Vec<u8>>,
    /// What a 404 means here (e.g. "audience abc123 not found").
    pub not_found: Option<&'a str>,
}

impl<'a> Call<'a> {
    pub fn new(method: Method, endpoint: &'static str, path: String) -> Self {
        Call {
            method,
            path,
            endpoint,
            query: Vec::new(),
            body: None,
            not_found: None,
        }
    }

    pub fn query(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.query.push((name, value.into()));
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

    pub fn not_found(mut self, meaning: &'a str) -> Self {
        self.not_found = Some(meaning);
        self
    }
}

/// What a non-success answer said (a Mailchimp problem-detail document).
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Problem {
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub detail: Option<String>,
}

impl Problem {
    pub fn text(&self) -> String {
        match (self.title.as_deref(), self.detail.as_deref()) {
            (Some(t), Some(d)) if !d.is_empty() => format!("{t}: {d}"),
            (Some(t), _) => t.to_string(),
            (None, Some(d)) => d.to_string(),
            (None, None) => String::new(),
        }
    }
}

/// A failed call whose status the caller may want to treat as a per-record outcome.
pub(crate) struct Refused {
    pub status: StatusCode,
    pub problem: Problem,
    pub error: ConnectorError,
}

/// The connection to one Mailchimp account (one API key).
pub(crate) struct Client {
    http: reqwest::Client,
    base: String,
    api_key: Arc<str>,
    budget: Arc<KeyBudget>,
    policy: RetryPolicy,
}

impl Client {
    pub fn new(base: String, api_key: &str, budget: Arc<KeyBudget>, policy: RetryPolicy) -> Self {
        Client {
            http: http::client(),
            base,
            api_key: Arc::from(api_key),
            budget,
            policy,
        }
    }

    /// Sends `call`; success statuses come back as the response, others as [`Refused`].
    pub async fn send_raw(
        &self,
        call: &Call<'_>,
    ) -> Result<Result<Response, Refused>, ConnectorError> {
        let url = format!("{}{}", self.base, call.path);
        let json = HeaderValue::from_static("application/json");
        let response = http::send(
            VENDOR,
            call.endpoint,
            &self.budget,
            &self.policy,
            || {
                let mut request = self
                    .http
                    .request(call.method.clone(), &url)
                    .basic_auth("audience-operator", Some(&*self.api_key));
                if !call.query.is_empty() {
                    request = request.query(&call.query);
                }
                if let Some(body) = &call.body {
                    request = request
                        .header(CONTENT_TYPE, json.clone())
                        .body(body.clone());
                }
                request
            },
            http::default_verdict,
        )
        .await
        .map_err(|e| self.redact(e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(Ok(response));
        }
        let problem = read_problem(response).await;
        let error = match (status, call.not_found) {
            (StatusCode::NOT_FOUND, Some(meaning)) => {
                let mut message = format!("not found: {meaning}");
                let text = problem.text();
                if !text.is_empty() {
                    message.push_str(&format!(" (HTTP 404: {})", truncate(&text, 200)));
                }
                ConnectorError::new(VENDOR, call.endpoint, ErrorKind::NotFound, message)
            }
            _ => http::status_error(VENDOR, call.endpoint, status, &problem.text()),
        };
        Ok(Err(Refused {
            status,
            problem,
            error: self.redact(error),
        }))
    }

    /// Sends `call` and maps every non-success status to an error.
    pub async fn send(&self, call: &Call<'_>) -> Result<Response, ConnectorError> {
        match self.send_raw(call).await? {
            Ok(response) => Ok(response),
            Err(refused) => Err(refused.error),
        }
    }

    /// Sends `call` and reads its JSON answer.
    pub async fn json<T: DeserializeOwned>(&self, call: &Call<'_>) -> Result<T, ConnectorError> {
        let response = self.send(call).await?;
        http::json_body(VENDOR, call.endpoint, response)
            .await
            .map_err(|e| self.redact(e))
    }

    /// Belt and braces: whatever a vendor message echoes, the key never leaves in an error.
    pub fn redact(&self, mut error: ConnectorError) -> ConnectorError {
        error.message = redact(&error.message, &self.api_key);
        error
    }
}

/// Masks the key, its part before the data-centre suffix, and anything credential-shaped.
pub(crate) fn redact(text: &str, api_key: &str) -> String {
    http::redact(text, &[api_key])
}

async fn read_problem(response: Response) -> Problem {
    let bytes = match response.bytes().await {
        Ok(bytes) => bytes,
        Err(_) => return Problem::default(),
    };
    let bytes = &bytes[..bytes.len().min(MAX_ERROR_BODY)];
    serde_json::from_slice::<Problem>(bytes).unwrap_or_else(|_| Problem {
        title: None,
        detail: Some(String::from_utf8_lossy(bytes).trim().to_string())
            .filter(|s| !s.is_empty() && !s.starts_with('<')),
    })
}

pub(crate) use crate::http::truncate;
