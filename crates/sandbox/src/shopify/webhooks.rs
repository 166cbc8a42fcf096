//! The Shopify simulator's webhooks: customer changes posted as Shopify posts them.
//!
//! Turned on with [`Shopify::send_webhooks_to`] (or [`Shopify::send_webhooks_as`] for another
//! shop domain than [`DEFAULT_SHOP_DOMAIN`]); off after a reset. Each change of a customer sends
//! a JSON body in the REST Admin API's `Customer` shape (`id`, `email`, `created_at`,
//! `updated_at` in the shop's offset, `email_marketing_consent`, …) with the headers of
//! shopify.dev "Webhooks delivery structure" [D]: `X-Shopify-Topic`, `X-Shopify-Hmac-Sha256`
//! (base64 HMAC-SHA256 of the exact body bytes, keyed with the app's client secret),
//! `X-Shopify-Shop-Domain`, `X-Shopify-API-Version`, `X-Shopify-Webhook-Id` (new per delivery,
//! kept on retries), `X-Shopify-Triggered-At`, `X-Shopify-Event-Id` (shared by the deliveries of
//! one change).
//!
//! Topics: `customers/create` ([`Shopify::add_customer`]), `customers/update`
//! ([`Shopify::edit_customer`] and the consent mutation), `customers_email_marketing_consent/update`
//! (the consent mutation; body `{customer_id, email_address, email_marketing_consent}` [U: the
//! shape of Shopify's sample]), `customers/delete` ([`Shopify::delete_customer`]; body with the id
//! and no email, as Shopify sends). [U] every topic goes to the one URL configured here; a
//! subscription registered through `webhookSubscriptionCreate` (see [`super::subscriptions`])
//! gets its own topic only, signed with the app's client secret ([`Shopify::set_app`]).
//!
//! Order topics, to registered subscriptions only (the one configured URL carries customer
//! topics, as before): `orders/create` and `orders/paid` ([`Shopify::add_order`]: the simulated
//! orders are paid when placed [U]), `refunds/create` and `orders/updated`
//! ([`Shopify::refund_order_line`]), `orders/fulfilled` and `orders/updated`
//! ([`Shopify::fulfill_order`]). The body is a subset of the REST Admin API's `Order` resource
//! [U: ids, `name`, `email`, `contact_email`, times in the shop's offset, money as strings,
//! `financial_status`, `fulfillment_status`, `customer`, `line_items`, `refunds`]; a
//! `refunds/create` body is the `Refund` (`id`, `order_id`, `created_at`, `refund_line_items`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::orders::{Order, Refund};
use super::{API_VERSION, Customer, MailingAddress, Shopify, State};
use crate::webhooks::{Delivery, DeliveryRecord, Outbox, hmac_sha256, uuid_v4};

/// The shop domain deliveries name unless [`Shopify::send_webhooks_as`] says otherwise.
pub const DEFAULT_SHOP_DOMAIN: &str = "sandbox.myshopify.com";

/// The app's client secret registered subscriptions are signed with unless [`Shopify::set_app`]
/// says otherwise [U].
pub const DEFAULT_APP_SECRET: &str = "sandbox-app-secret";

/// Where and how this shop's webhooks go; lives in the shop's state, so a reset turns them off.
pub(super) struct Webhooks {
    outbox: Outbox,
    signing: Option<Signing>,
    /// Subscriptions registered through the API, and who signs their deliveries.
    pub(super) registry: super::subscriptions::Registry,
    app: Signing,
}

impl Default for Webhooks {
    fn default() -> Self {
        Webhooks {
            outbox: Outbox::default(),
            signing: None,
            registry: Default::default(),
            app: Signing {
                shop_domain: DEFAULT_SHOP_DOMAIN.to_string(),
                secret: DEFAULT_APP_SECRET.as_bytes().to_vec(),
            },
        }
    }
}

struct Signing {
    shop_domain: String,
    secret: Vec<u8>,
}

