//! Webhook registration (`spec.webhooks.register`, see [`crate::crd::audience::WebhooksSpec`]):
//! the subscriptions at the vendors that send this sync's webhooks to the operator's public URL
//! (`--webhook-public-url`). An AudienceSync subscribes to the customer topics (Shopify) and the
//! list webhook (Mailchimp); an OrderSync to Shopify's order topics
//! ([`audience_core::webhook_subscriptions::Interest`]). The two share the receiver URL and never
//! remove each other's subscriptions.
//!
//! - **Create**: on the first reconcile of each generation that wants them (and after a
//!   restart), one list call per vendor and a create per missing subscription (core's
//!   [`audience_core::webhook_subscriptions::ensure`]), so a second reconcile never duplicates.
//!   Before creating anything the sync gets the finalizer [`WEBHOOKS_FINALIZER`], so a delete
//!   always comes back here first, and the annotation [`WEBHOOKS_URL_ANNOTATION`] records the
//!   public URL the subscriptions point at (the ledger of where the operator made them).
//! - **A new public URL** (the operator restarted with another `--webhook-public-url`): the
//!   subscriptions at the URLs the annotation records and the operator no longer uses are
//!   deleted before the new ones are made. Only those are: a subscription is the operator's when
//!   its URL is a recorded URL followed by the receiver's path (`/webhooks/shopify`,
//!   `/webhooks/mailchimp/…`) and its topic is one this kind subscribes to; anything else at the
//!   vendor (other apps, other URLs, the other kind's topics) stays. An old URL whose clean-up
//!   fails stays recorded and is tried again on the next full reconcile.
//! - **Remove**: when the sync is deleted (the finalizer) or `register` turns false, the
//!   subscriptions at every recorded URL (and the current one) for that account are deleted,
//!   unless another sync of the same kind still registers for that account, in any namespace
//!   the operator watches (the subscriptions are per account and URL, not per sync). Then the
//!   finalizer and the annotation go.
//! - **Failures**: registering is a hint (polling stays the truth): a failure is a Warning Event
//!   and is tried again on the next reconcile, and the run goes ahead. A removal that fails for
//!   a reason that may pass (the vendor is down) keeps the finalizer and retries; one that cannot
//!   succeed (the Secret or spec is gone or unusable) lets the object go with a Warning, since a
//!   finalizer nobody can satisfy would block the delete forever.

use audience_core::webhook_subscriptions::{self, WebhookRegistry};
use audience_webhooks::Vendor;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use serde_json::json;
use url::Url;

use super::object_key;
use super::reconcile::{Reconciler, annotation};
use crate::crd::TargetRef;
use crate::sync::{SyncError, SyncObject, prepare};
use crate::webhooks::{WEBHOOK_SECRET_KEY, concerned};

/// Held by a sync whose webhooks are registered at a vendor, until they are removed.
pub const WEBHOOKS_FINALIZER: &str = "sync.audience-operator.io/webhooks";

/// The public URLs (space-separated) at which the operator made this sync's subscriptions and
/// has not removed them yet: normally one, the current `--webhook-public-url`; more while an
/// old one's clean-up is pending. Written by the operator; see the module docs.
pub const WEBHOOKS_URL_ANNOTATION: &str = "sync.audience-operator.io/webhooks-registered-at";

/// What the reconcile does after the registration step.
pub(super) enum Next {
    /// Go on with the reconcile.
    Continue,
    /// The object is being deleted: nothing more to do (`retry`: the removal failed and is
    /// tried again).
    Deleted { retry: bool },
}

/// What a sync's webhooks were registered for: its generation, the public URL, and the start of
/// its last full run. A new full reconcile registers again (listing first, so it only re-creates
/// what is missing): a subscription deleted by hand at the vendor is drift, and the full
/// reconcile is where drift is put right.
pub(super) type Stamp = (Option<i64>, String, Option<String>);

