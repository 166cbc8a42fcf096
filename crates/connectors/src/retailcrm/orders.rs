//! RetailCRM orders, API v5: the order half of [`RetailCrmSource`].
//!
//! **Reads.** `Since(t)` (a first run or a backfill) first reads the newest order-history id (one
//! or two calls, as the customer reader does), then pages `GET /api/v5/orders?filter[createdAtFrom]=
//! <date of t in the account's zone>&limit=100&page=N` and keeps the orders created at or after `t`;
//! the last page carries that history id, so a change made during the read is read again next
//! time. The pages before it carry a resume position (`{"history": id, "since": t, "page": n}`),
//! so a backfill interrupted after page n goes on at page n + 1 rather than from the start
//! (offset paging: an order deleted meanwhile from an earlier page would shift one past the
//! resume point [U]; orders are rarely deleted, they are cancelled). `ChangedSince(history id)` pages `GET /api/v5/orders/history?filter[sinceId]=…&limit=100`
//! and fetches the orders those entries name, 100 per call with `filter[ids][]`; each page carries
//! the id of the last history entry it covers. A poll with nothing new is one history call.
//!
//! **Status.** An order's status code belongs to a status group (`GET /api/v5/reference/statuses`,
//! read once per source when the first order needs it): group `complete` is a completed order;
//! group `cancel` is cancelled, except the return statuses ([`RETURN_STATUSES`], [U]: `return` is
//! the account default), which mean the goods came back after completion: a completed order with a
//! refund of its total and every line, dated by `statusUpdatedAt`. Every other group (new,
//! approval, assembling, delivery) is still open.
//!
//! **Shipments.** `shipped: true` (set by staff) is a fulfilment of the whole order, dated by its
//! `shipmentDate` (midnight in the account's zone), else by `statusUpdatedAt`.
//!
//! **Money.** `totalSumm`, `initialPrice` and `discountTotal` (per unit) are JSON numbers, read as
//! decimals from their text, never through `f64`. The currency is the order's `currency`, else its
//! site's, else the account's default. The shop is the order's site (`GET /api/v5/reference/sites`
//! for its name). RetailCRM orders carry no discount codes and no product categories [U].
//!
//! **Times** are `Y-m-d H:i:s` in the account's zone ([`RetailCrmSource::account_zone`]).

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use audience_core::order::{
    Decimal, Order, OrderCustomer, OrderFulfillment, OrderLine, OrderRefund, OrderStatus,
};
use audience_core::{ConnectorError, OrderPage, OrderScope, OrderSource};
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;
use futures::StreamExt;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    Answer, IDS_PER_CALL, PAGE_LIMIT, Pagination, RetailCrmSource, SETTINGS, SettingsAnswer,
    VENDOR, WireAddress, parse_local,
};
use crate::http;

const ORDERS: &str = "GET /api/v5/orders";
const ORDER_HISTORY: &str = "GET /api/v5/orders/history";
const STATUSES: &str = "GET /api/v5/reference/statuses";
const SITES: &str = "GET /api/v5/reference/sites";

/// Status codes (in the `cancel` group) that mean "returned after completion" [U].
pub const RETURN_STATUSES: [&str; 2] = ["return", "returned"];

/// What mapping an order needs from the account's reference data.
#[derive(Debug, Default)]
pub(super) struct OrderReferences {
    /// Status code → its group code.
    groups: HashMap<String, String>,
    /// Site code → (name, currency).
    sites: HashMap<String, (String, Option<String>)>,
    default_currency: Option<String>,
}

/// Where an interrupted `Since` read goes on.
#[derive(Debug, Serialize, Deserialize)]
struct ResumeCreated {
    history: u64,
    since: DateTime<Utc>,
    page: u64,
}

enum Read {
    Created {
        since: DateTime<Utc>,
        checkpoint: Option<u64>,
        page: u64,
    },
    Changes {
        since: u64,
    },
    Done,
}

/// The order references of the current run: read once per run, by whichever page needs them
/// first (concurrent pages wait for that one read); a new run starts with an empty slot.
#[derive(Default)]
pub(super) struct ReferencesSlot(
    std::sync::Mutex<Arc<tokio::sync::OnceCell<Arc<OrderReferences>>>>,
);