impl Shopify {
    /// Posts every later customer change to `url`, signed with `client_secret` (the app's client
    /// secret), as shop [`DEFAULT_SHOP_DOMAIN`]. Call from async code (see [`Outbox::send_to`]).
    pub fn send_webhooks_to(&self, url: &str, client_secret: &str) {
        self.send_webhooks_as(DEFAULT_SHOP_DOMAIN, url, client_secret);
    }

    /// Like [`Shopify::send_webhooks_to`], naming `shop_domain` in `X-Shopify-Shop-Domain`.
    pub fn send_webhooks_as(&self, shop_domain: &str, url: &str, client_secret: &str) {
        let mut state = self.lock();
        state.webhooks.outbox.send_to(url);
        state.webhooks.signing = Some(Signing {
            shop_domain: shop_domain.to_string(),
            secret: client_secret.as_bytes().to_vec(),
        });
    }

    /// The shop domain and app client secret of deliveries to registered subscriptions (Shopify
    /// signs with the secret of the app that registered them).
    pub fn set_app(&self, shop_domain: &str, client_secret: &str) {
        self.lock().webhooks.app = Signing {
            shop_domain: shop_domain.to_string(),
            secret: client_secret.as_bytes().to_vec(),
        };
    }

    /// The outbox of each registered subscription of `topic` (REST name, `customers/update`).
    pub fn subscription_outboxes(&self, topic: &str) -> Vec<Outbox> {
        self.lock()
            .webhooks
            .registry
            .subscriptions
            .values()
            .filter(|s| s.rest_topic() == topic)
            .map(|s| s.outbox.clone())
            .collect()
    }

    pub fn stop_webhooks(&self) {
        let mut state = self.lock();
        state.webhooks.outbox.stop();
        state.webhooks.signing = None;
    }

    /// The outbox, to read what became of deliveries or wait for them.
    pub fn webhook_outbox(&self) -> Outbox {
        self.lock().webhooks.outbox.clone()
    }

    pub fn webhook_deliveries(&self) -> Vec<DeliveryRecord> {
        self.lock().webhooks.outbox.records()
    }
}

fn ts(t: &DateTime<Utc>, offset: FixedOffset) -> String {
    t.with_timezone(&offset)
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn lower(s: &str) -> String {
    s.to_ascii_lowercase()
}

fn address_json(customer: &Customer, a: &MailingAddress) -> Value {
    json!({
        "id": customer.id * 10 + 1,
        "customer_id": customer.id,
        "first_name": customer.first_name,
        "last_name": customer.last_name,
        "company": a.company,
        "address1": a.address1,
        "address2": a.address2,
        "city": a.city,
        "province": a.province,
        "country": a.country,
        "zip": a.zip,
        "phone": null,
        "province_code": a.province_code,
        "country_code": a.country_code,
        "country_name": a.country,
        "default": true,
    })
}

fn consent_json(customer: &Customer, offset: FixedOffset) -> Value {
    json!({
        "state": lower(&customer.marketing_state),
        "opt_in_level": customer.marketing_opt_in_level.as_deref().map(lower),
        "consent_updated_at": customer.consent_updated_at.as_ref().map(|t| ts(t, offset)),
    })
}

/// The REST `Customer` resource, as `customers/create|update` carry it.
fn customer_json(customer: &Customer, offset: FixedOffset) -> Value {
    let address = customer
        .default_address
        .as_ref()
        .map(|a| address_json(customer, a));
    json!({
        "id": customer.id,
        "email": customer.email,
        "created_at": ts(&customer.created_at, offset),
        "updated_at": ts(&customer.updated_at, offset),
        "first_name": customer.first_name,
        "last_name": customer.last_name,
        "orders_count": 0,
        "state": "disabled",
        "total_spent": "0.00",
        "last_order_id": null,
        "note": customer.note,
        "verified_email": customer.email.is_some(),
        "multipass_identifier": null,
        "tax_exempt": false,
        "tags": customer.tags.join(", "),
        "last_order_name": null,
        "currency": "USD",
        "phone": customer.phone,
        "addresses": address.iter().collect::<Vec<_>>(),
        "tax_exemptions": [],
        "email_marketing_consent": customer.email.as_ref().map(|_| consent_json(customer, offset)),
        "sms_marketing_consent": customer.phone.as_ref().map(|_| json!({
            "state": lower(customer.sms_marketing_state.as_deref().unwrap_or("NOT_SUBSCRIBED")),
            "opt_in_level": "unknown",
            "consent_updated_at": null,
            "consent_collected_from": "OTHER",
        })),
        "admin_graphql_api_id": customer.gid(),
        "default_address": address,
    })
}

impl State {
    /// Sends `topics` for the customer `id` as it now is (nothing when webhooks are off).
    pub(super) fn notify_customer(&self, topics: &[&str], id: u64) {
        let Some(customer) = self.customers.get(&id) else {
            return;
        };
        let event = uuid_v4();
        for topic in topics {
            let body = match *topic {
                "customers_email_marketing_consent/update" => json!({
                    "customer_id": customer.id,
                    "email_address": customer.email,
                    "email_marketing_consent": consent_json(customer, self.shop_offset),
                }),
                _ => customer_json(customer, self.shop_offset),
            };
            self.webhooks.send(topic, &event, &body);
        }
    }

    /// Sends `customers/delete` for a customer just removed.
    pub(super) fn notify_customer_deleted(&self, id: u64) {
        let body = json!({
            "id": id,
            "phone": null,
            "addresses": [],
            "tax_exemptions": [],
            "email_marketing_consent": null,
            "sms_marketing_consent": null,
            "admin_graphql_api_id": format!("gid://shopify/Customer/{id}"),
        });
        self.webhooks.send("customers/delete", &uuid_v4(), &body);
    }
}

fn money(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, (cents % 100).abs())
}

