//! Klaviyo's JSON:API documents (revision 2026-07-15), as the OpenAPI file describes them, and the
//! conversions to and from the core model. Response types name only what the connector reads.

use std::collections::BTreeMap;

use audience_core::{Address, FieldValue, MemberStatus, MemberWrite};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

// ---------------------------------------------------------------- errors

/// `{errors:[{id, status, code, title, detail, source}]}`.
#[derive(Debug, Default, Deserialize)]
pub struct ErrorDocument {
    #[serde(default)]
    pub errors: Vec<WireError>,
}

#[derive(Debug, Default, Deserialize)]
pub struct WireError {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub detail: Option<String>,
    /// Where in the request the error is (`source.pointer`).
    #[serde(default)]
    pub source: Option<ErrorSource>,
}

impl WireError {
    pub fn text(&self) -> String {
        let mut out = match (self.title.as_deref(), self.detail.as_deref()) {
            (Some(t), Some(d)) if !d.is_empty() && d != t => format!("{t}: {d}"),
            (Some(t), _) => t.to_string(),
            (None, Some(d)) => d.to_string(),
            (None, None) => String::new(),
        };
        if let Some(code) = self.code.as_deref().filter(|c| !c.is_empty()) {
            if out.is_empty() {
                out = code.to_string();
            } else {
                out.push_str(&format!(" ({code})"));
            }
        }
        out
    }
}

impl ErrorDocument {
    /// The first error's words, and how many more there were.
    pub fn text(&self) -> String {
        match self.errors.as_slice() {
            [] => String::new(),
            [one] => one.text(),
            [first, rest @ ..] => format!("{} (and {} more)", first.text(), rest.len()),
        }
    }
}

// ---------------------------------------------------------------- reads

/// `links` of a collection: the next page, if any.
#[derive(Debug, Default, Deserialize)]
pub struct Links {
    #[serde(default)]
    pub next: Option<String>,
}

/// The `page[cursor]` of a `links.next` URL. The connector re-issues the request on its own base
/// URL with this cursor rather than following the link, so the key is never sent to a host an
/// answer names.
pub fn cursor_of(next: &str) -> Option<String> {
    let url = url::Url::parse(next)
        .or_else(|_| url::Url::parse("http://relative.invalid").and_then(|b| b.join(next)))
        .ok()?;
    url.query_pairs()
        .find(|(k, _)| k == "page[cursor]")
        .map(|(_, v)| v.into_owned())
        .filter(|v| !v.is_empty())
}

/// A page of profiles (`GET /api/lists/{id}/profiles`, `GET /api/profiles`).
#[derive(Debug, Deserialize)]
pub struct ProfilesPage {
    pub data: Vec<WireProfile>,
    #[serde(default)]
    pub links: Option<Links>,
}

#[derive(Debug, Deserialize)]
pub struct WireProfile {
    pub id: String,
    #[serde(default)]
    pub attributes: ProfileAttributes,
}

