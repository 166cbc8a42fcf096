//! The JSON:API wire format: strict reading of request documents (unknown members and a wrong
//! `type` are refused with a `source.pointer`), query parameters, cursor pages and answers.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Map, Value, json};

use super::JSON_API;
use super::error::ApiError;
use super::state::{Patch, ProfileInput};

/// Parses a request body (the media type was checked by the gate).
pub fn parse_body(bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::parse_error("The request body is empty."));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::parse_error(format!("JSON parse error - {e}")))
}

/// A JSON object being read, with its pointer for error messages.
#[derive(Clone, Copy)]
pub struct Obj<'a> {
    pub map: &'a Map<String, Value>,
    pub ptr: &'a str,
}

pub fn object<'a>(value: &'a Value, ptr: &'a str) -> Result<Obj<'a>, ApiError> {
    match value {
        Value::Object(map) => Ok(Obj { map, ptr }),
        _ => Err(ApiError::invalid(
            ptr,
            format!("'{}' must be an object.", last(ptr)),
        )),
    }
}

fn last(ptr: &str) -> &str {
    ptr.rsplit('/').next().unwrap_or(ptr)
}

impl<'a> Obj<'a> {
    pub fn at(&self, key: &str) -> String {
        format!("{}/{key}", self.ptr)
    }

    /// Refuses members outside `allowed`.
    pub fn only(&self, allowed: &[&str]) -> Result<(), ApiError> {
        match self.map.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(unknown) => Err(ApiError::invalid(
                self.at(unknown),
                format!("'{unknown}' is not a valid field for this resource."),
            )),
            None => Ok(()),
        }
    }

    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key)
    }

    pub fn required(&self, key: &str) -> Result<&'a Value, ApiError> {
        match self.map.get(key) {
            Some(v) if !v.is_null() => Ok(v),
            _ => Err(ApiError::required(self.at(key))),
        }
    }

    /// `type` must be present and equal `expected`.
    pub fn resource_type(&self, expected: &str) -> Result<(), ApiError> {
        match self.map.get("type") {
            Some(Value::String(t)) if t == expected => Ok(()),
            Some(other) => Err(ApiError::invalid(
                self.at("type"),
                format!("Invalid resource type {other}; expected '{expected}'."),
            )),
            None => Err(ApiError::required(self.at("type"))),
        }
    }

    /// A member that must be a string when present (absent, `null` or a string).
    pub fn patch_str(&self, key: &str) -> Result<Patch<String>, ApiError> {
        match self.map.get(key) {
            None => Ok(Patch::Absent),
            Some(Value::Null) => Ok(Patch::Null),
            Some(Value::String(s)) => Ok(Patch::Set(s.clone())),
            Some(_) => Err(ApiError::invalid(
                self.at(key),
                format!("'{key}' must be a string."),
            )),
        }
    }

    pub fn opt_str(&self, key: &str) -> Result<Option<String>, ApiError> {
        Ok(self.patch_str(key)?.value().cloned())
    }

    pub fn req_str(&self, key: &str) -> Result<String, ApiError> {
        self.opt_str(key)?
            .ok_or_else(|| ApiError::required(self.at(key)))
    }

    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(ApiError::invalid(
                self.at(key),
                format!("'{key}' must be a boolean."),
            )),
        }
    }

    pub fn array(&self, key: &str) -> Result<&'a Vec<Value>, ApiError> {
        match self.required(key)? {
            Value::Array(items) => Ok(items),
            _ => Err(ApiError::invalid(
                self.at(key),
                format!("'{key}' must be an array."),
            )),
        }
    }
}

/// Reads and checks `{"data": {"type": expected, ...}}` (only `allowed_data` members in `data`).
pub fn data_object<'a>(
    doc: &'a Value,
    expected: &str,
    allowed_data: &[&str],
) -> Result<Obj<'a>, ApiError> {
    let root = object(doc, "")?;
    root.only(&["data"])?;
    let data = object(root.required("data")?, "/data")?;
    data.only(allowed_data)?;
    data.resource_type(expected)?;
    Ok(data)
}

/// The profile attributes every write accepts, besides `extra` (e.g. `_kx`, `anonymous_id`).
pub const PROFILE_ATTRIBUTES: &[&str] = &[
    "email",
    "phone_number",
    "external_id",
    "first_name",
    "last_name",
    "organization",
    "locale",
    "title",
    "image",
    "location",
    "properties",
];