impl ReferencesSlot {
    fn current(&self) -> Arc<tokio::sync::OnceCell<Arc<OrderReferences>>> {
        self.0.lock().expect("order references lock").clone()
    }

    pub(super) fn clear(&self) {
        *self.0.lock().expect("order references lock") = Arc::default();
    }
}

impl RetailCrmSource {
    async fn order_references(&self) -> Result<Arc<OrderReferences>, ConnectorError> {
        self.order_refs
            .current()
            .get_or_try_init(|| async {
                let statuses: StatusesAnswer = self
                    .get(STATUSES, "/api/v5/reference/statuses", &[])
                    .await?;
                let sites: SitesAnswer = self.get(SITES, "/api/v5/reference/sites", &[]).await?;
                let mut refs = OrderReferences {
                    groups: statuses
                        .statuses
                        .into_values()
                        .filter_map(|s| Some((s.code?, s.group?)))
                        .collect(),
                    sites: sites
                        .sites
                        .into_iter()
                        .map(|(code, s)| {
                            let name = s.name.unwrap_or_else(|| code.clone());
                            (s.code.unwrap_or(code), (name, s.currency))
                        })
                        .collect(),
                    default_currency: None,
                };
                if refs.sites.values().any(|(_, currency)| currency.is_none())
                    || refs.sites.is_empty()
                {
                    let settings: SettingsAnswer =
                        self.get(SETTINGS, "/api/v5/settings", &[]).await?;
                    refs.default_currency = settings
                        .settings
                        .and_then(|s| s.default_currency)
                        .and_then(|v| v.value);
                }
                Ok(Arc::new(refs))
            })
            .await
            .cloned()
    }