/// One vendor account of this sync that can register, and what identifies its subscriptions.
struct Side<'a> {
    vendor: Vendor,
    account: String,
    /// Mailchimp: the webhook secret the URL carries (`None`: the Secret has none, nothing is
    /// registered; removal still finds the old ones by their URL's prefix).
    secret: Option<String>,
    registry: &'a dyn WebhookRegistry,
}

/// `url` is `prefix`, or `prefix` followed by a path or query.
fn under(url: &str, prefix: &str) -> bool {
    url.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['/', '?']))
}

impl Side<'_> {
    /// The receiver URL this side registers under `base` (`None`: nothing to register).
    fn url(&self, base: &str) -> Option<String> {
        match self.vendor {
            Vendor::Mailchimp => {
                let secret = self.secret.as_deref()?;
                let encoded: String =
                    url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
                Some(format!("{base}/webhooks/mailchimp/{encoded}"))
            }
            vendor => Some(format!("{base}/webhooks/{}", vendor.name())),
        }
    }

    /// Whether a subscription URL is one this side made under `base` (a Mailchimp URL carries a
    /// secret that may have changed since it was registered: any secret matches).
    fn ours(&self, base: &str, url: &str) -> bool {
        match self.vendor {
            Vendor::Mailchimp => url
                .strip_prefix(&format!("{base}/webhooks/mailchimp/"))
                .is_some_and(|secret| !secret.is_empty()),
            vendor => under(url, &format!("{base}/webhooks/{}", vendor.name())),
        }
    }
}

fn has_finalizer<K: SyncObject>(obj: &K) -> bool {
    obj.finalizers().iter().any(|f| f == WEBHOOKS_FINALIZER)
}

/// The public URL as subscriptions are built from it (no trailing slash).
fn base_of(public: &Url) -> String {
    public.as_str().trim_end_matches('/').to_string()
}

/// The URLs [`WEBHOOKS_URL_ANNOTATION`] records, in order, without repeats.
pub fn recorded_urls<K: SyncObject>(obj: &K) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for url in annotation(obj, WEBHOOKS_URL_ANNOTATION)
        .unwrap_or_default()
        .split_whitespace()
    {
        let url = url.trim_end_matches('/').to_string();
        if !out.contains(&url) {
            out.push(url);
        }
    }
    out
}

