//! An OrderSync run: pages of orders from the saved cursor, each page's events sent, the cursor
//! advanced only once the page was accepted (see `audience_core::order_events` for why that
//! never loses or doubles an event).
//!
//! A poll with nothing new costs one source call and no target call: a page with no events is
//! not sent. A stop request ends the run at a page boundary, with the cursor at the last page
//! the target accepted. Dry runs count what each page would send and send nothing.

use std::collections::{BTreeMap, HashSet};

use audience_core::{
    ApplyControl, EventKinds, EventOptions, EventSink, OrderEventKind, OrderRejection, OrderScope,
    OrderSkipReason as SkipReason, OrderSource, SentLedger, events_of_orders,
};
use chrono::{DateTime, Utc};
use futures::StreamExt;

use super::run::{Phase, ProgressFn, RunError};

/// What an order run needs.
pub struct OrderJob<'a> {
    pub source: &'a dyn OrderSource,
    pub sink: &'a dyn EventSink,
    pub kinds: EventKinds,
    /// Events before this time are history (`backfill: true`, no flows): the sync's creation.
    pub live_from: DateTime<Utc>,
    /// Where to read from: the saved cursor, else the backfill's (or the creation's) time.
    pub scope: OrderScope,
    pub dry_run: bool,
    pub control: ApplyControl,
    pub progress: Option<ProgressFn>,
}

/// What an order run did (on a dry run: what it would send).
#[derive(Debug, Clone, Default)]
pub struct OrdersOutcome {
    pub orders_read: u64,
    /// Events accepted by the target (dry run: planned), by kind.
    pub events: BTreeMap<OrderEventKind, u64>,
    pub skipped: BTreeMap<SkipReason, u64>,
    /// Malformed orders (nothing of them sent).
    pub rejected_orders: Vec<OrderRejection>,
    /// Events the target refused: (email, reason).
    pub rejected_events: Vec<(String, String)>,
    /// The cursor after the last page the target accepted (`None`: no page moved it).
    pub checkpoint: Option<String>,
    pub stopped_early: bool,
    pub write_calls: u64,
    pub source_time_zone: Option<String>,
    pub target_time_zone: Option<String>,
}

/// Runs an OrderSync.
pub async fn run_order_sync(job: OrderJob<'_>) -> Result<OrdersOutcome, RunError> {
    // Time zones are informative (a status condition), never a reason to fail the run.
    let mut out = OrdersOutcome {
        source_time_zone: job.source.time_zone().await.ok().flatten(),
        target_time_zone: job.sink.time_zone().await.ok().flatten(),
        ..OrdersOutcome::default()
    };
    let options = EventOptions {
        kinds: job.kinds,
        live_from: Some(job.live_from),
    };
    // Within one run, an order re-read whole (changed again after its first page) sends only
    // its new events; across runs the target's dedupe by unique id is the guarantee.
    let mut ledger = SentLedger::new();
    let mut pages = job.source.orders(job.scope.clone());
    while let Some(page) = pages.next().await {
        let page = page.map_err(RunError::Source)?;
        out.orders_read += page.orders.len() as u64;
        if let Some(progress) = &job.progress {
            progress(Phase::ReadingSource, out.orders_read, 0);
        }
        let page_events = events_of_orders(&page.orders, &options, Some(&ledger));
        for (reason, n) in &page_events.skipped {
            *out.skipped.entry(*reason).or_default() += n;
        }
        out.rejected_orders.extend(page_events.rejected);
        if job.dry_run {
            for e in &page_events.events {
                *out.events.entry(e.kind).or_default() += 1;
            }
            ledger.record(&page_events.events);
            continue;
        }
        if !page_events.events.is_empty() {
            if let Some(progress) = &job.progress {
                progress(Phase::Applying, page_events.events.len() as u64, 0);
            }
            let report = job
                .sink
                .send_events(&page_events.events, &job.control)
                .await
                .map_err(RunError::Target)?;
            out.write_calls += report.write_calls;
            if report.stopped_early {
                // Part of the page may be recorded; it is sent again (same ids) next run.
                out.stopped_early = true;
                break;
            }
            let refused: HashSet<&str> = report
                .rejected
                .iter()
                .map(|r| r.unique_id.as_str())
                .collect();
            for e in &page_events.events {
                if refused.contains(e.unique_id.as_str()) {
                    continue;
                }
                *out.events.entry(e.kind).or_default() += 1;
            }
            for r in &report.rejected {
                let email = page_events
                    .events
                    .iter()
                    .find(|e| e.unique_id == r.unique_id)
                    .map(|e| e.email.as_str().to_string())
                    .unwrap_or_default();
                out.rejected_events.push((email, r.reason.clone()));
            }
            ledger.record(&page_events.events);
        }
        if page.checkpoint.is_some() {
            out.checkpoint = page.checkpoint;
        }
        if job.control.stop_requested() {
            out.stopped_early = true;
            break;
        }
    }
    Ok(out)
}
