//! Lightspeed R-Series completed sales as [`Order`]s ([`OrderSource`]).
//!
//! `GET {base}/Sale.json?completed=true&sort=timeStamp&limit=100&timeStamp=>=,<since>` with
//! `load_relations=["SaleLines","SaleLines.Item","SaleLines.Item.Category","SaleLines.Discount",
//! "Customer","Customer.Contact","ShipTo","Discount"]`, paged by `@attributes.next` like the
//! customer reader. Shop names and the account's time zone come from `GET Shop.json`, read once per
//! run and only when a page has sales, so an idle poll costs one call.
//!
//! Times carry their offset (the shop's local time, [D]); they are converted to UTC by it.
//! [`OrderSource::time_zone`] is the first shop's `timeZone` (an IANA name).
//!
//! Refunds [U]: R-Series records a return as a new, completed sale whose lines have a negative
//! `unitQuantity` and a `parentSaleLineID` naming the line returned. Such a refund sale is not an
//! order of its own: the connector looks up the original sale (`SaleLine.json?saleLineID=IN,[…]`
//! then `Sale.json?saleID=IN,[…]`) and hands out the original, whole, with every refund of it
//! (`SaleLine.json?parentSaleLineID=IN,[…]`, asked for every page with sales, so an order re-read
//! for any reason still carries its earlier refunds). A refund's id is the refund sale's id, its
//! time the earliest `createTime` of its lines, its amount the sum of their `calcTotal`s. A refund
//! whose original cannot be found is handed out as its own order, negative lines and all, so the
//! core rejects it with a reason instead of it vanishing.
//!
//! Shipments [U]: `ShipTo.shipped = "true"` (set by hand in Lightspeed) is one fulfilment of the
//! whole order, id `shipToID`, at `ShipTo.timeStamp`. A shipped sale without a customer is handed
//! out like any other; it has no email, so the core skips it (seed 003).
//!
//! Currency [U]: a sale names none; the account's currency is a setting of the source
//! ([`LightspeedRSource::with_currency`], `USD` by default).
//!
//! The checkpoint is an [`OrderPosition`] over `timeStamp` (see [`crate::order_cursor`]): the next read
//! asks for `timeStamp >= since` and skips the (sale, timeStamp) pairs already handed out. `since`
//! is the greatest `timeStamp` read, or one minute earlier while that minute may still be open on
//! the server's clock (a sale saved later in the same second is then still read), never later
//! than the server's clock, never earlier than the previous checkpoint. A change to a sale moves
//! its `timeStamp`, so every change is read exactly once.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::str::FromStr;

use async_trait::async_trait;
use audience_core::order::{
    Decimal, Order, OrderCustomer, OrderFulfillment, OrderLine, OrderRefund, OrderStatus,
};
use audience_core::{ConnectorError, OrderPage, OrderScope, OrderSource};
use chrono::{DateTime, SecondsFormat, Utc};
use futures::StreamExt;
use futures::stream::{self, BoxStream};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::wire::{self, flag, object_or_empty, one_or_many, text};
use super::{LightspeedRSource, VENDOR, config_error, into_contact, parse_time};
use crate::http;
use crate::order_cursor::OrderPosition;

const SALES: &str = "GET /Sale.json";
const SALE_LINES: &str = "GET /SaleLine.json";
const SHOPS: &str = "GET /Shop.json";
/// Ids per `IN,[…]` filter, so a URL stays short.
const IN_CHUNK: usize = 100;
const RELATIONS: &str = r#"["SaleLines","SaleLines.Item","SaleLines.Item.Category","SaleLines.Discount","Customer","Customer.Contact","ShipTo","Discount"]"#;

// ---- wire ----

/// Any R-Series listing: `@attributes` and the records under their resource's name.
#[derive(Debug, Deserialize)]
struct Listing {
    #[serde(rename = "@attributes")]
    attributes: wire::Attributes,
    #[serde(flatten)]
    records: serde_json::Map<String, Value>,
}

