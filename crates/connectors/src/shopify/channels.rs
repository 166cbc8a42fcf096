//! The SMS and write-back passes' side of Shopify: every customer with their phone and
//! `smsMarketingConsent {marketingState consentUpdatedAt}` (a query of its own, so the email
//! sync's reads stay as they were), and new customers by `customerCreate`.
//!
//! **customerCreate batching** is that of the consent writes ([`super::consent`]): [`BATCH`]
//! aliased mutations per document, 10 points each, through the cost-bucket wait and the
//! THROTTLED retry. A customer Shopify refuses (`userErrors`, e.g. "Email has already been
//! taken") is a rejection naming its email; it is never sent again in this run, and the next
//! run finds the shop's customer of that email and plans nothing for it.
//!
//! **Retries never duplicate**: a document is re-sent only when Shopify answered THROTTLED
//! (nothing ran) or the transport failed before an answer; a customer created by a document
//! whose answer was lost makes the resend answer "Email has already been taken", a rejection,
//! not a second customer (the shop keeps emails unique).

use std::collections::BTreeMap;

use async_trait::async_trait;
use audience_core::{
    ApplyControl, ConnectorError, ConsentWriteReport, CustomerCreate, CustomerCreator,
    RecordRejection, ShopCustomer, SmsConsent, SmsState,
};
use chrono::{DateTime, SecondsFormat, Utc};
use futures::StreamExt;
use futures::stream::BoxStream;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{ShopifySource, VENDOR};
use crate::http;

/// Mutations in one GraphQL document.
pub const BATCH: usize = 10;
const MUTATION_COST: u32 = 10;
const OP: &str = "customerCreate";

const CHANNELS_QUERY: &str = r#"query CustomerChannels($first: Int!, $after: String) {
  customers(first: $first, after: $after, sortKey: ID) {
    nodes {
      id
      email
      phone
      smsMarketingConsent { marketingState consentUpdatedAt }
    }
    pageInfo { hasNextPage endCursor }
  }
}"#;

#[derive(Deserialize)]
struct ChannelsData {
    customers: Nodes,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Nodes {
    nodes: Vec<ChannelNode>,
    page_info: PageInfo,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageInfo {
    has_next_page: bool,
    end_cursor: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChannelNode {
    id: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    sms_marketing_consent: Option<SmsNode>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SmsNode {
    marketing_state: String,
    #[serde(default)]
    consent_updated_at: Option<String>,
}

fn sms_state(word: &str) -> Option<SmsState> {
    Some(match word {
        "NOT_SUBSCRIBED" => SmsState::NotSubscribed,
        "PENDING" => SmsState::Pending,
        "SUBSCRIBED" => SmsState::Subscribed,
        "UNSUBSCRIBED" => SmsState::Unsubscribed,
        "REDACTED" => SmsState::Redacted,
        _ => return None,
    })
}

fn shop_customer(node: ChannelNode) -> Result<ShopCustomer, String> {
    let sms = match node.sms_marketing_consent {
        None => None,
        Some(c) => Some(SmsConsent {
            state: sms_state(&c.marketing_state).ok_or_else(|| {
                format!(
                    "smsMarketingConsent.marketingState {:?} is not one the schema defines",
                    c.marketing_state.chars().take(40).collect::<String>()
                )
            })?,
            // An unreadable time is no time: the customer counts as older than any `since`.
            updated_at: c
                .consent_updated_at
                .as_deref()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc)),
        }),
    };
    Ok(ShopCustomer {
        source_id: node.id,
        email: node.email,
        phone: node.phone,
        sms,
    })
}

impl ShopifySource {
    pub(super) fn channel_pages(&self) -> BoxStream<'_, Result<Vec<ShopCustomer>, ConnectorError>> {
        let endpoint = Self::endpoint("customers");
        futures::stream::try_unfold(Some(None::<String>), move |after| {
            let endpoint = endpoint.clone();
            async move {
                let Some(after) = after else {
                    return Ok(None);
                };
                let data: ChannelsData = self
                    .query(
                        "customers",
                        CHANNELS_QUERY,
                        json!({"first": self.page_size, "after": after}),
                        self.page_size,
                    )
                    .await?;
                let page = data
                    .customers
                    .nodes
                    .into_iter()
                    .map(shop_customer)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|m| http::invalid_response(VENDOR, &endpoint, m))?;
                let next = if data.customers.page_info.has_next_page {
                    Some(Some(data.customers.page_info.end_cursor.ok_or_else(
                        || {
                            http::invalid_response(
                                VENDOR,
                                &endpoint,
                                "hasNextPage without an endCursor",
                            )
                        },
                    )?))
                } else {
                    None
                };
                Ok(Some((page, next)))
            }
        })
        .boxed()
    }
}

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
}

