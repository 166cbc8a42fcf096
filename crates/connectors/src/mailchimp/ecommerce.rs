//! Orders into Mailchimp e-commerce: an [`OrderSink`] on `/ecommerce/stores/{store_id}/…`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), audience_core::ConnectorError> {
//! use audience_connectors::mailchimp::{MailchimpOrderConfig, MailchimpOrderSink};
//! let sink = MailchimpOrderSink::new(MailchimpOrderConfig::new("0123456789abcdef-us6", "shop-1", "a1b2c3d4e5"))?;
//! # Ok(()) }
//! ```
//!
//! What a page of orders costs (nothing to send: no call at all):
//! - the store, once per sink: `GET /ecommerce/stores/{id}`; when missing, `POST` it connected to
//!   the audience (a store connected to another audience is an error: a store's `list_id` cannot
//!   change). History (orders placed and last changed before the sync's start) is loaded with
//!   the store's `is_syncing: true`, so it fires no automations, and `false` again after it
//!   (`PATCH`, only when the value changes; [`OrderSink::finish`] puts it back at the end of a
//!   run, and a live page puts it back after a crash);
//! - each order: one `GET` to compare (none when the store was created by this sink: it is
//!   empty), then a `POST` when new, a `PATCH` of only the fields that differ (refund state,
//!   fulfilment state, totals, promos), or nothing when it is already as sent; so a re-run
//!   writes nothing;
//! - products: once per product per sink, a `GET`, then `POST` with the variants the orders
//!   need or a `PUT` per missing variant; promo codes (with a store `domain` for the
//!   redemption URL): once per code per sink, a `GET` of its rule, then `POST` rule and code
//!   with the rule the order applied (`amount`, `type` `fixed` or `percentage` as a fraction,
//!   `target` `total`, `per_item` or `shipping`), or a `PATCH` when those differ;
//! - the shop's promotions ([`OrderSink::sync_promotions`], every few hours): per code a `GET`
//!   of its rule and of its code, then only the writes for what differs (title, amount, type,
//!   target, dates, enabled; the code's URL and enabled), so a re-run writes nothing;
//! - customers go inline in a new order's `customer` (no separate call), `opt_in_status` from
//!   the source's consent at the time of the order read (true only for a customer who opted in;
//!   false when the source does not say). Mailchimp never lets `opt_in_status` overwrite an
//!   existing member's status, so a purchase subscribes only a new address that opted in, and
//!   never resubscribes anyone.
//!
//! Reads and writes run up to `concurrency` at once under the key's shared budget of 10
//! connections; 429s and 5xx are retried there ([`crate::http::send`]).
//!
//! Which orders: [`audience_core::sendable`] decides (the same skip and malformed rules as the
//! Klaviyo events); on top, Mailchimp needs whole-number quantities. A malformed order, or one
//! Mailchimp refuses with a 400, is rejected whole: its products may exist, the order does not.
//!
//! Mapping [U]: `financial_status` is `paid`, `partially_refunded` (some refunds) or `refunded`
//! (refunds reach the total); `fulfillment_status` is `shipped` once the order has a
//! fulfilment; line `price` is the unit price; an order's discount goes to its first promo code
//! (`promos[].amount_discounted`), the others 0; ids that are not plain (Shopify's
//! `gid://shopify/Order/1`) are shortened to their last path segment, or hashed.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use audience_core::order::{
    Decimal, DiscountCode, DiscountTarget, DiscountValue, Order, Promotion,
};
use audience_core::order_events::{OrderRejection, decimal_json};
use audience_core::{
    ApplyControl, ConnectorError, ErrorKind, OrderReport, OrderSendOptions, OrderSink,
    PromotionReport, Unsendable, sendable,
};
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};
use tokio::sync::Mutex;

use super::client::{Call, Client, VENDOR};
use super::{MAX_CONNECTIONS, data_center};
use crate::http::{self, RetryPolicy};

const STORE: &str = "/ecommerce/stores/{store_id}";
const STORES: &str = "/ecommerce/stores";
const ORDER: &str = "/ecommerce/stores/{store_id}/orders/{order_id}";
const ORDERS: &str = "/ecommerce/stores/{store_id}/orders";
const PRODUCT: &str = "/ecommerce/stores/{store_id}/products/{product_id}";
const PRODUCTS: &str = "/ecommerce/stores/{store_id}/products";
const VARIANT: &str = "/ecommerce/stores/{store_id}/products/{product_id}/variants/{variant_id}";
const RULE: &str = "/ecommerce/stores/{store_id}/promo-rules/{promo_rule_id}";
const RULES: &str = "/ecommerce/stores/{store_id}/promo-rules";
const CODES: &str = "/ecommerce/stores/{store_id}/promo-rules/{promo_rule_id}/promo-codes";
const CODE: &str =
    "/ecommerce/stores/{store_id}/promo-rules/{promo_rule_id}/promo-codes/{promo_code_id}";

/// How to reach one Mailchimp store.
#[derive(Clone)]
pub struct MailchimpOrderConfig {
    /// `<key>-<dc>`. A secret: never logged or echoed.
    pub api_key: String,
    /// The store's id (created when missing).
    pub store_id: String,
    /// The audience the store is connected to.
    pub list_id: String,
    /// The store's name when it is created (default: its id).
    pub store_name: Option<String>,
    /// The shop's domain (`shop.example.com`): the store's `domain` and the promo codes'
    /// redemption URL (`https://{domain}/discount/{code}`). Without it no promo rules are made.
    pub domain: Option<String>,
    pub base_url: Option<String>,
    pub retry: RetryPolicy,
    /// Calls in flight at once (capped at Mailchimp's 10 per key).
    pub concurrency: usize,
}

impl MailchimpOrderConfig {
    pub fn new(
        api_key: impl Into<String>,
        store_id: impl Into<String>,
        list_id: impl Into<String>,
    ) -> Self {
        MailchimpOrderConfig {
            api_key: api_key.into(),
            store_id: store_id.into(),
            list_id: list_id.into(),
            store_name: None,
            domain: None,
            base_url: None,
            retry: RetryPolicy::default(),
            concurrency: 4,
        }
    }

    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = Some(base_url.into());
        self
    }
}

