//! Properties of the orders → events → batches → cursor story (see `order_events`' docs): a
//! re-run, or a crash after any batch and a resume from the last saved cursor, never records an
//! event twice at a target that dedupes by unique id, and never loses one.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use audience_core::event_batches::{BatchLimits, BatchSizer, plan_batches};
use audience_core::order::{
    Decimal, Order, OrderCustomer, OrderFulfillment, OrderLine, OrderRefund, OrderStatus,
};
use audience_core::order_events::{EventOptions, SentLedger, events_of_orders, unique_id};
use audience_core::{OrderEvent, OrderEventKind};
use chrono::{Duration, TimeZone, Utc};
use proptest::prelude::*;

/// One order's final shape, and the pages it is read in (its first read sees no refunds or
/// fulfilments; a later read, if any, sees them all: the source re-reads a changed order whole).
#[derive(Debug, Clone)]
struct Spec {
    id: String,
    email: usize,
    lines: usize,
    refunds: usize,
    fulfillments: usize,
    zero: bool,
    first_page: usize,
    later_page: Option<usize>,
}

const PAGES: usize = 5;

fn spec() -> impl Strategy<Value = Spec> {
    (
        "[a-c:%]{1,4}",
        0usize..4,
        0usize..4,
        0usize..3,
        0usize..3,
        prop::bool::weighted(0.1),
        0usize..PAGES,
        prop::option::of(0usize..PAGES),
    )
        .prop_map(
            |(id, email, lines, refunds, fulfillments, zero, first_page, later)| Spec {
                id,
                email,
                lines,
                refunds,
                fulfillments,
                zero,
                first_page,
                later_page: later.map(|p| p.max(first_page)),
            },
        )
}

fn order(spec: &Spec, full: bool) -> Order {
    let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    Order {
        source: "shopify".into(),
        order_id: spec.id.clone(),
        status: OrderStatus::Completed,
        customer: OrderCustomer {
            email: format!("p{}@example.com", spec.email),
            ..OrderCustomer::default()
        },
        currency: "EUR".into(),
        total: Some(if spec.zero {
            Decimal::ZERO
        } else {
            Decimal::new(1999, 2)
        }),
        lines: (0..spec.lines)
            .map(|l| OrderLine {
                line_id: format!("l:{l}"),
                product_id: format!("p{l}"),
                name: format!("Product {l}"),
                quantity: Decimal::ONE,
                unit_price: Decimal::new(500, 2),
                ..OrderLine::default()
            })
            .collect(),
        refunds: if full {
            (0..spec.refunds)
                .map(|r| OrderRefund {
                    refund_id: format!("r{r}"),
                    refunded_at: t0 + Duration::days(2),
                    amount: Decimal::ONE,
                    line_ids: vec![],
                })
                .collect()
        } else {
            vec![]
        },
        fulfillments: if full {
            (0..spec.fulfillments)
                .map(|f| OrderFulfillment {
                    fulfillment_id: format!("f{f}"),
                    fulfilled_at: t0 + Duration::days(1),
                    line_ids: vec![],
                })
                .collect()
        } else {
            vec![]
        },
        placed_at: t0,
        updated_at: t0,
        ..Order::default()
    }
}

/// Distinct orders (by id), each read in its pages.
fn pages(specs: &[Spec]) -> Vec<Vec<Order>> {
    let mut seen = BTreeSet::new();
    let mut pages = vec![Vec::new(); PAGES];
    for spec in specs.iter().filter(|s| seen.insert(s.id.clone())) {
        let changes = spec.refunds + spec.fulfillments > 0;
        match spec.later_page {
            Some(later) if changes => {
                pages[spec.first_page].push(order(spec, false));
                pages[later].push(order(spec, true));
            }
            // Read once, already complete.
            _ => pages[spec.first_page].push(order(spec, true)),
        }
    }
    pages
}

/// What must end up recorded, counted without the code under test: per valid order, one placed
/// order, one product per line, one per refund and fulfilment.
fn expected(specs: &[Spec]) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut ids = BTreeSet::new();
    for spec in specs.iter().filter(|s| seen.insert(s.id.clone())) {
        if spec.zero {
            continue;
        }
        let id = |kind, sub: Option<String>| unique_id("shopify", &spec.id, kind, sub.as_deref());
        ids.insert(id(OrderEventKind::PlacedOrder, None));
        for l in 0..spec.lines {
            ids.insert(id(OrderEventKind::OrderedProduct, Some(format!("l:{l}"))));
        }
        for r in 0..spec.refunds {
            ids.insert(id(OrderEventKind::RefundedOrder, Some(format!("r{r}"))));
        }
        for f in 0..spec.fulfillments {
            ids.insert(id(OrderEventKind::FulfilledOrder, Some(format!("f{f}"))));
        }
    }
    ids
}

struct Sizer;

impl BatchSizer for Sizer {
    fn overhead(&self) -> usize {
        10
    }
    fn profile_bytes(&self, _: usize, event: &OrderEvent) -> usize {
        event.email.as_str().len()
    }
    fn event_bytes(&self, _: usize, event: &OrderEvent) -> usize {
        event.unique_id.len() + 20
    }
}

