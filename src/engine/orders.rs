//! An OrderSync run: pages of orders from the saved cursor, each page's events sent, the cursor
//! advanced only once the page was accepted (see `audience_core::order_events` for why that
//! never loses or doubles an event).
//!
//! A poll with nothing new costs one source call and no target call: a page with no events is
//! not sent. A stop request ends the run at a page boundary, with the cursor at the last page
//! the target accepted. Dry runs count what each page would send and send nothing.
//!
//! Two kinds of target: an [`EventSink`] (Klaviyo) gets each page's events; an [`OrderSink`]
//! (Mailchimp e-commerce) gets the page's sendable orders whole (the same
//! [`audience_core::sendable`] skip rules decide), and its counts go into the same per-kind
//! status fields: placed order = orders created, ordered product = their lines, refunded order =
//! orders whose refund state was sent, fulfilled order = orders whose fulfilment was sent.

use std::collections::{BTreeMap, HashSet, VecDeque};

use audience_core::activity::{Action, ActivityEntry, entries_of_order_events, entry_of_order};
use audience_core::order::{Order, Promotion};
use audience_core::{
    ApplyControl, Email, ErrorKind, EventKinds, EventOptions, EventSink, OrderDestination,
    OrderEventKind, OrderRejection, OrderScope, OrderSendOptions, OrderSink,
    OrderSkipReason as SkipReason, OrderSource, PromotionReport, SentLedger, Unsendable,
    events_of_orders, sendable,
};
use chrono::{DateTime, Utc};
use futures::StreamExt;

use super::run::{Phase, ProgressFn, RunError};

/// What an order run needs.
pub struct OrderJob<'a> {
    pub source: &'a dyn OrderSource,
    pub sink: &'a OrderDestination,
    pub kinds: EventKinds,
    /// Events before this time are history (`backfill: true`, no flows): the sync's creation.
    pub live_from: DateTime<Utc>,
    /// Where to read from: the saved cursor, else the backfill's (or the creation's) time.
    pub scope: OrderScope,
    pub dry_run: bool,
    pub control: ApplyControl,
    pub progress: Option<ProgressFn>,
    /// Told each cursor the target has accepted everything up to, during the run, so a process
    /// killed mid-run resumes from there (the controller saves it in `status.checkpoint`).
    pub on_checkpoint: Option<CheckpointFn>,
    /// The ids the target accepted in earlier runs (event targets only; `None`: none kept), so a
    /// changed order re-read whole sends only its new events.
    pub sent: Option<SentLedger>,
    /// Sync the shop's promotions into an order store this run (Mailchimp promo codes, every
    /// few hours: the caller decides when).
    pub promotions: bool,
}

/// Receives a cursor the target accepted everything up to.
pub type CheckpointFn = std::sync::Arc<dyn Fn(&str) + Send + Sync>;

/// Events per send: Klaviyo's bulk job takes at most 1,000, so pages are gathered up to that
/// (a source page of 100 orders is about 300 events, a job of its own would be a third full).
pub const EVENTS_PER_SEND: usize = 1_000;

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
    /// `Klaviyo`, `Mailchimp`: whose account the status messages name.
    pub target_title: &'static str,
    /// Orders into an order store (Mailchimp): `events` count orders and their parts, and
    /// these the rest of what happened.
    pub store: Option<StoreCounts>,
    /// What the target took and refused, order by order, for the activity log: the last
    /// [`ACTIVITY_KEPT`] only, so a long backfill holds no more than the log can show.
    pub activity: VecDeque<ActivityEntry>,
    /// Events of re-read orders left out because the target had already accepted them.
    pub already_sent: u64,
    /// The ledger to keep for the next run, when this run added to it (never on a dry run).
    pub sent: Option<SentLedger>,
    /// The shop's promotions, when this run was to sync them.
    pub promotions: Option<PromoSync>,
}

/// What became of syncing the shop's promotions.
#[derive(Debug, Clone, PartialEq)]
pub enum PromoSync {
    /// Synced at this time.
    Synced {
        at: DateTime<Utc>,
        report: PromotionReport,
    },
    /// The source lists no promotions (only Shopify does).
    NotListed,
    /// Not done; the next run tries again. The reason.
    Failed(String),
}