impl<K: SyncObject> Reconciler<'_, K> {
    /// The registration step; see the module docs.
    pub(super) async fn registration(&self) -> Result<Next, SyncError> {
        let deleting = self.obj.meta().deletion_timestamp.is_some();
        let public = self.ctx.settings.webhook_public_url.as_ref();
        let wanted = !deleting && self.obj.registers_webhooks() && public.is_some();
        let key = object_key(self.obj);
        let recorded = recorded_urls(self.obj);
        if wanted {
            let base = base_of(public.expect("wanted implies a public URL"));
            let last_full = self
                .obj
                .sync_status()
                .and_then(|s| s.last_full_sync_time.as_ref())
                .map(|t| t.0.to_string());
            let stamp = (self.generation(), base.clone(), last_full);
            if self.ctx.registered(&key).as_ref() == Some(&stamp) {
                return Ok(Next::Continue);
            }
            // Subscriptions at URLs the operator no longer uses go first.
            let old: Vec<String> = recorded.iter().filter(|u| **u != base).cloned().collect();
            let mut pending = Vec::new();
            if !old.is_empty() {
                match self.remove(&old, false).await {
                    Ok(summary) => {
                        if !summary.is_empty() {
                            let note = format!(
                                "the public URL changed to {base}: at {}: {summary}",
                                old.join(", ")
                            );
                            self.event(EventType::Normal, "WebhooksRemoved", "Unregister", &note)
                                .await;
                        }
                    }
                    Err(e) => {
                        let note = format!(
                            "removing the subscriptions at the old public URL (will retry): {e}"
                        );
                        tracing::warn!(kind = K::KIND, name = %self.obj.name_any(), error = %e, "removing webhooks at an old URL");
                        self.event(
                            EventType::Warning,
                            "WebhooksNotRemoved",
                            "Unregister",
                            &note,
                        )
                        .await;
                        pending = old;
                    }
                }
            }
            let mut ledger = pending;
            ledger.push(base.clone());
            if !has_finalizer(self.obj) || ledger != recorded {
                self.set_meta(true, &ledger).await?;
            }
            match self.ensure(&base).await {
                Ok(summary) => {
                    self.ctx.set_registered(key, Some(stamp));
                    if !summary.is_empty() {
                        self.event(
                            EventType::Normal,
                            "WebhooksRegistered",
                            "Register",
                            &summary,
                        )
                        .await;
                    }
                }
                Err(e) => {
                    let note = format!("registering webhooks: {e}");
                    tracing::warn!(kind = K::KIND, name = %self.obj.name_any(), error = %e, "registering webhooks");
                    self.event(
                        EventType::Warning,
                        "WebhooksNotRegistered",
                        "Register",
                        &note,
                    )
                    .await;
                }
            }
            return Ok(Next::Continue);
        }
        self.ctx.set_registered(key, None);
        if !has_finalizer(self.obj) {
            return Ok(if deleting {
                Next::Deleted { retry: false }
            } else {
                Next::Continue
            });
        }
        let mut bases = recorded;
        if let Some(base) = public.map(base_of)
            && !bases.contains(&base)
        {
            bases.push(base);
        }
        let removed = if bases.is_empty() {
            // Without a public URL or a recorded one the operator cannot tell its
            // subscriptions apart.
            Err(SyncError::InvalidSpec(
                "no --webhook-public-url and none recorded: the operator's subscriptions cannot be told apart".into(),
            ))
        } else {
            self.remove(&bases, true).await
        };
        let retry = match removed {
            Ok(summary) => {
                if !summary.is_empty() {
                    self.event(EventType::Normal, "WebhooksRemoved", "Unregister", &summary)
                        .await;
                }
                false
            }
            Err(e) => {
                let transient = matches!(&e, SyncError::Run(_) | SyncError::Kube(_));
                let note = if transient {
                    format!("removing webhooks (will retry): {e}")
                } else {
                    format!("removing webhooks is not possible, leaving them at the vendor: {e}")
                };
                tracing::warn!(kind = K::KIND, name = %self.obj.name_any(), error = %e, transient, "removing webhooks");
                self.event(
                    EventType::Warning,
                    "WebhooksNotRemoved",
                    "Unregister",
                    &note,
                )
                .await;
                transient
            }
        };
        if !retry {
            self.set_meta(false, &[]).await?;
        }
        Ok(if deleting {
            Next::Deleted { retry }
        } else {
            Next::Continue
        })
    }

    /// Adds or drops [`WEBHOOKS_FINALIZER`] and sets [`WEBHOOKS_URL_ANNOTATION`] to `ledger`
    /// (empty: removed), in one merge patch carrying the resourceVersion read, so a concurrent
    /// change of the finalizers fails with a conflict instead of being overwritten.
    async fn set_meta(&self, finalizer: bool, ledger: &[String]) -> Result<(), SyncError> {
        let current: Vec<String> = self.obj.finalizers().to_vec();
        let mut next: Vec<String> = current
            .iter()
            .filter(|f| *f != WEBHOOKS_FINALIZER)
            .cloned()
            .collect();
        if finalizer {
            next.push(WEBHOOKS_FINALIZER.to_string());
        }
        let urls = (!ledger.is_empty()).then(|| ledger.join(" "));
        let patch = json!({"metadata": {
            "finalizers": next,
            "annotations": {WEBHOOKS_URL_ANNOTATION: urls},
            "resourceVersion": self.obj.meta().resource_version,
        }});
        self.api
            .patch(
                &self.obj.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
        Ok(())
    }

    /// The webhook secret of the target's Secret (the Mailchimp URL carries it).
    async fn target_webhook_secret(&self) -> Result<Option<String>, SyncError> {
        let Some(TargetRef::Mailchimp(m)) = self.obj.target() else {
            return Ok(None);
        };
        let secrets: Api<Secret> = Api::namespaced(
            self.ctx.client.clone(),
            &self.obj.namespace().unwrap_or_default(),
        );
        let secret = secrets.get_opt(&m.credentials.name).await?;
        Ok(secret
            .and_then(|s| s.data?.get(WEBHOOK_SECRET_KEY).cloned())
            .and_then(|b| String::from_utf8(b.0).ok())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty()))
    }

    /// Builds the connectors and runs `f` on the sides that can register.
    async fn with_sides<T>(
        &self,
        f: impl AsyncFnOnce(Vec<Side<'_>>) -> Result<T, SyncError>,
    ) -> Result<T, SyncError> {
        let secrets = self.secrets();
        let prepared = prepare(
            self.obj,
            &secrets,
            self.ctx.connectors.as_ref(),
            self.ctx.settings.sandbox.as_ref(),
        )
        .await?;
        let mut sides = Vec::new();
        let shops: Vec<String> = self
            .obj
            .source_specs()
            .iter()
            .filter_map(|(_, s)| s.shopify.as_ref())
            .map(|s| s.shop_domain.trim().to_ascii_lowercase())
            .collect();
        let sources = prepared
            .sources
            .iter()
            .map(|(_, s)| (s.webhook_registry(), s.vendor()));
        let orders = prepared
            .orders
            .iter()
            .map(|(s, _)| (s.webhook_registry(), s.vendor()));
        for pair in sources.chain(orders) {
            if let (Some(registry), "shopify", Some(shop)) = (pair.0, pair.1, shops.first()) {
                sides.push(Side {
                    vendor: Vendor::Shopify,
                    account: shop.clone(),
                    secret: None,
                    registry,
                });
            }
        }
        if let (Some(target), Some(TargetRef::Mailchimp(m))) =
            (prepared.target.as_ref(), self.obj.target())
            && let Some(registry) = target.webhook_registry()
        {
            sides.push(Side {
                vendor: Vendor::Mailchimp,
                account: m.audience_id.trim().to_string(),
                // Without a webhook secret the receiver refuses Mailchimp's deliveries.
                secret: self.target_webhook_secret().await?,
                registry,
            });
        }
        f(sides).await
    }

    /// Creates the missing subscriptions at `base`; returns what was done, for the Event ("" for
    /// nothing).
    async fn ensure(&self, base: &str) -> Result<String, SyncError> {
        self.with_sides(async |sides| {
            let mut done = Vec::new();
            for side in sides {
                let Some(url) = side.url(base) else {
                    done.push(format!(
                        "{}: not registered, its Secret has no {WEBHOOK_SECRET_KEY}",
                        side.vendor.name()
                    ));
                    continue;
                };
                let report =
                    webhook_subscriptions::ensure(side.registry, K::WEBHOOK_INTEREST, &url)
                        .await
                        .map_err(|e| run_error(side.vendor, e))?;
                if report.created > 0 {
                    done.push(format!(
                        "{}: {} subscription(s) created, {} already there",
                        side.vendor.name(),
                        report.created,
                        report.kept
                    ));
                }
            }
            Ok(done.join("; "))
        })
        .await
    }

    /// The other syncs of this kind that still register webhooks, in every namespace the
    /// operator watches.
    async fn others(&self) -> Result<Vec<K>, SyncError> {
        let namespaces = self.ctx.watched_namespaces();
        let apis: Vec<Api<K>> = if namespaces.is_empty() {
            vec![Api::all(self.ctx.client.clone())]
        } else {
            namespaces
                .iter()
                .map(|ns| Api::namespaced(self.ctx.client.clone(), ns))
                .collect()
        };
        let me = (self.obj.namespace(), self.obj.name_any());
        let mut out = Vec::new();
        for api in apis {
            out.extend(
                api.list(&ListParams::default())
                    .await?
                    .items
                    .into_iter()
                    .filter(|o| (o.namespace(), o.name_any()) != me)
                    .filter(|o| o.meta().deletion_timestamp.is_none() && o.registers_webhooks()),
            );
        }
        Ok(out)
    }

    /// Deletes the operator's subscriptions at each of `bases`, of this kind's topics. With
    /// `shared`, a side another sync still needs is left alone (see the module docs).
    async fn remove(&self, bases: &[String], shared: bool) -> Result<String, SyncError> {
        let others = if shared {
            self.others().await?
        } else {
            Vec::new()
        };
        self.with_sides(async |sides| {
            let mut done = Vec::new();
            for side in sides {
                if others
                    .iter()
                    .any(|o| concerned(o, side.vendor, &side.account).is_some())
                {
                    continue;
                }
                let ours = |url: &str| bases.iter().any(|b| side.ours(b, url));
                let report =
                    webhook_subscriptions::remove(side.registry, K::WEBHOOK_INTEREST, &ours)
                        .await
                        .map_err(|e| run_error(side.vendor, e))?;
                if report.deleted > 0 {
                    done.push(format!(
                        "{}: {} subscription(s) deleted",
                        side.vendor.name(),
                        report.deleted
                    ));
                }
            }
            Ok(done.join("; "))
        })
        .await
    }
}