impl Listing {
    fn take<T: DeserializeOwned>(
        &mut self,
        key: &str,
        endpoint: &str,
    ) -> Result<Vec<T>, ConnectorError> {
        let Some(value) = self.records.remove(key) else {
            return Ok(Vec::new());
        };
        one_or_many(value).map_err(|e| http::invalid_response(VENDOR, endpoint, e))
    }
}

#[derive(Debug, Deserialize)]
struct Sale {
    #[serde(rename = "saleID", deserialize_with = "text")]
    sale_id: String,
    #[serde(rename = "timeStamp", default, deserialize_with = "text")]
    time_stamp: String,
    #[serde(rename = "completeTime", default, deserialize_with = "text")]
    complete_time: String,
    #[serde(default, deserialize_with = "flag")]
    completed: bool,
    #[serde(default, deserialize_with = "flag")]
    voided: bool,
    #[serde(rename = "ticketNumber", default, deserialize_with = "text")]
    ticket_number: String,
    #[serde(rename = "calcTotal", default, deserialize_with = "text")]
    calc_total: String,
    #[serde(rename = "calcDiscount", default, deserialize_with = "text")]
    calc_discount: String,
    #[serde(rename = "shopID", default, deserialize_with = "text")]
    shop_id: String,
    #[serde(rename = "SaleLines", default, deserialize_with = "object_or_empty")]
    sale_lines: Option<SaleLines>,
    #[serde(rename = "Customer", default, deserialize_with = "object_or_empty")]
    customer: Option<wire::Customer>,
    #[serde(rename = "ShipTo", default, deserialize_with = "object_or_empty")]
    ship_to: Option<ShipTo>,
    #[serde(rename = "Discount", default, deserialize_with = "object_or_empty")]
    discount: Option<Named>,
}

impl Sale {
    fn lines(&self) -> &[SaleLine] {
        self.sale_lines.as_ref().map_or(&[], |l| l.list.as_slice())
    }

    /// Every line returns an earlier line: a refund sale, not an order [U].
    fn is_refund(&self) -> bool {
        let lines = self.lines();
        !lines.is_empty()
            && lines
                .iter()
                .all(|l| l.parent() != 0 && l.unit_quantity.starts_with('-'))
    }
}

#[derive(Debug, Default, Deserialize)]
struct SaleLines {
    #[serde(rename = "SaleLine", default, deserialize_with = "one_or_many")]
    list: Vec<SaleLine>,
}

#[derive(Debug, Deserialize)]
struct SaleLine {
    #[serde(rename = "saleLineID", deserialize_with = "text")]
    sale_line_id: String,
    #[serde(rename = "saleID", default, deserialize_with = "text")]
    sale_id: String,
    #[serde(rename = "createTime", default, deserialize_with = "text")]
    create_time: String,
    #[serde(rename = "unitQuantity", default, deserialize_with = "text")]
    unit_quantity: String,
    #[serde(rename = "unitPrice", default, deserialize_with = "text")]
    unit_price: String,
    #[serde(rename = "calcLineDiscount", default, deserialize_with = "text")]
    calc_line_discount: String,
    #[serde(rename = "discountAmount", default, deserialize_with = "text")]
    discount_amount: String,
    #[serde(rename = "calcTotal", default, deserialize_with = "text")]
    calc_total: String,
    #[serde(rename = "itemID", default, deserialize_with = "text")]
    item_id: String,
    #[serde(rename = "parentSaleLineID", default, deserialize_with = "text")]
    parent_sale_line_id: String,
    #[serde(rename = "Item", default, deserialize_with = "object_or_empty")]
    item: Option<Item>,
    #[serde(rename = "Discount", default, deserialize_with = "object_or_empty")]
    discount: Option<Named>,
}

impl SaleLine {
    fn parent(&self) -> u64 {
        self.parent_sale_line_id.parse().unwrap_or(0)
    }
}

