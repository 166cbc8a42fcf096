//! Mailchimp's error documents (`application/problem+json`, spec schema `Problem_Detail_Document`:
//! `type`, `title`, `status`, `detail`, `instance`, all required) and the errors the simulator
//! raises. Titles and details follow Mailchimp's error glossary and answers quoted in public
//! issue threads.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

const ERROR_TYPE: &str = "https://mailchimp.com/developer/marketing/docs/errors/";
const VALIDATION_DETAIL: &str = "The resource submitted could not be validated. For field-specific details, see the 'errors' array.";

/// A Mailchimp problem-detail document (`application/problem+json`).
pub fn problem(status: StatusCode, title: &str, detail: &str) -> Response {
    problem_document(status, title, detail, None)
}

fn problem_document(
    status: StatusCode,
    title: &str,
    detail: &str,
    errors: Option<&[FieldError]>,
) -> Response {
    let mut body = json!({
        "type": ERROR_TYPE,
        "title": title,
        "status": status.as_u16(),
        "detail": detail,
        "instance": instance_id(),
    });
    if let Some(errors) = errors {
        body["errors"] = Value::Array(
            errors
                .iter()
                .map(|e| json!({"field": e.field, "message": e.message}))
                .collect(),
        );
    }
    let mut response = (status, Json(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json; charset=utf-8"),
    );
    response
}

/// Instances look like UUIDs in Mailchimp's answers (`10ce6c36-5379-d506-af72-293f72699eee`).
fn instance_id() -> String {
    let hex = format!("{:032x}", rand::random::<u128>());
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// One entry of a validation error's `errors` array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Everything a request can fail with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    ApiKeyMissing,
    ApiKeyInvalid,
    /// 403: the key names another data centre (the key's, carried here) than the account's.
    WrongDatacenter(String),
    TooManyRequests,
    /// 501: a route of the spec the simulator does not serve (`METHOD /3.0/template`).
    NotImplemented(String),
    NotFound,
    MethodNotAllowed,
    JsonParse,
    /// Body or query failed validation: 400 Invalid Resource with an `errors` array.
    Validation(Vec<FieldError>),
    /// 400 Invalid Resource with a specific detail and no `errors` array.
    InvalidResource(String),
    /// Merge-field values rejected: 400 Invalid Resource "Your merge fields were invalid.".
    MergeFields(Vec<FieldError>),
    MemberExists(String),
    ComplianceState(String),
    ForgottenEmail(String),
    FakeEmail(String),
    ContactLimit {
        email: String,
        limit: u64,
    },
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::ApiKeyMissing | ApiError::ApiKeyInvalid => StatusCode::UNAUTHORIZED,
            ApiError::WrongDatacenter(_) => StatusCode::FORBIDDEN,
            ApiError::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            ApiError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    pub fn title(&self) -> &'static str {
        match self {
            ApiError::ApiKeyMissing => "API Key Missing",
            ApiError::ApiKeyInvalid => "API Key Invalid",
            ApiError::WrongDatacenter(_) => "Wrong Datacenter",
            ApiError::TooManyRequests => "Too Many Requests",
            ApiError::NotImplemented(_) => "Not Implemented",
            ApiError::NotFound => "Resource Not Found",
            ApiError::MethodNotAllowed => "Method Not Allowed",
            ApiError::JsonParse => "JSON Parse Error",
            ApiError::MemberExists(_) => "Member Exists",
            ApiError::ComplianceState(_) => "Member In Compliance State",
            ApiError::ForgottenEmail(_) => "Forgotten Email Not Subscribed",
            ApiError::Validation(_)
            | ApiError::InvalidResource(_)
            | ApiError::MergeFields(_)
            | ApiError::FakeEmail(_)
            // Mailchimp documents no wording for the plan's contact limit; the simulator answers
            // like other refusals of one contact (a final, per-record 400), see `detail`.
            | ApiError::ContactLimit { .. } => "Invalid Resource",
        }
    }

    pub fn detail(&self) -> String {
        match self {
            ApiError::ApiKeyMissing => "Your request did not include an API key.".to_string(),
            ApiError::ApiKeyInvalid => {
                "Your API key may be invalid, or you've attempted to access the wrong datacenter."
                    .to_string()
            }
            // [U] The glossary names the title; the wording of the detail is the simulator's.
            ApiError::WrongDatacenter(dc) => format!(
                "The API key provided is linked to a different datacenter ({dc}). Send requests \
                 to the datacenter named by the key's suffix."
            ),
            ApiError::TooManyRequests => {
                "You have exceeded the limit of 10 simultaneous connections.".to_string()
            }
            // Not Mailchimp's: says plainly that the gap is the simulator's, not a missing record.
            ApiError::NotImplemented(route) => format!(
                "The Mailchimp simulator does not serve {route}, which the Mailchimp API has. \
                 Add it to the simulator before relying on it."
            ),
            ApiError::NotFound => "The requested resource could not be found.".to_string(),
            ApiError::MethodNotAllowed => "The requested method and resource are not compatible. \
                 See the Allow header for this resource's available methods."
                .to_string(),
            ApiError::JsonParse => "We encountered an unspecified JSON parsing error.".to_string(),
            ApiError::Validation(_) => VALIDATION_DETAIL.to_string(),
            ApiError::InvalidResource(detail) => detail.clone(),
            ApiError::MergeFields(_) => "Your merge fields were invalid.".to_string(),
            ApiError::MemberExists(email) => format!(
                "{email} is already a list member. Use PUT to insert or update list members."
            ),
            ApiError::ComplianceState(email) => format!(
                "{email} is in a compliance state due to unsubscribe, bounce, or compliance review \
                 and cannot be subscribed."
            ),
            ApiError::ForgottenEmail(email) => format!(
                "{email} was permanently deleted and cannot be re-imported. The contact must \
                 re-subscribe to get back on the list."
            ),
            ApiError::FakeEmail(email) => {
                format!("{email} looks fake or invalid, please enter a real email address.")
            }
            ApiError::ContactLimit { email, limit } => format!(
                "{email} could not be added: the account has exceeded the contact limit of your \
                 plan ({limit} contacts). Upgrade your plan, or archive contacts, to add more."
            ),
        }
    }

    pub fn field_errors(&self) -> Option<&[FieldError]> {
        match self {
            ApiError::Validation(errors) | ApiError::MergeFields(errors) => Some(errors),
            _ => None,
        }
    }

    /// The entry of a batch-subscribe `errors` array this error becomes when it concerns one
    /// member (spec `Errors_inner`: `email_address, error, error_code, field, field_message`).
    pub fn batch_entry(&self, email: &str) -> Value {
        let (error, code) = match self {
            // Mailchimp's batch wording differs from the single-member "Member Exists" detail.
            ApiError::MemberExists(email) => (
                format!(
                    "{email} is already a list member, do you want to update? please provide \
                     update_existing:true in the request body"
                ),
                "ERROR_CONTACT_EXISTS",
            ),
            other => (other.detail(), "ERROR_GENERIC"),
        };
        let (field, field_message) = match self {
            ApiError::Validation(errors) | ApiError::MergeFields(errors) => errors
                .first()
                .map(|e| (e.field.clone(), e.message.clone()))
                .unwrap_or_default(),
            ApiError::FakeEmail(_) => (
                "email_address".to_string(),
                "This email address looks fake or invalid. Please enter a real email address."
                    .to_string(),
            ),
            _ => (String::new(), String::new()),
        };
        json!({
            "email_address": email,
            "error": error,
            "error_code": code,
            "field": field,
            "field_message": field_message,
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        problem_document(
            self.status(),
            self.title(),
            &self.detail(),
            self.field_errors(),
        )
    }
}
