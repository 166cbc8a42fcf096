//! The shop's code discounts as [`Promotion`]s ([`OrderSource::promotions`]), through the Admin
//! GraphQL API 2025-01: `codeDiscountNodes(first, after, sortKey: ID)`, paged, each node's
//! `codeDiscount` union read with inline fragments on `DiscountCodeBasic` (with `customerGets {
//! value { … on DiscountPercentage … on DiscountAmount } }`) and `DiscountCodeFreeShipping`.
//! Buy-X-get-Y and app discounts have no rule Mailchimp can hold: they are left out.
//!
//! A discount's first [`CODES_PER_DISCOUNT`] codes come with it; one with more is completed with
//! `codeDiscountNode(id) { … codes(first: 250, after) }`, up to [`MAX_CODES_PER_DISCOUNT`] (a
//! bulk discount of thousands of single-use codes is not a promotion to mail; the rest are
//! skipped with a warning).
//!
//! Needs the `read_discounts` access scope.
//!
//! Mapping: `DiscountPercentage.percentage` is a fraction (0.1) and becomes 10 %; a
//! `DiscountAmount` with `appliesOnEachItem` is per item, else on the order; free shipping is
//! 100 % off the shipping. `status` ACTIVE is enabled; SCHEDULED and EXPIRED are disabled.

use audience_core::order::{Decimal, DiscountTarget, DiscountValue, Promotion};
use audience_core::{ConnectorError, ErrorKind};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use super::orders::percent;
use super::{PageInfo, ShopifySource, VENDOR};
use crate::http;

/// Discounts per page.
pub const DISCOUNTS_PER_PAGE: u32 = 40;
/// Codes asked for with each discount.
pub const CODES_PER_DISCOUNT: u32 = 20;
/// Codes per follow-up page of one discount.
const MORE_CODES: u32 = 250;
/// Codes read of one discount at most.
pub const MAX_CODES_PER_DISCOUNT: usize = 1_000;

// Both queries stay within Shopify's single-query maximum of 1000 points.
const _: () = {
    assert!(2 + DISCOUNTS_PER_PAGE * (1 + 2 + CODES_PER_DISCOUNT) <= 1000);
    assert!(1 + 2 + MORE_CODES <= 1000);
};

const MEMBER_FIELDS: &str = "title status startsAt endsAt createdAt updatedAt";

