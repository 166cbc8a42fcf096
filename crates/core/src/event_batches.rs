//! Cutting a stream of order events into target-sized batches (pure).
//!
//! A batch is a contiguous range of the events, so "everything up to batch k was accepted" is a
//! prefix of the stream. Cuts fall between orders: an order's events travel together, so a stop
//! between batches never leaves an order half sent (only an order too large for one batch by
//! itself is split, at event boundaries, as it must be).
//!
//! Sizes are the sink's: Klaviyo's bulk body groups a batch's events by profile, so a batch costs
//! its envelope, once per distinct email a profile entry, and per event its encoding, each with a
//! separator. [`plan_batches`] takes those sizes from the caller's encoder and keeps every batch
//! within both limits (the byte count it keeps is an upper bound of the real body).

use std::collections::HashSet;
use std::ops::Range;

use crate::event::OrderEvent;

/// How large one batch may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    pub max_events: usize,
    pub max_bytes: usize,
}

/// Klaviyo's `event-bulk-create-jobs`: 1,000 events, 5 MB a job ([U] 5 MB read as 5,000,000
/// bytes, the smaller of the decimal and binary readings).
pub const KLAVIYO_BULK: BatchLimits = BatchLimits {
    max_events: 1000,
    max_bytes: 5_000_000,
};

/// What a batch's body costs, as the sink encodes it.
pub trait BatchSizer {
    /// The body's envelope, with no entry in it.
    fn overhead(&self) -> usize;
    /// A profile entry's own bytes (without its events), paid once per distinct email in a
    /// batch, for the batch's first event of that email (`index` into the events planned).
    fn profile_bytes(&self, index: usize, event: &OrderEvent) -> usize;
    /// One event's encoding (`index` into the events planned, so a sink can encode once).
    fn event_bytes(&self, index: usize, event: &OrderEvent) -> usize;
}

/// Splits `events` into consecutive batches within `limits`, cutting between orders when it can.
/// An event that alone exceeds the byte limit travels alone (the sink refuses it).
pub fn plan_batches(
    events: &[OrderEvent],
    limits: BatchLimits,
    sizer: &dyn BatchSizer,
) -> Vec<Range<usize>> {
    let max_events = limits.max_events.max(1);
    let event_bytes: Vec<usize> = events
        .iter()
        .enumerate()
        .map(|(i, e)| sizer.event_bytes(i, e) + 1)
        .collect();
    let profile_bytes: Vec<usize> = events
        .iter()
        .enumerate()
        .map(|(i, e)| sizer.profile_bytes(i, e) + 1)
        .collect();
    let overhead = sizer.overhead();

    // Orders: runs of consecutive events of one (source, order id).
    let mut orders: Vec<Range<usize>> = Vec::new();
    for (i, event) in events.iter().enumerate() {
        match orders.last_mut() {
            Some(run)
                if events[run.start].order_id == event.order_id
                    && events[run.start].source == event.source =>
            {
                run.end = i + 1
            }
            _ => orders.push(i..i + 1),
        }
    }

    let mut batches = Vec::new();
    let mut current = Batch::new(0, overhead);
    for order in orders {
        // The order's cost on top of the current batch.
        let cost = current.cost_of(events, order.clone(), &event_bytes, &profile_bytes);
        if current.len() + order.len() <= max_events && current.bytes + cost <= limits.max_bytes {
            current.add(events, order, &event_bytes, &profile_bytes);
            continue;
        }
        if current.len() > 0 {
            batches.push(current.range());
            current = Batch::new(order.start, overhead);
        }
        // The order alone, split by events when it does not fit one batch.
        for i in order {
            let one = i..i + 1;
            let cost = current.cost_of(events, one.clone(), &event_bytes, &profile_bytes);
            if current.len() > 0
                && (current.len() + 1 > max_events || current.bytes + cost > limits.max_bytes)
            {
                batches.push(current.range());
                current = Batch::new(i, overhead);
            }
            current.add(events, one, &event_bytes, &profile_bytes);
        }
    }
    if current.len() > 0 {
        batches.push(current.range());
    }
    batches
}

struct Batch<'a> {
    start: usize,
    end: usize,
    bytes: usize,
    emails: HashSet<&'a str>,
}

impl<'a> Batch<'a> {
    fn new(start: usize, overhead: usize) -> Self {
        Batch {
            start,
            end: start,
            bytes: overhead,
            emails: HashSet::new(),
        }
    }

    fn len(&self) -> usize {
        self.end - self.start
    }

    fn range(&self) -> Range<usize> {
        self.start..self.end
    }

    fn cost_of(
        &self,
        events: &'a [OrderEvent],
        range: Range<usize>,
        event_bytes: &[usize],
        profile_bytes: &[usize],
    ) -> usize {
        let mut new_emails: HashSet<&str> = HashSet::new();
        range
            .map(|i| {
                let email = events[i].email.as_str();
                let profile = if !self.emails.contains(email) && new_emails.insert(email) {
                    profile_bytes[i]
                } else {
                    0
                };
                event_bytes[i] + profile
            })
            .sum()
    }

    fn add(
        &mut self,
        events: &'a [OrderEvent],
        range: Range<usize>,
        event_bytes: &[usize],
        profile_bytes: &[usize],
    ) {
        debug_assert_eq!(range.start, self.end, "batches are contiguous");
        self.bytes += self.cost_of(events, range.clone(), event_bytes, profile_bytes);
        for i in range.clone() {
            self.emails.insert(events[i].email.as_str());
        }
        self.end = range.end;
    }
}