    async fn orders_by_id(&self, ids: &[u64]) -> Result<Vec<WireOrder>, ConnectorError> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(IDS_PER_CALL) {
            let mut params = vec![("limit".to_string(), PAGE_LIMIT.to_string())];
            params.extend(
                chunk
                    .iter()
                    .map(|id| ("filter[ids][]".to_string(), id.to_string())),
            );
            self.site_filter(&mut params);
            let answer: OrdersAnswer = self.get(ORDERS, "/api/v5/orders", &params).await?;
            out.extend(answer.orders);
        }
        Ok(out)
    }

    async fn next_order_page(&self, read: &mut Read) -> Result<Option<OrderPage>, ConnectorError> {
        let tz = self.account_zone().await?;
        match read {
            Read::Done => Ok(None),
            Read::Created {
                since,
                checkpoint,
                page,
            } => {
                let covered = match checkpoint {
                    Some(id) => *id,
                    None => *checkpoint.insert(
                        self.latest_history_id_at(ORDER_HISTORY, "/api/v5/orders/history")
                            .await?,
                    ),
                };
                let mut params = vec![
                    ("limit".to_string(), PAGE_LIMIT.to_string()),
                    ("page".to_string(), page.to_string()),
                    (
                        "filter[createdAtFrom]".to_string(),
                        since.with_timezone(&tz).format("%Y-%m-%d").to_string(),
                    ),
                ];
                self.site_filter(&mut params);
                let answer: OrdersAnswer = self.get(ORDERS, "/api/v5/orders", &params).await?;
                let pages = answer.pagination.as_ref().map_or(1, |p| p.total_page_count);
                let last = answer.orders.is_empty() || *page >= pages;
                let since = *since;
                let mut orders = Vec::with_capacity(answer.orders.len());
                for wire in answer.orders {
                    let order = self.order(wire, tz).await?;
                    // The filter is by date; the time of day is checked here.
                    if order.placed_at >= since {
                        orders.push(order);
                    }
                }
                *page += 1;
                let checkpoint = if last {
                    covered.to_string()
                } else {
                    serde_json::to_string(&ResumeCreated {
                        history: covered,
                        since,
                        page: *page,
                    })
                    .map_err(|e| http::invalid_response(VENDOR, ORDERS, e.to_string()))?
                };
                let out = OrderPage {
                    orders,
                    checkpoint: Some(checkpoint),
                };
                if last {
                    *read = Read::Done;
                }
                Ok(Some(out))
            }
            Read::Changes { since } => {
                let params = vec![
                    ("filter[sinceId]".to_string(), since.to_string()),
                    ("limit".to_string(), PAGE_LIMIT.to_string()),
                ];
                let answer: OrderHistoryAnswer = self
                    .get(ORDER_HISTORY, "/api/v5/orders/history", &params)
                    .await?;
                let entries = answer.history.len();
                let mut seen = HashSet::new();
                let mut ids = Vec::new();
                let mut last = *since;
                for entry in &answer.history {
                    last = last.max(entry.id);
                    if let Some(id) = entry.order.as_ref().and_then(|o| o.id)
                        && seen.insert(id)
                    {
                        ids.push(id);
                    }
                }
                let mut orders = Vec::with_capacity(ids.len());
                // An order the fetch no longer finds (deleted, or of another site) is left out.
                for wire in self.orders_by_id(&ids).await? {
                    orders.push(self.order(wire, tz).await?);
                }
                *since = last;
                if entries < PAGE_LIMIT as usize {
                    *read = Read::Done;
                }
                Ok(Some(OrderPage {
                    orders,
                    checkpoint: Some(last.to_string()),
                }))
            }
        }
    }

    /// One RetailCRM order as the core's [`Order`]; malformed fields become what the core rejects
    /// with a reason (no total, no currency, a time before 1990), never an error for the page.
    async fn order(&self, o: WireOrder, tz: Tz) -> Result<Order, ConnectorError> {
        let refs = self.order_references().await?;
        let time = |text: &Option<String>| text.as_deref().and_then(|t| parse_local(tz, t));
        let created_at = time(&o.created_at).unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
        let status_at = time(&o.status_updated_at).unwrap_or(created_at);
        let code = o.status.clone().unwrap_or_default();
        let group = refs.groups.get(&code).map(String::as_str).unwrap_or("");
        let returned = RETURN_STATUSES.contains(&code.as_str());
        let status = match group {
            "complete" => OrderStatus::Completed,
            "cancel" if returned => OrderStatus::Completed,
            "cancel" => OrderStatus::Cancelled,
            _ => OrderStatus::Open,
        };
        let site = o.site.clone().unwrap_or_default();
        let (shop_name, site_currency) = refs
            .sites
            .get(&site)
            .cloned()
            .unwrap_or_else(|| (site.clone(), None));
        let currency = o
            .currency
            .clone()
            .or(site_currency)
            .or_else(|| refs.default_currency.clone())
            .unwrap_or_default()
            .to_uppercase();
        let mut numbers_ok = true;
        let mut number = |v: &Option<Value>| match v {
            None | Some(Value::Null) => Some(Decimal::ZERO),
            Some(v) => {
                let d = decimal(v);
                numbers_ok &= d.is_some();
                d
            }
        };
        let mut lines = Vec::with_capacity(o.items.len());
        let mut total_discounts = Decimal::ZERO;
        for item in &o.items {
            let quantity = number(&item.quantity).unwrap_or_default();
            let initial = number(&item.initial_price).unwrap_or_default();
            let discount = number(&item.discount_total).unwrap_or_default();
            let line_discount = discount.checked_mul(quantity).unwrap_or_default();
            total_discounts = total_discounts
                .checked_add(line_discount)
                .unwrap_or_default();
            let offer = item.offer.as_ref();
            lines.push(OrderLine {
                line_id: item.id.map(|id| id.to_string()).unwrap_or_default(),
                product_id: offer
                    .and_then(|of| of.id)
                    .map(|id| id.to_string())
                    .unwrap_or_default(),
                variant_id: offer
                    .and_then(|of| of.external_id.clone())
                    .unwrap_or_default(),
                sku: offer.and_then(|of| of.article.clone()).unwrap_or_default(),
                name: item
                    .product_name
                    .clone()
                    .or_else(|| offer.and_then(|of| of.name.clone()))
                    .unwrap_or_default(),
                categories: Vec::new(),
                collections: Vec::new(),
                quantity,
                unit_price: initial.checked_sub(discount).unwrap_or_default(),
                discount: line_discount,
            });
        }
        let total = match &o.total_summ {
            None | Some(Value::Null) => None,
            Some(v) => decimal(v),
        }
        .filter(|_| numbers_ok);
        let mut refunds = Vec::new();
        if returned && let Some(amount) = total {
            refunds.push(OrderRefund {
                refund_id: format!("status-{code}"),
                refunded_at: status_at,
                amount,
                line_ids: lines.iter().map(|l| l.line_id.clone()).collect(),
            });
        }
        let mut fulfillments = Vec::new();
        if o.shipped == Some(true) {
            let at = o
                .shipment_date
                .as_deref()
                .and_then(|d| NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d").ok())
                .and_then(|d| {
                    parse_local(
                        tz,
                        &d.and_time(NaiveTime::MIN)
                            .format("%Y-%m-%d %H:%M:%S")
                            .to_string(),
                    )
                })
                .unwrap_or(status_at);
            fulfillments.push(OrderFulfillment {
                fulfillment_id: "shipped".into(),
                fulfilled_at: at,
                line_ids: Vec::new(),
            });
        }
        let address = o.delivery.as_ref().and_then(|d| d.address.as_ref());
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        let customer = OrderCustomer {
            customer_id: o
                .customer
                .as_ref()
                .and_then(|c| c.id)
                .map(|id| id.to_string())
                .unwrap_or_default(),
            email: o
                .email
                .clone()
                .filter(|e| !e.trim().is_empty())
                .or_else(|| o.customer.as_ref().and_then(|c| c.email.clone()))
                .unwrap_or_default(),
            first_name: text(&o.first_name),
            last_name: text(&o.last_name),
            phone: text(&o.phone),
            city: address.and_then(|a| a.city.clone()).unwrap_or_default(),
            region: address.and_then(|a| a.region.clone()).unwrap_or_default(),
            country: address
                .and_then(|a| a.country_iso.clone())
                .filter(|c| !c.is_empty())
                .or_else(|| o.country_iso.clone())
                .unwrap_or_default(),
            postal_code: address.and_then(|a| a.index.clone()).unwrap_or_default(),
            // An order says nothing of email opt-in: never a subscriber by purchase.
            accepts_marketing: false,
        };
        let updated_at = [created_at, status_at]
            .into_iter()
            .chain(fulfillments.iter().map(|f| f.fulfilled_at))
            .max()
            .unwrap_or(created_at);
        Ok(Order {
            source: VENDOR.into(),
            order_id: o.id.to_string(),
            order_number: o.number.clone().unwrap_or_else(|| o.id.to_string()),
            status,
            customer,
            shop_id: site,
            shop_name,
            currency,
            total,
            total_discounts,
            discount_codes: Vec::new(),
            discounts: Vec::new(),
            lines,
            refunds,
            fulfillments,
            placed_at: created_at,
            updated_at,
        })
    }
}

