//! Lightspeed X-Series sales as [`Order`]s ([`OrderSource`]), through API 2.0.
//!
//! `GET /sales?after=<version>&page_size=…` pages sales in `version` order, like customers, so the
//! checkpoint is the page's `version.max` (exact: every change bumps the version). Outlets (name,
//! `time_zone`, `currency`) and products (name, SKU, categories) are read once per run, and each
//! sale's customer once per run (`GET /customers/{id}`, for the email), only when a page has
//! sales, so an idle poll costs one call.
//!
//! Times are "in UTC" with an offset [S]; [`OrderSource::time_zone`] is the first outlet's
//! `time_zone`. Money arrives as JSON numbers: their text is read as a decimal
//! (`serde_json`'s `RawValue`), never through a float.
//!
//! Status: CLOSED, ONACCOUNT_CLOSED, LAYBY_CLOSED, DISPATCHED_CLOSED, PICKED_UP_CLOSED and
//! SERVICE_CLOSED are completed; VOIDED is cancelled; the rest are open. DISPATCHED_CLOSED and
//! PICKED_UP_CLOSED are one fulfilment of the whole order, at `updated_at` [U]. Total:
//! `total_price + total_tax` (`total_price` is tax exclusive [S]).
//!
//! Returns [U]: a return is its own sale with `return_for` naming the original. It is not an order:
//! the original is read (`GET /sales/{id}` unless on the same page) and handed out with the
//! return as a refund (id the return's id, amount its total with tax, lines the original's lines
//! of the returned products). API 2.0 has no way to list a sale's returns, so an original re-read
//! for another reason carries only the returns read with it; earlier ones were handed out before.
//! A return whose original cannot be found is handed out as its own order (negative lines), for
//! the core to reject with a reason. The outlet's `currency` is taken as the ISO code [U].

use std::collections::{BTreeSet, HashMap};
use std::str::FromStr;

use async_trait::async_trait;
use audience_core::order::{
    Decimal, Order, OrderCustomer, OrderFulfillment, OrderLine, OrderRefund, OrderStatus,
};
use audience_core::{ConnectorError, OrderPage, OrderScope, OrderSource};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::{self, BoxStream};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use super::{LightspeedXSource, VENDOR, WireCustomer, config_error, pace, parse_time};
use crate::http;

const SALES: &str = "GET /sales";
const SALE: &str = "GET /sales/{sale_id}";
const PRODUCTS: &str = "GET /products";
const OUTLETS: &str = "GET /outlets";
const CUSTOMER: &str = "GET /customers/{customer_id}";

#[derive(Deserialize)]
struct List<T> {
    data: Vec<T>,
    #[serde(default)]
    version: Option<Range>,
}

#[derive(Deserialize)]
struct Range {
    max: u64,
}

#[derive(Deserialize)]
struct One<T> {
    data: T,
}

/// A JSON number (or string, or null) kept as its text.
type Num = Option<Box<RawValue>>;

#[derive(Deserialize)]
struct Sale {
    id: String,
    #[serde(default)]
    outlet_id: Option<String>,
    #[serde(default)]
    customer_id: Option<String>,
    #[serde(default)]
    invoice_number: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    return_for: Option<String>,
    #[serde(default)]
    total_price: Num,
    #[serde(default)]
    total_tax: Num,
    #[serde(default)]
    sale_date: Option<String>,
    updated_at: String,
    #[serde(default)]
    line_items: Vec<Line>,
}

#[derive(Deserialize)]
struct Line {
    id: String,
    #[serde(default)]
    product_id: Option<String>,
    #[serde(default)]
    quantity: Num,
    #[serde(default)]
    price: Num,
    #[serde(default)]
    discount: Num,
    #[serde(default)]
    discount_total: Num,
}

#[derive(Deserialize)]
struct Product {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    sku: Option<String>,
    #[serde(default)]
    categories: Option<Vec<Category>>,
}

#[derive(Deserialize)]
struct Category {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct Outlet {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    time_zone: Option<String>,
    #[serde(default)]
    currency: Option<String>,
}

/// A number's text as a decimal: `None` for null, absent or unreadable.
fn decimal(raw: &Num) -> Option<Decimal> {
    let raw = raw.as_ref()?.get().trim().trim_matches('"');
    if raw == "null" || raw.is_empty() {
        return None;
    }
    Decimal::from_str(raw)
        .or_else(|_| Decimal::from_scientific(raw))
        .ok()
}

struct Lookups {
    outlets: HashMap<String, Outlet>,
    products: HashMap<String, Product>,
    customers: HashMap<String, OrderCustomer>,
}

impl LightspeedXSource {
    async fn get_json<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Option<T>, ConnectorError> {
        self.get_json_unredacted(endpoint, path, query)
            .await
            .map_err(|e| http::redact_error(e, &[&self.token]))
    }