fn describe(errors: &[UserError]) -> String {
    let mut text: Vec<String> = errors
        .iter()
        .take(3)
        .map(|e| match &e.field {
            Some(field) => format!("{} [{}]", e.message, field.join(".")),
            None => e.message.clone(),
        })
        .collect();
    text.dedup();
    text.join("; ").chars().take(300).collect()
}

fn input(create: &CustomerCreate) -> Value {
    let mut input = Map::new();
    input.insert("email".into(), json!(create.email.as_str()));
    if !create.first_name.is_empty() {
        input.insert("firstName".into(), json!(create.first_name));
    }
    if !create.last_name.is_empty() {
        input.insert("lastName".into(), json!(create.last_name));
    }
    if create.subscribed {
        let mut consent = json!({
            "marketingState": "SUBSCRIBED",
            "marketingOptInLevel": "SINGLE_OPT_IN",
        });
        if let Some(at) = create.consented_at {
            consent["consentUpdatedAt"] = json!(at.to_rfc3339_opts(SecondsFormat::Secs, true));
        }
        input.insert("emailMarketingConsent".into(), consent);
    }
    Value::Object(input)
}

fn document(batch: &[CustomerCreate]) -> (String, Value) {
    let mut params = Vec::new();
    let mut fields = Vec::new();
    let mut variables = Map::new();
    for (i, create) in batch.iter().enumerate() {
        params.push(format!("$i{i}: CustomerInput!"));
        fields.push(format!(
            "c{i}: customerCreate(input: $i{i}) {{ customer {{ id }} userErrors {{ field message }} }}"
        ));
        variables.insert(format!("i{i}"), input(create));
    }
    (
        format!(
            "mutation CreateCustomers({}) {{ {} }}",
            params.join(", "),
            fields.join(" ")
        ),
        Value::Object(variables),
    )
}

#[async_trait]
impl CustomerCreator for ShopifySource {
    async fn create_customers(
        &self,
        creates: &[CustomerCreate],
        control: &ApplyControl,
    ) -> Result<ConsentWriteReport, ConnectorError> {
        let mut report = ConsentWriteReport::default();
        let endpoint = format!("POST graphql {OP}");
        let total = creates.len() as u64;
        for batch in creates.chunks(BATCH) {
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
            for (i, create) in batch.iter().enumerate() {
                match data.get(&format!("c{i}")).and_then(Option::as_ref) {
                    Some(p) if !p.user_errors.is_empty() => report.rejected.push(RecordRejection {
                        email: create.email.as_str().to_string(),
                        reason: describe(&p.user_errors),
                    }),
                    Some(p) if p.customer.as_ref().is_some_and(|c| !c.is_null()) => {
                        report.written += 1
                    }
                    _ => {
                        return Err(http::invalid_response(
                            VENDOR,
                            &endpoint,
                            "a customerCreate answered neither the customer nor a user error",
                        ));
                    }
                }
            }
            control.report(report.written + report.rejected.len() as u64, total);
        }
        Ok(report)
    }
}