#[derive(Debug, Deserialize)]
struct Item {
    #[serde(default, deserialize_with = "text")]
    description: String,
    #[serde(rename = "systemSku", default, deserialize_with = "text")]
    system_sku: String,
    #[serde(rename = "customSku", default, deserialize_with = "text")]
    custom_sku: String,
    #[serde(rename = "Category", default, deserialize_with = "object_or_empty")]
    category: Option<Named>,
}

#[derive(Debug, Deserialize)]
struct Named {
    #[serde(default, deserialize_with = "text")]
    name: String,
}

#[derive(Debug, Deserialize)]
struct ShipTo {
    #[serde(rename = "shipToID", default, deserialize_with = "text")]
    ship_to_id: String,
    #[serde(default, deserialize_with = "flag")]
    shipped: bool,
    #[serde(rename = "timeStamp", default, deserialize_with = "text")]
    time_stamp: String,
}

#[derive(Debug, Clone, Deserialize)]
struct Shop {
    #[serde(rename = "shopID", deserialize_with = "text")]
    shop_id: String,
    #[serde(default, deserialize_with = "text")]
    name: String,
    #[serde(rename = "timeZone", default, deserialize_with = "text")]
    time_zone: String,
}

// ---- reading ----

use super::Request as Req;

struct Run {
    request: Option<Req>,
    position: OrderPosition,
    max_seen: Option<DateTime<Utc>>,
    shops: Option<HashMap<String, Shop>>,
}

