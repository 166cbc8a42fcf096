//! JSON:API error documents, as Klaviyo sends them:
//! `{"errors": [{"id", "status", "code", "title", "detail", "source": {"pointer"|"parameter"}}]}`
//! with `Content-Type: application/vnd.api+json`. The spec requires `id, code, title, detail`;
//! `status` (a number) is what Klaviyo's answers carry besides [D]. Codes and titles follow
//! Klaviyo's documented examples where there are some, otherwise they are [U].

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::JSON_API;

/// Where an error points: a JSON pointer into the body or a query/header parameter.
#[derive(Debug, Clone)]
pub enum Source {
    Pointer(String),
    Parameter(String),
}

/// One refused request (boxed: handlers return it in every `Result`).
#[derive(Debug, Clone)]
pub struct ApiError(Box<Details>);

impl std::ops::Deref for ApiError {
    type Target = Details;

    fn deref(&self) -> &Details {
        &self.0
    }
}

impl std::ops::DerefMut for ApiError {
    fn deref_mut(&mut self) -> &mut Details {
        &mut self.0
    }
}

/// What an error document says.
#[derive(Debug, Clone)]
pub struct Details {
    pub status: StatusCode,
    pub code: &'static str,
    pub title: &'static str,
    pub detail: String,
    pub source: Option<Source>,
    /// Error-level `meta` (the duplicate's id on a 409).
    pub meta: Option<Value>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, title: &'static str, detail: String) -> Self {
        ApiError(Box::new(Details {
            status,
            code,
            title,
            detail,
            source: None,
            meta: None,
            headers: Vec::new(),
        }))
    }

    /// 400 on a body field, with `source.pointer`.
    pub fn invalid(pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        let mut e = ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid",
            "Invalid input.",
            detail.into(),
        );
        e.source = Some(Source::Pointer(pointer.into()));
        e
    }

    /// 400 on a query parameter or header, with `source.parameter`.
    pub fn invalid_parameter(parameter: impl Into<String>, detail: impl Into<String>) -> Self {
        let mut e = ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid",
            "Invalid input.",
            detail.into(),
        );
        e.source = Some(Source::Parameter(parameter.into()));
        e
    }

    /// A required field is missing.
    pub fn required(pointer: impl Into<String>) -> Self {
        let pointer = pointer.into();
        let field = pointer.rsplit('/').next().unwrap_or_default().to_string();
        let mut e = ApiError::new(
            StatusCode::BAD_REQUEST,
            "required",
            "Required field.",
            format!("'{field}' is a required field."),
        );
        e.source = Some(Source::Pointer(pointer));
        e
    }

    pub fn parse_error(detail: impl Into<String>) -> Self {
        let mut e = ApiError::new(
            StatusCode::BAD_REQUEST,
            "parse_error",
            "Malformed request.",
            detail.into(),
        );
        e.source = Some(Source::Pointer("/data".into()));
        e
    }

    pub fn not_authenticated() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "not_authenticated",
            "Authentication credentials were not provided.",
            "Missing or invalid authorization scheme. Please use Klaviyo-API-Key.".into(),
        )
    }

    pub fn authentication_failed() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "authentication_failed",
            "Incorrect authentication credentials.",
            "Incorrect authentication credentials.".into(),
        )
    }

    pub fn permission_denied(missing: &[&str]) -> Self {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "permission_denied",
            "You do not have permission to perform this action.",
            format!(
                "Your API key is missing required scopes: {}",
                missing.join(", ")
            ),
        )
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "Not found.",
            detail.into(),
        )
    }

    pub fn method_not_allowed() -> Self {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "Method not allowed.",
            "This method is not allowed on this endpoint.".into(),
        )
    }

    pub fn duplicate_profile(existing_id: &str) -> Self {
        let mut e = ApiError::new(
            StatusCode::CONFLICT,
            "duplicate_profile",
            "Conflict.",
            "A profile already exists with one of these identifiers.".into(),
        );
        e.source = Some(Source::Pointer("/data/attributes".into()));
        e.meta = Some(json!({"duplicate_profile_id": existing_id}));
        e
    }

    pub fn unsupported_media_type(found: &str) -> Self {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Unsupported media type.",
            format!("Unsupported media type \"{found}\" in request; use application/vnd.api+json."),
        )
    }

    pub fn too_large(detail: impl Into<String>) -> Self {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            "Request entity too large.",
            detail.into(),
        )
    }

    pub fn throttled(retry_after_secs: u64) -> Self {
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "throttled",
            "Request was throttled.",
            format!("Request was throttled. Expected available in {retry_after_secs} second."),
        );
        e.headers
            .push((header::RETRY_AFTER, HeaderValue::from(retry_after_secs)));
        e
    }

    pub fn server_error() -> Self {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "error",
            "A server error occurred.",
            "A server error occurred.".into(),
        )
    }

    pub fn document(&self) -> Value {
        let mut error = json!({
            "id": error_id(),
            "status": self.status.as_u16(),
            "code": self.code,
            "title": self.title,
            "detail": self.detail,
        });
        match &self.source {
            Some(Source::Pointer(p)) => error["source"] = json!({"pointer": p}),
            Some(Source::Parameter(p)) => error["source"] = json!({"parameter": p}),
            None => {}
        }
        if let Some(meta) = &self.meta {
            error["meta"] = meta.clone();
        }
        json!({"errors": [error]})
    }
}

/// A random UUID-shaped error id, as Klaviyo's.
fn error_id() -> String {
    let bytes: [u8; 16] = rand::random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.document().to_string();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_API));
        for (name, value) in self.0.headers {
            headers.insert(name, value);
        }
        response
    }
}
