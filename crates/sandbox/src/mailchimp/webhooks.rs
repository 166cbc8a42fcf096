//! The Mailchimp simulator's list webhooks: member changes posted as Mailchimp posts them.
//!
//! Turned on per audience with [`Mailchimp::send_webhooks_to`] (the URL as registered, secret
//! included: Mailchimp signs nothing [D]); off after a reset. A status change made outside the
//! API ([`Mailchimp::set_member_status`]: the person's unsubscribe link, a bounce) sends an
//! `application/x-www-form-urlencoded` POST with `type`, `fired_at` (`Y-m-d H:i:s`, UTC) and
//! `data[...]` fields [D]:
//! - to `unsubscribed`: `type=unsubscribe`, `data[action]=unsub`, `data[reason]=manual`;
//! - to `cleaned`: `type=cleaned`, `data[reason]=hard`;
//! - to `subscribed`: `type=subscribe`;
//!
//! each with `data[id]`, `data[list_id]`, `data[email]`, `data[email_type]`, `data[merges][EMAIL]`
//! and the member's text merge fields. [U] Only changes made outside the API are sent (the
//! `sources` a syncing app registers are `user` and `admin`, not `api`, or its own writes would
//! come back to it); other statuses (pending, transactional, archived) send nothing; `data[id]`
//! is the first 10 characters of the subscriber hash.

use std::collections::BTreeMap;

use super::{Mailchimp, MemberSnapshot, MemberStatus};
use crate::webhooks::{Delivery, Outbox};

/// Each audience's webhook destination, and the webhooks registered through the API
/// (`POST /lists/{list_id}/webhooks`, see [`super::webhook_routes`]).
#[derive(Default)]
pub(super) struct Webhooks {
    lists: BTreeMap<String, Outbox>,
    registered: BTreeMap<String, Vec<Registered>>,
}

/// One webhook registered through the API.
#[derive(Clone)]
pub struct Registered {
    pub id: String,
    pub url: String,
    /// `events` and `sources` as `(name, on)`, in the spec's order.
    pub events: Vec<(String, bool)>,
    pub sources: Vec<(String, bool)>,
    pub outbox: Outbox,
}

impl Registered {
    fn wants(&self, event: &str) -> bool {
        let on = |pairs: &[(String, bool)], name: &str| pairs.iter().any(|(k, v)| k == name && *v);
        // Changes made outside the API are the person's (`user`) or the account's (`admin`).
        on(&self.events, event) && (on(&self.sources, "user") || on(&self.sources, "admin"))
    }
}