impl LightspeedRSource {
    /// The currency of the account's sales (ISO 4217, e.g. `EUR`); `USD` until set.
    pub fn with_currency(mut self, currency: &str) -> Result<Self, ConnectorError> {
        let code = currency.trim().to_ascii_uppercase();
        if code.len() != 3 || !code.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(config_error(
                "the currency must be a three-letter ISO 4217 code",
            ));
        }
        self.currency = code;
        Ok(self)
    }

    /// A `next` link, checked as the customer reader checks it: same origin, not the same page.
    fn next_listing(
        &self,
        endpoint: &'static str,
        next: &str,
        current: &Req,
    ) -> Result<Option<Req>, ConnectorError> {
        let current = match current {
            Req::Next(url) => Some(url),
            _ => None,
        };
        Ok(super::checked_next(&self.origin, endpoint, next, current)?.map(Req::Next))
    }

    /// Every record of a query, following `next`.
    async fn list_all<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        resource: &'static str,
        key: &str,
        query: Vec<(&'static str, String)>,
    ) -> Result<Vec<T>, ConnectorError> {
        let mut out = Vec::new();
        let mut request = Some(Req::First { resource, query });
        while let Some(current) = request {
            let (mut listing, _) = self.fetch::<Listing>(endpoint, &current).await?;
            out.extend(listing.take::<T>(key, endpoint)?);
            request = self.next_listing(endpoint, &listing.attributes.next, &current)?;
        }
        Ok(out)
    }

    /// `ids` in `IN,[…]` chunks of [`IN_CHUNK`].
    async fn list_in<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        resource: &'static str,
        key: &str,
        field: &'static str,
        ids: &BTreeSet<u64>,
        extra: &[(&'static str, String)],
    ) -> Result<Vec<T>, ConnectorError> {
        let ids: Vec<String> = ids.iter().map(u64::to_string).collect();
        let mut out = Vec::new();
        for chunk in ids.chunks(IN_CHUNK) {
            let mut query = extra.to_vec();
            query.push(("limit", super::PAGE_LIMIT.to_string()));
            query.push((field, format!("IN,[{}]", chunk.join(","))));
            out.extend(self.list_all(endpoint, resource, key, query).await?);
        }
        Ok(out)
    }

    async fn shops(&self) -> Result<HashMap<String, Shop>, ConnectorError> {
        let shops: Vec<Shop> = self
            .list_all(
                SHOPS,
                "Shop.json",
                "Shop",
                vec![("limit", super::PAGE_LIMIT.to_string())],
            )
            .await?;
        Ok(shops.into_iter().map(|s| (s.shop_id.clone(), s)).collect())
    }

    /// The orders of one page of fresh sales: refund sales folded into their originals, every
    /// original carrying all its refunds.
    async fn orders_of(
        &self,
        fresh: Vec<Sale>,
        shops: &HashMap<String, Shop>,
    ) -> Result<Vec<Order>, ConnectorError> {
        let (refund_sales, mut originals): (Vec<Sale>, Vec<Sale>) =
            fresh.into_iter().partition(Sale::is_refund);
        // Originals of the refunds read here that this page does not already hold.
        let known_lines: HashMap<u64, String> = originals
            .iter()
            .flat_map(|s| {
                s.lines()
                    .iter()
                    .filter_map(|l| Some((l.sale_line_id.parse().ok()?, s.sale_id.clone())))
            })
            .collect();
        let parents: BTreeSet<u64> = refund_sales
            .iter()
            .flat_map(|s| s.lines().iter().map(SaleLine::parent))
            .filter(|p| !known_lines.contains_key(p))
            .collect();
        let mut orphans = Vec::new();
        if !refund_sales.is_empty() {
            let mut parent_sales: HashMap<u64, String> = known_lines.clone();
            if !parents.is_empty() {
                let lines: Vec<SaleLine> = self
                    .list_in(
                        SALE_LINES,
                        "SaleLine.json",
                        "SaleLine",
                        "saleLineID",
                        &parents,
                        &[],
                    )
                    .await?;
                for line in lines {
                    if let Ok(id) = line.sale_line_id.parse() {
                        parent_sales.insert(id, line.sale_id);
                    }
                }
            }
            let held: BTreeSet<String> = originals.iter().map(|s| s.sale_id.clone()).collect();
            let mut wanted = BTreeSet::new();
            for refund in refund_sales {
                let parent_sale = refund
                    .lines()
                    .iter()
                    .find_map(|l| parent_sales.get(&l.parent()).cloned());
                match parent_sale {
                    Some(id) if held.contains(&id) => {}
                    Some(id) => {
                        if let Ok(id) = id.parse::<u64>() {
                            wanted.insert(id);
                        }
                    }
                    None => orphans.push(refund),
                }
            }
            if !wanted.is_empty() {
                let fetched: Vec<Sale> = self
                    .list_in(
                        SALES,
                        "Sale.json",
                        "Sale",
                        "saleID",
                        &wanted,
                        &[("load_relations", RELATIONS.to_string())],
                    )
                    .await?;
                originals.extend(fetched);
            }
        }
        // Every refund of every original, earlier ones included.
        let lines_of_originals: BTreeSet<u64> = originals
            .iter()
            .flat_map(|s| s.lines().iter().filter_map(|l| l.sale_line_id.parse().ok()))
            .collect();
        let mut refunds_by_original: HashMap<String, Vec<OrderRefund>> = HashMap::new();
        if !lines_of_originals.is_empty() {
            let refund_lines: Vec<SaleLine> = self
                .list_in(
                    SALE_LINES,
                    "SaleLine.json",
                    "SaleLine",
                    "parentSaleLineID",
                    &lines_of_originals,
                    &[],
                )
                .await?;
            let line_to_sale: HashMap<u64, String> = originals
                .iter()
                .flat_map(|s| {
                    s.lines()
                        .iter()
                        .filter_map(|l| Some((l.sale_line_id.parse().ok()?, s.sale_id.clone())))
                })
                .collect();
            let mut grouped: BTreeMap<(String, String), Vec<SaleLine>> = BTreeMap::new();
            for line in refund_lines {
                if let Some(original) = line_to_sale.get(&line.parent()) {
                    grouped
                        .entry((original.clone(), line.sale_id.clone()))
                        .or_default()
                        .push(line);
                }
            }
            for ((original, refund_id), lines) in grouped {
                let refund = into_refund(refund_id, &lines)?;
                refunds_by_original
                    .entry(original)
                    .or_default()
                    .push(refund);
            }
        }
        let mut out = Vec::new();
        let mut emitted = BTreeSet::new();
        for sale in originals.into_iter().chain(orphans) {
            if !emitted.insert(sale.sale_id.clone()) {
                continue;
            }
            let mut refunds = refunds_by_original
                .remove(&sale.sale_id)
                .unwrap_or_default();
            refunds
                .sort_by(|a, b| (a.refunded_at, &a.refund_id).cmp(&(b.refunded_at, &b.refund_id)));
            out.push(self.order_from(sale, shops, refunds)?);
        }
        Ok(out)
    }

    fn order_from(
        &self,
        mut sale: Sale,
        shops: &HashMap<String, Shop>,
        refunds: Vec<OrderRefund>,
    ) -> Result<Order, ConnectorError> {
        let sale_id = sale.sale_id.clone();
        let bad =
            |what: String| http::invalid_response(VENDOR, SALES, format!("sale {sale_id}: {what}"));
        let updated_at = utc(&sale.time_stamp).ok_or_else(|| {
            bad(format!(
                "timeStamp {:?} is not a time with offset",
                sale.time_stamp
            ))
        })?;
        let placed_at = if sale.complete_time.is_empty() {
            updated_at
        } else {
            utc(&sale.complete_time).ok_or_else(|| {
                bad(format!(
                    "completeTime {:?} is not a time with offset",
                    sale.complete_time
                ))
            })?
        };
        let status = if sale.voided {
            OrderStatus::Cancelled
        } else if sale.completed {
            OrderStatus::Completed
        } else {
            OrderStatus::Open
        };
        let customer = match sale.customer.take() {
            Some(customer) if !matches!(customer.customer_id.as_str(), "" | "0") => {
                let stamp = parse_time(&sale.time_stamp).expect("checked above");
                let contact = into_contact(customer, stamp)?;
                let address = contact.address.unwrap_or_default();
                OrderCustomer {
                    customer_id: contact.source_id,
                    email: contact.email,
                    first_name: contact.first_name,
                    last_name: contact.last_name,
                    phone: contact.phone,
                    city: address.city,
                    region: address.region,
                    country: address.country,
                    postal_code: address.postal_code,
                    // A sale says nothing of email opt-in: never a subscriber by purchase.
                    accepts_marketing: false,
                }
            }
            _ => OrderCustomer::default(),
        };
        let mut discount_codes = Vec::new();
        let mut add_code = |name: &str| {
            if !name.is_empty() && !discount_codes.iter().any(|c| c == name) {
                discount_codes.push(name.to_string());
            }
        };
        if let Some(discount) = &sale.discount {
            add_code(&discount.name);
        }
        let mut lines = Vec::new();
        for line in sale.lines() {
            if let Some(discount) = &line.discount {
                add_code(&discount.name);
            }
            let number = |field: &str, raw: &str| -> Result<Decimal, ConnectorError> {
                if raw.is_empty() {
                    return Ok(Decimal::ZERO);
                }
                decimal(raw).ok_or_else(|| {
                    bad(format!(
                        "line {}: {field} {raw:?} is not a number",
                        line.sale_line_id
                    ))
                })
            };
            let quantity = number("unitQuantity", &line.unit_quantity)?;
            let unit_price = number("unitPrice", &line.unit_price)?;
            let discount = if line.calc_line_discount.is_empty() {
                number("discountAmount", &line.discount_amount)?
            } else {
                number("calcLineDiscount", &line.calc_line_discount)?
            };
            let net_unit = if quantity.is_zero() {
                unit_price
            } else {
                ((quantity * unit_price - discount) / quantity)
                    .round_dp(4)
                    .normalize()
            };
            let item = line.item.as_ref();
            lines.push(OrderLine {
                line_id: line.sale_line_id.clone(),
                product_id: match line.item_id.as_str() {
                    "0" => String::new(),
                    id => id.to_string(),
                },
                variant_id: String::new(),
                sku: item
                    .map(|i| {
                        if i.custom_sku.is_empty() {
                            i.system_sku.clone()
                        } else {
                            i.custom_sku.clone()
                        }
                    })
                    .unwrap_or_default(),
                name: item.map(|i| i.description.clone()).unwrap_or_default(),
                categories: item
                    .and_then(|i| i.category.as_ref())
                    .map(|c| c.name.clone())
                    .filter(|n| !n.is_empty())
                    .into_iter()
                    .collect(),
                collections: Vec::new(),
                quantity,
                unit_price: net_unit,
                discount,
            });
        }
        let fulfillments = match &sale.ship_to {
            Some(ship_to) if ship_to.shipped => vec![OrderFulfillment {
                fulfillment_id: ship_to.ship_to_id.clone(),
                fulfilled_at: utc(&ship_to.time_stamp).unwrap_or(updated_at),
                line_ids: Vec::new(),
            }],
            _ => Vec::new(),
        };
        let shop = shops.get(&sale.shop_id);
        Ok(Order {
            source: VENDOR.to_string(),
            order_number: if sale.ticket_number.is_empty() {
                sale.sale_id.clone()
            } else {
                sale.ticket_number.clone()
            },
            order_id: sale.sale_id,
            status,
            customer,
            shop_id: match sale.shop_id.as_str() {
                "0" => String::new(),
                id => id.to_string(),
            },
            shop_name: shop.map(|s| s.name.clone()).unwrap_or_default(),
            currency: self.currency.clone(),
            // Missing or unreadable: None, so the core rejects the order with a reason.
            total: decimal(&sale.calc_total),
            total_discounts: decimal(&sale.calc_discount).unwrap_or_default(),
            discount_codes,
            discounts: Vec::new(),
            lines,
            refunds,
            fulfillments,
            placed_at,
            updated_at,
        })
    }
}

