//! Shopify orders as [`Order`]s ([`OrderSource`]), through the Admin GraphQL API 2025-01.
//!
//! `orders(first, after, query: "updated_at:>='…'", sortKey: UPDATED_AT)` with line items
//! (product with type and collections, variant, SKU, original and discounted unit prices, line
//! discount), discount codes with their rule (`discountApplications`, read with inline fragments
//! on `DiscountCodeApplication`, `MoneyV2` and `PricingPercentageValue`), totals, refunds (with refund line items and the amount refunded),
//! fulfilments (with fulfilment line items), the financial status and `cancelledAt`, and the
//! customer's email, names and default address. The shop's id and name (`shop`) are asked once per
//! run, when the first page has orders, so an idle poll costs one call.
//!
//! **Cost.** Shopify charges nested connections multiplied by their page sizes and refuses a query
//! over 1000 points [D]. The nested sizes ([`LINES_PER_ORDER`], [`COLLECTIONS_PER_PRODUCT`],
//! [`REFUNDS_PER_ORDER`], [`FULFILLMENTS_PER_ORDER`], [`LINES_PER_CHILD`]) keep one order near 260
//! points, so a page holds [`ORDERS_PER_PAGE`] orders. An order with more lines is completed with
//! `order(id) { lineItems(first: 100, after) }`; one with more refunds or fulfilments than fit, or
//! a refund/fulfilment naming more lines than fit, with one `order(id)` query for those lists. The
//! throttle, THROTTLED retries and the learned `requestedQueryCost` are the customer reader's.
//!
//! **Incremental.** The checkpoint is an [`OrderPosition`] over `updatedAt`: the next read asks for
//! `updated_at:>='since'` and drops the (order, updatedAt) pairs already handed out. A refund or a
//! fulfilment moves `updatedAt`, so the order comes back, whole.
//!
//! **Mapping.** Status: `cancelledAt` set, VOIDED or EXPIRED → Cancelled; PENDING, AUTHORIZED,
//! PARTIALLY_PAID → Open; anything else (PAID, PARTIALLY_REFUNDED, REFUNDED) → Completed [U].
//! Total: `totalPriceSet.shopMoney` (what was charged; refunds are separate); an answer without
//! one gives `total: None` so the core rejects the order. Categories: the product type;
//! collections: the titles of the product's first [`COLLECTIONS_PER_PRODUCT`] collections (more
//! are not read: a product's collections are a segmenting hint, not part of the order). Only SUCCESS fulfilments count [U]. Money is read
//! from Shopify's decimal strings, never through a float.

use std::str::FromStr;

use async_trait::async_trait;
use audience_core::order::{
    Decimal, DiscountCode, DiscountTarget, DiscountValue, Order, OrderCustomer, OrderFulfillment,
    OrderLine, OrderRefund, OrderStatus,
};
use audience_core::{ConnectorError, ErrorKind, OrderPage, OrderScope, OrderSource};
use chrono::{DateTime, SecondsFormat, Utc};
use futures::StreamExt;
use futures::stream::{self, BoxStream};
use serde::Deserialize;
use serde_json::json;

use super::{PageInfo, ShopifySource, VENDOR};
use crate::http;
use crate::order_cursor::OrderPosition;