impl Mailchimp {
    fn webhooks(&self) -> std::sync::MutexGuard<'_, Webhooks> {
        self.webhooks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Posts later member changes of audience `list_id` to `url` (which should carry the
    /// receiver's secret). Call from async code (see [`Outbox::send_to`]).
    pub fn send_webhooks_to(&self, list_id: &str, url: &str) {
        let outbox = Outbox::default();
        outbox.send_to(url);
        self.webhooks().lists.insert(list_id.to_string(), outbox);
    }

    pub fn stop_webhooks(&self) {
        self.webhooks().lists.clear();
    }

    /// Forgets every webhook registered through the API (a reset).
    pub(super) fn forget_registered_webhooks(&self) {
        for hooks in std::mem::take(&mut self.webhooks().registered).into_values() {
            hooks.iter().for_each(|h| h.outbox.stop());
        }
    }

    /// The webhooks registered on `list_id`, in creation order.
    pub fn registered(&self, list_id: &str) -> Vec<Registered> {
        self.webhooks()
            .registered
            .get(list_id)
            .cloned()
            .unwrap_or_default()
    }

    /// Registers a webhook (the URL already validated). Call from async code.
    pub(super) fn register(
        &self,
        list_id: &str,
        url: String,
        events: Vec<(String, bool)>,
        sources: Vec<(String, bool)>,
    ) -> Registered {
        let outbox = Outbox::default();
        outbox.send_to(&url);
        let hook = Registered {
            id: format!("{:010x}", rand::random::<u64>() & 0xff_ffff_ffff),
            url,
            events,
            sources,
            outbox,
        };
        self.webhooks()
            .registered
            .entry(list_id.to_string())
            .or_default()
            .push(hook.clone());
        hook
    }

    /// Removes a registered webhook; false when there was none with that id.
    pub(super) fn unregister(&self, list_id: &str, id: &str) -> bool {
        let mut webhooks = self.webhooks();
        let Some(hooks) = webhooks.registered.get_mut(list_id) else {
            return false;
        };
        let Some(at) = hooks.iter().position(|h| h.id == id) else {
            return false;
        };
        hooks.remove(at).outbox.stop();
        true
    }

    /// The outbox of `list_id`'s webhook, to read what became of deliveries or wait for them.
    pub fn webhook_outbox(&self, list_id: &str) -> Option<Outbox> {
        self.webhooks().lists.get(list_id).cloned()
    }

    /// Sends the webhook for a status change of `email` made outside the API, if it changed.
    pub(super) fn notify_status_change(
        &self,
        list_id: &str,
        email: &str,
        before: Option<MemberSnapshot>,
    ) {
        let configured = self.webhook_outbox(list_id);
        let registered = self.registered(list_id);
        if configured.is_none() && registered.is_empty() {
            return;
        }
        let Some(after) = self.member(list_id, email) else {
            return;
        };
        if before.as_ref().is_some_and(|b| b.status == after.status) {
            return;
        }
        let mut fields: Vec<(String, String)> = match after.status {
            MemberStatus::Unsubscribed => vec![
                ("type".into(), "unsubscribe".into()),
                ("data[action]".into(), "unsub".into()),
                ("data[reason]".into(), "manual".into()),
            ],
            MemberStatus::Cleaned => vec![
                ("type".into(), "cleaned".into()),
                ("data[reason]".into(), "hard".into()),
            ],
            MemberStatus::Subscribed => vec![("type".into(), "subscribe".into())],
            _ => return,
        };
        let topic = fields[0].1.clone();
        fields.insert(
            1,
            (
                "fired_at".into(),
                after.last_changed.format("%Y-%m-%d %H:%M:%S").to_string(),
            ),
        );
        fields.extend([
            ("data[id]".into(), after.id.chars().take(10).collect()),
            ("data[list_id]".into(), list_id.to_string()),
            ("data[email]".into(), after.email_address.clone()),
            ("data[email_type]".into(), after.email_type.clone()),
            ("data[merges][EMAIL]".into(), after.email_address.clone()),
        ]);
        for (tag, value) in &after.merge_fields {
            if let Some(text) = value.as_str() {
                fields.push((format!("data[merges][{tag}]"), text.to_string()));
            }
        }
        let mut body = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &fields {
            body.append_pair(k, v);
        }
        let delivery = Delivery {
            headers: vec![
                (
                    "Content-Type".into(),
                    "application/x-www-form-urlencoded".into(),
                ),
                ("User-Agent".into(), "MailChimp".into()),
            ],
            body: body.finish().into_bytes(),
            topic,
        };
        for hook in registered.iter().filter(|h| h.wants(&delivery.topic)) {
            hook.outbox.post(delivery.clone());
        }
        if let Some(outbox) = configured {
            outbox.post(delivery);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::Router;
    use axum::body::Bytes;
    use axum::extract::State as AxState;
    use axum::http::HeaderMap;
    use axum::routing::post;
    use serde_json::json;

    use super::*;

    type Seen = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

    async fn receiver() -> (String, Seen) {
        let seen: Seen = Arc::default();
        let app = Router::new()
            .route(
                "/hook/{secret}",
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
        (format!("http://{addr}/hook/s3cret"), seen)
    }

    #[tokio::test]
    async fn an_unsubscribe_outside_the_api_is_posted_as_a_form() {
        let (url, seen) = receiver().await;
        let mc = Mailchimp::default();
        let list = mc.create_list("a1b2c3d4e5", "Hooks");
        mc.insert_member_with(
            &list,
            "ada@example.com",
            MemberStatus::Subscribed,
            json!({"FNAME": "Ada"}),
            &[],
        );
        mc.send_webhooks_to(&list, &url);
        assert!(mc.set_member_status(&list, "ada@example.com", MemberStatus::Unsubscribed));
        // Setting the same status again is no change and sends nothing.
        assert!(mc.set_member_status(&list, "ada@example.com", MemberStatus::Unsubscribed));
        assert!(mc.set_member_status(&list, "ada@example.com", MemberStatus::Cleaned));
        let outbox = mc.webhook_outbox(&list).unwrap();
        outbox.wait_for(2).await;
        assert!(outbox.records().iter().all(|r| r.delivered));

        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        let forms: Vec<BTreeMap<String, String>> = seen
            .iter()
            .map(|(h, b)| {
                assert_eq!(h["content-type"], "application/x-www-form-urlencoded");
                url::form_urlencoded::parse(b).into_owned().collect()
            })
            .collect();
        let unsub = forms
            .iter()
            .find(|f| f["type"] == "unsubscribe")
            .expect("unsubscribe");
        assert_eq!(unsub["data[list_id]"], list);
        assert_eq!(unsub["data[email]"], "ada@example.com");
        assert_eq!(unsub["data[merges][FNAME]"], "Ada");
        assert_eq!(unsub["data[reason]"], "manual");
        assert!(
            chrono::NaiveDateTime::parse_from_str(&unsub["fired_at"], "%Y-%m-%d %H:%M:%S").is_ok()
        );
        assert!(
            forms
                .iter()
                .any(|f| f["type"] == "cleaned" && f["data[email]"] == "ada@example.com")
        );
    }
}
