//! The Lightspeed X-Series simulator's webhooks: customer changes posted as X-Series posts them.
//!
//! Turned on with [`LightspeedX::send_webhooks_to`]; off after a reset. Every stored change of a
//! customer (add, edit, delete) sends a `POST`, UTF-8 `application/x-www-form-urlencoded`, whose
//! `payload` field is the customer as JSON, with `type=customer.update`, `domain_prefix`,
//! `environment` and `retailer_id` beside it ([D] x-series-api.lightspeedhq.com "Webhooks": the
//! `payload` field; the other fields "may be present but are not guaranteed").
//!
//! [U]: the docs say the payload has the API 1.0 shape; this simulator serves only 2.0, so its
//! 2.0 customer stands in. The signature header is `X-Signature: signature=<hex>,algorithm=HMAC-SHA256`,
//! the hex HMAC-SHA256 of the exact body bytes keyed with the app's client secret. Creations and
//! deletions are `customer.update` too (X-Series has no other customer webhook type).

use super::{Customer, LightspeedX, State};
use crate::webhooks::{Delivery, DeliveryRecord, Outbox, hmac_sha256};

/// Where and how this retailer's webhooks go; lives in the state, so a reset turns them off.
#[derive(Default)]
pub(super) struct Webhooks {
    outbox: Outbox,
    signing: Option<Signing>,
}

struct Signing {
    domain_prefix: String,
    secret: Vec<u8>,
}

impl LightspeedX {
    /// Posts every later customer change to `url` as store `domain_prefix`, signed with
    /// `client_secret`. Call from async code (see [`Outbox::send_to`]).
    pub fn send_webhooks_to(&self, domain_prefix: &str, url: &str, client_secret: &str) {
        let mut state = self.lock();
        state.webhooks.outbox.send_to(url);
        state.webhooks.signing = Some(Signing {
            domain_prefix: domain_prefix.to_string(),
            secret: client_secret.as_bytes().to_vec(),
        });
    }

    pub fn stop_webhooks(&self) {
        let mut state = self.lock();
        state.webhooks.outbox.stop();
        state.webhooks.signing = None;
    }

    pub fn webhook_outbox(&self) -> Outbox {
        self.lock().webhooks.outbox.clone()
    }

    pub fn webhook_deliveries(&self) -> Vec<DeliveryRecord> {
        self.lock().webhooks.outbox.records()
    }
}

impl State {
    /// Sends `customer.update` for the customer `id` as now stored (nothing when webhooks are off).
    pub(super) fn notify_customer(&self, id: &str) {
        let (Some(signing), Some(customer)) = (&self.webhooks.signing, self.customers.get(id))
        else {
            return;
        };
        self.webhooks.send(signing, customer);
    }
}

impl Webhooks {
    fn send(&self, signing: &Signing, customer: &Customer) {
        let payload = serde_json::to_string(customer).expect("customers serialise");
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("domain_prefix", &signing.domain_prefix)
            .append_pair("environment", "prod")
            .append_pair("payload", &payload)
            .append_pair("retailer_id", "0adfd74a-153e-11e9-fa42-000000000001")
            .append_pair("type", "customer.update")
            .finish()
            .into_bytes();
        let signature = format!(
            "signature={},algorithm=HMAC-SHA256",
            hex(&hmac_sha256(&signing.secret, &body))
        );
        self.outbox.post(Delivery {
            topic: "customer.update".into(),
            headers: vec![
                (
                    "Content-Type".into(),
                    "application/x-www-form-urlencoded; charset=UTF-8".into(),
                ),
                ("X-Signature".into(), signature),
            ],
            body,
        });
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use axum::Router;
    use axum::body::Bytes;
    use axum::extract::State as AxState;
    use axum::http::HeaderMap;
    use axum::routing::post;

    use super::*;

    type Seen = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

    #[tokio::test]
    async fn customer_changes_are_posted_signed_with_the_payload_field() {
        let seen: Seen = Arc::default();
        let app = Router::new()
            .route(
                "/hook",
                post(
                    |AxState(seen): AxState<Seen>, headers: HeaderMap, body: Bytes| async move {
                        seen.lock().unwrap().push((headers, body));
                    },
                ),
            )
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });

        let store = LightspeedX::default();
        store.send_webhooks_to("mystore", &format!("http://{addr}/hook"), "client-secret");
        let id = store.add_customer(Customer {
            email: Some("ada@example.com".into()),
            ..Customer::default()
        });
        store.edit_customer(&id, |c| c.first_name = Some("Ada".into()));
        store.delete_customer(&id);
        store.webhook_outbox().wait_for(3).await;
        assert!(store.webhook_deliveries().iter().all(|r| r.delivered));

        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 3);
        let mut deleted = 0;
        for (headers, body) in seen.iter() {
            let expected = format!(
                "signature={},algorithm=HMAC-SHA256",
                hex(&hmac_sha256(b"client-secret", body))
            );
            assert_eq!(headers["x-signature"].to_str().unwrap(), expected);
            let form: BTreeMap<String, String> =
                url::form_urlencoded::parse(body).into_owned().collect();
            assert_eq!(form["type"], "customer.update");
            assert_eq!(form["domain_prefix"], "mystore");
            let payload: serde_json::Value = serde_json::from_str(&form["payload"]).unwrap();
            assert_eq!(payload["id"], id.as_str());
            assert_eq!(payload["email"], "ada@example.com");
            deleted += usize::from(!payload["deleted_at"].is_null());
        }
        assert_eq!(deleted, 1);
    }
}
