//! OrderSync as a sync kind: its checks, its run (`crate::engine::orders`) and what the run
//! reports into the status (events for Klaviyo; orders created, refunded, fulfilled for a
//! Mailchimp store).

use std::sync::LazyLock;

use async_trait::async_trait;
use audience_core::webhook_subscriptions::Interest;
use audience_core::{OrderEventKind, OrderScope, OrderSkipReason as SkipReason};

use super::object::{Executed, JobParts, Notice, OrderParts, SyncObject};
use crate::crd::status::{OrderEventCounts, OrdersSkipped, SAMPLE_LIMIT};
use crate::crd::{
    EventTargetRef, FieldMappingSpec, OrderSync, RejectedRecord, RunCounts, Schedule, SourceSpec,
    SyncStatus, TargetRef,
};
use crate::engine::{OrderJob, OrdersOutcome, PromoSync, RunError, run_order_sync};
use crate::schedule::Cadence;

/// The condition saying the source's and the target's time zones differ (seed 003's
/// troubleshooting: daily order counts then differ between the two).
pub const TIME_ZONES_DIFFER: &str = "TimeZonesDiffer";

/// The condition saying how the last sync of the shop's discount codes into the store's promo
/// codes went (`target.mailchimp.promoCodes`).
pub const PROMO_CODES_SYNCED: &str = "PromoCodesSynced";

/// An OrderSync writes no profile fields: its (empty) field mapping.
static NO_MAPPING: LazyLock<FieldMappingSpec> = LazyLock::new(FieldMappingSpec::default);

impl OrderSync {
    /// When the sync started: events before it are history. The creation time (`sync -f`: the
    /// first run's, kept in its state file), else now.
    pub fn live_from(&self) -> chrono::DateTime<chrono::Utc> {
        self.metadata
            .creation_timestamp
            .as_ref()
            .and_then(|t| chrono::DateTime::from_timestamp(t.0.as_second(), 0))
            .unwrap_or_else(chrono::Utc::now)
    }

    /// Whether a run at `now` syncs the shop's discount codes: a Mailchimp store with a domain
    /// and `promoCodes` enabled, and `promoCodes.every` passed since `status.promoCodesSyncedAt`
    /// (never synced: due).
    pub fn promo_codes_due(&self, now: chrono::DateTime<chrono::Utc>) -> bool {
        let Some(target) = &self.spec.target.mailchimp else {
            return false;
        };
        let promo = &target.promo_codes;
        if !promo.enabled || target.domain.as_deref().is_none_or(|d| d.trim().is_empty()) {
            return false;
        }
        let Ok(every) = promo.interval() else {
            return false;
        };
        let last = self
            .status
            .as_ref()
            .and_then(|s| s.promo_codes_synced_at.as_ref())
            .and_then(|t| chrono::DateTime::from_timestamp(t.0.as_second(), 0));
        match last {
            None => true,
            Some(last) => chrono::Duration::from_std(every)
                .map(|every| now >= last + every)
                .unwrap_or(false),
        }
    }

    /// Where this run reads from: the saved cursor, else the backfill's first day, else the
    /// sync's start.
    pub fn order_scope(&self) -> Result<OrderScope, String> {
        if let Some(cp) = self.status.as_ref().and_then(|s| s.checkpoint.clone()) {
            return Ok(OrderScope::ChangedSince(cp));
        }
        Ok(OrderScope::Since(match &self.spec.backfill {
            Some(b) => b.since_time()?,
            None => self.live_from(),
        }))
    }
}

fn kind_count(c: &mut OrderEventCounts, kind: OrderEventKind) -> &mut u64 {
    match kind {
        OrderEventKind::PlacedOrder => &mut c.placed_order,
        OrderEventKind::OrderedProduct => &mut c.ordered_product,
        OrderEventKind::RefundedOrder => &mut c.refunded_order,
        OrderEventKind::FulfilledOrder => &mut c.fulfilled_order,
    }
}

fn skip_count(c: &mut OrdersSkipped, reason: SkipReason) -> &mut u64 {
    match reason {
        SkipReason::NoEmail => &mut c.no_email,
        SkipReason::InvalidEmail => &mut c.invalid_email,
        SkipReason::ZeroValue => &mut c.zero_value,
        SkipReason::NotCompleted => &mut c.not_completed,
        SkipReason::Cancelled => &mut c.cancelled,
    }
}