const LOCATION: &[&str] = &[
    "address1",
    "address2",
    "city",
    "country",
    "latitude",
    "longitude",
    "region",
    "zip",
    "timezone",
    "ip",
];

/// Reads profile attributes (strictly: unknown members are refused, email and phone checked).
pub fn profile_attributes(attrs: Obj<'_>, extra: &[&str]) -> Result<ProfileInput, ApiError> {
    let allowed: Vec<&str> = PROFILE_ATTRIBUTES.iter().chain(extra).copied().collect();
    attrs.only(&allowed)?;
    let email = attrs.patch_str("email")?;
    if let Patch::Set(email) = &email
        && !valid_email(email)
    {
        return Err(ApiError::invalid(
            attrs.at("email"),
            format!("Invalid email address: {email:?}"),
        ));
    }
    let phone_number = attrs.patch_str("phone_number")?;
    if let Patch::Set(phone) = &phone_number
        && !valid_e164(phone)
    {
        return Err(ApiError::invalid(
            attrs.at("phone_number"),
            format!("Invalid phone number format (expected E.164): {phone:?}"),
        ));
    }
    let location = match attrs.get("location") {
        None => Patch::Absent,
        Some(Value::Null) => Patch::Null,
        Some(value) => {
            let ptr = attrs.at("location");
            let loc = object(value, &ptr)?;
            loc.only(LOCATION)?;
            for (key, value) in loc.map {
                let ok = match key.as_str() {
                    "latitude" | "longitude" => {
                        value.is_null() || value.is_number() || value.is_string()
                    }
                    _ => value.is_null() || value.is_string(),
                };
                if !ok {
                    return Err(ApiError::invalid(
                        loc.at(key),
                        format!("'{key}' has the wrong type."),
                    ));
                }
            }
            Patch::Set(loc.map.clone())
        }
    };
    let properties = match attrs.get("properties") {
        None => Patch::Absent,
        Some(Value::Null) => Patch::Null,
        Some(Value::Object(map)) => Patch::Set(map.clone()),
        Some(_) => {
            return Err(ApiError::invalid(
                attrs.at("properties"),
                "'properties' must be an object.",
            ));
        }
    };
    Ok(ProfileInput {
        email,
        phone_number,
        external_id: attrs.patch_str("external_id")?,
        first_name: attrs.patch_str("first_name")?,
        last_name: attrs.patch_str("last_name")?,
        organization: attrs.patch_str("organization")?,
        locale: attrs.patch_str("locale")?,
        title: attrs.patch_str("title")?,
        image: attrs.patch_str("image")?,
        location,
        properties,
    })
}

/// A deliberately plain address check: one `@`, a non-empty local part, a dotted domain, no
/// spaces [U: Klaviyo's exact rules are not published].
pub fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(char::is_whitespace)
}

/// E.164: `+`, then 8 to 15 digits, the first not 0 [U: Klaviyo also rejects numbers that are
/// not possible in their country; not simulated].
pub fn valid_e164(phone: &str) -> bool {
    phone.strip_prefix('+').is_some_and(|digits| {
        (8..=15).contains(&digits.len())
            && digits.chars().all(|c| c.is_ascii_digit())
            && !digits.starts_with('0')
    })
}