/// A JSON number (or numeric string) as a decimal, from its text: `0.1` stays `0.1`.
fn decimal(value: &Value) -> Option<Decimal> {
    let text = match value {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_string(),
        _ => return None,
    };
    Decimal::from_str(&text)
        .or_else(|_| Decimal::from_scientific(&text))
        .ok()
}

#[async_trait]
impl OrderSource for RetailCrmSource {
    fn vendor(&self) -> &'static str {
        VENDOR
    }

    async fn reset_run_state(&self) {
        self.forget_run_state();
    }

    fn orders(&self, scope: OrderScope) -> BoxStream<'_, Result<OrderPage, ConnectorError>> {
        let start = match scope {
            OrderScope::Since(since) => Ok(Read::Created {
                since,
                checkpoint: None,
                page: 1,
            }),
            OrderScope::ChangedSince(checkpoint) => checkpoint
                .trim()
                .parse::<u64>()
                .map(|since| Read::Changes { since })
                .or_else(|_| {
                    serde_json::from_str::<ResumeCreated>(checkpoint.trim()).map(|r| {
                        Read::Created {
                            since: r.since,
                            checkpoint: Some(r.history),
                            page: r.page.max(1),
                        }
                    })
                })
                .map_err(|_| {
                    http::invalid_response(
                        VENDOR,
                        "checkpoint",
                        format!(
                            "unreadable order checkpoint {checkpoint:?} (expected a history id or a resume position)"
                        ),
                    )
                }),
        };
        futures::stream::try_unfold(Some(start), move |state| async move {
            let mut read = match state {
                None => return Ok(None),
                Some(Err(e)) => return Err(e),
                Some(Ok(read)) => read,
            };
            match self.next_order_page(&mut read).await? {
                Some(page) => Ok(Some((page, Some(Ok(read))))),
                None => Ok(None),
            }
        })
        .boxed()
    }

    async fn time_zone(&self) -> Result<Option<String>, ConnectorError> {
        Ok(Some(self.account_zone().await?.name().to_string()))
    }
}

