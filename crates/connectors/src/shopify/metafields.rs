//! Customer metafields written by the operator: `metafieldsSet(metafields: [MetafieldsSetInput!]!)`.
//!
//! One call sets at most [`MAX_PER_CALL`] (25) metafields and is atomic: when Shopify refuses
//! one entry (`userErrors` with its `elementIndex`), nothing of that call is set, and every
//! owner of the call is reported as rejected with the vendor's words. Each call costs 10 points
//! and goes through the shop's cost bucket and THROTTLED retry like every query.

use std::collections::BTreeMap;

use audience_core::ConnectorError;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ShopifySource, VENDOR};
use crate::http;

/// Metafields per `metafieldsSet` call (Shopify's maximum).
pub const MAX_PER_CALL: usize = 25;
const OP: &str = "metafieldsSet";
/// What the mutation costs [D]; the query helper adds the base 2 to `first`.
const MUTATION_COST: u32 = 10;

pub use audience_core::customer_events::{MetafieldReport, MetafieldWrite};

#[derive(Deserialize)]
struct Payload {
    #[serde(default)]
    metafields: Option<Vec<Value>>,
    #[serde(default, rename = "userErrors")]
    user_errors: Vec<UserError>,
}

#[derive(Deserialize)]
struct UserError {
    #[serde(default)]
    message: String,
    #[serde(default)]
    code: Option<String>,
    #[serde(default, rename = "elementIndex")]
    element_index: Option<usize>,
}

const DOCUMENT: &str = "mutation SetMetafields($metafields: [MetafieldsSetInput!]!) { metafieldsSet(metafields: $metafields) { metafields { id } userErrors { field message code elementIndex } } }";

impl ShopifySource {
    /// Sets `writes`, [`MAX_PER_CALL`] at a time (see the module docs).
    pub async fn set_metafields(
        &self,
        writes: &[MetafieldWrite],
    ) -> Result<MetafieldReport, ConnectorError> {
        let mut report = MetafieldReport::default();
        for chunk in writes.chunks(MAX_PER_CALL) {
            let inputs: Vec<Value> = chunk
                .iter()
                .map(|w| {
                    json!({"ownerId": w.owner_id, "namespace": w.namespace, "key": w.key,
                           "type": w.kind, "value": w.value})
                })
                .collect();
            let data: BTreeMap<String, Option<Payload>> = self
                .query(
                    OP,
                    DOCUMENT,
                    json!({ "metafields": inputs }),
                    MUTATION_COST - 2,
                )
                .await?;
            report.calls += 1;
            let Some(Some(payload)) = data.get(OP) else {
                return Err(http::invalid_response(
                    VENDOR,
                    "POST graphql metafieldsSet",
                    "metafieldsSet answered no payload",
                ));
            };
            if payload.user_errors.is_empty() {
                report.written += payload.metafields.as_ref().map_or(0, Vec::len) as u64;
                continue;
            }
            let reason = payload
                .user_errors
                .iter()
                .take(3)
                .map(|e| match (&e.code, e.element_index) {
                    (Some(code), Some(i)) => format!("{} ({code}, entry {i})", e.message),
                    (Some(code), None) => format!("{} ({code})", e.message),
                    _ => e.message.clone(),
                })
                .collect::<Vec<_>>()
                .join("; ");
            let mut owners: Vec<&str> = chunk.iter().map(|w| w.owner_id.as_str()).collect();
            owners.dedup();
            for owner in owners {
                report.rejected.push((owner.to_string(), reason.clone()));
            }
        }
        Ok(report)
    }
}

#[async_trait::async_trait]
impl audience_core::customer_events::MetafieldWriter for ShopifySource {
    async fn set_metafields(
        &self,
        writes: &[MetafieldWrite],
    ) -> Result<MetafieldReport, ConnectorError> {
        ShopifySource::set_metafields(self, writes).await
    }
}