/// Line items asked for with each order (more are paged with `order(id)`).
pub const LINES_PER_ORDER: u32 = 20;
pub const COLLECTIONS_PER_PRODUCT: u32 = 3;
pub const REFUNDS_PER_ORDER: u32 = 5;
pub const FULFILLMENTS_PER_ORDER: u32 = 5;
/// Discount applications asked for with each order (more are not read: their codes are still in
/// `discountCodes`, without their rule).
pub const DISCOUNTS_PER_ORDER: u32 = 5;
/// Refund / fulfilment line items asked for with each refund / fulfilment.
pub const LINES_PER_CHILD: u32 = 10;
/// Orders per page: what fits in one query of at most 1000 points (see the module docs).
pub const ORDERS_PER_PAGE: u32 = {
    let line = 1 + (2 + COLLECTIONS_PER_PRODUCT);
    let lines = 2 + LINES_PER_ORDER * line;
    let child = 2 + REFUNDS_PER_ORDER * (1 + 2 + LINES_PER_CHILD);
    let fulfilments = 2 + FULFILLMENTS_PER_ORDER * (1 + 2 + LINES_PER_CHILD);
    let discounts = 2 + DISCOUNTS_PER_ORDER;
    let order = 1 + lines + child + fulfilments + discounts;
    (1000 - 2) / order
};
/// Line items per follow-up page of one order.
const MORE_LINES: u32 = 100;
/// Refunds / fulfilments per follow-up query of one order (with [`MORE_CHILD_LINES`] lines each).
const MORE_CHILDREN: u32 = 50;
const MORE_CHILD_LINES: u32 = 15;

// Every query stays within Shopify's single-query maximum of 1000 points, and a page is as full as
// that allows.
const _: () = {
    let line = 1 + (2 + COLLECTIONS_PER_PRODUCT);
    let order = 1
        + (2 + LINES_PER_ORDER * line)
        + (2 + REFUNDS_PER_ORDER * (1 + 2 + LINES_PER_CHILD))
        + (2 + FULFILLMENTS_PER_ORDER * (1 + 2 + LINES_PER_CHILD))
        + (2 + DISCOUNTS_PER_ORDER);
    assert!(ORDERS_PER_PAGE >= 1);
    assert!(2 + ORDERS_PER_PAGE * order <= 1000);
    assert!(2 + (ORDERS_PER_PAGE + 1) * order > 1000);
    assert!(1 + 2 + MORE_LINES * line <= 1000);
    assert!(1 + 2 + MORE_CHILDREN * (1 + 2 + MORE_CHILD_LINES) <= 1000);
};

const LINE_FIELDS: &str = "id sku title quantity \
  originalUnitPriceSet { shopMoney { amount } } \
  discountedUnitPriceSet { shopMoney { amount } } \
  totalDiscountSet { shopMoney { amount } } \
  variant { id sku } \
  product { id productType collections(first: $collections) { nodes { title } } }";

fn orders_query() -> String {
    format!(
        "query Orders($first: Int!, $after: String, $query: String, $lines: Int!, $collections: Int!, $refunds: Int!, $fulfillments: Int!, $childLines: Int!, $discounts: Int!) {{
  orders(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {{
    nodes {{
      id name email createdAt processedAt updatedAt cancelledAt currencyCode displayFinancialStatus
      discountCodes
      discountApplications(first: $discounts) {{ nodes {{ allocationMethod targetSelection targetType
        value {{ __typename ... on MoneyV2 {{ amount currencyCode }} ... on PricingPercentageValue {{ percentage }} }}
        ... on DiscountCodeApplication {{ code }} }} }}
      totalPriceSet {{ shopMoney {{ amount currencyCode }} }}
      totalDiscountsSet {{ shopMoney {{ amount }} }}
      customer {{ id email firstName lastName phone defaultAddress {{ city province provinceCode zip countryCodeV2 }} emailMarketingConsent {{ marketingState }} }}
      lineItems(first: $lines) {{ nodes {{ {LINE_FIELDS} }} pageInfo {{ hasNextPage endCursor }} }}
      refunds(first: $refunds) {{ id createdAt totalRefundedSet {{ shopMoney {{ amount }} }}
        refundLineItems(first: $childLines) {{ nodes {{ quantity lineItem {{ id }} }} pageInfo {{ hasNextPage endCursor }} }} }}
      fulfillments(first: $fulfillments) {{ id createdAt status
        fulfillmentLineItems(first: $childLines) {{ nodes {{ lineItem {{ id }} }} pageInfo {{ hasNextPage endCursor }} }} }}
    }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}"
    )
}

fn more_lines_query() -> String {
    format!(
        "query OrderLines($id: ID!, $after: String, $lines: Int!, $collections: Int!) {{
  order(id: $id) {{ lineItems(first: $lines, after: $after) {{ nodes {{ {LINE_FIELDS} }} pageInfo {{ hasNextPage endCursor }} }} }}
}}"
    )
}

const MORE_REFUNDS_QUERY: &str = "query OrderRefunds($id: ID!, $refunds: Int!, $childLines: Int!) {
  order(id: $id) { refunds(first: $refunds) { id createdAt totalRefundedSet { shopMoney { amount } }
    refundLineItems(first: $childLines) { nodes { quantity lineItem { id } } pageInfo { hasNextPage endCursor } } } }
}";