fn run_error(vendor: Vendor, e: audience_core::ConnectorError) -> SyncError {
    SyncError::Run(match vendor {
        Vendor::Mailchimp => crate::engine::RunError::Target(e),
        _ => crate::engine::RunError::Source(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoRegistry;

    #[async_trait::async_trait]
    impl WebhookRegistry for NoRegistry {
        fn topics(&self, _: webhook_subscriptions::Interest) -> Vec<String> {
            Vec::new()
        }
        async fn webhook_subscriptions(
            &self,
        ) -> Result<Vec<webhook_subscriptions::WebhookSubscription>, audience_core::ConnectorError>
        {
            Ok(Vec::new())
        }
        async fn create_webhook_subscription(
            &self,
            _: &str,
            _: &str,
        ) -> Result<webhook_subscriptions::WebhookSubscription, audience_core::ConnectorError>
        {
            unreachable!()
        }
        async fn delete_webhook_subscription(
            &self,
            _: &str,
        ) -> Result<(), audience_core::ConnectorError> {
            unreachable!()
        }
    }

    #[test]
    fn subscriptions_are_ours_by_the_recorded_url_and_the_receiver_path_only() {
        let shopify = Side {
            vendor: Vendor::Shopify,
            account: "a.myshopify.com".into(),
            secret: None,
            registry: &NoRegistry,
        };
        let old = "https://old.example.com";
        assert!(shopify.ours(old, "https://old.example.com/webhooks/shopify"));
        assert!(shopify.ours(old, "https://old.example.com/webhooks/shopify?x=1"));
        for theirs in [
            "https://old.example.com/webhooks/shopifyish",
            "https://old.example.com/hooks",
            "https://old.example.com.evil/webhooks/shopify",
            "https://other-app.example.com/webhooks/shopify",
            "https://old.example.com/webhooks/mailchimp/s",
        ] {
            assert!(!shopify.ours(old, theirs), "{theirs}");
        }
        let mailchimp = Side {
            vendor: Vendor::Mailchimp,
            account: "list".into(),
            secret: Some("a b".into()),
            registry: &NoRegistry,
        };
        assert_eq!(
            mailchimp.url(old).as_deref(),
            Some("https://old.example.com/webhooks/mailchimp/a+b")
        );
        assert!(mailchimp.ours(old, "https://old.example.com/webhooks/mailchimp/rotated"));
        assert!(!mailchimp.ours(old, "https://old.example.com/webhooks/mailchimp/"));
        assert!(!mailchimp.ours(old, "https://old.example.com/webhooks/shopify"));
    }
}