#[derive(Debug, Default, Deserialize)]
pub struct ProfileAttributes {
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub phone_number: Option<String>,
    #[serde(default)]
    pub organization: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub location: Option<WireLocation>,
    #[serde(default)]
    pub properties: Option<Map<String, Value>>,
    #[serde(default)]
    pub subscriptions: Option<WireSubscriptions>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireLocation {
    #[serde(default)]
    pub address1: Option<String>,
    #[serde(default)]
    pub address2: Option<String>,
    #[serde(default)]
    pub city: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub zip: Option<String>,
    #[serde(default)]
    pub country: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct WireSubscriptions {
    #[serde(default)]
    pub email: Option<EmailChannel>,
}

#[derive(Debug, Default, Deserialize)]
pub struct EmailChannel {
    #[serde(default)]
    pub marketing: Option<EmailMarketing>,
}

#[derive(Debug, Default, Deserialize)]
pub struct EmailMarketing {
    pub consent: String,
    #[serde(default)]
    pub suppression: Option<Vec<Suppression>>,
    #[serde(default)]
    pub list_suppressions: Option<Vec<ListSuppression>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Suppression {
    pub reason: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct ListSuppression {
    pub list_id: String,
    #[serde(default)]
    pub reason: Option<String>,
}

/// Where a profile stands for email marketing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    Subscribed,
    /// Never opted in (Klaviyo may still mail them; the connector never gives them consent).
    NeverSubscribed,
    /// Unsubscribed, reported as spam, suppressed by hand, or unsubscribed from this list.
    Unsubscribed(String),
    /// Hard bounce or invalid address.
    Undeliverable(String),
}

impl Standing {
    /// The core's status: bounces and invalid addresses are `cleaned` (never mailed again, as in
    /// Mailchimp); spam complaints, manual suppressions and unsubscribes are `unsubscribed`;
    /// never subscribed is `transactional`. Both refusals keep the core from planning a
    /// resubscribe.
    pub fn status(&self) -> MemberStatus {
        match self {
            Standing::Subscribed => MemberStatus::Subscribed,
            Standing::NeverSubscribed => MemberStatus::Transactional,
            Standing::Unsubscribed(_) => MemberStatus::Unsubscribed,
            Standing::Undeliverable(_) => MemberStatus::Cleaned,
        }
    }

    /// A subscribe job would clear this profile's suppression: never send one.
    pub fn blocks_subscribe(&self) -> Option<&str> {
        match self {
            Standing::Unsubscribed(why) | Standing::Undeliverable(why) => Some(why),
            _ => None,
        }
    }
}

/// Reads `subscriptions.email.marketing`. Any global suppression wins over the consent word (a
/// suppressed profile receives nothing whatever it once consented to); an unknown suppression
/// reason counts as a suppression. A suppression from `list_id` counts as an unsubscribe. An
/// unknown consent word is an error (the caller reports an invalid answer).
pub fn standing(marketing: &EmailMarketing, list_id: Option<&str>) -> Result<Standing, String> {
    // A bounce among several suppressions decides: that address is never mailed again.
    let suppressions: Vec<&str> = marketing
        .suppression
        .iter()
        .flatten()
        .map(|s| s.reason.as_str())
        .collect();
    if let Some(reason) = suppressions
        .iter()
        .find(|r| matches!(**r, "HARD_BOUNCE" | "INVALID_EMAIL"))
    {
        return Ok(Standing::Undeliverable(format!(
            "suppressed in Klaviyo ({reason}); a sync never resubscribes a bounced address"
        )));
    }
    if let Some(reason) = suppressions.first() {
        return Ok(Standing::Unsubscribed(format!(
            "suppressed in Klaviyo ({reason}); a sync never resubscribes them"
        )));
    }
    if let Some(list_id) = list_id
        && let Some(s) = marketing
            .list_suppressions
            .iter()
            .flatten()
            .find(|s| s.list_id == list_id)
    {
        return Ok(Standing::Unsubscribed(format!(
            "suppressed from list {list_id} in Klaviyo ({}); a sync never resubscribes them",
            s.reason.as_deref().unwrap_or("unsubscribed")
        )));
    }
    match marketing.consent.as_str() {
        "SUBSCRIBED" => Ok(Standing::Subscribed),
        "NEVER_SUBSCRIBED" => Ok(Standing::NeverSubscribed),
        "UNSUBSCRIBED" => Ok(Standing::Unsubscribed(
            "unsubscribed in Klaviyo; a sync never resubscribes them".to_string(),
        )),
        other => Err(format!(
            "email marketing consent {:?} is not one Klaviyo defines",
            super::client::truncate(other, 40)
        )),
    }
}

impl WireProfile {
    /// The profile's standing, or why the answer is unreadable.
    pub fn standing(&self, list_id: Option<&str>) -> Result<Standing, String> {
        let marketing = self
            .attributes
            .subscriptions
            .as_ref()
            .and_then(|s| s.email.as_ref())
            .and_then(|e| e.marketing.as_ref())
            .ok_or("a profile without subscriptions.email.marketing")?;
        standing(marketing, list_id)
    }
}

/// The profile's fields under the connector's target field names: the fixed vocabulary
/// (`first_name`, `last_name`, `phone_number`, `organization`, `title`, `location`) and every
/// custom property by its own name. Absent and `null` values are left out (the core reads a
/// missing field as blank).
/// The tags of a profile: its custom properties set to boolean `true` (how a tag, the sync's
/// owner tag among them, is stored on a profile, which has no tags of its own).
pub fn tags_of(attributes: &ProfileAttributes) -> std::collections::BTreeSet<String> {
    attributes
        .properties
        .iter()
        .flatten()
        .filter(|(_, value)| **value == Value::Bool(true))
        .map(|(name, _)| name.clone())
        .collect()
}

pub fn fields_of(attributes: &ProfileAttributes) -> BTreeMap<String, FieldValue> {
    let mut fields = BTreeMap::new();
    if let Some(properties) = &attributes.properties {
        for (name, value) in properties {
            if super::VOCABULARY.contains(&name.as_str()) {
                continue;
            }
            let text = match value {
                Value::Null => continue,
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                other => other.to_string(),
            };
            fields.insert(name.clone(), FieldValue::Text(text));
        }
    }
    let texts = [
        ("first_name", &attributes.first_name),
        ("last_name", &attributes.last_name),
        ("phone_number", &attributes.phone_number),
        ("organization", &attributes.organization),
        ("title", &attributes.title),
    ];
    for (name, value) in texts {
        if let Some(value) = value {
            fields.insert(name.to_string(), FieldValue::Text(value.clone()));
        }
    }
    if let Some(location) = &attributes.location {
        let address = location.to_address();
        if !address.is_empty() {
            fields.insert("location".to_string(), FieldValue::Address(address));
        }
    }
    fields
}

impl WireLocation {
    pub fn to_address(&self) -> Address {
        let s = |v: &Option<String>| v.clone().unwrap_or_default();
        Address {
            line1: s(&self.address1),
            line2: s(&self.address2),
            city: s(&self.city),
            region: s(&self.region),
            postal_code: s(&self.zip),
            country: s(&self.country),
        }
    }

    pub fn of(address: &Address) -> WireLocation {
        let s = |v: &str| Some(v.to_string()).filter(|v| !v.is_empty());
        WireLocation {
            address1: s(&address.line1),
            address2: s(&address.line2),
            city: s(&address.city),
            region: s(&address.region),
            zip: s(&address.postal_code),
            country: s(&address.country),
        }
    }
}

/// `GET /api/lists` and `GET /api/lists/{id}`.
#[derive(Debug, Deserialize)]
pub struct ListsPage {
    pub data: Vec<WireList>,
    #[serde(default)]
    pub links: Option<Links>,
}

#[derive(Debug, Deserialize)]
pub struct ListDocument {
    pub data: WireList,
}

#[derive(Debug, Deserialize)]
pub struct WireList {
    pub id: String,
    #[serde(default)]
    pub attributes: ListAttributes,
}

#[derive(Debug, Default, Deserialize)]
pub struct ListAttributes {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub profile_count: Option<u64>,
}

/// A bulk import job (`POST` answer and `GET …/{job_id}`).
#[derive(Debug, Deserialize)]
pub struct JobDocument {
    pub data: WireJob,
}

#[derive(Debug, Deserialize)]
pub struct WireJob {
    pub id: String,
    pub attributes: JobAttributes,
}

#[derive(Debug, Deserialize)]
pub struct JobAttributes {
    pub status: String,
    #[serde(default)]
    pub failed_count: Option<u64>,
}

/// `GET /api/profile-bulk-import-jobs/{id}/import-errors`.
#[derive(Debug, Deserialize)]
pub struct ImportErrorsPage {
    pub data: Vec<WireImportError>,
    #[serde(default)]
    pub links: Option<Links>,
}

#[derive(Debug, Deserialize)]
pub struct WireImportError {
    pub attributes: ImportErrorAttributes,
}

#[derive(Debug, Deserialize)]
pub struct ImportErrorAttributes {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub detail: Option<String>,
    #[serde(default)]
    pub source: Option<ErrorSource>,
    #[serde(default)]
    pub original_payload: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ErrorSource {
    #[serde(default)]
    pub pointer: Option<String>,
}

impl ImportErrorAttributes {
    /// The vendor's reason.
    pub fn reason(&self) -> String {
        let text = WireError {
            code: self.code.clone(),
            title: self.title.clone(),
            detail: self.detail.clone(),
            source: None,
        }
        .text();
        if text.is_empty() {
            "refused by the import job without a reason".to_string()
        } else {
            text
        }
    }

    /// The email of the refused profile: from the payload it echoes, else from the pointer's
    /// index into the job's profiles (`/data/attributes/profiles/data/{i}/…`).
    pub fn email<'a>(&'a self, sent: &'a [&'a str]) -> Option<&'a str> {
        if let Some(payload) = &self.original_payload {
            let email = payload
                .pointer("/attributes/email")
                .or_else(|| payload.pointer("/email"))
                .and_then(Value::as_str);
            if let Some(email) = email {
                return Some(email);
            }
        }
        let pointer = self.source.as_ref()?.pointer.as_deref()?;
        let rest = pointer.strip_prefix("/data/attributes/profiles/data/")?;
        let index: usize = rest.split('/').next()?.parse().ok()?;
        sent.get(index).copied()
    }
}

// ---------------------------------------------------------------- writes

/// A profile of a bulk import job: `{type:"profile", attributes{email, …}, meta?}`. New profiles get
/// every non-blank field; existing ones the changed fields, a blank one cleared (`null` for an
/// attribute, `meta.patch_properties.unset` for a custom property, as Klaviyo removes them).
pub fn import_profile(write: &MemberWrite, new: bool) -> Value {
    let mut attributes = Map::new();
    attributes.insert("email".into(), Value::String(write.email.to_string()));
    let mut properties = Map::new();
    let mut unset: Vec<Value> = Vec::new();
    for (name, value) in &write.fields {
        let blank = value.is_blank();
        if new && blank {
            continue;
        }
        match name.as_str() {
            "location" => {
                let location = match value {
                    FieldValue::Address(a) if !blank => {
                        serde_json::to_value(WireLocation::of(a)).unwrap_or(Value::Null)
                    }
                    FieldValue::Text(t) if !blank => {
                        serde_json::json!({ "address1": t.trim() })
                    }
                    _ => serde_json::to_value(WireLocation::default()).unwrap_or(Value::Null),
                };
                attributes.insert("location".into(), location);
            }
            attribute if super::VOCABULARY.contains(&attribute) => {
                let text = match value {
                    FieldValue::Text(t) if !blank => Value::String(t.trim().to_string()),
                    FieldValue::Address(a) if !blank => Value::String(address_line(a)),
                    _ => Value::Null,
                };
                attributes.insert(attribute.into(), text);
            }
            property => {
                if blank {
                    unset.push(Value::String(property.to_string()));
                } else {
                    let text = match value {
                        FieldValue::Text(t) => t.trim().to_string(),
                        FieldValue::Address(a) => address_line(a),
                    };
                    properties.insert(property.to_string(), Value::String(text));
                }
            }
        }
    }
    // Klaviyo profiles have no tags: a tag (the sync's owner tag) is a custom property of that
    // name set to true, read back by [`tags_of`].
    for tag in &write.tags {
        properties.insert(tag.clone(), Value::Bool(true));
    }
    if !properties.is_empty() {
        attributes.insert("properties".into(), Value::Object(properties));
    }
    let mut profile = Map::new();
    profile.insert("type".into(), Value::String("profile".into()));
    profile.insert("attributes".into(), Value::Object(attributes));
    if !unset.is_empty() {
        profile.insert(
            "meta".into(),
            serde_json::json!({ "patch_properties": { "unset": unset } }),
        );
    }
    Value::Object(profile)
}

/// An address written into a text field (a custom property), one line.
fn address_line(a: &Address) -> String {
    [
        &a.line1,
        &a.line2,
        &a.city,
        &a.region,
        &a.postal_code,
        &a.country,
    ]
    .iter()
    .filter(|s| !s.is_empty())
    .map(|s| s.as_str())
    .collect::<Vec<_>>()
    .join(", ")
}

/// The envelope of a bulk import job around already encoded profiles, joined without copying
/// them twice. Its size is [`import_job_overhead`] plus the profiles and their separators.
pub fn import_job_body(profiles: &[&[u8]], list_id: Option<&str>) -> Vec<u8> {
    let (head, tail) = import_job_envelope(list_id);
    let size = head.len() + tail.len() + profiles.iter().map(|p| p.len() + 1).sum::<usize>();
    let mut body = Vec::with_capacity(size);
    body.extend_from_slice(head.as_bytes());
    for (i, profile) in profiles.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(profile);
    }
    body.extend_from_slice(tail.as_bytes());
    body
}