fn list_query() -> String {
    format!(
        "query CodeDiscounts($first: Int!, $after: String, $codes: Int!) {{
  codeDiscountNodes(first: $first, after: $after, sortKey: ID) {{
    nodes {{ id codeDiscount {{ __typename
      ... on DiscountCodeBasic {{ {MEMBER_FIELDS}
        codes(first: $codes) {{ nodes {{ code }} pageInfo {{ hasNextPage endCursor }} }}
        customerGets {{ value {{ __typename
          ... on DiscountPercentage {{ percentage }}
          ... on DiscountAmount {{ amount {{ amount currencyCode }} appliesOnEachItem }} }} }} }}
      ... on DiscountCodeFreeShipping {{ {MEMBER_FIELDS}
        codes(first: $codes) {{ nodes {{ code }} pageInfo {{ hasNextPage endCursor }} }} }}
    }} }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}"
    )
}

const MORE_CODES_QUERY: &str = "query DiscountCodes($id: ID!, $codes: Int!, $after: String) {
  codeDiscountNode(id: $id) { codeDiscount {
    ... on DiscountCodeBasic { codes(first: $codes, after: $after) { nodes { code } pageInfo { hasNextPage endCursor } } }
    ... on DiscountCodeFreeShipping { codes(first: $codes, after: $after) { nodes { code } pageInfo { hasNextPage endCursor } } }
  } }
}";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListData {
    code_discount_nodes: NodeList,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NodeList {
    nodes: Vec<DiscountNode>,
    page_info: PageInfo,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DiscountNode {
    id: String,
    code_discount: CodeDiscount,
}

/// A member of the `DiscountCode` union; the fields are those of the Basic and FreeShipping
/// fragments (absent for the members not asked about).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CodeDiscount {
    #[serde(rename = "__typename")]
    type_name: String,
    title: Option<String>,
    status: Option<String>,
    starts_at: Option<String>,
    ends_at: Option<String>,
    created_at: Option<String>,
    updated_at: Option<String>,
    codes: Option<Codes>,
    customer_gets: Option<CustomerGets>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Codes {
    nodes: Vec<CodeNode>,
    page_info: PageInfo,
}

#[derive(Deserialize)]
struct CodeNode {
    code: String,
}

#[derive(Deserialize)]
struct CustomerGets {
    value: GetsValue,
}

/// A member of `DiscountCustomerGetsValue`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GetsValue {
    #[serde(rename = "__typename")]
    type_name: String,
    percentage: Option<f64>,
    amount: Option<MoneyNode>,
    applies_on_each_item: Option<bool>,
}

#[derive(Deserialize)]
struct MoneyNode {
    amount: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OneData {
    code_discount_node: Option<OneNode>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OneNode {
    code_discount: OneDiscount,
}

#[derive(Deserialize)]
struct OneDiscount {
    codes: Option<Codes>,
}

fn bad(what: String) -> ConnectorError {
    http::invalid_response(VENDOR, &ShopifySource::endpoint("codeDiscountNodes"), what)
}

fn time(raw: &Option<String>) -> Option<DateTime<Utc>> {
    raw.as_deref()
        .and_then(|t| DateTime::parse_from_rfc3339(t.trim()).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// The rule of a discount, or `None` for a kind Mailchimp cannot hold.
fn rule_of(
    discount: &CodeDiscount,
    id: &str,
) -> Result<Option<(DiscountValue, DiscountTarget)>, ConnectorError> {
    match discount.type_name.as_str() {
        "DiscountCodeFreeShipping" => Ok(Some((
            DiscountValue::Percentage(Decimal::ONE_HUNDRED),
            DiscountTarget::Shipping,
        ))),
        "DiscountCodeBasic" => {
            let value = &discount
                .customer_gets
                .as_ref()
                .ok_or_else(|| bad(format!("discount {id} has no customerGets")))?
                .value;
            match value.type_name.as_str() {
                "DiscountPercentage" => {
                    let fraction = value
                        .percentage
                        .and_then(percent)
                        .ok_or_else(|| bad(format!("discount {id}: no readable percentage")))?;
                    Ok(Some((
                        DiscountValue::Percentage((fraction * Decimal::ONE_HUNDRED).normalize()),
                        DiscountTarget::Order,
                    )))
                }
                "DiscountAmount" => {
                    let amount = value
                        .amount
                        .as_ref()
                        .and_then(|m| m.amount.trim().parse::<Decimal>().ok())
                        .ok_or_else(|| bad(format!("discount {id}: no readable amount")))?;
                    let target = if value.applies_on_each_item.unwrap_or(false) {
                        DiscountTarget::Items
                    } else {
                        DiscountTarget::Order
                    };
                    Ok(Some((DiscountValue::Amount(amount), target)))
                }
                // DiscountOnQuantity: a buy-X-get-Y value.
                _ => Ok(None),
            }
        }
        _ => Ok(None),
    }
}

impl ShopifySource {
    /// Every code discount of the shop Mailchimp can hold, in id order.
    pub(super) async fn read_promotions(&self) -> Result<Vec<Promotion>, ConnectorError> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let data: ListData = self
                .query(
                    "codeDiscountNodes",
                    &list_query(),
                    json!({"first": DISCOUNTS_PER_PAGE, "after": after, "codes": CODES_PER_DISCOUNT}),
                    DISCOUNTS_PER_PAGE * (1 + 2 + CODES_PER_DISCOUNT),
                )
                .await?;
            let list = data.code_discount_nodes;
            for node in list.nodes {
                let Some((value, target)) = rule_of(&node.code_discount, &node.id)? else {
                    tracing::debug!(
                        vendor = VENDOR,
                        "discount {} is a {}: not a promotion Mailchimp can hold",
                        node.id,
                        node.code_discount.type_name
                    );
                    continue;
                };
                let codes = self.all_codes(&node).await?;
                if codes.is_empty() {
                    continue;
                }
                let discount = node.code_discount;
                out.push(Promotion {
                    title: discount
                        .title
                        .clone()
                        .filter(|t| !t.trim().is_empty())
                        .unwrap_or_else(|| codes[0].clone()),
                    id: node.id,
                    codes,
                    value,
                    target,
                    starts_at: time(&discount.starts_at),
                    ends_at: time(&discount.ends_at),
                    enabled: discount.status.as_deref() == Some("ACTIVE"),
                    created_at: time(&discount.created_at),
                    updated_at: time(&discount.updated_at),
                });
            }
            if !list.page_info.has_next_page {
                return Ok(out);
            }
            after = Some(
                list.page_info
                    .end_cursor
                    .ok_or_else(|| bad("hasNextPage without an endCursor".into()))?,
            );
        }
    }

    /// A discount's codes: those that came with it, then the rest page by page.
    async fn all_codes(&self, node: &DiscountNode) -> Result<Vec<String>, ConnectorError> {
        let Some(first) = &node.code_discount.codes else {
            return Ok(Vec::new());
        };
        let mut codes: Vec<String> = first.nodes.iter().map(|c| c.code.clone()).collect();
        let mut has_next = first.page_info.has_next_page;
        let mut end_cursor = first.page_info.end_cursor.clone();
        while has_next {
            if codes.len() >= MAX_CODES_PER_DISCOUNT {
                tracing::warn!(
                    vendor = VENDOR,
                    "discount {} has more than {MAX_CODES_PER_DISCOUNT} codes: the rest are not synced",
                    node.id
                );
                break;
            }
            let cursor = end_cursor
                .take()
                .ok_or_else(|| bad("codes hasNextPage without an endCursor".into()))?;
            let data: OneData = self
                .query(
                    "codeDiscountNode.codes",
                    MORE_CODES_QUERY,
                    json!({"id": node.id, "codes": MORE_CODES, "after": cursor}),
                    MORE_CODES,
                )
                .await?;
            let more = data
                .code_discount_node
                .and_then(|n| n.code_discount.codes)
                .ok_or_else(|| {
                    ConnectorError::new(
                        VENDOR,
                        Self::endpoint("codeDiscountNode"),
                        ErrorKind::NotFound,
                        "a discount read a moment ago is gone",
                    )
                })?;
            codes.extend(more.nodes.into_iter().map(|c| c.code));
            has_next = more.page_info.has_next_page;
            end_cursor = more.page_info.end_cursor;
        }
        codes.truncate(MAX_CODES_PER_DISCOUNT);
        Ok(codes)
    }
}