/// The promo-code condition and the `Ready` message's note, when the run was to sync them.
fn promo_notice(promotions: Option<&PromoSync>) -> (Option<Notice>, String) {
    match promotions {
        None => (None, String::new()),
        Some(PromoSync::Synced { report, .. }) => {
            let message = format!(
                "{} of the shop's promo codes synced: created {}, updated {}, unchanged {}, refused {}",
                report.codes,
                report.created,
                report.updated,
                report.unchanged,
                report.refused.len()
            );
            let note = format!("; {message}");
            (
                Some(Notice {
                    type_: PROMO_CODES_SYNCED,
                    status: true,
                    reason: PROMO_CODES_SYNCED,
                    message,
                }),
                note,
            )
        }
        Some(PromoSync::NotListed) => (
            Some(Notice {
                type_: PROMO_CODES_SYNCED,
                status: false,
                reason: "PromoCodesNotListed",
                message: "the source lists no discount codes: only codes seen on orders become promo codes".into(),
            }),
            String::new(),
        ),
        Some(PromoSync::Failed(reason)) => (
            Some(Notice {
                type_: PROMO_CODES_SYNCED,
                status: false,
                reason: "PromoCodesFailed",
                message: format!("the shop's promo codes were not synced (tried again next run): {reason}"),
            }),
            "; the shop's promo codes were not synced (see the PromoCodesSynced condition)".into(),
        ),
    }
}

/// The time-zone condition, when both sides name theirs.
fn time_zone_notice(source: Option<&str>, target: Option<&str>, vendor: &str) -> Option<Notice> {
    let (s, t) = (source?, target?);
    Some(if s == t {
        Notice {
            type_: TIME_ZONES_DIFFER,
            status: false,
            reason: "TimeZonesMatch",
            message: format!("the source and {vendor} both use {s}"),
        }
    } else {
        Notice {
            type_: TIME_ZONES_DIFFER,
            status: true,
            reason: TIME_ZONES_DIFFER,
            message: format!(
                "the source's time zone is {s} and the {vendor} account's is {t}: daily order counts differ between the two; set the {vendor} account's time zone to {s} to make them agree"
            ),
        }
    })
}

pub(super) fn orders_executed(o: &OrdersOutcome, dry_run: bool) -> Executed {
    let mut counts = RunCounts {
        source: o.orders_read,
        ..RunCounts::default()
    };
    for (kind, n) in &o.events {
        *kind_count(&mut counts.events, *kind) += n;
    }
    for (reason, n) in &o.skipped {
        *skip_count(&mut counts.orders_skipped, *reason) += n;
        counts.skipped += n;
    }
    counts.rejected = (o.rejected_orders.len() + o.rejected_events.len()) as u64;
    let rejected = o
        .rejected_orders
        .iter()
        .map(|r| RejectedRecord {
            email: String::new(),
            reason: format!("{} order {}: {}", r.source, r.order_id, r.reason),
        })
        .chain(
            o.rejected_events
                .iter()
                .map(|(email, reason)| RejectedRecord {
                    email: email.clone(),
                    reason: reason.clone(),
                }),
        )
        .take(SAMPLE_LIMIT)
        .collect();
    let e = &counts.events;
    let verb = if dry_run {
        "dry run, nothing sent: would send"
    } else {
        "sent"
    };
    let skips = format!(
        "skipped {} (no email {}, zero value {}, invalid email {}, not completed {}, cancelled {}), rejected {}",
        counts.skipped,
        counts.orders_skipped.no_email,
        counts.orders_skipped.zero_value,
        counts.orders_skipped.invalid_email,
        counts.orders_skipped.not_completed,
        counts.orders_skipped.cancelled,
        counts.rejected
    );
    let message = match &o.store {
        // An order store: what changed in it, by order.
        Some(_) if dry_run => format!(
            "dry run, nothing sent: would send {} of {} orders read to the Mailchimp store; {skips}",
            e.placed_order, o.orders_read
        ),
        Some(store) => format!(
            "{} orders read into the Mailchimp store: created {} ({} lines), refunds {}, fulfilments {}, otherwise updated {}, unchanged {}; products {}, promo codes {}; {skips}",
            o.orders_read,
            e.placed_order,
            e.ordered_product,
            e.refunded_order,
            e.fulfilled_order,
            store.updated,
            store.unchanged,
            store.products,
            store.promo_codes,
        ),
        None => format!(
            "{verb} {} events from {} orders read: placed order {}, ordered product {}, refunded order {}, fulfilled order {}; {skips}",
            e.total(),
            o.orders_read,
            e.placed_order,
            e.ordered_product,
            e.refunded_order,
            e.fulfilled_order,
        ),
    };
    // Orders read again after a change: their earlier events are not news.
    let message = if o.already_sent > 0 {
        format!(
            "{message}; {} events of changed orders already sent, not sent again",
            o.already_sent
        )
    } else {
        message
    };
    let (promo, promo_note) = promo_notice(o.promotions.as_ref());
    Executed {
        counts,
        rejected,
        checkpoint: if dry_run { None } else { o.checkpoint.clone() },
        stopped_early: o.stopped_early,
        message: Some(message + &promo_note),
        notices: time_zone_notice(
            o.source_time_zone.as_deref(),
            o.target_time_zone.as_deref(),
            o.target_title,
        )
        .into_iter()
        .chain(promo)
        .collect(),
        promo_codes_synced_at: match &o.promotions {
            Some(PromoSync::Synced { at, .. }) => Some(*at),
            _ => None,
        },
        activity: if dry_run {
            Vec::new()
        } else {
            o.activity.iter().cloned().collect()
        },
        ..Executed::default()
    }
}