/// The REST `Order` resource (a subset, see the module docs), as `orders/*` carry it.
fn order_json(state: &State, order: &Order) -> Value {
    let offset = state.shop_offset;
    let refunded: i64 = order.refunds.iter().map(|r| r.amount_cents).sum();
    let financial = if order.cancelled_at.is_some() {
        "voided"
    } else if order.refunds.is_empty() {
        "paid"
    } else if refunded >= order.total_cents() {
        "refunded"
    } else {
        "partially_refunded"
    };
    let customer = order
        .customer_id
        .and_then(|id| state.customers.get(&id))
        .map(|c| customer_json(c, offset));
    json!({
        "id": order.id,
        "admin_graphql_api_id": order.gid(),
        "name": format!("#{}", order.number),
        "order_number": order.number,
        "email": order.email,
        "contact_email": order.email,
        "created_at": ts(&order.created_at, offset),
        "processed_at": ts(&order.processed_at, offset),
        "updated_at": ts(&order.updated_at, offset),
        "cancelled_at": order.cancelled_at.as_ref().map(|t| ts(t, offset)),
        "currency": "USD",
        "financial_status": financial,
        "fulfillment_status": (!order.fulfillments.is_empty()).then_some("fulfilled"),
        "total_price": money(order.total_cents()),
        "total_tax": money(order.tax_cents),
        "discount_codes": order.discount_codes.iter().map(|c| json!({"code": c})).collect::<Vec<_>>(),
        "customer": customer,
        "line_items": order.lines.iter().map(|l| json!({
            "id": l.id,
            "admin_graphql_api_id": format!("gid://shopify/LineItem/{}", l.id),
            "product_id": l.product_id,
            "quantity": l.quantity,
            "price": money(l.original_unit_cents),
        })).collect::<Vec<_>>(),
        "refunds": order.refunds.iter().map(|r| refund_json(order, r, offset)).collect::<Vec<_>>(),
    })
}

fn refund_json(order: &Order, refund: &Refund, offset: FixedOffset) -> Value {
    json!({
        "id": refund.id,
        "admin_graphql_api_id": format!("gid://shopify/Refund/{}", refund.id),
        "order_id": order.id,
        "created_at": ts(&refund.created_at, offset),
        "refund_line_items": refund.lines.iter().map(|(line, quantity)| json!({
            "line_item_id": line,
            "quantity": quantity,
        })).collect::<Vec<_>>(),
    })
}