/// Activity entries an order run keeps (the log keeps about as many).
pub const ACTIVITY_KEPT: usize = 1_000;

impl OrdersOutcome {
    fn log(&mut self, entries: impl IntoIterator<Item = ActivityEntry>) {
        for entry in entries {
            if self.activity.len() == ACTIVITY_KEPT {
                self.activity.pop_front();
            }
            self.activity.push_back(entry);
        }
    }
}

/// What an order store (Mailchimp e-commerce) did besides the per-kind counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreCounts {
    pub updated: u64,
    pub unchanged: u64,
    pub customers: u64,
    pub products: u64,
    pub promo_codes: u64,
}

/// Runs an OrderSync.
pub async fn run_order_sync(job: OrderJob<'_>) -> Result<OrdersOutcome, RunError> {
    match job.sink {
        OrderDestination::Events(sink) => run_events(&job, sink.as_ref()).await,
        OrderDestination::Orders(sink) => {
            // The shop's promotions go first, so the orders' codes find their rules done; a
            // store that does not exist yet is made by the orders, then they go after them.
            let mut promotions = None;
            let mut waiting = None;
            if job.promotions && !job.dry_run {
                match job.source.promotions().await {
                    Err(e) => {
                        promotions = Some(PromoSync::Failed(format!(
                            "reading the shop's discount codes: {e}"
                        )))
                    }
                    Ok(None) => promotions = Some(PromoSync::NotListed),
                    Ok(Some(list)) => match sync_promotions(sink.as_ref(), &list).await {
                        Some(done) => promotions = Some(done),
                        None => waiting = Some(list),
                    },
                }
            }
            let run = run_orders(&job, sink.as_ref()).await;
            if let (Some(list), Ok(_)) = (&waiting, &run) {
                promotions = Some(sync_promotions(sink.as_ref(), list).await.unwrap_or_else(
                    || {
                        PromoSync::Failed(
                            "the Mailchimp store does not exist yet: the first orders create it"
                                .into(),
                        )
                    },
                ));
            }
            // History loading ends with the run, also a failed one (Mailchimp: `is_syncing`
            // back to false, so automations are not left paused).
            let finished = sink.finish().await;
            let mut out = run?;
            out.write_calls += finished.map_err(RunError::Target)?;
            if let Some(PromoSync::Synced { report, .. }) = &promotions {
                out.write_calls += report.write_calls;
                if let Some(store) = out.store.as_mut() {
                    store.promo_codes += report.created + report.updated;
                }
            }
            out.promotions = promotions;
            Ok(out)
        }
    }
}

/// The shop's promotions into the store; `None` when the store does not exist yet.
async fn sync_promotions(sink: &dyn OrderSink, list: &[Promotion]) -> Option<PromoSync> {
    match sink.sync_promotions(list).await {
        Ok(report) => {
            for (code, reason) in &report.refused {
                tracing::warn!(
                    vendor = sink.vendor(),
                    "promo code {code:?} refused: {reason}"
                );
            }
            Some(PromoSync::Synced {
                at: Utc::now(),
                report,
            })
        }
        Err(e) if e.kind == ErrorKind::NotFound => None,
        Err(e) => Some(PromoSync::Failed(format!(
            "writing the store's promo codes: {e}"
        ))),
    }
}