/// Bytes a job's envelope adds to its profiles.
pub fn import_job_overhead(list_id: Option<&str>) -> usize {
    let (head, tail) = import_job_envelope(list_id);
    head.len() + tail.len()
}

fn import_job_envelope(list_id: Option<&str>) -> (String, String) {
    let head = r#"{"data":{"type":"profile-bulk-import-job","attributes":{"profiles":{"data":["#
        .to_string();
    let tail = match list_id {
        Some(id) => [
            r#"]}},"relationships":{"lists":{"data":[{"type":"list","id":"#,
            &Value::String(id.to_string()).to_string(),
            "}]}}}}",
        ]
        .concat(),
        None => "]}}}}".to_string(),
    };
    (head, tail)
}

/// `POST /api/profile-subscription-bulk-create-jobs`.
#[derive(Debug, Serialize)]
pub struct SubscribeJob<'a> {
    pub data: SubscribeJobData<'a>,
}

#[derive(Debug, Serialize)]
pub struct SubscribeJobData<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub attributes: SubscribeJobAttributes<'a>,
    pub relationships: ListRelationship<'a>,
}

#[derive(Debug, Serialize)]
pub struct SubscribeJobAttributes<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_source: Option<&'a str>,
    pub profiles: ProfilesData<SubscribeProfile<'a>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub historical_import: bool,
}