impl fmt::Debug for MailchimpOrderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailchimpOrderConfig")
            .field("api_key", &"***")
            .field("store_id", &self.store_id)
            .field("list_id", &self.list_id)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// What the sink learnt during its life (one run in the operator).
#[derive(Default)]
struct Known {
    /// The store was read or created; its current `is_syncing`.
    store: Option<StoreState>,
    /// Product id → variant ids known to exist.
    products: HashMap<String, HashSet<String>>,
    /// Promo rule ids known to exist (with their code).
    promo_rules: HashSet<String>,
    /// Orders this sink created or changed (a fresh store holds no others).
    orders: HashSet<String>,
}

#[derive(Clone, Copy)]
struct StoreState {
    syncing: bool,
    /// Created by this sink: it holds no orders, so none needs reading first.
    fresh: bool,
}

/// A product made sure of: its id, the variant ids now known, write calls, and Mailchimp's
/// refusal if any.
type ProductOutcome = (String, Vec<String>, u64, Option<String>);

/// A Mailchimp e-commerce store as an [`OrderSink`].
pub struct MailchimpOrderSink {
    client: Client,
    store_id: String,
    list_id: String,
    store_name: String,
    domain: Option<String>,
    concurrency: usize,
    known: Mutex<Known>,
}

impl fmt::Debug for MailchimpOrderSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailchimpOrderSink")
            .field("store_id", &self.store_id)
            .field("list_id", &self.list_id)
            .finish_non_exhaustive()
    }
}

fn config_error(what: &str, message: String) -> ConnectorError {
    ConnectorError::new(VENDOR, what, ErrorKind::InvalidConfig, message)
}

fn plain_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 50
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// An id Mailchimp can take in a URL path (≤ 50 plain characters): the id itself, else its last
/// path segment (`gid://shopify/Order/1001` → `1001`), else a hash of it.
pub fn mailchimp_id(raw: &str) -> String {
    let raw = raw.trim();
    if plain_id(raw) {
        return raw.to_string();
    }
    if let Some(last) = raw.rsplit('/').next()
        && plain_id(last)
    {
        return last.to_string();
    }
    format!("h{:016x}", xxhash_rust::xxh3::xxh3_64(raw.as_bytes()))
}