/// Orders into an [`OrderSink`], page by page.
async fn run_orders(job: &OrderJob<'_>, sink: &dyn OrderSink) -> Result<OrdersOutcome, RunError> {
    let mut out = OrdersOutcome {
        source_time_zone: job.source.time_zone().await.ok().flatten(),
        target_time_zone: sink.time_zone().await.ok().flatten(),
        target_title: "Mailchimp",
        store: Some(StoreCounts::default()),
        ..OrdersOutcome::default()
    };
    let options = OrderSendOptions {
        kinds: job.kinds,
        live_from: Some(job.live_from),
    };
    let mut pages = job.source.orders(job.scope.clone());
    while let Some(page) = pages.next().await {
        let page = page.map_err(RunError::Source)?;
        out.orders_read += page.orders.len() as u64;
        if let Some(progress) = &job.progress {
            progress(Phase::ReadingSource, out.orders_read, 0);
        }
        // The core's rules, once: skips and malformed orders never reach the sink.
        let mut send: Vec<Order> = Vec::with_capacity(page.orders.len());
        for order in page.orders {
            match sendable(&order) {
                Ok(_) => send.push(order),
                Err(Unsendable::Skipped(reason)) => *out.skipped.entry(reason).or_default() += 1,
                Err(Unsendable::Rejected(reason)) => out.rejected_orders.push(OrderRejection {
                    source: order.source.clone(),
                    order_id: order.order_id.clone(),
                    reason,
                }),
            }
        }
        if job.dry_run {
            if job.kinds.placed_order {
                *out.events.entry(OrderEventKind::PlacedOrder).or_default() += send.len() as u64;
            }
            continue;
        }
        if !send.is_empty() {
            if let Some(progress) = &job.progress {
                progress(Phase::Applying, send.len() as u64, 0);
            }
            let report = sink
                .send_orders(&send, &options, &job.control)
                .await
                .map_err(RunError::Target)?;
            out.write_calls += report.write_calls;
            for (kind, n) in [
                (OrderEventKind::PlacedOrder, report.orders_created),
                (OrderEventKind::OrderedProduct, report.lines_created),
                (OrderEventKind::RefundedOrder, report.refunds),
                (OrderEventKind::FulfilledOrder, report.fulfillments),
            ] {
                if n > 0 {
                    *out.events.entry(kind).or_default() += n;
                }
            }
            if let Some(store) = out.store.as_mut() {
                store.updated += report.orders_updated;
                store.unchanged += report.unchanged;
                store.customers += report.customers_written;
                store.products += report.products_written;
                store.promo_codes += report.promo_codes_written;
            }
            let refused: HashSet<&str> = report
                .rejected
                .iter()
                .map(|r| r.order_id.as_str())
                .collect();
            let now = Utc::now();
            let taken: Vec<ActivityEntry> = send
                .iter()
                .filter(|o| !refused.contains(o.order_id.as_str()))
                .filter_map(|o| {
                    let email = Email::parse(&o.customer.email).ok()?;
                    Some(entry_of_order(
                        email.as_str(),
                        &o.order_id,
                        "mailchimp",
                        now,
                    ))
                })
                .collect();
            out.log(taken);
            let rejected: Vec<ActivityEntry> = report
                .rejected
                .iter()
                .filter_map(|r| {
                    let order = send.iter().find(|o| o.order_id == r.order_id)?;
                    let email = Email::parse(&order.customer.email).ok()?;
                    let mut entry = entry_of_order(email.as_str(), &r.order_id, "mailchimp", now);
                    entry.action = Action::Rejected;
                    entry.reason = Some(r.reason.clone());
                    Some(entry)
                })
                .collect();
            out.log(rejected);
            out.rejected_orders.extend(report.rejected);
            if report.stopped_early {
                out.stopped_early = true;
                break;
            }
        }
        if page.checkpoint.is_some() {
            out.checkpoint = page.checkpoint;
            if let (Some(tell), Some(cp)) = (&job.on_checkpoint, &out.checkpoint) {
                tell(cp);
            }
        }
        if job.control.stop_requested() {
            out.stopped_early = true;
            break;
        }
    }
    Ok(out)
}

