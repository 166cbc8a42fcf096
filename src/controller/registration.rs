//! Webhook registration (`spec.webhooks.register`, see [`crate::crd::audience::WebhooksSpec`]):
//! the subscriptions at the vendors that send this sync's webhooks to the operator's public URL
//! (`--webhook-public-url`).
//!
//! - **Create**: on the first reconcile of each generation that wants them (and after a
//!   restart), one list call per vendor and a create per missing subscription (core's
//!   [`audience_core::webhook_subscriptions::ensure`]), so a second reconcile never duplicates.
//!   Before creating anything the sync gets the finalizer [`WEBHOOKS_FINALIZER`], so a delete
//!   always comes back here first.
//! - **Remove**: when the sync is deleted (the finalizer) or `register` turns false, every
//!   subscription pointing at the operator's URLs for that account is deleted, unless another
//!   sync of the same namespace still registers for that account (the subscriptions are per
//!   account and URL, not per sync). Then the finalizer goes.
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
use super::reconcile::Reconciler;
use crate::crd::TargetRef;
use crate::sync::{SyncError, SyncObject, prepare};
use crate::webhooks::{WEBHOOK_SECRET_KEY, concerned};

/// Held by a sync whose webhooks are registered at a vendor, until they are removed.
pub const WEBHOOKS_FINALIZER: &str = "sync.audience-operator.io/webhooks";

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

/// The receiver URL of one vendor for this sync, and the account it concerns.
struct Side<'a> {
    vendor: Vendor,
    account: String,
    url: String,
    /// Subscriptions whose URL starts with this are the operator's for this account (a
    /// Mailchimp URL carries a secret that may have changed since it was registered).
    prefix: String,
    registry: &'a dyn WebhookRegistry,
}

fn has_finalizer<K: SyncObject>(obj: &K) -> bool {
    obj.finalizers().iter().any(|f| f == WEBHOOKS_FINALIZER)
}

impl<K: SyncObject> Reconciler<'_, K> {
    /// The registration step; see the module docs.
    pub(super) async fn registration(&self) -> Result<Next, SyncError> {
        let deleting = self.obj.meta().deletion_timestamp.is_some();
        let public = self.ctx.settings.webhook_public_url.as_ref();
        let wanted = !deleting && self.obj.registers_webhooks() && public.is_some();
        let key = object_key(self.obj);
        if wanted {
            let public = public.expect("wanted implies a public URL");
            let last_full = self
                .obj
                .sync_status()
                .and_then(|s| s.last_full_sync_time.as_ref())
                .map(|t| t.0.to_string());
            let stamp = (self.generation(), public.to_string(), last_full);
            if self.ctx.registered(&key).as_ref() == Some(&stamp) {
                return Ok(Next::Continue);
            }
            if !has_finalizer(self.obj) {
                self.set_finalizer(true).await?;
            }
            match self.ensure(public).await {
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
        let removed = match public {
            Some(public) => self.remove(public).await,
            // Without a public URL the operator cannot tell its subscriptions apart.
            None => Err(SyncError::InvalidSpec(
                "no --webhook-public-url: the operator's subscriptions cannot be told apart".into(),
            )),
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
            self.set_finalizer(false).await?;
        }
        Ok(if deleting {
            Next::Deleted { retry }
        } else {
            Next::Continue
        })
    }

    /// Adds or drops [`WEBHOOKS_FINALIZER`] (a merge patch carrying the resourceVersion read, so
    /// a concurrent change of the finalizers fails with a conflict instead of being overwritten).
    async fn set_finalizer(&self, on: bool) -> Result<(), SyncError> {
        let current: Vec<String> = self.obj.finalizers().to_vec();
        let mut next: Vec<String> = current
            .iter()
            .filter(|f| *f != WEBHOOKS_FINALIZER)
            .cloned()
            .collect();
        if on {
            next.push(WEBHOOKS_FINALIZER.to_string());
        }
        let patch = json!({"metadata": {
            "finalizers": next,
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
        public: &Url,
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
        let base = public.as_str().trim_end_matches('/');
        let mut sides = Vec::new();
        let shops: Vec<String> = self
            .obj
            .source_specs()
            .iter()
            .filter_map(|(_, s)| s.shopify.as_ref())
            .map(|s| s.shop_domain.trim().to_ascii_lowercase())
            .collect();
        for (_, source) in &prepared.sources {
            if let (Some(registry), "shopify", Some(shop)) =
                (source.webhook_registry(), source.vendor(), shops.first())
            {
                let url = format!("{base}/webhooks/shopify");
                sides.push(Side {
                    vendor: Vendor::Shopify,
                    account: shop.clone(),
                    prefix: url.clone(),
                    url,
                    registry,
                });
            }
        }
        if let (Some(target), Some(TargetRef::Mailchimp(m))) =
            (prepared.target.as_ref(), self.obj.target())
            && let Some(registry) = target.webhook_registry()
        {
            let prefix = format!("{base}/webhooks/mailchimp/");
            // Without a webhook secret the receiver refuses Mailchimp's deliveries: nothing to
            // register (removal still finds the old ones by prefix).
            let secret = self.target_webhook_secret().await?.unwrap_or_default();
            let encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
            sides.push(Side {
                vendor: Vendor::Mailchimp,
                account: m.audience_id.trim().to_string(),
                url: if secret.is_empty() {
                    String::new()
                } else {
                    format!("{prefix}{encoded}")
                },
                prefix,
                registry,
            });
        }
        f(sides).await
    }

    /// Creates the missing subscriptions; returns what was done, for the Event ("" for nothing).
    async fn ensure(&self, public: &Url) -> Result<String, SyncError> {
        self.with_sides(public, async |sides| {
            let mut done = Vec::new();
            for side in sides {
                if side.url.is_empty() {
                    done.push(format!(
                        "{}: not registered, its Secret has no {WEBHOOK_SECRET_KEY}",
                        side.vendor.name()
                    ));
                    continue;
                }
                let report = webhook_subscriptions::ensure(side.registry, &side.url)
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

    /// Deletes the operator's subscriptions of every side no other sync still needs.
    async fn remove(&self, public: &Url) -> Result<String, SyncError> {
        let others: Vec<K> = self
            .api
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|o| o.name_any() != self.obj.name_any())
            .filter(|o| o.meta().deletion_timestamp.is_none() && o.registers_webhooks())
            .collect();
        self.with_sides(public, async |sides| {
            let mut done = Vec::new();
            for side in sides {
                if others
                    .iter()
                    .any(|o| concerned(o, side.vendor, &side.account).is_some())
                {
                    continue;
                }
                let prefix = side.prefix.clone();
                let report = webhook_subscriptions::remove(side.registry, &|url: &str| {
                    url.starts_with(&prefix)
                })
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