#[derive(Debug, Serialize)]
pub struct ProfilesData<T> {
    pub data: Vec<T>,
}

#[derive(Debug, Serialize)]
pub struct SubscribeProfile<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub attributes: ConsentAttributes<'a>,
}

#[derive(Debug, Serialize)]
pub struct ConsentAttributes<'a> {
    pub email: &'a str,
    pub subscriptions: Channels,
}

#[derive(Debug, Serialize)]
pub struct Channels {
    pub email: EmailConsent,
}

#[derive(Debug, Serialize)]
pub struct EmailConsent {
    pub marketing: MarketingConsent,
}

#[derive(Debug, Serialize)]
pub struct MarketingConsent {
    pub consent: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consented_at: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ListRelationship<'a> {
    pub list: ListData<'a>,
}

#[derive(Debug, Serialize)]
pub struct ListData<'a> {
    pub data: ResourceId<'a>,
}

#[derive(Debug, Serialize)]
pub struct ResourceId<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: &'a str,
}

/// A consent job: `subscribe` gives email-marketing consent (with `consented_at` in a history
/// import), otherwise it revokes it (the unsubscribe job, scoped to `list_id`).
pub fn consent_job<'a>(
    subscribe: bool,
    emails: &[(&'a str, Option<String>)],
    list_id: &'a str,
    historical_import: bool,
) -> SubscribeJob<'a> {
    SubscribeJob {
        data: SubscribeJobData {
            kind: if subscribe {
                "profile-subscription-bulk-create-job"
            } else {
                "profile-subscription-bulk-delete-job"
            },
            attributes: SubscribeJobAttributes {
                custom_source: subscribe.then_some("audience-operator"),
                profiles: ProfilesData {
                    data: emails
                        .iter()
                        .map(|(email, consented_at)| SubscribeProfile {
                            kind: "profile",
                            attributes: ConsentAttributes {
                                email,
                                subscriptions: Channels {
                                    email: EmailConsent {
                                        marketing: MarketingConsent {
                                            consent: if subscribe {
                                                "SUBSCRIBED"
                                            } else {
                                                "UNSUBSCRIBED"
                                            },
                                            consented_at: consented_at
                                                .clone()
                                                .filter(|_| subscribe && historical_import),
                                        },
                                    },
                                },
                            },
                        })
                        .collect(),
                },
                historical_import: subscribe && historical_import,
            },
            relationships: ListRelationship {
                list: ListData {
                    data: ResourceId {
                        kind: "list",
                        id: list_id,
                    },
                },
            },
        },
    }
}