impl MailchimpOrderSink {
    /// Checks the configuration (key form, ids, base URL) without calling the API.
    pub fn new(config: MailchimpOrderConfig) -> Result<Self, ConnectorError> {
        let dc = data_center(&config.api_key)?;
        let store_id = config.store_id.trim().to_string();
        if !plain_id(&store_id) {
            return Err(config_error(
                "store id",
                format!(
                    "the store id {:?} is not an id (up to 50 letters, digits, '-', '_', '.')",
                    http::truncate(&store_id, 60)
                ),
            ));
        }
        let list_id = config.list_id.trim().to_string();
        if !plain_id(&list_id) {
            return Err(config_error(
                "list id",
                format!(
                    "the audience (list) id {:?} is not an id",
                    http::truncate(&list_id, 60)
                ),
            ));
        }
        let domain = match config.domain.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(d)
                if d.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.')) =>
            {
                Some(d.to_ascii_lowercase())
            }
            Some(d) => {
                return Err(config_error(
                    "domain",
                    format!(
                        "the store domain {:?} is not a host name",
                        http::truncate(d, 60)
                    ),
                ));
            }
        };
        let base = match &config.base_url {
            Some(url) => {
                let parsed = url::Url::parse(url.trim()).map_err(|e| {
                    config_error("base URL", format!("the base URL is not a URL: {e}"))
                })?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err(config_error(
                        "base URL",
                        "the base URL must be http or https".into(),
                    ));
                }
                url.trim().trim_end_matches('/').to_string()
            }
            None => format!("https://{dc}.api.mailchimp.com/3.0"),
        };
        let budget = http::budget_for(VENDOR, &config.api_key, MAX_CONNECTIONS);
        Ok(MailchimpOrderSink {
            client: Client::new(base, &config.api_key, budget, config.retry),
            store_name: config
                .store_name
                .filter(|n| !n.trim().is_empty())
                .unwrap_or_else(|| store_id.clone()),
            store_id,
            list_id,
            domain,
            concurrency: config.concurrency.clamp(1, MAX_CONNECTIONS),
            known: Mutex::new(Known::default()),
        })
    }

    pub fn store_id(&self) -> &str {
        &self.store_id
    }

    fn store_path(&self) -> String {
        format!("/ecommerce/stores/{}", self.store_id)
    }

    /// GET that answers `None` on 404.
    async fn get_optional(
        &self,
        endpoint: &'static str,
        path: String,
    ) -> Result<Option<Value>, ConnectorError> {
        let call = Call::new(Method::GET, endpoint, path);
        match self.client.send_raw(&call).await? {
            Ok(response) => http::json_body(VENDOR, endpoint, response)
                .await
                .map(Some)
                .map_err(|e| self.client.redact(e)),
            Err(refused) if refused.status == StatusCode::NOT_FOUND => Ok(None),
            Err(refused) => Err(refused.error),
        }
    }

    /// A write; a 400 comes back as the vendor's words (a per-record refusal), anything else
    /// that fails is an error.
    async fn write(
        &self,
        method: Method,
        endpoint: &'static str,
        path: String,
        body: &Value,
    ) -> Result<Result<(), String>, ConnectorError> {
        let call = Call::new(method, endpoint, path).json(body)?;
        match self.client.send_raw(&call).await? {
            Ok(_) => Ok(Ok(())),
            Err(refused) if refused.status == StatusCode::BAD_REQUEST => {
                let text = refused.problem.text();
                Ok(Err(if text.is_empty() {
                    "Mailchimp refused it (HTTP 400)".to_string()
                } else {
                    http::truncate(&text, 300).to_string()
                }))
            }
            Err(refused) => Err(refused.error),
        }
    }

    /// Reads the store once, or creates it with `is_syncing: syncing`. Returns the write calls
    /// made.
    async fn ensure_store(&self, syncing: bool, currency: &str) -> Result<u64, ConnectorError> {
        let mut known = self.known.lock().await;
        let mut writes = 0;
        let state = match known.store {
            Some(state) => state,
            None => match self.get_optional(STORE, self.store_path()).await? {
                Some(doc) => {
                    let list = doc
                        .get("list_id")
                        .and_then(Value::as_str)
                        .ok_or_else(|| invalid_answer(STORE, "the store has no list_id"))?;
                    if list != self.list_id {
                        return Err(config_error(
                            "store",
                            format!(
                                "the Mailchimp store {} is connected to audience {}, not {}: a store's audience cannot change; use another storeId",
                                self.store_id,
                                http::truncate(list, 20),
                                self.list_id
                            ),
                        ));
                    }
                    StoreState {
                        syncing: doc
                            .get("is_syncing")
                            .and_then(Value::as_bool)
                            .unwrap_or(false),
                        fresh: false,
                    }
                }
                None => {
                    let mut body = json!({
                        "id": self.store_id,
                        "list_id": self.list_id,
                        "name": self.store_name,
                        "currency_code": currency,
                        "platform": "audience-operator",
                        "is_syncing": syncing,
                    });
                    if let Some(domain) = &self.domain {
                        body["domain"] = json!(domain);
                    }
                    writes += 1;
                    if let Err(reason) = self
                        .write(Method::POST, STORES, STORES.to_string(), &body)
                        .await?
                    {
                        return Err(ConnectorError::new(
                            VENDOR,
                            format!("POST {STORES}"),
                            ErrorKind::Rejected,
                            format!("the store {} could not be created: {reason}", self.store_id),
                        ));
                    }
                    StoreState {
                        syncing,
                        fresh: true,
                    }
                }
            },
        };
        known.store = Some(state);
        Ok(writes)
    }

    /// Sets the store's `is_syncing` when it differs from `syncing` (the store is known by
    /// then). Returns the write calls made.
    async fn sync_flag(&self, syncing: bool) -> Result<u64, ConnectorError> {
        let mut known = self.known.lock().await;
        match known.store.as_mut() {
            Some(state) if state.syncing != syncing => {
                self.set_syncing(syncing).await?;
                state.syncing = syncing;
                Ok(1)
            }
            _ => Ok(0),
        }
    }

    async fn set_syncing(&self, syncing: bool) -> Result<(), ConnectorError> {
        let body = json!({ "is_syncing": syncing });
        match self
            .write(Method::PATCH, STORE, self.store_path(), &body)
            .await?
        {
            Ok(()) => Ok(()),
            Err(reason) => Err(ConnectorError::new(
                VENDOR,
                format!("PATCH {STORE}"),
                ErrorKind::Rejected,
                reason,
            )),
        }
    }

    /// Makes sure every product and variant the new orders name exists. Returns write calls,
    /// or the first refusal of a product (by product id).
    async fn ensure_products(
        &self,
        wanted: BTreeMap<String, (Value, BTreeMap<String, Value>)>,
    ) -> Result<(u64, u64, HashMap<String, String>), ConnectorError> {
        let missing: Vec<_> = {
            let known = self.known.lock().await;
            wanted
                .into_iter()
                .filter_map(|(id, (product, variants))| {
                    let have = known.products.get(&id);
                    let need: BTreeMap<String, Value> = variants
                        .into_iter()
                        .filter(|(v, _)| have.is_none_or(|h| !h.contains(v)))
                        .collect();
                    (!need.is_empty()).then_some((id, product, need, have.is_some()))
                })
                .collect()
        };
        let results: Vec<Result<ProductOutcome, ConnectorError>> = futures::stream::iter(missing)
            .map(|(id, product, need, known_product)| async move {
                let path = format!("{}/products/{id}", self.store_path());
                let existing = if known_product {
                    None
                } else {
                    self.get_optional(PRODUCT, path.clone()).await?
                };
                let exists = known_product || existing.is_some();
                let have: HashSet<String> = existing
                    .as_ref()
                    .and_then(|p| p.get("variants"))
                    .and_then(Value::as_array)
                    .map(|vs| {
                        vs.iter()
                            .filter_map(|v| v.get("id").and_then(Value::as_str))
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default();
                let mut writes = 0;
                let mut done: Vec<String> = have.iter().cloned().collect();
                if !exists {
                    let mut body = product;
                    body["variants"] = Value::Array(need.values().cloned().collect());
                    writes += 1;
                    let url = format!("{}/products", self.store_path());
                    if let Err(reason) = self.write(Method::POST, PRODUCTS, url, &body).await? {
                        return Ok((id, done, writes, Some(reason)));
                    }
                    done.extend(need.keys().cloned());
                } else {
                    for (vid, variant) in need.into_iter().filter(|(v, _)| !have.contains(v)) {
                        writes += 1;
                        let url = format!("{path}/variants/{vid}");
                        if let Err(reason) = self.write(Method::PUT, VARIANT, url, &variant).await?
                        {
                            return Ok((id, done, writes, Some(reason)));
                        }
                        done.push(vid);
                    }
                }
                Ok((id, done, writes, None))
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        let mut writes = 0;
        let mut written = 0;
        let mut refused = HashMap::new();
        let mut known = self.known.lock().await;
        for result in results {
            let (id, done, w, reason) = result?;
            writes += w;
            written += w;
            known.products.entry(id.clone()).or_default().extend(done);
            if let Some(reason) = reason {
                refused.insert(id, reason);
            }
        }
        Ok((writes, written, refused))
    }

    /// Makes sure a promo rule and code exist for each code of the new orders (with a domain
    /// only), with the rule the order applied where the source says it: a missing rule is
    /// created with it, one whose amount, type or target differs is updated. Codes already made
    /// sure of by this sink (by [`OrderSink::sync_promotions`] too) are not looked at again.
    /// Returns write calls and the codes created or updated.
    async fn ensure_promos(
        &self,
        codes: BTreeMap<String, Option<DiscountCode>>,
    ) -> Result<(u64, u64), ConnectorError> {
        let Some(domain) = &self.domain else {
            return Ok((0, 0));
        };
        let wants: Vec<PromoWant> = {
            let known = self.known.lock().await;
            codes
                .into_iter()
                // Mailchimp takes codes of at most 50 characters; a longer one stays on the
                // order's `promos` only.
                .filter(|(c, _)| c.chars().count() <= 50)
                .filter(|(c, _)| !known.promo_rules.contains(&mailchimp_id(c)))
                .map(|(code, rule)| PromoWant::of_order(domain, &code, rule.as_ref()))
                .collect()
        };
        let (writes, changed, _) = self.upsert_promos(wants).await?;
        Ok((writes, changed))
    }

    /// Upserts each wanted rule and code; returns write calls, codes created or updated, and the
    /// outcome per code.
    async fn upsert_promos(
        &self,
        wants: Vec<PromoWant>,
    ) -> Result<(u64, u64, Vec<(String, PromoOutcome)>), ConnectorError> {
        let results: Vec<Result<(String, PromoOutcome, u64), ConnectorError>> =
            futures::stream::iter(wants)
                .map(|want| async move {
                    let (outcome, writes) = self.upsert_promo(&want).await?;
                    Ok((want.code, outcome, writes))
                })
                .buffer_unordered(self.concurrency)
                .collect()
                .await;
        let mut writes = 0;
        let mut changed = 0;
        let mut outcomes = Vec::new();
        let mut known = self.known.lock().await;
        for result in results {
            let (code, outcome, w) = result?;
            writes += w;
            match &outcome {
                PromoOutcome::Refused(reason) => warn_promo(&code, reason),
                PromoOutcome::Created | PromoOutcome::Updated => {
                    changed += 1;
                    known.promo_rules.insert(mailchimp_id(&code));
                }
                PromoOutcome::Unchanged => {
                    known.promo_rules.insert(mailchimp_id(&code));
                }
            }
            outcomes.push((code, outcome));
        }
        Ok((writes, changed, outcomes))
    }

    /// One rule and its code: `GET` the rule; missing, `POST` rule and code; present, `PATCH`
    /// the fields that differ (and, when asked, the same for the code). A refused write (400)
    /// is not worth failing the orders for: the order's `promos` still name the code.
    async fn upsert_promo(&self, want: &PromoWant) -> Result<(PromoOutcome, u64), ConnectorError> {
        let id = mailchimp_id(&want.code);
        let rule_path = format!("{}/promo-rules/{id}", self.store_path());
        let codes_path = format!("{rule_path}/promo-codes");
        let mut writes = 0;
        let Some(doc) = self.get_optional(RULE, rule_path.clone()).await? else {
            let rules = format!("{}/promo-rules", self.store_path());
            writes += 1;
            if let Err(reason) = self.write(Method::POST, RULES, rules, &want.rule).await? {
                return Ok((PromoOutcome::Refused(reason), writes));
            }
            writes += 1;
            if let Err(reason) = self
                .write(Method::POST, CODES, codes_path, &want.code_body)
                .await?
            {
                return Ok((PromoOutcome::Refused(reason), writes));
            }
            return Ok((PromoOutcome::Created, writes));
        };
        let mut changed = false;
        let mut patch = differing(&want.rule, &doc, want.compare);
        if !patch.is_empty() {
            if let Some(updated) = want.rule.get("updated_at_foreign") {
                patch.insert("updated_at_foreign".into(), updated.clone());
            }
            writes += 1;
            let body = Value::Object(patch);
            if let Err(reason) = self
                .write(Method::PATCH, RULE, rule_path.clone(), &body)
                .await?
            {
                return Ok((PromoOutcome::Refused(reason), writes));
            }
            changed = true;
        }
        if want.check_code {
            let code_path = format!("{codes_path}/{id}");
            match self.get_optional(CODE, code_path.clone()).await? {
                None => {
                    writes += 1;
                    if let Err(reason) = self
                        .write(Method::POST, CODES, codes_path, &want.code_body)
                        .await?
                    {
                        return Ok((PromoOutcome::Refused(reason), writes));
                    }
                    changed = true;
                }
                Some(code_doc) => {
                    let patch = differing(
                        &want.code_body,
                        &code_doc,
                        &["code", "redemption_url", "enabled"],
                    );
                    if !patch.is_empty() {
                        writes += 1;
                        let body = Value::Object(patch);
                        if let Err(reason) =
                            self.write(Method::PATCH, CODE, code_path, &body).await?
                        {
                            return Ok((PromoOutcome::Refused(reason), writes));
                        }
                        changed = true;
                    }
                }
            }
        }
        Ok((
            if changed {
                PromoOutcome::Updated
            } else {
                PromoOutcome::Unchanged
            },
            writes,
        ))
    }

    /// Sends one group of orders (all history or all live).
    async fn send_group(
        &self,
        orders: Vec<Wire>,
        history: bool,
        report: &mut OrderReport,
    ) -> Result<(), ConnectorError> {
        if orders.is_empty() {
            return Ok(());
        }
        let currency = orders[0].currency.clone();
        report.write_calls += self.ensure_store(history, &currency).await?;
        let (fresh, written) = {
            let known = self.known.lock().await;
            (known.store.is_some_and(|s| s.fresh), known.orders.clone())
        };
        let written = &written;
        // 1. What Mailchimp holds of each order.
        let current: Vec<Result<(Wire, Option<Value>), ConnectorError>> =
            futures::stream::iter(orders)
                .map(|order| async move {
                    if fresh && !written.contains(&order.id) {
                        return Ok((order, None));
                    }
                    let path = format!("{}/orders/{}", self.store_path(), order.id);
                    let doc = self.get_optional(ORDER, path).await?;
                    Ok((order, doc))
                })
                .buffer_unordered(self.concurrency)
                .collect()
                .await;
        let mut new = Vec::new();
        let mut changed = Vec::new();
        for result in current {
            let (order, doc) = result?;
            match doc {
                None => new.push(order),
                Some(doc) => {
                    let patch = order.patch_against(&doc)?;
                    if patch.is_empty() {
                        report.unchanged += 1;
                    } else {
                        changed.push((order, patch));
                    }
                }
            }
        }
        if new.is_empty() && changed.is_empty() {
            return Ok(());
        }
        // History loads with automations paused; live orders with them running.
        report.write_calls += self.sync_flag(history).await?;
        // 2. What the new orders reference.
        let mut products: BTreeMap<String, (Value, BTreeMap<String, Value>)> = BTreeMap::new();
        let mut codes: BTreeMap<String, Option<DiscountCode>> = BTreeMap::new();
        for order in &new {
            for (pid, product, vid, variant) in &order.products {
                products
                    .entry(pid.clone())
                    .or_insert_with(|| (product.clone(), BTreeMap::new()))
                    .1
                    .insert(vid.clone(), variant.clone());
            }
            for code in &order.codes {
                codes.entry(code.clone()).or_insert(None);
            }
            // The rule as the newest order of the page applied it.
            for discount in &order.discounts {
                if let Some(rule) = codes.get_mut(discount.code.trim()) {
                    *rule = Some(discount.clone());
                }
            }
        }
        let (writes, written, refused_products) = self.ensure_products(products).await?;
        report.write_calls += writes;
        report.products_written += written;
        let (promo_writes, promos_changed) = self.ensure_promos(codes).await?;
        report.write_calls += promo_writes;
        report.promo_codes_written += promos_changed;
        // 3. The orders.
        enum Outcome {
            Created(Wire),
            Patched(Map<String, Value>),
            Refused(Wire, String),
        }
        let mut writes_to_do: Vec<(Wire, Option<Map<String, Value>>)> = Vec::new();
        for order in new {
            if let Some((pid, reason)) = order
                .products
                .iter()
                .find_map(|(pid, ..)| refused_products.get(pid).map(|r| (pid, r)))
            {
                let reason = format!("Mailchimp refused its product {pid}: {reason}");
                report.rejected.push(order.rejection(reason));
                continue;
            }
            writes_to_do.push((order, None));
        }
        writes_to_do.extend(changed.into_iter().map(|(o, p)| (o, Some(p))));
        let outcomes: Vec<Result<Outcome, ConnectorError>> = futures::stream::iter(writes_to_do)
            .map(|(order, patch)| async move {
                match patch {
                    None => {
                        let url = format!("{}/orders", self.store_path());
                        match self.write(Method::POST, ORDERS, url, &order.body).await? {
                            Ok(()) => Ok(Outcome::Created(order)),
                            Err(reason) => Ok(Outcome::Refused(order, reason)),
                        }
                    }
                    Some(patch) => {
                        let url = format!("{}/orders/{}", self.store_path(), order.id);
                        let body = Value::Object(patch.clone());
                        match self.write(Method::PATCH, ORDER, url, &body).await? {
                            Ok(()) => Ok(Outcome::Patched(patch)),
                            Err(reason) => Ok(Outcome::Refused(order, reason)),
                        }
                    }
                }
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        let mut known = self.known.lock().await;
        for outcome in outcomes {
            report.write_calls += 1;
            match outcome? {
                Outcome::Created(order) => {
                    known.orders.insert(order.id.clone());
                    report.orders_created += 1;
                    report.lines_created += order.line_count;
                    report.customers_written += 1;
                    if order.refunded() {
                        report.refunds += 1;
                    }
                    if order.shipped() {
                        report.fulfillments += 1;
                    }
                }
                Outcome::Patched(patch) => {
                    let refund = patch.contains_key("financial_status");
                    let shipment = patch.contains_key("fulfillment_status");
                    report.refunds += u64::from(refund);
                    report.fulfillments += u64::from(shipment);
                    if !refund && !shipment {
                        report.orders_updated += 1;
                    }
                }
                Outcome::Refused(order, reason) => report.rejected.push(order.rejection(reason)),
            }
        }
        Ok(())
    }
}

fn invalid_answer(endpoint: &str, message: &str) -> ConnectorError {
    ConnectorError::new(
        VENDOR,
        format!("GET {endpoint}"),
        ErrorKind::InvalidResponse,
        message.to_string(),
    )
}

fn warn_promo(code: &str, reason: &str) {
    tracing::warn!(
        vendor = VENDOR,
        endpoint = RULES,
        "the promo code {:?} could not be written: {reason}",
        http::truncate(code, 50)
    );
}

/// What became of one promo code.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PromoOutcome {
    Created,
    Updated,
    Unchanged,
    /// Mailchimp's words.
    Refused(String),
}

/// A promo rule and its code as they should be at Mailchimp (one rule per code, the rule's id
/// the code's: Mailchimp's advice for a platform whose codes are the promotion).
struct PromoWant {
    code: String,
    /// The rule's `POST` body.
    rule: Value,
    /// The rule's fields kept as they are here when the rule exists (others are left alone).
    compare: &'static [&'static str],
    /// The code's `POST` body.
    code_body: Value,
    /// Also keep the code's `code`, `redemption_url` and `enabled` (a shop's promotion) rather
    /// than trusting that a rule found has its code (an order's code).
    check_code: bool,
}

/// Mailchimp's `amount`, `type` and `target` for a rule. A percentage is a fraction (0..1);
/// free shipping is `fixed` on the `shipping` (the spec: "for free shipping set type to fixed")
/// with [U] amount 0, the shipping's price being unknown.
fn rule_terms(
    value: DiscountValue,
    target: DiscountTarget,
) -> (Decimal, &'static str, &'static str) {
    let target_name = match target {
        DiscountTarget::Order => "total",
        DiscountTarget::Items => "per_item",
        DiscountTarget::Shipping => "shipping",
    };
    match value {
        DiscountValue::Percentage(p)
            if target == DiscountTarget::Shipping && p >= Decimal::ONE_HUNDRED =>
        {
            (Decimal::ZERO, "fixed", target_name)
        }
        DiscountValue::Percentage(p) => (
            (p / Decimal::ONE_HUNDRED)
                .clamp(Decimal::ZERO, Decimal::ONE)
                .normalize(),
            "percentage",
            target_name,
        ),
        DiscountValue::Amount(a) => (a.max(Decimal::ZERO).normalize(), "fixed", target_name),
    }
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn fit(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

fn rfc3339(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

impl PromoWant {
    fn code_body(domain: &str, code: &str, enabled: bool) -> Value {
        json!({
            "id": mailchimp_id(code),
            "code": code,
            "redemption_url": format!("https://{domain}/discount/{}", urlencoding(code)),
            "enabled": enabled,
        })
    }

    /// A code seen on an order, with the rule the order applied when the source says it; [U]
    /// without one, a fixed discount of 0 on the total ("see the order's promos for what it
    /// took off").
    fn of_order(domain: &str, code: &str, rule: Option<&DiscountCode>) -> Self {
        let (amount, kind, target) = rule.map(|r| rule_terms(r.value, r.target)).unwrap_or((
            Decimal::ZERO,
            "fixed",
            "total",
        ));
        PromoWant {
            code: code.to_string(),
            rule: json!({
                "id": mailchimp_id(code),
                "title": fit(code, 100),
                "description": fit(&format!("Discount code {code}"), 255),
                "amount": decimal_json(amount),
                "type": kind,
                "target": target,
                "enabled": true,
            }),
            compare: if rule.is_some() {
                &["amount", "type", "target"]
            } else {
                &[]
            },
            code_body: Self::code_body(domain, code, true),
            check_code: false,
        }
    }

    /// One code of a shop's promotion: the rule is the promotion's (title, amount, dates,
    /// enabled).
    fn of_promotion(domain: &str, promotion: &Promotion, code: &str) -> Self {
        let (amount, kind, target) = rule_terms(promotion.value, promotion.target);
        let mut rule = json!({
            "id": mailchimp_id(code),
            "title": fit(promotion.title.trim(), 100),
            "description": fit(&format!("{} (code {code})", promotion.title.trim()), 255),
            "amount": decimal_json(amount),
            "type": kind,
            "target": target,
            "enabled": promotion.enabled,
        });
        for (key, time) in [
            ("starts_at", promotion.starts_at),
            ("ends_at", promotion.ends_at),
            ("created_at_foreign", promotion.created_at),
            ("updated_at_foreign", promotion.updated_at),
        ] {
            if let Some(t) = time {
                rule[key] = json!(rfc3339(&t));
            }
        }
        PromoWant {
            code: code.to_string(),
            rule,
            compare: &[
                "title",
                "description",
                "amount",
                "type",
                "target",
                "enabled",
                "starts_at",
                "ends_at",
            ],
            code_body: Self::code_body(domain, code, promotion.enabled),
            check_code: true,
        }
    }
}

/// The `keys` of `want` that `have` holds otherwise: numbers compared as decimals, times as
/// instants.
fn differing(want: &Value, have: &Value, keys: &[&str]) -> Map<String, Value> {
    let time = |v: &Value| {
        v.as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    };
    let mut out = Map::new();
    for key in keys {
        let Some(w) = want.get(*key) else {
            continue;
        };
        let h = have.get(*key).unwrap_or(&Value::Null);
        let same = match (w, h) {
            (Value::Number(_), Value::Number(_)) => number(w) == number(h),
            (Value::String(_), Value::String(_)) if time(w).is_some() => time(w) == time(h),
            _ => w == h,
        };
        if !same {
            out.insert((*key).to_string(), w.clone());
        }
    }
    out
}

/// Percent-encodes a code for the redemption URL's path.
fn urlencoding(code: &str) -> String {
    url::form_urlencoded::byte_serialize(code.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// One order as Mailchimp takes it.
struct Wire {
    source: String,
    order_id: String,
    id: String,
    currency: String,
    /// The `POST` body.
    body: Value,
    line_count: u64,
    /// `(product id, product body without variants, variant id, variant body)` per line.
    products: Vec<(String, Value, String, Value)>,
    codes: Vec<String>,
    /// The codes' rules, where the source says them.
    discounts: Vec<DiscountCode>,
}

impl Wire {
    fn rejection(&self, reason: String) -> OrderRejection {
        OrderRejection {
            source: self.source.clone(),
            order_id: self.order_id.clone(),
            reason,
        }
    }

    fn status(&self, key: &str) -> &str {
        self.body.get(key).and_then(Value::as_str).unwrap_or("")
    }

    fn refunded(&self) -> bool {
        self.status("financial_status").contains("refunded")
    }

    fn shipped(&self) -> bool {
        !self.status("fulfillment_status").is_empty()
    }

    /// The fields of the `POST` body that differ from what Mailchimp holds (`doc`): a `PATCH`
    /// body, empty when nothing changed. Lines are compared by nobody: Mailchimp's `PATCH` of
    /// an order cannot name a line, and an order's lines do not change once placed.
    fn patch_against(&self, doc: &Value) -> Result<Map<String, Value>, ConnectorError> {
        if !doc.is_object() {
            return Err(invalid_answer(ORDER, "the order is not a JSON object"));
        }
        let mut patch = Map::new();
        for key in ["financial_status", "fulfillment_status", "currency_code"] {
            let want = self.status(key);
            let have = doc.get(key).and_then(Value::as_str).unwrap_or("");
            if want != have && !(want.is_empty() && key != "financial_status") {
                patch.insert(key.into(), json!(want));
            }
        }
        for key in ["order_total", "discount_total"] {
            let want = self.body.get(key).and_then(number);
            let have = doc.get(key).and_then(number);
            if want != have
                && let Some(v) = self.body.get(key)
            {
                patch.insert(key.into(), v.clone());
            }
        }
        let time = |v: Option<&Value>| {
            v.and_then(Value::as_str)
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        };
        if time(self.body.get("processed_at_foreign")) != time(doc.get("processed_at_foreign")) {
            patch.insert(
                "processed_at_foreign".into(),
                self.body["processed_at_foreign"].clone(),
            );
        }
        let promos = |v: Option<&Value>| -> BTreeSet<(String, Option<Decimal>)> {
            v.and_then(Value::as_array)
                .map(|ps| {
                    ps.iter()
                        .map(|p| {
                            (
                                p.get("code")
                                    .and_then(Value::as_str)
                                    .unwrap_or("")
                                    .to_string(),
                                p.get("amount_discounted").and_then(number),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        if promos(self.body.get("promos")) != promos(doc.get("promos")) {
            patch.insert("promos".into(), self.body["promos"].clone());
        }
        Ok(patch)
    }
}

/// A JSON number as a decimal, from its text (so 10.1 and 10.10 are equal).
fn number(value: &Value) -> Option<Decimal> {
    match value {
        Value::Number(n) => Decimal::from_str(&n.to_string())
            .or_else(|_| Decimal::from_scientific(&n.to_string()))
            .ok()
            .map(|d| d.normalize()),
        _ => None,
    }
}

fn status_of(order: &Order, options: &OrderSendOptions) -> (&'static str, &'static str) {
    let refunded: Decimal = order
        .refunds
        .iter()
        .fold(Decimal::ZERO, |sum, r| sum.saturating_add(r.amount));
    let total = order.total.unwrap_or_default();
    let financial = if !options.kinds.refunded_order || order.refunds.is_empty() {
        "paid"
    } else if refunded >= total {
        "refunded"
    } else {
        "partially_refunded"
    };
    let fulfillment = if options.kinds.fulfilled_order && !order.fulfillments.is_empty() {
        "shipped"
    } else {
        ""
    };
    (financial, fulfillment)
}

/// The wire form of a sendable order, or why Mailchimp cannot take it.
fn wire(order: &Order, email: &str, options: &OrderSendOptions) -> Result<Wire, String> {
    let customer = &order.customer;
    let customer_id = if customer.customer_id.trim().is_empty() {
        super::subscriber_hash(email)
    } else {
        mailchimp_id(&customer.customer_id)
    };
    let mut address = Map::new();
    for (key, value) in [
        ("city", &customer.city),
        ("province", &customer.region),
        ("postal_code", &customer.postal_code),
        ("country", &customer.country),
    ] {
        if !value.trim().is_empty() {
            address.insert(key.into(), json!(value.trim()));
        }
    }
    let mut customer_body = json!({
        "id": customer_id,
        "email_address": email,
        "opt_in_status": customer.accepts_marketing,
        "first_name": customer.first_name.trim(),
        "last_name": customer.last_name.trim(),
    });
    if !address.is_empty() {
        customer_body["address"] = Value::Object(address);
    }
    let mut lines = Vec::with_capacity(order.lines.len());
    let mut products = Vec::with_capacity(order.lines.len());
    for line in &order.lines {
        if !line.quantity.fract().is_zero() {
            return Err(format!(
                "line {:?} has the quantity {}: Mailchimp takes whole quantities",
                http::truncate(&line.line_id, 40),
                line.quantity
            ));
        }
        let quantity = i64::from_str(&line.quantity.trunc().normalize().to_string())
            .map_err(|_| "a line's quantity is out of range".to_string())?;
        let product_id = mailchimp_id(&line.product_id);
        let variant_id = if line.variant_id.trim().is_empty() {
            product_id.clone()
        } else {
            mailchimp_id(&line.variant_id)
        };
        let title = if line.name.trim().is_empty() {
            line.product_id.trim().to_string()
        } else {
            line.name.trim().to_string()
        };
        let mut product = json!({ "id": product_id, "title": title });
        if let Some(category) = line.categories.first().filter(|c| !c.trim().is_empty()) {
            product["type"] = json!(category);
        }
        let mut variant = json!({
            "id": variant_id,
            "title": title,
            "price": decimal_json(line.unit_price),
        });
        if !line.sku.trim().is_empty() {
            variant["sku"] = json!(line.sku.trim());
        }
        products.push((product_id.clone(), product, variant_id.clone(), variant));
        lines.push(json!({
            "id": mailchimp_id(&line.line_id),
            "product_id": product_id,
            "product_variant_id": variant_id,
            "quantity": quantity,
            "price": decimal_json(line.unit_price),
            "discount": decimal_json(line.discount),
        }));
    }
    if lines.is_empty() {
        return Err("the order has no lines: Mailchimp needs at least one".into());
    }
    let codes: Vec<String> = order
        .discount_codes
        .iter()
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let promos: Vec<Value> = order
        .discount_codes
        .iter()
        .map(|c| c.trim())
        .filter(|c| !c.is_empty())
        .enumerate()
        .map(|(i, code)| {
            let amount = if i == 0 {
                order.total_discounts
            } else {
                Decimal::ZERO
            };
            json!({"code": code, "amount_discounted": decimal_json(amount), "type": "fixed"})
        })
        .collect();
    let (financial, fulfillment) = status_of(order, options);
    let id = mailchimp_id(&order.order_id);
    let mut body = json!({
        "id": id,
        "customer": customer_body,
        "currency_code": order.currency,
        "order_total": decimal_json(order.total.unwrap_or_default()),
        "discount_total": decimal_json(order.total_discounts),
        "processed_at_foreign": order.placed_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
        "financial_status": financial,
        "promos": promos,
        "lines": lines,
    });
    if !fulfillment.is_empty() {
        body["fulfillment_status"] = json!(fulfillment);
    }
    Ok(Wire {
        source: order.source.clone(),
        order_id: order.order_id.clone(),
        id,
        currency: order.currency.clone(),
        body,
        line_count: order.lines.len() as u64,
        products,
        codes,
        discounts: order.discounts.clone(),
    })
}

/// History: placed and last changed before the sync's start.
fn is_history(order: &Order, options: &OrderSendOptions) -> bool {
    options
        .live_from
        .is_some_and(|live| order.placed_at < live && order.updated_at < live)
}

#[async_trait]
impl OrderSink for MailchimpOrderSink {
    fn vendor(&self) -> &'static str {
        VENDOR
    }

    /// The store, its products, promo rules and orders are made sure of again: each run starts
    /// from what Mailchimp holds, not what an earlier run left (a store deleted in between is
    /// created again, and only a store this run created counts as empty).
    async fn reset_run_state(&self) {
        *self.known.lock().await = Known::default();
    }

    async fn send_orders(
        &self,
        orders: &[Order],
        options: &OrderSendOptions,
        control: &ApplyControl,
    ) -> Result<OrderReport, ConnectorError> {
        let mut report = OrderReport::default();
        let mut history = Vec::new();
        let mut live = Vec::new();
        let mut seen = HashSet::new();
        for order in orders {
            let email = match sendable(order) {
                Ok(email) => email,
                // Skips are the caller's to count (it decides with the same function).
                Err(Unsendable::Skipped(_)) => continue,
                Err(Unsendable::Rejected(reason)) => {
                    report.rejected.push(OrderRejection {
                        source: order.source.clone(),
                        order_id: order.order_id.clone(),
                        reason,
                    });
                    continue;
                }
            };
            if !options.kinds.placed_order {
                continue;
            }
            match wire(order, email.as_str(), options) {
                Ok(w) => {
                    // An order listed twice in one page: the later (newer) copy wins.
                    if !seen.insert(w.id.clone()) {
                        history.retain(|o: &Wire| o.id != w.id);
                        live.retain(|o: &Wire| o.id != w.id);
                    }
                    if is_history(order, options) {
                        history.push(w);
                    } else {
                        live.push(w);
                    }
                }
                Err(reason) => report.rejected.push(OrderRejection {
                    source: order.source.clone(),
                    order_id: order.order_id.clone(),
                    reason,
                }),
            }
        }
        for (group, is_hist) in [(history, true), (live, false)] {
            if control.stop_requested() {
                report.stopped_early = true;
                break;
            }
            self.send_group(group, is_hist, &mut report).await?;
        }
        Ok(report)
    }

    /// Each code of each promotion as a promo rule and code (see [`PromoWant::of_promotion`]):
    /// per code a `GET` of the rule and of the code, and writes only for what differs. The store
    /// must exist: until the first orders create it, a `NotFound` error says so.
    async fn sync_promotions(
        &self,
        promotions: &[Promotion],
    ) -> Result<PromotionReport, ConnectorError> {
        let Some(domain) = &self.domain else {
            return Err(config_error(
                "domain",
                "promo codes need the store's domain (their redemption URL)".into(),
            ));
        };
        let mut report = PromotionReport::default();
        let mut wants = Vec::new();
        let mut seen = HashSet::new();
        for promotion in promotions {
            for code in &promotion.codes {
                let code = code.trim();
                if code.is_empty() || code.chars().count() > 50 {
                    continue;
                }
                // A code is the shop's once; a repeat (another discount) is the same rule.
                if seen.insert(mailchimp_id(code)) {
                    wants.push(PromoWant::of_promotion(domain, promotion, code));
                }
            }
        }
        report.codes = wants.len() as u64;
        if wants.is_empty() {
            return Ok(report);
        }
        if self.get_optional(STORE, self.store_path()).await?.is_none() {
            // No store yet: the first orders create it (with the shop's currency).
            return Err(ConnectorError::new(
                VENDOR,
                format!("GET {STORE}"),
                ErrorKind::NotFound,
                format!(
                    "the Mailchimp store {} does not exist yet (the first orders create it)",
                    self.store_id
                ),
            ));
        }
        let (writes, _, outcomes) = self.upsert_promos(wants).await?;
        report.write_calls = writes;
        for (code, outcome) in outcomes {
            match outcome {
                PromoOutcome::Created => report.created += 1,
                PromoOutcome::Updated => report.updated += 1,
                PromoOutcome::Unchanged => report.unchanged += 1,
                PromoOutcome::Refused(reason) => report.refused.push((code, reason)),
            }
        }
        Ok(report)
    }

    async fn finish(&self) -> Result<u64, ConnectorError> {
        let mut known = self.known.lock().await;
        match known.store.as_mut() {
            Some(state) if state.syncing => {
                self.set_syncing(false).await?;
                state.syncing = false;
                Ok(1)
            }
            _ => Ok(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_fit_in_a_path() {
        assert_eq!(mailchimp_id("1001"), "1001");
        assert_eq!(mailchimp_id("gid://shopify/Order/1001"), "1001");
        let odd = mailchimp_id("a b/c d");
        assert!(odd.starts_with('h') && plain_id(&odd), "{odd}");
        assert_ne!(mailchimp_id("x y"), mailchimp_id("x z"));
    }

    #[test]
    fn rules_take_mailchimps_terms() {
        let d = |n: i64, s: u32| Decimal::new(n, s);
        let terms = |v, t| {
            let (amount, kind, target) = rule_terms(v, t);
            (amount.to_string(), kind, target)
        };
        assert_eq!(
            terms(DiscountValue::Percentage(d(10, 0)), DiscountTarget::Order),
            ("0.1".into(), "percentage", "total")
        );
        assert_eq!(
            terms(DiscountValue::Percentage(d(250, 0)), DiscountTarget::Items),
            ("1".into(), "percentage", "per_item")
        );
        assert_eq!(
            terms(DiscountValue::Amount(d(500, 2)), DiscountTarget::Items),
            ("5".into(), "fixed", "per_item")
        );
        assert_eq!(
            terms(
                DiscountValue::Percentage(d(100, 0)),
                DiscountTarget::Shipping
            ),
            ("0".into(), "fixed", "shipping")
        );
        assert_eq!(fit("ééé", 5), "éé");
    }

    #[test]
    fn promo_fields_compare_as_numbers_and_instants() {
        let want = json!({"amount": 0.1, "starts_at": "2025-01-01T00:00:00+00:00", "enabled": true, "title": "A"});
        let have = json!({"amount": 0.10, "starts_at": "2025-01-01T00:00:00Z", "enabled": false});
        let diff = differing(
            &want,
            &have,
            &["amount", "starts_at", "enabled", "title", "ends_at"],
        );
        assert_eq!(
            diff.keys().map(String::as_str).collect::<Vec<_>>(),
            ["enabled", "title"]
        );
    }

    #[test]
    fn numbers_compare_as_decimals() {
        assert_eq!(number(&json!(10.1)), number(&json!(10.10)));
        assert_eq!(number(&json!(25)), Some(Decimal::new(25, 0)));
        assert_eq!(number(&json!("25")), None);
    }

    #[test]
    fn the_store_id_and_key_are_checked_before_any_call() {
        let ok = MailchimpOrderSink::new(MailchimpOrderConfig::new(
            "0123456789abcdef-us6",
            "shop-1",
            "a1b2c3d4e5",
        ));
        assert!(ok.is_ok());
        let bad = MailchimpOrderSink::new(MailchimpOrderConfig::new(
            "0123456789abcdef-us6",
            "a/b",
            "a1b2c3d4e5",
        ))
        .unwrap_err();
        assert_eq!(bad.kind, ErrorKind::InvalidConfig);
        let key =
            MailchimpOrderSink::new(MailchimpOrderConfig::new("supersecret0123", "shop", "list"))
                .unwrap_err();
        assert_eq!(key.kind, ErrorKind::InvalidCredentials);
        assert!(!key.to_string().contains("supersecret"));
    }
}
