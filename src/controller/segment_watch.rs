//! The source-segment watch of a SegmentSync: between scheduled runs, every
//! `Settings::segment_watch` (a minute by default) one cheap read of the segment's own metadata
//! ([`audience_core::Source::segment_stamp`]: RetailCRM's `customersCount` and times) is
//! compared with the stamp the last applied run saved in `status.checkpoint`. Only when they
//! differ does a run start, reading the members; an unchanged tick makes that one call and none
//! to the target. RetailCRM recomputes segments every 4 hours, and seed 002 promises the mailing
//! platform follows within 1–2 minutes: this is what keeps that promise without reading every
//! member every minute.
//!
//! A sync whose last run did not succeed is not watched (its backoff decides), nor a dry run.

use std::time::{Duration, Instant};

use kube::ResourceExt;

use super::object_key;
use super::reconcile::Reconciler;
use crate::schedule::Trigger;
use crate::sync::SyncObject;
use crate::sync::segment::SEGMENT_STAMP_PREFIX;

impl<K: SyncObject> Reconciler<'_, K> {
    /// With nothing else due for `wait`: `Ok(trigger)` when the watched segment changed, else
    /// `Err(how long to wait)` (the next tick at the latest).
    pub(super) async fn watch_segment(&self, wait: Duration) -> Result<Trigger, Duration> {
        let interval = self.ctx.settings.segment_watch;
        let Some(segment) = self.obj.watched_segment() else {
            return Err(wait);
        };
        let synced = self
            .obj
            .sync_status()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
            .is_some_and(|c| c.reason == "Synced");
        if interval.is_zero() || self.obj.dry_run() || !synced {
            return Err(wait);
        }
        let key = object_key(self.obj);
        if let Some(what) = self.ctx.segment_change(&key) {
            return Ok(Trigger::SegmentChanged(what));
        }
        let now = Instant::now();
        if let Some(last) = self.ctx.segment_checked(&key, now, interval) {
            return Err(wait.min(interval.saturating_sub(now - last)));
        }
        let tick = wait.min(interval);
        // The connectors its runs use.
        let prepared = match self.connectors().await {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(error = %e, "segment watch: building the source");
                return Err(tick);
            }
        };
        let Some((_, source)) = prepared.sources.first() else {
            return Err(wait);
        };
        let stamp = match source.segment_stamp(&segment).await {
            Ok(Some(stamp)) => stamp,
            // No metadata to watch: the schedule alone decides.
            Ok(None) => return Err(wait),
            Err(e) => {
                tracing::debug!(kind = K::KIND, name = %self.obj.name_any(), error = %e, "segment watch");
                return Err(tick);
            }
        };
        let saved = self
            .obj
            .sync_status()
            .and_then(|s| s.checkpoint.as_deref())
            .and_then(|c| c.strip_prefix(SEGMENT_STAMP_PREFIX));
        if saved == Some(stamp.as_str()) {
            return Err(tick);
        }
        let what = format!("{} → {stamp}", saved.unwrap_or("no stamp"));
        self.ctx.set_segment_change(&key, Some(what.clone()));
        Ok(Trigger::SegmentChanged(what))
    }
}