/// `POST`/`DELETE /api/lists/{id}/relationships/profiles`.
#[derive(Debug, Serialize)]
pub struct RelationshipBody<'a> {
    pub data: Vec<ResourceId<'a>>,
}

pub fn relationship_body<'a>(ids: &[&'a str]) -> RelationshipBody<'a> {
    RelationshipBody {
        data: ids
            .iter()
            .map(|id| ResourceId {
                kind: "profile",
                id,
            })
            .collect(),
    }
}

/// `POST /api/lists`.
pub fn new_list(name: &str) -> Value {
    serde_json::json!({ "data": { "type": "list", "attributes": { "name": name } } })
}

/// A JSON:API filter string literal.
fn quoted(text: &str) -> String {
    Value::String(text.to_string()).to_string()
}

/// `any(email,["a@b.c","d@e.f"])`.
pub fn any_email(emails: &[&str]) -> String {
    let list: Vec<String> = emails.iter().map(|e| quoted(e)).collect();
    format!("any(email,[{}])", list.join(","))
}

/// `equals(name,"…")`.
pub fn name_equals(name: &str) -> String {
    format!("equals(name,{})", quoted(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use audience_core::Email;
    use serde_json::json;

    fn marketing(value: Value) -> EmailMarketing {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn standing_from_subscriptions() {
        let s = |v| standing(&marketing(v), Some("L1")).unwrap().status();
        assert_eq!(
            s(json!({"consent":"SUBSCRIBED","can_receive_email_marketing":true})),
            MemberStatus::Subscribed
        );
        assert_eq!(
            s(json!({"consent":"UNSUBSCRIBED"})),
            MemberStatus::Unsubscribed
        );
        assert_eq!(
            s(json!({"consent":"NEVER_SUBSCRIBED"})),
            MemberStatus::Transactional
        );
        for (reason, status) in [
            ("HARD_BOUNCE", MemberStatus::Cleaned),
            ("INVALID_EMAIL", MemberStatus::Cleaned),
            ("SPAM_COMPLAINT", MemberStatus::Unsubscribed),
            ("USER_SUPPRESSED", MemberStatus::Unsubscribed),
            ("UNSUBSCRIBE", MemberStatus::Unsubscribed),
            ("SOMETHING_NEW", MemberStatus::Unsubscribed),
        ] {
            // A suppression wins even over SUBSCRIBED.
            let v = json!({"consent":"SUBSCRIBED","suppression":[{"reason":reason,"timestamp":"2024-01-01T00:00:00Z"}]});
            assert_eq!(s(v), status, "{reason}");
        }
        let list_unsub = json!({"consent":"SUBSCRIBED","list_suppressions":[{"list_id":"L1","reason":"UNSUBSCRIBE","timestamp":"2024-01-01T00:00:00Z"}]});
        assert_eq!(s(list_unsub), MemberStatus::Unsubscribed);
        let other_list = json!({"consent":"SUBSCRIBED","list_suppressions":[{"list_id":"L2","reason":"UNSUBSCRIBE","timestamp":"2024-01-01T00:00:00Z"}]});
        assert_eq!(s(other_list), MemberStatus::Subscribed);
        assert!(standing(&marketing(json!({"consent":"MAYBE"})), None).is_err());
        let blocked = standing(
            &marketing(
                json!({"consent":"NEVER_SUBSCRIBED","suppression":[{"reason":"SPAM_COMPLAINT"}]}),
            ),
            None,
        )
        .unwrap();
        assert!(
            blocked
                .blocks_subscribe()
                .unwrap()
                .contains("SPAM_COMPLAINT")
        );
        assert_eq!(Standing::NeverSubscribed.blocks_subscribe(), None);
    }

    #[test]
    fn profile_fields_round_trip_through_an_import_profile() {
        let address = Address {
            line1: "1 Main St".into(),
            line2: String::new(),
            city: "Springfield".into(),
            region: "IL".into(),
            postal_code: "62701".into(),
            country: "US".into(),
        };
        let mut fields = BTreeMap::new();
        fields.insert("first_name".to_string(), FieldValue::Text("Ada".into()));
        fields.insert("organization".to_string(), FieldValue::Text("ACME".into()));
        fields.insert("title".to_string(), FieldValue::Text("CTO".into()));
        fields.insert("location".to_string(), FieldValue::Address(address.clone()));
        fields.insert("loyalty_tier".to_string(), FieldValue::Text("gold".into()));
        fields.insert("last_name".to_string(), FieldValue::Text(String::new()));
        let write = MemberWrite {
            email: Email::parse("ada@example.com").unwrap(),
            source_id: "1".into(),
            status: Some(MemberStatus::Subscribed),
            fields: fields.clone(),
            tags: Default::default(),
            unarchive: false,
            consent_by_rule: false,
            consented_at: None,
        };
        let new = import_profile(&write, true);
        assert_eq!(new["type"], "profile");
        assert_eq!(new["attributes"]["email"], "ada@example.com");
        assert_eq!(new["attributes"]["organization"], "ACME");
        assert_eq!(new["attributes"]["location"]["zip"], "62701");
        assert_eq!(new["attributes"]["properties"]["loyalty_tier"], "gold");
        // Consent never travels as a profile attribute.
        assert!(new["attributes"].get("subscriptions").is_none());
        // New profiles leave blank fields out.
        assert!(new["attributes"].get("last_name").is_none());
        assert!(new.get("meta").is_none());

        // What Klaviyo answers with reads back as the same fields (blank ones absent).
        let answer: ProfileAttributes = serde_json::from_value(new["attributes"].clone()).unwrap();
        let read = fields_of(&answer);
        let mut expected = fields.clone();
        expected.remove("last_name");
        assert_eq!(read, expected);

        // An update clears a blank attribute with null and a blank property with unset.
        let mut update = write.clone();
        update.fields = BTreeMap::from([
            ("last_name".to_string(), FieldValue::Text(String::new())),
            ("loyalty_tier".to_string(), FieldValue::Text(" ".into())),
        ]);
        let changed = import_profile(&update, false);
        assert_eq!(changed["attributes"]["last_name"], Value::Null);
        assert_eq!(
            changed["meta"]["patch_properties"]["unset"],
            json!(["loyalty_tier"])
        );
        assert!(changed["attributes"].get("properties").is_none());
    }

    #[test]
    fn properties_read_as_text_and_never_shadow_attributes() {
        let attrs: ProfileAttributes = serde_json::from_value(json!({
            "email": "a@b.co",
            "first_name": "Real",
            "location": {"address1": null, "city": null},
            "properties": {"first_name": "shadow", "visits": 3, "vip": true, "gone": null}
        }))
        .unwrap();
        let fields = fields_of(&attrs);
        assert_eq!(fields["first_name"], FieldValue::Text("Real".into()));
        assert_eq!(fields["visits"], FieldValue::Text("3".into()));
        assert_eq!(fields["vip"], FieldValue::Text("true".into()));
        assert!(!fields.contains_key("gone"));
        // An all-null location is no address.
        assert!(!fields.contains_key("location"));
    }

    #[test]
    fn import_job_body_is_valid_json_of_the_stated_size() {
        let a = br#"{"type":"profile","attributes":{"email":"a@b.co"}}"#.as_slice();
        let b = br#"{"type":"profile","attributes":{"email":"c@d.co"}}"#.as_slice();
        for list in [None, Some("Xy\"12")] {
            let body = import_job_body(&[a, b], list);
            assert_eq!(
                body.len(),
                import_job_overhead(list) + a.len() + b.len() + 1
            );
            let doc: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(doc["data"]["type"], "profile-bulk-import-job");
            assert_eq!(
                doc["data"]["attributes"]["profiles"]["data"][1]["attributes"]["email"],
                "c@d.co"
            );
            match list {
                Some(id) => assert_eq!(doc["data"]["relationships"]["lists"]["data"][0]["id"], id),
                None => assert!(doc["data"].get("relationships").is_none()),
            }
        }
    }

    #[test]
    fn consent_jobs_follow_the_spec_shape() {
        let emails = [("a@b.co", Some("2020-01-02T03:04:05Z".to_string()))];
        let sub = serde_json::to_value(consent_job(true, &emails, "L1", true)).unwrap();
        assert_eq!(sub["data"]["type"], "profile-subscription-bulk-create-job");
        assert_eq!(sub["data"]["attributes"]["historical_import"], true);
        let m = &sub["data"]["attributes"]["profiles"]["data"][0]["attributes"]["subscriptions"]["email"]
            ["marketing"];
        assert_eq!(m["consent"], "SUBSCRIBED");
        assert_eq!(m["consented_at"], "2020-01-02T03:04:05Z");
        assert_eq!(sub["data"]["relationships"]["list"]["data"]["id"], "L1");
        // Without a history import, no consented_at (Klaviyo refuses it then).
        let live = serde_json::to_value(consent_job(true, &emails, "L1", false)).unwrap();
        assert!(
            live["data"]["attributes"]
                .get("historical_import")
                .is_none()
        );
        let m = &live["data"]["attributes"]["profiles"]["data"][0]["attributes"]["subscriptions"]["email"]
            ["marketing"];
        assert!(m.get("consented_at").is_none());
        let unsub = serde_json::to_value(consent_job(false, &emails, "L1", true)).unwrap();
        assert_eq!(
            unsub["data"]["type"],
            "profile-subscription-bulk-delete-job"
        );
        assert!(
            unsub["data"]["attributes"]
                .get("historical_import")
                .is_none()
        );
        assert!(unsub["data"]["attributes"].get("custom_source").is_none());
        assert_eq!(
            unsub["data"]["attributes"]["profiles"]["data"][0]["attributes"]["subscriptions"]["email"]
                ["marketing"]["consent"],
            "UNSUBSCRIBED"
        );
    }

    #[test]
    fn filters_and_cursors() {
        assert_eq!(
            any_email(&["a@b.co", "c@d.co"]),
            r#"any(email,["a@b.co","c@d.co"])"#
        );
        assert_eq!(name_equals("VIP \"x\""), r#"equals(name,"VIP \"x\"")"#);
        assert_eq!(
            cursor_of("https://a.klaviyo.com/api/lists/X/profiles?page%5Bcursor%5D=abc%3D&page%5Bsize%5D=100")
                .as_deref(),
            Some("abc=")
        );
        assert_eq!(
            cursor_of("/api/profiles?page[cursor]=zz").as_deref(),
            Some("zz")
        );
        assert_eq!(cursor_of("https://a.klaviyo.com/api/profiles"), None);
    }

    #[test]
    fn import_errors_name_their_profile() {
        let sent = ["a@b.co", "c@d.co"];
        let by_pointer: ImportErrorAttributes = serde_json::from_value(json!({
            "code": "invalid", "title": "Invalid phone number", "detail": "not E.164",
            "source": {"pointer": "/data/attributes/profiles/data/1/attributes/phone_number"}
        }))
        .unwrap();
        assert_eq!(by_pointer.email(&sent), Some("c@d.co"));
        assert_eq!(
            by_pointer.reason(),
            "Invalid phone number: not E.164 (invalid)"
        );
        let by_payload: ImportErrorAttributes = serde_json::from_value(json!({
            "code": "invalid", "title": "Invalid", "detail": "bad",
            "source": {"pointer": "/data"},
            "original_payload": {"type": "profile", "attributes": {"email": "a@b.co"}}
        }))
        .unwrap();
        assert_eq!(by_payload.email(&sent), Some("a@b.co"));
        let unknown: ImportErrorAttributes = serde_json::from_value(json!({
            "code": "x", "title": "t", "detail": "d", "source": {"pointer": "/data/attributes/profiles/data/9"}
        }))
        .unwrap();
        assert_eq!(unknown.email(&sent), None);
    }

    #[test]
    fn error_documents_read_as_text() {
        let doc: ErrorDocument = serde_json::from_value(json!({"errors":[
            {"id":"1","status":400,"code":"invalid","title":"Invalid input.","detail":"The email is bad.","source":{"pointer":"/data"}},
            {"id":"2","code":"invalid","title":"Invalid input.","detail":"Another"}
        ]}))
        .unwrap();
        assert_eq!(
            doc.text(),
            "Invalid input.: The email is bad. (invalid) (and 1 more)"
        );
    }
}
