//! Shared set-up of the Mailchimp simulator tests: a served sandbox and a small HTTP client that
//! talks to it the way a Mailchimp client would (HTTP Basic auth with an API key).
#![allow(dead_code)]

use audience_sandbox::mailchimp::{EXAMPLE_API_KEY, Mailchimp};
use audience_sandbox::{RunningSandbox, Sandbox, Vendor};
use reqwest::Method;
use serde_json::Value;

#[allow(unused_imports)]
pub use audience_sandbox::mailchimp::{MemberStatus, subscriber_hash};

pub struct Mc {
    pub running: RunningSandbox,
    pub client: reqwest::Client,
    /// `http://127.0.0.1:PORT/mailchimp/3.0`.
    pub base: String,
    pub key: String,
}

/// The answer to one request: status code, parsed body (`Null` when empty) and content type.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub content_type: String,
}

impl Reply {
    /// The problem document's `title`.
    pub fn title(&self) -> &str {
        self.body["title"].as_str().unwrap_or_default()
    }

    pub fn detail(&self) -> &str {
        self.body["detail"].as_str().unwrap_or_default()
    }
}

impl Mc {
    /// A fresh sandbox with an empty audience `list` besides the demo one.
    pub async fn start() -> Mc {
        let sandbox = Sandbox::new(Default::default());
        let running = sandbox
            .serve("127.0.0.1:0".parse().expect("address"))
            .await
            .expect("sandbox serves");
        let base = format!("{}/3.0", running.vendor_url(Vendor::Mailchimp));
        let mc = Mc {
            running,
            client: reqwest::Client::new(),
            base,
            key: EXAMPLE_API_KEY.to_string(),
        };
        mc.sim().create_list("list", "Test audience");
        mc
    }

    pub fn sim(&self) -> &Mailchimp {
        &self.running.sandbox.mailchimp
    }

    pub fn sandbox(&self) -> &Sandbox {
        &self.running.sandbox
    }

    /// Sends a request with this test's API key; `path` is relative to `/3.0`.
    pub async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.send_with_key(method, path, body, Some(&self.key.clone()))
            .await
    }

    pub async fn send_with_key(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        key: Option<&str>,
    ) -> Reply {
        let mut request = self
            .client
            .request(method, format!("{}{}", self.base, path));
        if let Some(key) = key {
            request = request.basic_auth("anystring", Some(key));
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let bytes = response.bytes().await.expect("body read");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                panic!(
                    "body is not JSON ({e}): {}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        Reply {
            status,
            body,
            content_type,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.send(Method::PUT, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Reply {
        self.send(Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(Method::DELETE, path, None).await
    }

    /// `GET /_sandbox/stats`.
    pub async fn stats(&self) -> Value {
        self.client
            .get(format!("{}/_sandbox/stats", self.running.url()))
            .send()
            .await
            .expect("stats request")
            .json()
            .await
            .expect("stats JSON")
    }
}

/// `/lists/list/members/{md5 of the lowercased address}`.
pub fn member_path(email: &str) -> String {
    format!("/lists/list/members/{}", subscriber_hash(email))
}

/// Email addresses of a members collection, in order.
pub fn emails(doc: &Value) -> Vec<String> {
    doc["members"]
        .as_array()
        .expect("members array")
        .iter()
        .map(|m| m["email_address"].as_str().expect("address").to_string())
        .collect()
}
