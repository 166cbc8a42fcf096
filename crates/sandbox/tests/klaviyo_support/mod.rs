//! Shared set-up of the Klaviyo simulator tests: a served sandbox and a small HTTP client that
//! talks to it the way a Klaviyo client would (private key, `revision`, JSON:API bodies).
#![allow(dead_code)]

use audience_sandbox::klaviyo::{EXAMPLE_API_KEY, Klaviyo, REVISION};
use audience_sandbox::{RunningSandbox, Sandbox, Vendor};
use reqwest::Method;
use serde_json::Value;

#[allow(unused_imports)]
pub use audience_sandbox::klaviyo::{Consent, OptIn, SeedConsent, Suppression};

pub struct Kl {
    pub running: RunningSandbox,
    pub client: reqwest::Client,
    /// `http://127.0.0.1:PORT/klaviyo`.
    pub base: String,
    pub key: String,
}

/// The answer to one request.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub content_type: String,
    pub headers: reqwest::header::HeaderMap,
}

impl Reply {
    /// The first error's `code`.
    pub fn code(&self) -> &str {
        self.body["errors"][0]["code"].as_str().unwrap_or_default()
    }

    pub fn pointer(&self) -> &str {
        self.body["errors"][0]["source"]["pointer"]
            .as_str()
            .unwrap_or_default()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

impl Kl {
    pub async fn start() -> Kl {
        let sandbox = Sandbox::new(Default::default());
        let running = sandbox
            .serve("127.0.0.1:0".parse().expect("address"))
            .await
            .expect("sandbox serves");
        let base = running.vendor_url(Vendor::Klaviyo);
        Kl {
            running,
            client: reqwest::Client::new(),
            base,
            key: EXAMPLE_API_KEY.to_string(),
        }
    }

    pub fn sim(&self) -> &Klaviyo {
        &self.running.sandbox.klaviyo
    }

    /// `path` is below the base (`/api/...`) or a full URL (a `links.next`).
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        }
    }

    /// A request with the standard headers, which tests then change.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .header("Authorization", format!("Klaviyo-API-Key {}", self.key))
            .header("revision", REVISION)
            .header("accept", "application/vnd.api+json")
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("request is answered");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let content_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let text = response.text().await.expect("body reads");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
        };
        Reply {
            status,
            body,
            content_type,
            headers,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.request(Method::GET, path)).await
    }

    /// A JSON:API write.
    pub async fn call(&self, method: Method, path: &str, body: &Value) -> Reply {
        self.send(
            self.request(method, path)
                .header("content-type", "application/vnd.api+json")
                .body(body.to_string()),
        )
        .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.call(Method::POST, path, body).await
    }
}

/// `{"type": "profile", "attributes": {"email": ...}}` for bulk bodies.
pub fn profile(email: &str) -> Value {
    serde_json::json!({"type": "profile", "attributes": {"email": email}})
}

/// A subscribe-job entry for `email`.
pub fn subscriber(email: &str, consented_at: Option<&str>) -> Value {
    let mut marketing = serde_json::json!({"consent": "SUBSCRIBED"});
    if let Some(at) = consented_at {
        marketing["consented_at"] = serde_json::json!(at);
    }
    serde_json::json!({"type": "profile", "attributes": {
        "email": email, "subscriptions": {"email": {"marketing": marketing}}
    }})
}

/// An unsubscribe-job entry for `email`.
pub fn unsubscriber(email: &str) -> Value {
    serde_json::json!({"type": "profile", "attributes": {
        "email": email, "subscriptions": {"email": {"marketing": {"consent": "UNSUBSCRIBED"}}}
    }})
}

/// A subscribe job body, with a list when given.
pub fn subscribe_job(profiles: Vec<Value>, list: Option<&str>, historical: bool) -> Value {
    let mut body = serde_json::json!({"data": {
        "type": "profile-subscription-bulk-create-job",
        "attributes": {"profiles": {"data": profiles}, "historical_import": historical},
    }});
    if let Some(list) = list {
        body["data"]["relationships"] =
            serde_json::json!({"list": {"data": {"type": "list", "id": list}}});
    }
    body
}

pub fn unsubscribe_job(profiles: Vec<Value>, list: Option<&str>) -> Value {
    let mut body = serde_json::json!({"data": {
        "type": "profile-subscription-bulk-delete-job",
        "attributes": {"profiles": {"data": profiles}},
    }});
    if let Some(list) = list {
        body["data"]["relationships"] =
            serde_json::json!({"list": {"data": {"type": "list", "id": list}}});
    }
    body
}
