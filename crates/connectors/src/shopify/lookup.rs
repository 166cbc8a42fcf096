//! A few customers found by address or id (`customers(query: "email:a OR id:1 …")`), so the
//! customer-events pass asks for the contacts it needs instead of reading the whole shop.
//!
//! [U] Shopify documents no limit on a search query's length; [`TERMS_PER_QUERY`] keeps each
//! query short, and each asks for as many nodes as it has terms (an address or an id names
//! at most one customer), so its requested cost stays small.

use audience_core::ConnectorError;
use serde::Deserialize;
use serde_json::json;

use super::{ShopifySource, numeric_id};

/// Search terms joined by `OR` in one query.
pub const TERMS_PER_QUERY: usize = 50;
const OP: &str = "customers";

const FIND_QUERY: &str = r#"query Find($first: Int!, $query: String) {
  customers(first: $first, query: $query) {
    edges { node { id email } }
  }
}"#;

#[derive(Deserialize)]
struct Found {
    customers: Edges,
}

#[derive(Deserialize)]
struct Edges {
    edges: Vec<Edge>,
}

#[derive(Deserialize)]
struct Edge {
    node: Node,
}

#[derive(Deserialize)]
struct Node {
    id: String,
    #[serde(default)]
    email: Option<String>,
}

/// A search term's value, quoted so a space or a colon in it stays inside the term; the
/// characters that would end the quote are left out (no address or id holds them).
fn quoted(value: &str) -> String {
    let clean: String = value.chars().filter(|c| !matches!(c, '"' | '\\')).collect();
    format!("\"{clean}\"")
}

impl ShopifySource {
    pub async fn find_customers(
        &self,
        emails: &[String],
        ids: &[String],
    ) -> Result<Vec<(String, String)>, ConnectorError> {
        let terms: Vec<String> = emails
            .iter()
            .map(|e| format!("email:{}", quoted(e)))
            .chain(
                ids.iter()
                    .filter_map(|id| numeric_id(id))
                    .map(|n| format!("id:{n}")),
            )
            .collect();
        let mut found = Vec::new();
        for chunk in terms.chunks(TERMS_PER_QUERY) {
            let first = chunk.len() as u32;
            let data: Found = self
                .query(
                    OP,
                    FIND_QUERY,
                    json!({"first": first, "query": chunk.join(" OR ")}),
                    first,
                )
                .await?;
            found.extend(data.customers.edges.into_iter().filter_map(|e| {
                let email = e.node.email?.trim().to_lowercase();
                (!email.is_empty()).then_some((e.node.id, email))
            }));
        }
        Ok(found)
    }
}

#[async_trait::async_trait]
impl audience_core::customer_events::CustomerLookup for ShopifySource {
    async fn find_customers(
        &self,
        emails: &[String],
        ids: &[String],
    ) -> Result<Vec<(String, String)>, ConnectorError> {
        ShopifySource::find_customers(self, emails, ids).await
    }
}