#[async_trait]
impl SyncObject for OrderSync {
    const KIND: &'static str = "OrderSync";
    const WEBHOOK_INTEREST: Interest = Interest::Orders;

    fn registers_webhooks(&self) -> bool {
        self.spec.webhooks.as_ref().is_some_and(|w| w.register)
    }

    /// Event targets only (Klaviyo): an order store (Mailchimp) upserts whole orders and says
    /// itself what it already holds. The fingerprint is of the target's whole spec (endpoint,
    /// credentials), so another account starts with an empty ledger.
    fn sent_events_target(&self) -> Option<String> {
        let klaviyo = self.spec.target.klaviyo.as_ref()?;
        let spec = serde_json::to_string(klaviyo).ok()?;
        Some(format!(
            "klaviyo-{:016x}",
            xxhash_rust::xxh3::xxh3_64(spec.as_bytes())
        ))
    }

    fn activity_log(&self) -> Option<&crate::crd::audience::ActivityLogSpec> {
        Some(&self.spec.activity_log)
    }
    fn sync_status(&self) -> Option<&SyncStatus> {
        self.status.as_ref()
    }
    fn schedule(&self) -> &Schedule {
        &self.spec.schedule
    }
    fn suspend(&self) -> bool {
        self.spec.suspend
    }
    fn dry_run(&self) -> bool {
        self.spec.dry_run
    }
    fn source_specs(&self) -> Vec<(&str, &SourceSpec)> {
        let name = self.spec.source.kind().map_or("source", |k| k.as_str());
        vec![(name, &self.spec.source)]
    }
    /// No audience target: the events go to [`SyncObject::event_target`].
    fn target(&self) -> Option<TargetRef<'_>> {
        None
    }
    fn event_target(&self) -> Option<EventTargetRef<'_>> {
        self.spec.target.get()
    }
    fn mode_str(&self) -> &'static str {
        "orders"
    }
    fn field_mapping(&self) -> &FieldMappingSpec {
        &NO_MAPPING
    }

    fn secret_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .spec
            .source
            .credentials()
            .map(|r| r.name.clone())
            .into_iter()
            .collect();
        if let Some(t) = self.event_target() {
            names.push(t.credentials().name.clone());
        }
        names.sort();
        names.dedup();
        names
    }

    fn validate(&self) -> Result<(), String> {
        Cadence::parse(self.schedule())?;
        if self.spec.source.kinds_given() != 1 {
            return Err("give exactly one source kind".into());
        }
        if self.event_target().is_none() {
            return Err("give exactly one target: klaviyo or mailchimp".into());
        }
        if self.spec.events.is_empty() {
            return Err("events: name at least one kind".into());
        }
        if let Some(b) = &self.spec.backfill {
            b.since_time()?;
        }
        if let Some(m) = &self.spec.target.mailchimp {
            m.promo_codes.interval()?;
        }
        Ok(())
    }

    async fn execute(&self, _parts: JobParts<'_>) -> Result<Executed, RunError> {
        Err(RunError::InvalidMapping(
            "an OrderSync runs with an order source and an event sink".into(),
        ))
    }

    async fn execute_orders(&self, parts: OrderParts<'_>) -> Result<Executed, RunError> {
        let outcome = run_order_sync(OrderJob {
            source: parts.source,
            sink: parts.sink,
            kinds: self.spec.event_kinds(),
            live_from: self.live_from(),
            scope: self.order_scope().map_err(RunError::InvalidMapping)?,
            dry_run: self.spec.dry_run,
            control: parts.control,
            progress: parts.progress,
            on_checkpoint: parts.on_checkpoint,
            sent: parts.sent_events,
            promotions: self.promo_codes_due(chrono::Utc::now()),
        })
        .await?;
        let mut executed = orders_executed(&outcome, self.spec.dry_run);
        if !self.spec.dry_run {
            executed.sent_events = outcome.sent;
        }
        Ok(executed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differing_time_zones_name_both() {
        let n = time_zone_notice(
            Some("Europe/Stockholm"),
            Some("America/New_York"),
            "Klaviyo",
        )
        .unwrap();
        assert!(n.status);
        assert!(n.message.contains("Europe/Stockholm"), "{}", n.message);
        assert!(n.message.contains("America/New_York"), "{}", n.message);
        let same = time_zone_notice(Some("UTC"), Some("UTC"), "Klaviyo").unwrap();
        assert!(!same.status);
        assert!(time_zone_notice(None, Some("UTC"), "Klaviyo").is_none());
    }

    fn shopify_to_mailchimp(promo: serde_json::Value, domain: bool) -> OrderSync {
        let mut mailchimp = serde_json::json!({
            "storeId": "shop-1", "audienceId": "a1b2c3", "promoCodes": promo,
            "credentialsSecretRef": {"name": "mc"},
        });
        if domain {
            mailchimp["domain"] = serde_json::json!("shop.example.com");
        }
        let spec = serde_json::json!({
            "source": {"shopify": {"shopDomain": "demo.myshopify.com", "credentialsSecretRef": {"name": "shop"}}},
            "target": {"mailchimp": mailchimp},
        });
        OrderSync::new("orders", serde_json::from_value(spec).unwrap())
    }

    #[test]
    fn promo_codes_are_due_every_interval_with_a_domain_only() {
        let now = chrono::Utc::now();
        let mut sync = shopify_to_mailchimp(serde_json::json!({}), true);
        let promo = &sync.spec.target.mailchimp.as_ref().unwrap().promo_codes;
        assert_eq!((promo.enabled, promo.every.as_str()), (true, "6h"));
        assert!(sync.promo_codes_due(now), "never synced");
        let at = |t: chrono::DateTime<chrono::Utc>| {
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                jiff::Timestamp::from_second(t.timestamp()).unwrap(),
            )
        };
        sync.status = Some(SyncStatus {
            promo_codes_synced_at: Some(at(now - chrono::Duration::hours(5))),
            ..SyncStatus::default()
        });
        assert!(!sync.promo_codes_due(now), "within 6h");
        assert!(sync.promo_codes_due(now + chrono::Duration::hours(1)));
        assert!(
            !shopify_to_mailchimp(serde_json::json!({"enabled": false}), true).promo_codes_due(now)
        );
        assert!(!shopify_to_mailchimp(serde_json::json!({}), false).promo_codes_due(now));
        let quick = shopify_to_mailchimp(serde_json::json!({"every": "30s"}), true);
        assert!(quick.validate().unwrap_err().contains("at least 1m"));
    }

    #[test]
    fn counts_go_by_kind_and_reason() {
        let mut o = OrdersOutcome {
            orders_read: 3,
            ..OrdersOutcome::default()
        };
        o.events.insert(OrderEventKind::PlacedOrder, 2);
        o.events.insert(OrderEventKind::OrderedProduct, 5);
        o.skipped.insert(SkipReason::NoEmail, 1);
        let e = orders_executed(&o, false);
        assert_eq!(e.counts.events.placed_order, 2);
        assert_eq!(e.counts.events.ordered_product, 5);
        assert_eq!(e.counts.orders_skipped.no_email, 1);
        assert_eq!(e.counts.skipped, 1);
        assert!(
            e.message
                .unwrap()
                .starts_with("sent 7 events from 3 orders")
        );
    }
}