impl State {
    /// Sends `topics` for `order` as it now is, to the registered subscriptions of each topic
    /// (`refunds/create` carries the order's last refund).
    pub(super) fn notify_order(&self, topics: &[&str], order: &Order) {
        let event = uuid_v4();
        for topic in topics {
            let body = match (*topic, order.refunds.last()) {
                ("refunds/create", Some(refund)) => refund_json(order, refund, self.shop_offset),
                _ => order_json(self, order),
            };
            self.webhooks.send_registered(topic, &event, &body);
        }
    }
}

impl Webhooks {
    /// Posts to the registered subscriptions of `topic` only.
    fn send_registered(&self, topic: &str, event_id: &str, body: &Value) {
        let bytes = serde_json::to_vec(body).expect("JSON values serialise");
        for subscription in self.registry.subscriptions.values() {
            if subscription.rest_topic() == topic {
                subscription
                    .outbox
                    .post(delivery(&self.app, topic, event_id, bytes.clone()));
            }
        }
    }

    fn send(&self, topic: &str, event_id: &str, body: &Value) {
        let bytes = serde_json::to_vec(body).expect("JSON values serialise");
        if let Some(signing) = &self.signing {
            self.outbox
                .post(delivery(signing, topic, event_id, bytes.clone()));
        }
        for subscription in self.registry.subscriptions.values() {
            if subscription.rest_topic() == topic {
                subscription
                    .outbox
                    .post(delivery(&self.app, topic, event_id, bytes.clone()));
            }
        }
    }
}