/// Events into an [`EventSink`], page by page.
async fn run_events(job: &OrderJob<'_>, sink: &dyn EventSink) -> Result<OrdersOutcome, RunError> {
    // Time zones are informative (a status condition), never a reason to fail the run.
    let mut out = OrdersOutcome {
        source_time_zone: job.source.time_zone().await.ok().flatten(),
        target_time_zone: sink.time_zone().await.ok().flatten(),
        target_title: "Klaviyo",
        ..OrdersOutcome::default()
    };
    let options = EventOptions {
        kinds: job.kinds,
        live_from: Some(job.live_from),
    };
    // An order re-read whole (changed since an earlier run, or again after its first page)
    // sends only its new events: `ledger` holds what earlier runs had accepted and what this run
    // has queued; `accepted` only what the target took, the one to keep. Neither is the
    // guarantee: a lost or cut-short ledger resends ids the target records once.
    let mut ledger = job.sent.clone().unwrap_or_default();
    let mut accepted = Accepted {
        ledger: job.sent.clone().unwrap_or_default(),
        grew: false,
    };
    // Events of whole pages not sent yet, and the cursor after the last of those pages.
    let mut batch = Batch::default();
    let mut pages = job.source.orders(job.scope.clone());
    while let Some(page) = pages.next().await {
        let page = page.map_err(RunError::Source)?;
        out.orders_read += page.orders.len() as u64;
        if let Some(progress) = &job.progress {
            progress(Phase::ReadingSource, out.orders_read, 0);
        }
        let page_events = events_of_orders(&page.orders, &options, Some(&ledger));
        out.already_sent += page_events.already_sent;
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
        // A page that would overflow the batch goes into the next one: a send holds whole
        // pages, so the cursor after it is exact.
        if !batch.events.is_empty()
            && batch.events.len() + page_events.events.len() > EVENTS_PER_SEND
            && !batch.send(job, sink, &mut out, &mut accepted).await?
        {
            break;
        }
        ledger.record(&page_events.events);
        batch.events.extend(page_events.events);
        if page.checkpoint.is_some() {
            batch.checkpoint = page.checkpoint;
        }
        let stop = job.control.stop_requested();
        if (batch.events.len() >= EVENTS_PER_SEND || stop)
            && !batch.send(job, sink, &mut out, &mut accepted).await?
        {
            break;
        }
        if stop {
            out.stopped_early = true;
            break;
        }
    }
    if !out.stopped_early {
        batch.send(job, sink, &mut out, &mut accepted).await?;
    }
    if accepted.grew {
        out.sent = Some(accepted.ledger);
    }
    Ok(out)
}

/// The ids the target has accepted, and whether this run added any.
struct Accepted {
    ledger: SentLedger,
    grew: bool,
}

/// Events gathered from whole pages, and the cursor after the last of them.
#[derive(Default)]
struct Batch {
    events: Vec<audience_core::OrderEvent>,
    checkpoint: Option<String>,
}

impl Batch {
    /// Sends the batch (nothing to send: no call) and, once accepted, moves the run's cursor.
    /// False when a stop ended the send part-way (the cursor stays; the same ids go again).
    async fn send(
        &mut self,
        job: &OrderJob<'_>,
        sink: &dyn EventSink,
        out: &mut OrdersOutcome,
        accepted: &mut Accepted,
    ) -> Result<bool, RunError> {
        let events = std::mem::take(&mut self.events);
        if !events.is_empty() {
            if let Some(progress) = &job.progress {
                progress(Phase::Applying, events.len() as u64, 0);
            }
            let report = sink
                .send_events(&events, &job.control)
                .await
                .map_err(RunError::Target)?;
            out.write_calls += report.write_calls;
            if report.stopped_early {
                out.stopped_early = true;
                return Ok(false);
            }
            let refused: HashSet<&str> = report
                .rejected
                .iter()
                .map(|r| r.unique_id.as_str())
                .collect();
            for e in &events {
                if !refused.contains(e.unique_id.as_str()) {
                    *out.events.entry(e.kind).or_default() += 1;
                    accepted.grew |= accepted.ledger.insert(&e.unique_id);
                }
            }
            let reasons: BTreeMap<&str, &str> = report
                .rejected
                .iter()
                .map(|r| (r.unique_id.as_str(), r.reason.as_str()))
                .collect();
            out.log(entries_of_order_events(
                &events,
                &reasons,
                &sink.vendor().to_lowercase(),
                Utc::now(),
            ));
            for r in &report.rejected {
                let email = events
                    .iter()
                    .find(|e| e.unique_id == r.unique_id)
                    .map(|e| e.email.as_str().to_string())
                    .unwrap_or_default();
                out.rejected_events.push((email, r.reason.clone()));
            }
        }
        if let Some(cp) = self.checkpoint.take() {
            if let Some(tell) = &job.on_checkpoint {
                tell(&cp);
            }
            out.checkpoint = Some(cp);
        }
        Ok(true)
    }
}