#[derive(Deserialize)]
struct OrdersAnswer {
    success: bool,
    pagination: Option<Pagination>,
    #[serde(default)]
    orders: Vec<WireOrder>,
}

impl Answer for OrdersAnswer {
    fn success(&self) -> bool {
        self.success
    }
}

#[derive(Deserialize)]
struct OrderHistoryAnswer {
    success: bool,
    #[serde(default)]
    history: Vec<WireOrderHistory>,
}

impl Answer for OrderHistoryAnswer {
    fn success(&self) -> bool {
        self.success
    }
}

#[derive(Deserialize)]
struct WireOrderHistory {
    id: u64,
    order: Option<WireOrderRef>,
}

#[derive(Deserialize)]
struct WireOrderRef {
    id: Option<u64>,
}

#[derive(Deserialize)]
struct StatusesAnswer {
    success: bool,
    #[serde(default, deserialize_with = "map_or_empty_list")]
    statuses: HashMap<String, WireStatus>,
}

impl Answer for StatusesAnswer {
    fn success(&self) -> bool {
        self.success
    }
}

#[derive(Deserialize)]
struct WireStatus {
    code: Option<String>,
    group: Option<String>,
}

#[derive(Deserialize)]
struct SitesAnswer {
    success: bool,
    #[serde(default, deserialize_with = "map_or_empty_list")]
    sites: HashMap<String, WireSite>,
}

impl Answer for SitesAnswer {
    fn success(&self) -> bool {
        self.success
    }
}

#[derive(Deserialize)]
struct WireSite {
    code: Option<String>,
    name: Option<String>,
    currency: Option<String>,
}

/// A PHP associative array: an object, or `[]` when empty.
fn map_or_empty_list<'de, D, T>(deserializer: D) -> Result<HashMap<String, T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum MapOrList<T> {
        Map(HashMap<String, T>),
        List(Vec<Value>),
    }
    match MapOrList::<T>::deserialize(deserializer)? {
        MapOrList::Map(map) => Ok(map),
        MapOrList::List(list) if list.is_empty() => Ok(HashMap::new()),
        MapOrList::List(_) => Err(serde::de::Error::custom("expected an object keyed by code")),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireOrder {
    id: u64,
    number: Option<String>,
    site: Option<String>,
    status: Option<String>,
    created_at: Option<String>,
    status_updated_at: Option<String>,
    currency: Option<String>,
    total_summ: Option<Value>,
    email: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    phone: Option<String>,
    country_iso: Option<String>,
    customer: Option<WireOrderCustomer>,
    #[serde(default)]
    items: Vec<WireItem>,
    shipped: Option<bool>,
    shipment_date: Option<String>,
    delivery: Option<WireDelivery>,
}

#[derive(Deserialize)]
struct WireOrderCustomer {
    id: Option<u64>,
    email: Option<String>,
}

#[derive(Deserialize)]
struct WireDelivery {
    address: Option<WireAddress>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireItem {
    id: Option<u64>,
    offer: Option<WireOffer>,
    product_name: Option<String>,
    quantity: Option<Value>,
    initial_price: Option<Value>,
    discount_total: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireOffer {
    id: Option<u64>,
    external_id: Option<String>,
    name: Option<String>,
    article: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_read_from_their_text() {
        assert_eq!(
            decimal(&serde_json::json!(0.1)),
            Some(Decimal::from_str("0.1").unwrap())
        );
        assert_eq!(decimal(&serde_json::json!(1500)), Some(Decimal::from(1500)));
        assert_eq!(
            decimal(&serde_json::json!("12.50")),
            Some(Decimal::from_str("12.50").unwrap())
        );
        assert_eq!(decimal(&serde_json::json!(true)), None);
        assert_eq!(decimal(&serde_json::json!("twelve")), None);
    }
}