const MORE_FULFILLMENTS_QUERY: &str = "query OrderFulfillments($id: ID!, $fulfillments: Int!, $childLines: Int!) {
  order(id: $id) { fulfillments(first: $fulfillments) { id createdAt status
    fulfillmentLineItems(first: $childLines) { nodes { lineItem { id } } pageInfo { hasNextPage endCursor } } } }
}";

const SHOP_QUERY: &str = "query Shop { shop { id name ianaTimezone } }";

// ---- wire ----

#[derive(Deserialize)]
struct OrdersData {
    orders: Nodes<OrderNode>,
}

#[derive(Deserialize)]
struct OrderData<T> {
    order: Option<T>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Nodes<T> {
    nodes: Vec<T>,
    page_info: PageInfo,
}

#[derive(Deserialize)]
struct Money {
    #[serde(rename = "shopMoney")]
    shop_money: Amount,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Amount {
    amount: String,
    #[serde(default)]
    currency_code: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OrderNode {
    id: String,
    name: Option<String>,
    email: Option<String>,
    created_at: Option<String>,
    processed_at: Option<String>,
    updated_at: String,
    cancelled_at: Option<String>,
    currency_code: Option<String>,
    display_financial_status: Option<String>,
    #[serde(default)]
    discount_codes: Vec<String>,
    discount_applications: Option<ApplicationNodes>,
    total_price_set: Option<Money>,
    total_discounts_set: Option<Money>,
    customer: Option<CustomerNode>,
    line_items: Option<Nodes<LineNode>>,
    #[serde(default)]
    refunds: Vec<RefundNode>,
    #[serde(default)]
    fulfillments: Vec<FulfillmentNode>,
}

#[derive(Deserialize)]
struct ApplicationNodes {
    nodes: Vec<ApplicationNode>,
}

/// A `DiscountApplication`; `code` only on a `DiscountCodeApplication`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApplicationNode {
    allocation_method: Option<String>,
    target_type: Option<String>,
    value: Option<PricingValueNode>,
    #[serde(default)]
    code: Option<String>,
}

/// A `PricingValue`: `MoneyV2` (amount) or `PricingPercentageValue` (percentage).
#[derive(Deserialize)]
struct PricingValueNode {
    #[serde(default)]
    amount: Option<String>,
    #[serde(default)]
    percentage: Option<f64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MarketingConsentNode {
    #[serde(default)]
    marketing_state: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CustomerNode {
    id: String,
    email: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    phone: Option<String>,
    default_address: Option<AddressNode>,
    #[serde(default)]
    email_marketing_consent: Option<MarketingConsentNode>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AddressNode {
    city: Option<String>,
    province: Option<String>,
    province_code: Option<String>,
    zip: Option<String>,
    country_code_v2: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LineNode {
    id: String,
    sku: Option<String>,
    title: Option<String>,
    quantity: i64,
    original_unit_price_set: Option<Money>,
    discounted_unit_price_set: Option<Money>,
    total_discount_set: Option<Money>,
    variant: Option<VariantNode>,
    product: Option<ProductNode>,
}

#[derive(Deserialize)]
struct VariantNode {
    id: String,
    sku: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProductNode {
    id: String,
    product_type: Option<String>,
    collections: Option<Titles>,
}

#[derive(Deserialize)]
struct Titles {
    nodes: Vec<Titled>,
}

#[derive(Deserialize)]
struct Titled {
    title: String,
}

#[derive(Deserialize)]
struct LineRef {
    id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChildLine {
    line_item: LineRef,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RefundNode {
    id: String,
    created_at: Option<String>,
    total_refunded_set: Option<Money>,
    refund_line_items: Nodes<ChildLine>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FulfillmentNode {
    id: String,
    created_at: String,
    status: String,
    fulfillment_line_items: Nodes<ChildLine>,
}

#[derive(Deserialize)]
struct LinesOnly {
    #[serde(rename = "lineItems")]
    line_items: Nodes<LineNode>,
}

#[derive(Deserialize)]
struct RefundsOnly {
    refunds: Vec<RefundNode>,
}

#[derive(Deserialize)]
struct FulfillmentsOnly {
    fulfillments: Vec<FulfillmentNode>,
}

#[derive(Deserialize)]
struct ShopData {
    shop: ShopNode,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ShopNode {
    id: String,
    name: String,
    iana_timezone: String,
}

// ---- reading ----

struct Run {
    filter: String,
    after: Option<String>,
    done: bool,
    position: OrderPosition,
    max_seen: Option<DateTime<Utc>>,
    shop: Option<ShopNode>,
}

fn decimal(raw: &str) -> Option<Decimal> {
    Decimal::from_str(raw.trim()).ok()
}

fn money(value: &Option<Money>) -> Option<Decimal> {
    value.as_ref().and_then(|m| decimal(&m.shop_money.amount))
}

fn utc(raw: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(raw.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

impl ShopifySource {
    fn order_variables(&self) -> serde_json::Value {
        json!({
            "lines": LINES_PER_ORDER,
            "collections": COLLECTIONS_PER_PRODUCT,
            "refunds": REFUNDS_PER_ORDER,
            "fulfillments": FULFILLMENTS_PER_ORDER,
            "childLines": LINES_PER_CHILD,
            "discounts": DISCOUNTS_PER_ORDER,
        })
    }

    async fn orders_page(
        &self,
        filter: &str,
        after: Option<&str>,
    ) -> Result<Nodes<OrderNode>, ConnectorError> {
        let mut variables = self.order_variables();
        variables["first"] = json!(ORDERS_PER_PAGE);
        variables["after"] = json!(after);
        variables["query"] = json!(filter);
        let data: OrdersData = self
            .query("orders", &orders_query(), variables, ORDERS_PER_PAGE)
            .await?;
        Ok(data.orders)
    }

    /// The one order query that follows up `id`; an order gone meanwhile is an error (the next
    /// read starts from the same checkpoint).
    async fn order_part<T: serde::de::DeserializeOwned>(
        &self,
        op: &'static str,
        document: &str,
        variables: serde_json::Value,
    ) -> Result<T, ConnectorError> {
        let data: OrderData<T> = self.query(op, document, variables, MORE_LINES).await?;
        data.order.ok_or_else(|| {
            ConnectorError::new(
                VENDOR,
                Self::endpoint(op),
                ErrorKind::NotFound,
                "an order read a moment ago is gone",
            )
        })
    }

    /// Fills in what the page could not hold: further line items, refunds and fulfilments.
    async fn complete(&self, order: &mut OrderNode) -> Result<(), ConnectorError> {
        if let Some(lines) = &mut order.line_items {
            let mut info_next = lines.page_info.has_next_page;
            let mut after = lines.page_info.end_cursor.clone();
            while info_next {
                let cursor = after.clone().ok_or_else(|| {
                    http::invalid_response(
                        VENDOR,
                        &Self::endpoint("orders"),
                        "lineItems hasNextPage without an endCursor",
                    )
                })?;
                let part: LinesOnly = self
                    .order_part(
                        "order.lineItems",
                        &more_lines_query(),
                        json!({"id": order.id, "after": cursor, "lines": MORE_LINES, "collections": COLLECTIONS_PER_PRODUCT}),
                    )
                    .await?;
                lines.nodes.extend(part.line_items.nodes);
                info_next = part.line_items.page_info.has_next_page;
                after = part.line_items.page_info.end_cursor;
            }
        }
        let refunds_cut = order.refunds.len() >= REFUNDS_PER_ORDER as usize
            || order
                .refunds
                .iter()
                .any(|r| r.refund_line_items.page_info.has_next_page);
        if refunds_cut {
            let part: RefundsOnly = self
                .order_part(
                    "order.refunds",
                    MORE_REFUNDS_QUERY,
                    json!({"id": order.id, "refunds": MORE_CHILDREN, "childLines": MORE_CHILD_LINES}),
                )
                .await?;
            order.refunds = part.refunds;
            if order.refunds.len() >= MORE_CHILDREN as usize
                || order
                    .refunds
                    .iter()
                    .any(|r| r.refund_line_items.page_info.has_next_page)
            {
                return Err(too_big(&order.id, "refunds"));
            }
        }
        let fulfillments_cut = order.fulfillments.len() >= FULFILLMENTS_PER_ORDER as usize
            || order
                .fulfillments
                .iter()
                .any(|f| f.fulfillment_line_items.page_info.has_next_page);
        if fulfillments_cut {
            let part: FulfillmentsOnly = self
                .order_part(
                    "order.fulfillments",
                    MORE_FULFILLMENTS_QUERY,
                    json!({"id": order.id, "fulfillments": MORE_CHILDREN, "childLines": MORE_CHILD_LINES}),
                )
                .await?;
            order.fulfillments = part.fulfillments;
            if order.fulfillments.len() >= MORE_CHILDREN as usize
                || order
                    .fulfillments
                    .iter()
                    .any(|f| f.fulfillment_line_items.page_info.has_next_page)
            {
                return Err(too_big(&order.id, "fulfillments"));
            }
        }
        Ok(())
    }

    async fn shop(&self) -> Result<ShopNode, ConnectorError> {
        let data: ShopData = self.query("shop", SHOP_QUERY, json!({}), 1).await?;
        Ok(data.shop)
    }
}

fn too_big(order: &str, what: &str) -> ConnectorError {
    ConnectorError::new(
        VENDOR,
        ShopifySource::endpoint("order"),
        ErrorKind::Unsupported,
        format!(
            "order {order} has more than {MORE_CHILDREN} {what} or more than {MORE_CHILD_LINES} lines in one; not read"
        ),
    )
}

/// A float percentage as a decimal, from its shortest text (so 12.5 stays 12.5).
pub(super) fn percent(raw: f64) -> Option<Decimal> {
    raw.is_finite()
        .then(|| Decimal::from_str(&raw.to_string()).ok())
        .flatten()
}

/// The code discounts of an order's discount applications, with their rule. [U] A
/// `PricingPercentageValue` is read by its magnitude: the schema says -100..0, shops have been
/// seen answering 0..100.
fn discounts_from(applications: Option<ApplicationNodes>) -> Vec<DiscountCode> {
    let mut out: Vec<DiscountCode> = Vec::new();
    for application in applications.map(|a| a.nodes).unwrap_or_default() {
        let Some(code) = application.code.filter(|c| !c.trim().is_empty()) else {
            continue; // automatic, manual or script discounts have no code
        };
        let value = match application.value {
            Some(PricingValueNode {
                percentage: Some(p),
                ..
            }) => percent(p.abs()).map(DiscountValue::Percentage),
            Some(PricingValueNode {
                amount: Some(a), ..
            }) => decimal(&a).map(|a| DiscountValue::Amount(a.abs())),
            _ => None,
        };
        let Some(value) = value else {
            continue;
        };
        let target = match (
            application.target_type.as_deref(),
            application.allocation_method.as_deref(),
        ) {
            (Some("SHIPPING_LINE"), _) => DiscountTarget::Shipping,
            (_, Some("EACH")) => DiscountTarget::Items,
            _ => DiscountTarget::Order,
        };
        if !out.iter().any(|d| d.code == code) {
            out.push(DiscountCode {
                code,
                value,
                target,
            });
        }
    }
    out
}

fn bad(what: String) -> ConnectorError {
    http::invalid_response(VENDOR, &ShopifySource::endpoint("orders"), what)
}

fn order_from(node: OrderNode, shop: &ShopNode) -> Result<Order, ConnectorError> {
    let updated_at = utc(&node.updated_at).ok_or_else(|| {
        bad(format!(
            "order {}: updatedAt {:?} is not an RFC 3339 time",
            node.id, node.updated_at
        ))
    })?;
    let placed_at = node
        .processed_at
        .as_deref()
        .or(node.created_at.as_deref())
        .map(|raw| {
            utc(raw).ok_or_else(|| {
                bad(format!(
                    "order {}: processedAt {raw:?} is not an RFC 3339 time",
                    node.id
                ))
            })
        })
        .transpose()?
        .unwrap_or(updated_at);
    let status = match (
        node.cancelled_at.is_some(),
        node.display_financial_status.as_deref(),
    ) {
        (true, _) | (_, Some("VOIDED" | "EXPIRED")) => OrderStatus::Cancelled,
        (_, Some("PENDING" | "AUTHORIZED" | "PARTIALLY_PAID")) => OrderStatus::Open,
        _ => OrderStatus::Completed,
    };
    let customer = match node.customer {
        Some(c) => {
            let address = c.default_address;
            let field = |f: fn(&AddressNode) -> &Option<String>| {
                address
                    .as_ref()
                    .and_then(|a| f(a).clone())
                    .unwrap_or_default()
            };
            OrderCustomer {
                customer_id: c.id,
                email: node.email.clone().or(c.email).unwrap_or_default(),
                first_name: c.first_name.unwrap_or_default(),
                last_name: c.last_name.unwrap_or_default(),
                phone: c.phone.unwrap_or_default(),
                city: field(|a| &a.city),
                region: {
                    let code = field(|a| &a.province_code);
                    if code.is_empty() {
                        field(|a| &a.province)
                    } else {
                        code
                    }
                },
                country: field(|a| &a.country_code_v2),
                postal_code: field(|a| &a.zip),
                accepts_marketing: c
                    .email_marketing_consent
                    .and_then(|m| m.marketing_state)
                    .is_some_and(|s| s == "SUBSCRIBED"),
            }
        }
        None => OrderCustomer {
            email: node.email.clone().unwrap_or_default(),
            ..OrderCustomer::default()
        },
    };
    let mut lines = Vec::new();
    for line in node.line_items.map(|l| l.nodes).unwrap_or_default() {
        let amount = |field: &str, value: &Option<Money>| -> Result<Decimal, ConnectorError> {
            match value {
                None => Ok(Decimal::ZERO),
                Some(m) => decimal(&m.shop_money.amount).ok_or_else(|| {
                    bad(format!(
                        "order {}: line {}: {field} {:?} is not a decimal",
                        node.id, line.id, m.shop_money.amount
                    ))
                }),
            }
        };
        let unit_price = match &line.discounted_unit_price_set {
            Some(_) => amount("discountedUnitPriceSet", &line.discounted_unit_price_set)?,
            None => amount("originalUnitPriceSet", &line.original_unit_price_set)?,
        };
        let discount = amount("totalDiscountSet", &line.total_discount_set)?;
        let product = line.product;
        lines.push(OrderLine {
            line_id: line.id,
            product_id: product.as_ref().map(|p| p.id.clone()).unwrap_or_default(),
            variant_id: line
                .variant
                .as_ref()
                .map(|v| v.id.clone())
                .unwrap_or_default(),
            sku: line
                .sku
                .filter(|s| !s.is_empty())
                .or_else(|| line.variant.and_then(|v| v.sku))
                .unwrap_or_default(),
            name: line.title.unwrap_or_default(),
            categories: product
                .as_ref()
                .and_then(|p| p.product_type.clone())
                .filter(|t| !t.is_empty())
                .into_iter()
                .collect(),
            collections: product
                .and_then(|p| p.collections)
                .map(|c| c.nodes.into_iter().map(|n| n.title).collect())
                .unwrap_or_default(),
            quantity: Decimal::from(line.quantity),
            unit_price,
            discount,
        });
    }
    let mut refunds = Vec::new();
    for refund in node.refunds {
        let amount = money(&refund.total_refunded_set).ok_or_else(|| {
            bad(format!(
                "order {}: refund {} has no readable totalRefundedSet",
                node.id, refund.id
            ))
        })?;
        let refunded_at = refund
            .created_at
            .as_deref()
            .and_then(utc)
            .unwrap_or(updated_at);
        refunds.push(OrderRefund {
            refund_id: refund.id,
            refunded_at,
            amount,
            line_ids: refund
                .refund_line_items
                .nodes
                .into_iter()
                .map(|l| l.line_item.id)
                .collect(),
        });
    }
    let mut fulfillments = Vec::new();
    for fulfillment in node.fulfillments {
        if fulfillment.status != "SUCCESS" {
            continue;
        }
        let fulfilled_at = utc(&fulfillment.created_at).ok_or_else(|| {
            bad(format!(
                "order {}: fulfillment {} createdAt {:?} is not an RFC 3339 time",
                node.id, fulfillment.id, fulfillment.created_at
            ))
        })?;
        fulfillments.push(OrderFulfillment {
            fulfillment_id: fulfillment.id,
            fulfilled_at,
            line_ids: fulfillment
                .fulfillment_line_items
                .nodes
                .into_iter()
                .map(|l| l.line_item.id)
                .collect(),
        });
    }
    let currency = node
        .currency_code
        .or_else(|| {
            node.total_price_set
                .as_ref()
                .and_then(|m| m.shop_money.currency_code.clone())
        })
        .unwrap_or_default()
        .to_ascii_uppercase();
    Ok(Order {
        source: VENDOR.to_string(),
        order_number: node.name.unwrap_or_default(),
        order_id: node.id,
        status,
        customer,
        shop_id: shop.id.clone(),
        shop_name: shop.name.clone(),
        currency,
        total: money(&node.total_price_set),
        total_discounts: money(&node.total_discounts_set).unwrap_or_default(),
        discount_codes: node.discount_codes,
        discounts: discounts_from(node.discount_applications),
        lines,
        refunds,
        fulfillments,
        placed_at,
        updated_at,
    })
}

#[async_trait]
impl OrderSource for ShopifySource {
    fn vendor(&self) -> &'static str {
        VENDOR
    }

    fn webhook_registry(
        &self,
    ) -> Option<&dyn audience_core::webhook_subscriptions::WebhookRegistry> {
        Some(self)
    }

    /// Orders updated at or after the scope's time, oldest change first (see the module docs).
    fn orders(&self, scope: OrderScope) -> BoxStream<'_, Result<OrderPage, ConnectorError>> {
        let position = match scope {
            OrderScope::Since(since) => OrderPosition::starting(since),
            OrderScope::ChangedSince(checkpoint) => {
                match OrderPosition::parse(VENDOR, &checkpoint) {
                    Ok(position) => position,
                    Err(error) => return stream::once(async move { Err(error) }).boxed(),
                }
            }
        };
        let since = position.since.to_rfc3339_opts(SecondsFormat::Secs, true);
        let run = Run {
            filter: format!("updated_at:>='{since}'"),
            after: None,
            done: false,
            position,
            max_seen: None,
            shop: None,
        };
        stream::try_unfold(run, move |mut run| async move {
            loop {
                if run.done {
                    return Ok(None);
                }
                let page = self.orders_page(&run.filter, run.after.as_deref()).await?;
                if page.page_info.has_next_page {
                    run.after = Some(
                        page.page_info
                            .end_cursor
                            .ok_or_else(|| bad("hasNextPage without an endCursor".to_string()))?,
                    );
                } else {
                    run.done = true;
                }
                let mut fresh = Vec::new();
                for node in page.nodes {
                    let stamp = utc(&node.updated_at).ok_or_else(|| {
                        bad(format!(
                            "order {}: updatedAt {:?} is not an RFC 3339 time",
                            node.id, node.updated_at
                        ))
                    })?;
                    if run.max_seen.is_none_or(|max| stamp > max) {
                        run.max_seen = Some(stamp);
                    }
                    if run.position.take(&node.id, stamp) {
                        fresh.push(node);
                    }
                }
                if fresh.is_empty() {
                    continue;
                }
                if run.shop.is_none() {
                    run.shop = Some(self.shop().await?);
                }
                let shop = run.shop.as_ref().expect("loaded above");
                let mut orders = Vec::with_capacity(fresh.len());
                for mut node in fresh {
                    self.complete(&mut node).await?;
                    orders.push(order_from(node, shop)?);
                }
                let max_seen = run.max_seen.expect("a fresh order was read");
                run.position = run.position.advanced(max_seen, Utc::now());
                let page = OrderPage {
                    orders,
                    checkpoint: Some(run.position.encode()),
                };
                return Ok(Some((page, run)));
            }
        })
        .boxed()
    }

    async fn time_zone(&self) -> Result<Option<String>, ConnectorError> {
        let shop = self.shop().await?;
        Ok(Some(shop.iana_timezone).filter(|z| !z.is_empty()))
    }

    /// The shop's code discounts (see [`super::promotions`]).
    async fn promotions(
        &self,
    ) -> Result<Option<Vec<audience_core::order::Promotion>>, ConnectorError> {
        self.read_promotions().await.map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shopify_decimals_parse_exactly() {
        assert_eq!(decimal("25.0").unwrap(), Decimal::new(25, 0));
        assert_eq!(
            decimal("0.1").unwrap() + decimal("0.2").unwrap(),
            decimal("0.3").unwrap()
        );
        assert!(decimal("1,5").is_none());
    }

    #[test]
    fn discount_applications_keep_codes_with_their_rule_and_either_sign_of_percentage() {
        let nodes: ApplicationNodes = serde_json::from_value(json!({"nodes": [
            {"allocationMethod": "ACROSS", "targetType": "LINE_ITEM", "value": {"percentage": -10.0}, "code": "A"},
            {"allocationMethod": "ACROSS", "targetType": "LINE_ITEM", "value": {"percentage": 12.5}, "code": "B"},
            {"allocationMethod": "EACH", "targetType": "LINE_ITEM", "value": {"amount": "5.0", "currencyCode": "USD"}, "code": "C"},
            {"allocationMethod": "ACROSS", "targetType": "SHIPPING_LINE", "value": {"percentage": -100.0}, "code": "D"},
            {"allocationMethod": "ACROSS", "targetType": "LINE_ITEM", "value": {"amount": "3.0", "currencyCode": "USD"}},
            {"allocationMethod": "ACROSS", "targetType": "LINE_ITEM", "value": {"amount": "9.0"}, "code": "A"}
        ]}))
        .unwrap();
        let got = discounts_from(Some(nodes));
        let want = [
            (
                "A",
                DiscountValue::Percentage(Decimal::new(10, 0)),
                DiscountTarget::Order,
            ),
            (
                "B",
                DiscountValue::Percentage(Decimal::new(125, 1)),
                DiscountTarget::Order,
            ),
            (
                "C",
                DiscountValue::Amount(Decimal::new(5, 0)),
                DiscountTarget::Items,
            ),
            (
                "D",
                DiscountValue::Percentage(Decimal::new(100, 0)),
                DiscountTarget::Shipping,
            ),
        ];
        assert_eq!(got.len(), want.len(), "automatic ones and repeats left out");
        for (d, (code, value, target)) in got.iter().zip(want) {
            assert_eq!((d.code.as_str(), d.value, d.target), (code, value, target));
        }
    }
}