fn into_refund(refund_id: String, lines: &[SaleLine]) -> Result<OrderRefund, ConnectorError> {
    let bad = |what: String| {
        http::invalid_response(
            VENDOR,
            SALE_LINES,
            format!("refund sale {refund_id}: {what}"),
        )
    };
    let mut amount = Decimal::ZERO;
    let mut refunded_at: Option<DateTime<Utc>> = None;
    let mut line_ids = Vec::new();
    for line in lines {
        let total = decimal(&line.calc_total).ok_or_else(|| {
            bad(format!(
                "line {}: calcTotal {:?} is not a number",
                line.sale_line_id, line.calc_total
            ))
        })?;
        amount -= total;
        let at = utc(&line.create_time).ok_or_else(|| {
            bad(format!(
                "line {}: createTime {:?} is not a time with offset",
                line.sale_line_id, line.create_time
            ))
        })?;
        refunded_at = Some(refunded_at.map_or(at, |r| r.min(at)));
        line_ids.push(line.parent_sale_line_id.clone());
    }
    Ok(OrderRefund {
        refund_id,
        refunded_at: refunded_at.unwrap_or_default(),
        amount,
        line_ids,
    })
}

/// A vendor decimal string (`"12.50"`, `"-3"`), never through a float.
fn decimal(raw: &str) -> Option<Decimal> {
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    Decimal::from_str(raw).ok()
}

