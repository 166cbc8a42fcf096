//! Consent written back to Shopify (two-way consent): `customerEmailMarketingConsentUpdate`.
//!
//! **Batching.** The Admin API takes one customer per mutation, but one GraphQL document may
//! hold several aliased mutations (`c0: customerEmailMarketingConsentUpdate(...) c1: ...`), each
//! costing 10 points [D: "mutations cost 10"]. A document holds [`BATCH`] of them (100 points,
//! a tenth of a Standard shop's 1,000-point bucket), and goes through the same cost-bucket wait
//! and THROTTLED retry as every read, so writes are paced within the shop's budget.
//!
//! **Errors.** A customer Shopify refuses comes back in that mutation's `userErrors`
//! (`{field, message, code}`: INVALID, INCLUSION, MISSING_ARGUMENT, INTERNAL_ERROR): it is
//! reported as a rejection naming the customer's email and the vendor's words, and the others
//! in the document still count. A document-level GraphQL error fails the whole call. A mutation
//! answering neither a customer nor a user error is an answer we cannot read.
//!
//! **Consent time.** `consentUpdatedAt` is sent when the write carries one (Mailchimp's consent
//! time, later than the shop's own); otherwise it is left out and Shopify records the time of
//! the write ("If no date is provided, then the date and time at which the consent information
//! was sent is used"), because an older time would leave the state unchanged.

use std::collections::BTreeMap;

use async_trait::async_trait;
use audience_core::{
    ApplyControl, ConnectorError, Consent, ConsentWrite, ConsentWriteReport, ConsentWriter,
    OptInLevel, RecordRejection,
};
use chrono::SecondsFormat;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{ShopifySource, VENDOR};
use crate::http;

/// Mutations in one GraphQL document.
pub const BATCH: usize = 10;
/// What one mutation costs [D].
const MUTATION_COST: u32 = 10;
const OP: &str = "customerEmailMarketingConsentUpdate";

#[derive(Deserialize)]
struct Payload {
    #[serde(default)]
    customer: Option<Value>,
    #[serde(default, rename = "userErrors")]
    user_errors: Vec<UserError>,
}

#[derive(Deserialize)]
struct UserError {
    #[serde(default)]
    field: Option<Vec<String>>,
    #[serde(default)]
    message: String,
    #[serde(default)]
    code: Option<String>,
}

fn state(consent: Consent) -> Option<&'static str> {
    match consent {
        Consent::Subscribed => Some("SUBSCRIBED"),
        Consent::Unsubscribed => Some("UNSUBSCRIBED"),
        Consent::Pending => Some("PENDING"),
        _ => None,
    }
}

fn level(level: OptInLevel) -> &'static str {
    match level {
        OptInLevel::SingleOptIn => "SINGLE_OPT_IN",
        OptInLevel::ConfirmedOptIn => "CONFIRMED_OPT_IN",
        OptInLevel::Unknown => "UNKNOWN",
    }
}

/// The document and variables for one batch.
fn document(batch: &[&ConsentWrite]) -> (String, Value) {
    let mut params = Vec::new();
    let mut fields = Vec::new();
    let mut variables = Map::new();
    for (i, write) in batch.iter().enumerate() {
        params.push(format!("$i{i}: CustomerEmailMarketingConsentUpdateInput!"));
        fields.push(format!(
            "c{i}: customerEmailMarketingConsentUpdate(input: $i{i}) {{ customer {{ id }} userErrors {{ field message code }} }}"
        ));
        let mut consent = json!({
            "marketingState": state(write.consent).unwrap_or("UNSUBSCRIBED"),
            "marketingOptInLevel": level(write.opt_in_level),
        });
        if let Some(at) = write.consented_at {
            consent["consentUpdatedAt"] = json!(at.to_rfc3339_opts(SecondsFormat::Secs, true));
        }
        variables.insert(
            format!("i{i}"),
            json!({"customerId": write.source_id, "emailMarketingConsent": consent}),
        );
    }
    (
        format!(
            "mutation WriteConsent({}) {{ {} }}",
            params.join(", "),
            fields.join(" ")
        ),
        Value::Object(variables),
    )
}

fn describe(errors: &[UserError]) -> String {
    let mut text: Vec<String> = errors
        .iter()
        .take(3)
        .map(|e| {
            let mut s = e.message.clone();
            if let Some(code) = &e.code {
                s.push_str(&format!(" ({code})"));
            }
            if let Some(field) = &e.field {
                s.push_str(&format!(" [{}]", field.join(".")));
            }
            s
        })
        .collect();
    text.dedup();
    let mut message = text.join("; ");
    if message.chars().count() > 300 {
        message = message.chars().take(300).collect::<String>() + "…";
    }
    message
}

#[async_trait]
impl ConsentWriter for ShopifySource {
    async fn write_consent(
        &self,
        writes: &[ConsentWrite],
        control: &ApplyControl,
    ) -> Result<ConsentWriteReport, ConnectorError> {
        let mut report = ConsentWriteReport::default();
        // Shopify takes only these states as input; anything else is the caller's bug, refused
        // here rather than sent.
        let (sendable, refused): (Vec<&ConsentWrite>, Vec<&ConsentWrite>) =
            writes.iter().partition(|w| state(w.consent).is_some());
        for w in refused {
            report.rejected.push(RecordRejection {
                email: w.email.as_str().to_string(),
                reason: format!("{:?} is not a consent Shopify takes as input", w.consent),
            });
        }
        let endpoint = format!("POST graphql {OP}");
        let total = sendable.len() as u64;
        for batch in sendable.chunks(BATCH) {
            if control.stop_requested() {
                report.stopped_early = true;
                break;
            }
            let (doc, variables) = document(batch);
            let first = MUTATION_COST * batch.len() as u32;
            let data: BTreeMap<String, Option<Payload>> = self
                .query(OP, &doc, variables, first.saturating_sub(2))
                .await?;
            report.write_calls += 1;
            for (i, write) in batch.iter().enumerate() {
                let payload = data.get(&format!("c{i}")).and_then(Option::as_ref);
                match payload {
                    Some(p) if !p.user_errors.is_empty() => report.rejected.push(RecordRejection {
                        email: write.email.as_str().to_string(),
                        reason: describe(&p.user_errors),
                    }),
                    Some(p) if p.customer.as_ref().is_some_and(|c| !c.is_null()) => {
                        report.written += 1
                    }
                    _ => {
                        return Err(http::invalid_response(
                            VENDOR,
                            &endpoint,
                            "a consent update answered neither the customer nor a user error",
                        ));
                    }
                }
            }
            control.report(report.written + report.rejected.len() as u64, total);
        }
        Ok(report)
    }
}
