//! Orders as a source reads them: the input of an OrderSync. Source connectors turn each vendor's
//! sale, order or return into an [`Order`]; the core turns orders into events ([`crate::event`]).
//!
//! Money is a [`Decimal`] with its ISO 4217 currency, never a float: a refund of 0.1 + 0.2 must
//! equal 0.3, and vendors send amounts as decimal strings. Times are UTC; connectors convert from
//! the source account's time zone when the vendor sends local times.

use chrono::{DateTime, Utc};
pub use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Where an order stands at the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum OrderStatus {
    /// Paid / completed / closed: it counts as a placed order.
    #[default]
    Completed,
    /// Not yet completed (an open sale, a draft, a layby): not an event yet.
    Open,
    /// Cancelled or voided before completion: never an event.
    Cancelled,
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct OrderLine {
    /// The source's line id (unique within the order); part of the event's unique id.
    pub line_id: String,
    /// The product (item) id; empty when the source line has none (then the order is malformed).
    pub product_id: String,
    pub variant_id: String,
    pub sku: String,
    pub name: String,
    /// Category names (Lightspeed's `Category`, Shopify's product type / collections).
    pub categories: Vec<String>,
    /// Shopify collections the product is in (Fulfilled Order's `Collections`).
    pub collections: Vec<String>,
    /// Units; negative means the source sent a return line as a sale line (malformed for a sale).
    pub quantity: Decimal,
    /// Unit price after line discounts, in the order's currency.
    pub unit_price: Decimal,
    /// Discount on this line, in the order's currency.
    pub discount: Decimal,
}

/// A refund (or return) of some of an order's lines, after the fact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct OrderRefund {
    /// The source's refund / return id; part of the event's unique id.
    pub refund_id: String,
    pub refunded_at: DateTime<Utc>,
    /// Amount refunded, in the order's currency.
    pub amount: Decimal,
    /// Line ids refunded (empty: the source does not say, e.g. an amount-only refund).
    pub line_ids: Vec<String>,
}

/// A shipment of some of an order's lines (Lightspeed R: marked "shipped" by hand).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct OrderFulfillment {
    /// The source's fulfilment / shipment id; part of the event's unique id.
    pub fulfillment_id: String,
    pub fulfilled_at: DateTime<Utc>,
    /// Line ids shipped (empty: the whole order).
    pub line_ids: Vec<String>,
}

/// The buyer, as far as the order knows them (used to create a target profile when new, never
/// with consent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct OrderCustomer {
    /// The source's customer id, when the order has a customer.
    pub customer_id: String,
    /// Raw email (validated by the core); empty when the order has none.
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub phone: String,
    pub city: String,
    pub region: String,
    pub country: String,
    pub postal_code: String,
    /// The customer agreed to email marketing, as the source said when the order was read
    /// (Shopify: `emailMarketingConsent.marketingState` SUBSCRIBED). False when the source does
    /// not say: a purchase never makes a subscriber of someone who did not opt in.
    #[serde(default)]
    pub accepts_marketing: bool,
}

/// What a discount takes off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DiscountValue {
    /// A sum, in the order's (for a shop's promotion: the shop's) currency.
    Amount(Decimal),
    /// A share, in percent: 10 is 10 % off, 100 makes it free.
    Percentage(Decimal),
}

/// What a discount applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum DiscountTarget {
    /// The order as a whole (an amount is split across its lines).
    #[default]
    Order,
    /// Each entitled item (an amount comes off every one).
    Items,
    /// The shipping.
    Shipping,
}

/// A discount code used on an order, with its rule as the source applied it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscountCode {
    pub code: String,
    pub value: DiscountValue,
    pub target: DiscountTarget,
}

/// A discount the shop offers with one or more codes (Shopify's code discounts), as the source
/// lists it: not tied to an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Promotion {
    /// The source's id of the discount (Shopify `gid://shopify/DiscountCodeNode/1`).
    pub id: String,
    pub title: String,
    /// The codes a customer can enter for it (at least one).
    pub codes: Vec<String>,
    pub value: DiscountValue,
    pub target: DiscountTarget,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    /// Usable now (Shopify `ACTIVE`); scheduled and expired discounts are listed disabled.
    pub enabled: bool,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// One order (sale) as a source read it, with what happened to it since.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    /// `shopify`, `lightspeed-x`, `lightspeed-r`, `retailcrm`: part of every unique id.
    pub source: String,
    /// The source's order id (Shopify gid, Lightspeed saleID, RetailCRM id).
    pub order_id: String,
    /// What a person calls it (`#1001`, a sale number).
    pub order_number: String,
    pub status: OrderStatus,
    pub customer: OrderCustomer,
    /// Shop / outlet / site the order was made in.
    pub shop_id: String,
    pub shop_name: String,
    /// ISO 4217 code, upper case (`USD`); empty when the source did not say (malformed).
    pub currency: String,
    /// Total paid, taxes and shipping included, discounts deducted. `None` when the source sent
    /// none (malformed: rejected, never guessed).
    pub total: Option<Decimal>,
    pub total_discounts: Decimal,
    /// The codes used, by name (Klaviyo's `DiscountCodes`).
    pub discount_codes: Vec<String>,
    /// The codes used with their rule, where the source says it (Shopify's discount
    /// applications); empty otherwise. Each code here is also in `discount_codes`.
    #[serde(default)]
    pub discounts: Vec<DiscountCode>,
    pub lines: Vec<OrderLine>,
    pub refunds: Vec<OrderRefund>,
    pub fulfillments: Vec<OrderFulfillment>,
    /// When the order was completed (placed), in UTC.
    pub placed_at: DateTime<Utc>,
    /// The source's last edit of the order (refunds and fulfilments move it).
    pub updated_at: DateTime<Utc>,
}