fn utc(raw: &str) -> Option<DateTime<Utc>> {
    parse_time(raw).map(|t| t.with_timezone(&Utc))
}

#[async_trait]
impl OrderSource for LightspeedRSource {
    fn vendor(&self) -> &'static str {
        VENDOR
    }

    /// Completed sales changed at or after the scope's time (see the module docs).
    fn orders(&self, scope: OrderScope) -> BoxStream<'_, Result<OrderPage, ConnectorError>> {
        let position = match scope {
            OrderScope::Since(since) => OrderPosition::starting(since),
            OrderScope::ChangedSince(checkpoint) => match OrderPosition::parse(VENDOR, &checkpoint)
            {
                Ok(position) => position,
                Err(error) => return stream::once(async move { Err(error) }).boxed(),
            },
        };
        let query = vec![
            ("load_relations", RELATIONS.to_string()),
            ("completed", "true".to_string()),
            ("limit", super::PAGE_LIMIT.to_string()),
            ("sort", "timeStamp".to_string()),
            // `+00:00` is encoded by reqwest, so the server reads the offset.
            (
                "timeStamp",
                format!(
                    ">=,{}",
                    position.since.to_rfc3339_opts(SecondsFormat::AutoSi, false)
                ),
            ),
        ];
        let run = Run {
            request: Some(Req::First {
                resource: "Sale.json",
                query,
            }),
            position,
            max_seen: None,
            shops: None,
        };
        stream::try_unfold(run, move |mut run| async move {
            loop {
                let Some(current) = run.request.take() else {
                    return Ok(None);
                };
                let (mut listing, server_now) = self.fetch::<Listing>(SALES, &current).await?;
                let sales: Vec<Sale> = listing.take("Sale", SALES)?;
                run.request = self.next_listing(SALES, &listing.attributes.next, &current)?;
                let mut fresh = Vec::new();
                for sale in sales {
                    if sale.sale_id.is_empty() {
                        return Err(http::invalid_response(
                            VENDOR,
                            SALES,
                            "a sale without a saleID",
                        ));
                    }
                    let stamp = utc(&sale.time_stamp).ok_or_else(|| {
                        http::invalid_response(
                            VENDOR,
                            SALES,
                            format!(
                                "sale {}: timeStamp {:?} is not an ISO 8601 time with offset",
                                sale.sale_id, sale.time_stamp
                            ),
                        )
                    })?;
                    if run.max_seen.is_none_or(|max| stamp > max) {
                        run.max_seen = Some(stamp);
                    }
                    if run.position.take(&sale.sale_id, stamp) {
                        fresh.push(sale);
                    }
                }
                if fresh.is_empty() {
                    // Only sales handed out before: nothing to apply on this page.
                    continue;
                }
                if run.shops.is_none() {
                    run.shops = Some(self.shops().await?);
                }
                let shops = run.shops.as_ref().expect("loaded above");
                let orders = self.orders_of(fresh, shops).await?;
                let max_seen = run.max_seen.expect("a fresh sale was read");
                let position = run.position.advanced(max_seen, server_now);
                let page = OrderPage {
                    orders,
                    checkpoint: Some(position.encode()),
                };
                run.position = position;
                return Ok(Some((page, run)));
            }
        })
        .boxed()
    }

    async fn time_zone(&self) -> Result<Option<String>, ConnectorError> {
        let shops: Vec<Shop> = self
            .list_all(
                SHOPS,
                "Shop.json",
                "Shop",
                vec![("limit", super::PAGE_LIMIT.to_string())],
            )
            .await?;
        let mut shops: Vec<Shop> = shops
            .into_iter()
            .filter(|s| !s.time_zone.is_empty())
            .collect();
        shops.sort_by_key(|s| s.shop_id.parse::<u64>().unwrap_or(u64::MAX));
        Ok(shops.into_iter().next().map(|s| s.time_zone))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_never_go_through_floats() {
        assert_eq!(
            decimal("0.1").unwrap() + decimal("0.2").unwrap(),
            decimal("0.3").unwrap()
        );
        assert_eq!(decimal(""), None);
        assert_eq!(decimal("12,50"), None);
    }

    #[test]
    fn a_refund_sale_is_all_negative_lines_with_parents() {
        let sale: Sale = serde_json::from_value(serde_json::json!({
            "saleID": "9", "SaleLines": {"SaleLine": {"saleLineID": "5", "unitQuantity": "-1", "parentSaleLineID": "2"}}
        }))
        .unwrap();
        assert!(sale.is_refund());
        let sale: Sale = serde_json::from_value(serde_json::json!({
            "saleID": "9", "SaleLines": {"SaleLine": [
                {"saleLineID": "5", "unitQuantity": "-1", "parentSaleLineID": "2"},
                {"saleLineID": "6", "unitQuantity": "1", "parentSaleLineID": "0"}]}
        }))
        .unwrap();
        assert!(!sale.is_refund(), "an exchange is a sale");
    }
}
