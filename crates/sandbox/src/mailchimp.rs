//! Simulator of the Mailchimp Marketing API 3.0 (placeholder until written from its spec).

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

#[derive(Default)]
struct State {}

/// The simulated Mailchimp accounts, shared by every request.
#[derive(Clone, Default)]
pub struct Mailchimp {
    #[allow(dead_code)]
    state: Arc<Mutex<State>>,
}

impl Mailchimp {
    pub fn reset(&self) {
        *self.state.lock().expect("state lock") = State::default();
    }

    pub fn seed_demo(&self) {}
}

pub fn router(_sim: Mailchimp) -> Router {
    Router::new()
}

/// A Mailchimp problem-detail document (`application/problem+json`).
pub fn problem(status: StatusCode, title: &str, detail: &str) -> Response {
    let body = serde_json::json!({
        "type": "https://mailchimp.com/developer/marketing/docs/errors/",
        "title": title,
        "status": status.as_u16(),
        "detail": detail,
        "instance": uuid_like(),
    });
    let mut response = (status, Json(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        "application/problem+json".parse().expect("static header"),
    );
    response
}

fn uuid_like() -> String {
    format!("{:032x}", rand::random::<u128>())
}