/// One delivery of `body` for `topic`, signed as `signing` says.
fn delivery(signing: &Signing, topic: &str, event_id: &str, body: Vec<u8>) -> Delivery {
    let signature = B64.encode(hmac_sha256(&signing.secret, &body));
    let headers = [
        ("Content-Type", "application/json".to_string()),
        ("User-Agent", "Shopify-Captain-Hook".to_string()),
        ("X-Shopify-Topic", topic.to_string()),
        ("X-Shopify-Hmac-Sha256", signature),
        ("X-Shopify-Shop-Domain", signing.shop_domain.clone()),
        ("X-Shopify-API-Version", API_VERSION.to_string()),
        ("X-Shopify-Webhook-Id", uuid_v4()),
        ("X-Shopify-Event-Id", event_id.to_string()),
        (
            "X-Shopify-Triggered-At",
            Utc::now().to_rfc3339_opts(SecondsFormat::Nanos, true),
        ),
    ];
    Delivery {
        topic: topic.to_string(),
        headers: headers
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        body,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::Router;
    use axum::body::Bytes;
    use axum::extract::State as AxState;
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::post;

    use super::*;

    type Seen = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

    async fn receiver(status: StatusCode) -> (String, Seen) {
        let seen: Seen = Arc::default();
        let app = Router::new()
            .route(
                "/hook",
                post(move |AxState(seen): AxState<Seen>, headers: HeaderMap, body: Bytes| async move {
                    seen.lock().unwrap().push((headers, body));
                    status
                }),
            )
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}/hook"), seen)
    }

    fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
        h.get(name).unwrap().to_str().unwrap()
    }

    #[tokio::test]
    async fn customer_changes_are_posted_signed_as_shopify_signs_them() {
        let (url, seen) = receiver(StatusCode::OK).await;
        let shop = Shopify::default();
        let before = shop.add_customer(Customer {
            email: Some("quiet@example.com".into()),
            ..Customer::default()
        });
        shop.send_webhooks_as("demo.myshopify.com", &url, "app-secret");
        let id = shop.add_customer(Customer {
            email: Some("ada@example.com".into()),
            first_name: Some("Ada".into()),
            ..Customer::default()
        });
        shop.edit_customer(id, |c| c.first_name = Some("Augusta".into()));
        assert!(shop.delete_customer(before));
        let outbox = shop.webhook_outbox();
        outbox.wait_for(3).await;
        assert!(
            outbox
                .records()
                .iter()
                .all(|r| r.delivered && r.attempts == [Some(200)])
        );

        let seen = seen.lock().unwrap();
        let mut topics: Vec<_> = seen
            .iter()
            .map(|(h, _)| header(h, "x-shopify-topic"))
            .collect();
        topics.sort();
        assert_eq!(
            topics,
            ["customers/create", "customers/delete", "customers/update"]
        );
        let mut ids = std::collections::BTreeSet::new();
        for (headers, body) in seen.iter() {
            let expected = B64.encode(hmac_sha256(b"app-secret", body));
            assert_eq!(header(headers, "x-shopify-hmac-sha256"), expected);
            assert_eq!(
                header(headers, "x-shopify-shop-domain"),
                "demo.myshopify.com"
            );
            assert_eq!(header(headers, "x-shopify-api-version"), API_VERSION);
            assert_eq!(header(headers, "content-type"), "application/json");
            assert!(
                DateTime::parse_from_rfc3339(header(headers, "x-shopify-triggered-at")).is_ok()
            );
            ids.insert(header(headers, "x-shopify-webhook-id").to_string());
            let json: Value = serde_json::from_slice(body).unwrap();
            match header(headers, "x-shopify-topic") {
                "customers/update" => {
                    assert_eq!(json["id"], id);
                    assert_eq!(json["email"], "ada@example.com");
                    assert_eq!(json["first_name"], "Augusta");
                    assert_eq!(json["email_marketing_consent"]["state"], "not_subscribed");
                    assert!(
                        json["updated_at"].as_str().unwrap().ends_with("-05:00"),
                        "shop time zone"
                    );
                }
                "customers/delete" => {
                    assert_eq!(json["id"], before);
                    assert!(json.get("email").is_none());
                }
                _ => {}
            }
        }
        assert_eq!(ids.len(), 3, "a new webhook id per delivery");
    }

    #[tokio::test]
    async fn nothing_is_sent_when_off_or_after_a_reset() {
        let (url, seen) = receiver(StatusCode::OK).await;
        let shop = Shopify::default();
        shop.send_webhooks_to(&url, "s");
        shop.reset();
        let id = shop.add_customer(Customer::default());
        shop.edit_customer(id, |_| {});
        shop.send_webhooks_to(&url, "s");
        shop.stop_webhooks();
        shop.edit_customer(id, |_| {});
        // The edit that is sent after this proves the earlier ones were never queued.
        shop.send_webhooks_to(&url, "s");
        shop.edit_customer(id, |_| {});
        shop.webhook_outbox().wait_for(1).await;
        assert_eq!(seen.lock().unwrap().len(), 1);
        assert_eq!(shop.webhook_deliveries().len(), 1);
    }

    #[tokio::test]
    async fn a_failing_delivery_is_retried_with_the_same_id_and_a_refused_one_is_not() {
        let (failing, seen) = receiver(StatusCode::SERVICE_UNAVAILABLE).await;
        let (refusing, _) = receiver(StatusCode::UNAUTHORIZED).await;
        let shop = Shopify::default();
        shop.send_webhooks_to(&failing, "s");
        shop.add_customer(Customer::default());
        shop.webhook_outbox().wait_for(1).await;
        shop.send_webhooks_to(&refusing, "s");
        shop.add_customer(Customer::default());
        shop.webhook_outbox().wait_for(2).await;
        let records = shop.webhook_deliveries();
        assert_eq!(
            records[0].attempts,
            vec![Some(503); 1 + crate::webhooks::RETRIES as usize]
        );
        assert_eq!(records[1].attempts, vec![Some(401)]);
        assert!(records.iter().all(|r| !r.delivered));
        let seen = seen.lock().unwrap();
        let ids: std::collections::BTreeSet<_> = seen
            .iter()
            .map(|(h, _)| header(h, "x-shopify-webhook-id").to_string())
            .collect();
        assert_eq!(
            (seen.len(), ids.len()),
            (4, 1),
            "retries keep the delivery id"
        );
    }
}