/// The query string's parameters, checked against what the endpoint takes.
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Refuses a parameter whose name is not in `allowed` (names ending in `[` match any
    /// `name[...]`).
    pub fn parse(raw: Option<&str>, allowed: &[&str]) -> Result<Query, ApiError> {
        let pairs: Vec<(String, String)> =
            url::form_urlencoded::parse(raw.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
        for (name, _) in &pairs {
            if !allowed.contains(&name.as_str()) {
                return Err(ApiError::invalid_parameter(
                    name,
                    format!("'{name}' is not a valid query parameter for this endpoint."),
                ));
            }
        }
        Ok(Query { pairs })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A comma-separated list parameter, each value one of `allowed`.
    pub fn list(&self, name: &str, allowed: &[&str]) -> Result<Vec<String>, ApiError> {
        let Some(raw) = self.get(name) else {
            return Ok(Vec::new());
        };
        raw.split(',')
            .map(|v| {
                if allowed.contains(&v) {
                    Ok(v.to_string())
                } else {
                    Err(ApiError::invalid_parameter(
                        name,
                        format!("'{v}' is not a valid value for '{name}'."),
                    ))
                }
            })
            .collect()
    }

    /// `page[size]`: an integer in `1..=max`, `default` when absent.
    pub fn page_size(&self, default: usize, max: usize) -> Result<usize, ApiError> {
        match self.get("page[size]") {
            None => Ok(default),
            Some(raw) => match raw.parse::<usize>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(ApiError::invalid_parameter(
                    "page[size]",
                    format!("Page size must be an integer between 1 and {max}."),
                )),
            },
        }
    }

    /// The id after which `page[cursor]` continues (cursors are opaque to clients).
    pub fn cursor(&self) -> Result<Option<String>, ApiError> {
        match self.get("page[cursor]") {
            None => Ok(None),
            Some(raw) => decode_cursor(raw)
                .map(Some)
                .ok_or_else(|| ApiError::invalid_parameter("page[cursor]", "Invalid page cursor.")),
        }
    }

    /// The query without `page[cursor]`, for building `links`.
    pub fn without_cursor(&self) -> Vec<(String, String)> {
        self.pairs
            .iter()
            .filter(|(k, _)| k != "page[cursor]")
            .cloned()
            .collect()
    }
}

fn encode_cursor(after: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("after:{after}"))
}

fn decode_cursor(raw: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw)
        .ok()?;
    String::from_utf8(bytes)
        .ok()?
        .strip_prefix("after:")
        .map(str::to_string)
}

/// The base of links in answers: `http://HOST/klaviyo`, so a client following `links.next` comes
/// back to the sandbox it called.
#[derive(Debug, Clone)]
pub struct Base(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Base {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        Ok(Base(format!("http://{host}/klaviyo")))
    }
}

impl Base {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.0)
    }
}

/// One page of a collection sorted by id: the items after the cursor, and the `links` object.
pub fn page<T: Clone>(
    items: &[(String, T)],
    query: &Query,
    size: usize,
    base: &Base,
    path: &str,
) -> Result<(Vec<T>, Value), ApiError> {
    let after = query.cursor()?;
    let start = match &after {
        Some(after) => items.partition_point(|(id, _)| id.as_str() <= after.as_str()),
        None => 0,
    };
    let chunk: Vec<(String, T)> = items.iter().skip(start).take(size).cloned().collect();
    let has_more = start + chunk.len() < items.len();
    let mut params = query.without_cursor();
    let self_link = link(base, path, &params, after.as_deref());
    let mut links = json!({"self": self_link});
    if has_more {
        let last = chunk.last().map(|(id, _)| id.clone()).unwrap_or_default();
        links["next"] = json!(link(base, path, &params, Some(&last)));
    }
    if start > 0 {
        params.retain(|(k, _)| k != "page[cursor]");
        links["prev"] = json!(link(base, path, &params, None));
    }
    Ok((chunk.into_iter().map(|(_, t)| t).collect(), links))
}

fn link(base: &Base, path: &str, params: &[(String, String)], after: Option<&str>) -> String {
    let mut serializer = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        serializer.append_pair(k, v);
    }
    if let Some(after) = after {
        serializer.append_pair("page[cursor]", &encode_cursor(after));
    }
    let query = serializer.finish();
    if query.is_empty() {
        base.url(path)
    } else {
        format!("{}?{query}", base.url(path))
    }
}

/// An answer with a JSON:API document.
pub fn respond(status: StatusCode, doc: Value) -> Response {
    let mut response = (status, doc.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_API));
    response
}

pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

pub fn accepted() -> Response {
    StatusCode::ACCEPTED.into_response()
}

/// An RFC 3339 time as Klaviyo writes it (`2026-07-15T10:00:00+00:00`).
pub fn time(t: chrono::DateTime<chrono::Utc>) -> Value {
    json!(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, false))
}

pub fn opt_time(t: Option<chrono::DateTime<chrono::Utc>>) -> Value {
    t.map(time).unwrap_or(Value::Null)
}

/// Parses a date-time attribute (RFC 3339, or a date alone as midnight UTC).
pub fn parse_time(raw: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(raw) {
        return Some(t.with_timezone(&chrono::Utc));
    }
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(t.and_utc());
    }
    chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}