    /// `None` on 404.
    async fn get_json_unredacted<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Option<T>, ConnectorError> {
        let url = format!("{}{path}", self.base_url);
        let budget = &self.budget;
        let response = http::send(
            VENDOR,
            endpoint,
            budget,
            &self.retry,
            || self.client.get(&url).bearer_auth(&self.token).query(query),
            |response| {
                pace(budget, response.headers());
                http::default_verdict(response)
            },
        )
        .await?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(http::status_error(
                VENDOR,
                endpoint,
                status,
                &super::vendor_message(&body),
            ));
        }
        http::json_body(VENDOR, endpoint, response).await.map(Some)
    }

    /// Every record of a version-paged list.
    async fn list_all<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        path: &str,
    ) -> Result<Vec<T>, ConnectorError> {
        let mut out = Vec::new();
        let mut after = 0u64;
        loop {
            let page: List<T> = self
                .get_json(
                    endpoint,
                    path,
                    &[
                        ("after", after.to_string()),
                        ("page_size", self.page_size.to_string()),
                    ],
                )
                .await?
                .ok_or_else(|| http::invalid_response(VENDOR, endpoint, "404 for a list"))?;
            if page.data.is_empty() {
                return Ok(out);
            }
            let max = page
                .version
                .map(|v| v.max)
                .filter(|max| *max > after)
                .ok_or_else(|| {
                    http::invalid_response(VENDOR, endpoint, "the version cursor did not advance")
                })?;
            out.extend(page.data);
            after = max;
        }
    }

    async fn lookups(&self) -> Result<Lookups, ConnectorError> {
        let outlets: Vec<Outlet> = self.list_all(OUTLETS, "/outlets").await?;
        let products: Vec<Product> = self.list_all(PRODUCTS, "/products").await?;
        Ok(Lookups {
            outlets: outlets.into_iter().map(|o| (o.id.clone(), o)).collect(),
            products: products.into_iter().map(|p| (p.id.clone(), p)).collect(),
            customers: HashMap::new(),
        })
    }

    async fn customer(
        &self,
        lookups: &mut Lookups,
        id: &str,
    ) -> Result<OrderCustomer, ConnectorError> {
        if let Some(known) = lookups.customers.get(id) {
            return Ok(known.clone());
        }
        let found: Option<One<WireCustomer>> = self
            .get_json(CUSTOMER, &format!("/customers/{id}"), &[])
            .await?;
        let customer = match found {
            // A customer deleted since: the order keeps the id, without an email.
            None => OrderCustomer {
                customer_id: id.to_string(),
                ..OrderCustomer::default()
            },
            Some(one) => {
                let contact = one.data.into_contact()?;
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
        };
        lookups.customers.insert(id.to_string(), customer.clone());
        Ok(customer)
    }

    async fn order_from(
        &self,
        sale: Sale,
        returns: Vec<Sale>,
        lookups: &mut Lookups,
    ) -> Result<Order, ConnectorError> {
        let bad = |what: String| {
            http::invalid_response(VENDOR, SALES, format!("sale {}: {what}", sale.id))
        };
        let updated_at = parse_time(&sale.updated_at)
            .ok_or_else(|| bad(format!("updated_at {:?} is not a time", sale.updated_at)))?;
        let placed_at = match sale.sale_date.as_deref() {
            None | Some("") => updated_at,
            Some(raw) => {
                parse_time(raw).ok_or_else(|| bad(format!("sale_date {raw:?} is not a time")))?
            }
        };
        let status_text = sale.status.clone().unwrap_or_default();
        let status = match status_text.as_str() {
            "CLOSED" | "ONACCOUNT_CLOSED" | "LAYBY_CLOSED" | "DISPATCHED_CLOSED"
            | "PICKED_UP_CLOSED" | "SERVICE_CLOSED" => OrderStatus::Completed,
            "VOIDED" => OrderStatus::Cancelled,
            _ => OrderStatus::Open,
        };
        let customer = match sale.customer_id.as_deref() {
            None | Some("") => OrderCustomer::default(),
            Some(id) => self.customer(lookups, id).await?,
        };
        let outlet = sale
            .outlet_id
            .as_deref()
            .and_then(|id| lookups.outlets.get(id));
        let mut lines = Vec::new();
        let mut total_discounts = Decimal::ZERO;
        for line in &sale.line_items {
            let number = |field: &str, raw: &Num| -> Result<Decimal, ConnectorError> {
                match raw.as_ref().map(|r| r.get().trim()) {
                    None | Some("null") => Ok(Decimal::ZERO),
                    Some(_) => decimal(raw)
                        .ok_or_else(|| bad(format!("line {}: {field} is not a number", line.id))),
                }
            };
            let quantity = number("quantity", &line.quantity)?;
            let price = number("price", &line.price)?;
            let discount = number("discount", &line.discount)?;
            let discount_total = match &line.discount_total {
                Some(_) => number("discount_total", &line.discount_total)?,
                None => discount * quantity,
            };
            total_discounts += discount_total;
            let product = line
                .product_id
                .as_deref()
                .and_then(|id| lookups.products.get(id));
            lines.push(OrderLine {
                line_id: line.id.clone(),
                product_id: line.product_id.clone().unwrap_or_default(),
                variant_id: String::new(),
                sku: product.and_then(|p| p.sku.clone()).unwrap_or_default(),
                name: product.and_then(|p| p.name.clone()).unwrap_or_default(),
                categories: product
                    .and_then(|p| p.categories.as_ref())
                    .map(|c| c.iter().filter_map(|c| c.name.clone()).collect())
                    .unwrap_or_default(),
                collections: Vec::new(),
                quantity,
                unit_price: price - discount,
                discount: discount_total,
            });
        }
        let mut refunds = Vec::new();
        for ret in returns {
            let amount = match (decimal(&ret.total_price), decimal(&ret.total_tax)) {
                (Some(price), tax) => -(price + tax.unwrap_or_default()),
                (None, _) => {
                    return Err(bad(format!("return {}: no readable total_price", ret.id)));
                }
            };
            let products: BTreeSet<&str> = ret
                .line_items
                .iter()
                .filter_map(|l| l.product_id.as_deref())
                .collect();
            refunds.push(OrderRefund {
                refund_id: ret.id.clone(),
                refunded_at: ret
                    .sale_date
                    .as_deref()
                    .and_then(parse_time)
                    .or_else(|| parse_time(&ret.updated_at))
                    .unwrap_or(updated_at),
                amount,
                line_ids: sale
                    .line_items
                    .iter()
                    .filter(|l| {
                        l.product_id
                            .as_deref()
                            .is_some_and(|p| products.contains(p))
                    })
                    .map(|l| l.id.clone())
                    .collect(),
            });
        }
        let fulfillments = if matches!(
            status_text.as_str(),
            "DISPATCHED_CLOSED" | "PICKED_UP_CLOSED"
        ) {
            vec![OrderFulfillment {
                fulfillment_id: format!("{}:{}", sale.id, status_text.to_ascii_lowercase()),
                fulfilled_at: updated_at,
                line_ids: Vec::new(),
            }]
        } else {
            Vec::new()
        };
        let total =
            decimal(&sale.total_price).map(|p| p + decimal(&sale.total_tax).unwrap_or_default());
        Ok(Order {
            source: VENDOR.to_string(),
            order_number: sale
                .invoice_number
                .clone()
                .unwrap_or_else(|| sale.id.clone()),
            order_id: sale.id,
            status,
            customer,
            shop_id: sale.outlet_id.unwrap_or_default(),
            shop_name: outlet.and_then(|o| o.name.clone()).unwrap_or_default(),
            currency: outlet
                .and_then(|o| o.currency.clone())
                .unwrap_or_default()
                .to_ascii_uppercase(),
            total,
            total_discounts,
            discount_codes: Vec::new(),
            discounts: Vec::new(),
            lines,
            refunds,
            fulfillments,
            placed_at,
            updated_at,
        })
    }

    async fn orders_of(
        &self,
        sales: Vec<Sale>,
        lookups: &mut Lookups,
    ) -> Result<Vec<Order>, ConnectorError> {
        let (returns, originals): (Vec<Sale>, Vec<Sale>) = sales
            .into_iter()
            .partition(|s| s.return_for.as_deref().is_some_and(|r| !r.is_empty()));
        let mut by_original: HashMap<String, Vec<Sale>> = HashMap::new();
        for ret in returns {
            let original = ret.return_for.clone().unwrap_or_default();
            by_original.entry(original).or_default().push(ret);
        }
        let mut out = Vec::new();
        for sale in originals {
            let returns = by_original.remove(&sale.id).unwrap_or_default();
            out.push(self.order_from(sale, returns, lookups).await?);
        }
        let mut rest: Vec<(String, Vec<Sale>)> = by_original.into_iter().collect();
        rest.sort_by(|a, b| a.0.cmp(&b.0));
        for (original_id, returns) in rest {
            let found: Option<One<Sale>> = self
                .get_json(SALE, &format!("/sales/{original_id}"), &[])
                .await?;
            match found {
                Some(one) => out.push(self.order_from(one.data, returns, lookups).await?),
                None => {
                    for ret in returns {
                        out.push(self.order_from(ret, Vec::new(), lookups).await?);
                    }
                }
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl OrderSource for LightspeedXSource {
    fn vendor(&self) -> &'static str {
        VENDOR
    }

    /// `Since(t)`: sales updated at or after `t`, read from the start of the feed.
    /// `ChangedSince(version)`: sales changed after that version. Checkpoints are versions.
    fn orders(&self, scope: OrderScope) -> BoxStream<'_, Result<OrderPage, ConnectorError>> {
        let (start, since): (u64, Option<DateTime<Utc>>) = match scope {
            OrderScope::Since(t) => (0, Some(t)),
            OrderScope::ChangedSince(checkpoint) => match checkpoint.trim().parse::<u64>() {
                Ok(version) => (version, None),
                Err(_) => {
                    let error = config_error(format!(
                        "order checkpoint {checkpoint:?} is not an X-Series version number"
                    ));
                    return stream::once(async move { Err(error) }).boxed();
                }
            },
        };
        let state: (u64, Option<Lookups>) = (start, None);
        stream::try_unfold(state, move |(mut after, mut lookups)| async move {
            loop {
                let page: List<Sale> = self
                    .get_json(
                        SALES,
                        "/sales",
                        &[
                            ("after", after.to_string()),
                            ("page_size", self.page_size.to_string()),
                        ],
                    )
                    .await?
                    .ok_or_else(|| {
                        http::invalid_response(VENDOR, SALES, "404 for the sales list")
                    })?;
                if page.data.is_empty() {
                    return Ok(None);
                }
                let max = page.version.map(|v| v.max).ok_or_else(|| {
                    http::invalid_response(VENDOR, SALES, "a page of sales without a version")
                })?;
                if max <= after {
                    return Err(http::invalid_response(
                        VENDOR,
                        SALES,
                        format!(
                            "the version cursor did not advance past {after} (version.max {max})"
                        ),
                    ));
                }
                after = max;
                let mut sales = Vec::new();
                for sale in page.data {
                    let updated = parse_time(&sale.updated_at).ok_or_else(|| {
                        http::invalid_response(
                            VENDOR,
                            SALES,
                            format!(
                                "sale {}: updated_at {:?} is not a time",
                                sale.id, sale.updated_at
                            ),
                        )
                    })?;
                    if since.is_none_or(|t| updated >= t) {
                        sales.push(sale);
                    }
                }
                if sales.is_empty() {
                    continue;
                }
                if lookups.is_none() {
                    lookups = Some(self.lookups().await?);
                }
                let known = lookups.as_mut().expect("loaded above");
                let orders = self.orders_of(sales, known).await?;
                let page = OrderPage {
                    orders,
                    checkpoint: Some(max.to_string()),
                };
                return Ok(Some((page, (after, lookups))));
            }
        })
        .boxed()
    }

    async fn time_zone(&self) -> Result<Option<String>, ConnectorError> {
        let outlets: Vec<Outlet> = self.list_all(OUTLETS, "/outlets").await?;
        Ok(outlets
            .into_iter()
            .find_map(|o| o.time_zone.filter(|z| !z.is_empty())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_numbers_are_read_as_decimals_from_their_text() {
        let line: Line = serde_json::from_str(
            r#"{"id":"a","quantity":3,"price":0.1,"discount":1e-2,"discount_total":null}"#,
        )
        .unwrap();
        assert_eq!(decimal(&line.quantity), Some(Decimal::new(3, 0)));
        assert_eq!(decimal(&line.price), Some(Decimal::new(1, 1)));
        assert_eq!(decimal(&line.discount), Some(Decimal::new(1, 2)));
        assert_eq!(decimal(&line.discount_total), None);
        let sum = decimal(&line.price).unwrap() * Decimal::new(3, 0);
        assert_eq!(sum, Decimal::from_str("0.3").unwrap());
    }
}