/// A target like Klaviyo: it records an event once per unique id, and counts what it received.
#[derive(Default)]
struct Target {
    recorded: BTreeMap<String, u32>,
    received: HashMap<String, u32>,
}

impl Target {
    fn accept(&mut self, batch: &[OrderEvent]) {
        for event in batch {
            *self.received.entry(event.unique_id.clone()).or_default() += 1;
            self.recorded.entry(event.unique_id.clone()).or_insert(1);
        }
    }
}

/// The process's durable state: the cursor (the next page to read) and, when kept, the ledger.
#[derive(Default)]
struct Saved {
    cursor: usize,
    ledger: Option<SentLedger>,
}

/// Runs from the saved cursor; crashes right after the target accepted the `crash_at`-th batch
/// of this run (before the ledger or the cursor could be saved). True when it finished.
fn run(
    pages: &[Vec<Order>],
    limits: BatchLimits,
    saved: &mut Saved,
    target: &mut Target,
    crash_at: Option<usize>,
) -> bool {
    let mut sent = 0usize;
    while saved.cursor < pages.len() {
        let page = events_of_orders(
            &pages[saved.cursor],
            &EventOptions::default(),
            saved.ledger.as_ref(),
        );
        for range in plan_batches(&page.events, limits, &Sizer) {
            let batch = &page.events[range];
            target.accept(batch);
            sent += 1;
            if crash_at == Some(sent) {
                return false;
            }
            if let Some(ledger) = &mut saved.ledger {
                ledger.record(batch);
            }
        }
        saved.cursor += 1;
    }
    true
}

fn limits() -> impl Strategy<Value = BatchLimits> {
    (1usize..6, 60usize..400).prop_map(|(max_events, max_bytes)| BatchLimits {
        max_events,
        max_bytes,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Crash after any batches, resume each time from the saved cursor: every event recorded
    /// exactly once, none lost; with a durable ledger the target never even receives one twice.
    #[test]
    fn crashes_and_resumes_never_duplicate_or_lose_an_event(
        specs in prop::collection::vec(spec(), 0..12),
        limits in limits(),
        crashes in prop::collection::vec(1usize..8, 0..4),
        keep_ledger in any::<bool>(),
    ) {
        let pages = pages(&specs);
        let mut target = Target::default();
        let mut saved = Saved {
            cursor: 0,
            ledger: keep_ledger.then(SentLedger::new),
        };
        for crash in &crashes {
            if run(&pages, limits, &mut saved, &mut target, Some(*crash)) {
                break;
            }
        }
        prop_assert!(run(&pages, limits, &mut saved, &mut target, None));
        let recorded: BTreeSet<String> = target.recorded.keys().cloned().collect();
        prop_assert_eq!(&recorded, &expected(&specs));
        prop_assert!(target.recorded.values().all(|n| *n == 1));
        if keep_ledger && crashes.is_empty() {
            prop_assert!(target.received.values().all(|n| *n == 1), "{:?}", target.received);
        }
    }

    /// A second run over the same orders records nothing new; with the ledger it sends nothing.
    #[test]
    fn a_rerun_records_nothing_new(
        specs in prop::collection::vec(spec(), 0..12),
        limits in limits(),
    ) {
        let pages = pages(&specs);
        let mut target = Target::default();
        let mut saved = Saved { cursor: 0, ledger: Some(SentLedger::new()) };
        prop_assert!(run(&pages, limits, &mut saved, &mut target, None));
        let first = target.recorded.clone();
        let received: u32 = target.received.values().sum();

        // From the start again, ledger kept: nothing is sent at all.
        saved.cursor = 0;
        prop_assert!(run(&pages, limits, &mut saved, &mut target, None));
        prop_assert_eq!(target.received.values().sum::<u32>(), received);

        // From the start again, ledger lost: everything is resent and nothing recorded twice.
        let mut fresh = Saved::default();
        prop_assert!(run(&pages, limits, &mut fresh, &mut target, None));
        prop_assert_eq!(&target.recorded, &first);
    }

    /// Distinct events never share a unique id, whatever the source's ids contain: the same
    /// text cut into (source, order, sub) at different places gives different ids.
    #[test]
    fn unique_ids_are_injective(
        text in "[a:%3A]{0,8}",
        cuts in (0usize..9, 0usize..9, 0usize..9, 0usize..9),
        kinds in (0usize..4, 0usize..4),
    ) {
        let chars: Vec<char> = text.chars().collect();
        let n = chars.len();
        let part = |from: usize, to: usize| chars[from..to].iter().collect::<String>();
        let parts = |i: usize, j: usize| {
            let (i, j) = (i.min(n), j.min(n));
            let (i, j) = (i.min(j), i.max(j));
            (part(0, i), part(i, j), part(j, n))
        };
        let a = parts(cuts.0, cuts.1);
        let b = parts(cuts.2, cuts.3);
        let id = |(s, o, sub): &(String, String, String), k: usize| {
            unique_id(s, o, OrderEventKind::ALL[k], Some(sub))
        };
        prop_assert_eq!(id(&a, kinds.0) == id(&b, kinds.1), a == b && kinds.0 == kinds.1);
    }
}
