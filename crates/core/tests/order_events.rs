//! Orders into events, rule by rule (seed 003's metrics, properties and exceptions), and the
//! batching of the events.

use std::str::FromStr;

use audience_core::event_batches::{BatchLimits, BatchSizer, KLAVIYO_BULK, plan_batches};
use audience_core::order::{
    Decimal, Order, OrderCustomer, OrderFulfillment, OrderLine, OrderRefund, OrderStatus,
};
use audience_core::order_events::{
    EventKinds, EventOptions, OrderOutcome, SentLedger, SkipReason, events_of_orders, order_events,
    unique_id,
};
use audience_core::{OrderEvent, OrderEventKind};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn at(day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, day, hour, 0, 0).unwrap()
}

fn line(id: &str, product: &str, name: &str, qty: &str, price: &str) -> OrderLine {
    OrderLine {
        line_id: id.into(),
        product_id: product.into(),
        name: name.into(),
        quantity: d(qty),
        unit_price: d(price),
        ..OrderLine::default()
    }
}

/// Seed 003's example: a t-shirt and a pair of trousers bought in Klaviyo-Boston with SPRING2015.
fn lightspeed_sale() -> Order {
    let mut shirt = line("L1", "2222", "T-shirt", "2", "15.00");
    shirt.categories = vec!["t-shirts".into(), "herr".into()];
    shirt.discount = d("5.00");
    let mut trousers = line("L2", "3333", "Byxor", "1", "40.10");
    trousers.categories = vec!["byxor".into(), "herr".into(), "rea".into()];
    Order {
        source: "lightspeed-r".into(),
        order_id: "1042".into(),
        order_number: "1042".into(),
        status: OrderStatus::Completed,
        customer: OrderCustomer {
            customer_id: "77".into(),
            email: " Anna.Svensson@Gmail.com ".into(),
            first_name: "Anna".into(),
            last_name: "Svensson".into(),
            city: "Boston".into(),
            region: "MA".into(),
            country: "US".into(),
            postal_code: "02110".into(),
            ..OrderCustomer::default()
        },
        shop_id: "1".into(),
        shop_name: "Klaviyo-Boston".into(),
        currency: "USD".into(),
        total: Some(d("60.10")),
        total_discounts: d("10.00"),
        discount_codes: vec!["SPRING2015".into()],
        discounts: vec![],
        lines: vec![shirt, trousers],
        refunds: vec![],
        fulfillments: vec![],
        placed_at: at(2, 10),
        updated_at: at(2, 10),
    }
}

fn events(order: &Order) -> Vec<OrderEvent> {
    match order_events(order, &EventOptions::default()) {
        OrderOutcome::Events(events) => events,
        other => panic!("expected events, got {other:?}"),
    }
}

fn of_kind(events: &[OrderEvent], kind: OrderEventKind) -> Vec<&OrderEvent> {
    events.iter().filter(|e| e.kind == kind).collect()
}

#[test]
fn placed_order_has_the_order_total_and_the_seeds_properties() {
    let events = events(&lightspeed_sale());
    let placed = of_kind(&events, OrderEventKind::PlacedOrder);
    assert_eq!(placed.len(), 1);
    let placed = placed[0];
    assert_eq!(placed.metric, "Placed Order");
    assert_eq!(placed.value, d("60.10"));
    assert_eq!(placed.currency, "USD");
    assert_eq!(placed.email.as_str(), "anna.svensson@gmail.com");
    assert_eq!(placed.occurred_at, at(2, 10));
    assert!(!placed.backfill);
    assert_eq!(placed.unique_id, "lightspeed-r:1042:placed");
    assert_eq!(placed.person.first_name, "Anna");
    assert_eq!(placed.person.city, "Boston");
    assert_eq!(
        placed.properties,
        json!({
            "Categories": ["t-shirts", "herr", "byxor", "rea"],
            "DiscountCodes": ["SPRING2015"],
            "EmailDomain": "gmail.com",
            "IsDiscounted": true,
            "Items": ["T-shirt", "Byxor"],
            "ItemCount": 3,
            "Shop": "Klaviyo-Boston",
            "ShopID": "1",
            "TotalDiscounts": 10,
        })
    );
}

#[test]
fn ordered_product_is_one_event_per_line_with_category_name_product_quantity_and_price() {
    let events = events(&lightspeed_sale());
    let products = of_kind(&events, OrderEventKind::OrderedProduct);
    assert_eq!(products.len(), 2);
    assert_eq!(products[0].metric, "Ordered Product");
    assert_eq!(products[0].unique_id, "lightspeed-r:1042:product:L1");
    assert_eq!(products[0].value, d("30.00"));
    assert_eq!(
        products[0].properties,
        json!({
            "Category": "t-shirts",
            "EmailDomain": "gmail.com",
            "Name": "T-shirt",
            "ProductID": "2222",
            "Quantity": 2,
            "Price": 15,
        })
    );
    assert_eq!(products[1].properties["Price"], json!(40.1));
    assert_eq!(products[1].unique_id, "lightspeed-r:1042:product:L2");
    // A sale with nothing else gives exactly Placed Order + one Ordered Product per line.
    assert_eq!(events.len(), 3);
}

#[test]
fn a_refund_after_the_fact_yields_one_refunded_order_and_nothing_else() {
    let first = lightspeed_sale();
    let mut ledger = SentLedger::new();
    let sent = events_of_orders(
        std::slice::from_ref(&first),
        &EventOptions::default(),
        Some(&ledger),
    );
    assert_eq!(sent.events.len(), 3);
    ledger.record(&sent.events);

    // The source re-reads the changed order whole, with its refund of the trousers.
    let mut changed = first.clone();
    changed.refunds.push(OrderRefund {
        refund_id: "R9".into(),
        refunded_at: at(5, 9),
        amount: d("40.10"),
        line_ids: vec!["L2".into()],
    });
    changed.updated_at = at(5, 9);
    let again = events_of_orders(&[changed], &EventOptions::default(), Some(&ledger));
    assert_eq!(again.already_sent, 3);
    assert_eq!(again.events.len(), 1, "{:?}", again.events);
    let refund = &again.events[0];
    assert_eq!(refund.kind, OrderEventKind::RefundedOrder);
    assert_eq!(refund.metric, "Refunded Order");
    assert_eq!(refund.unique_id, "lightspeed-r:1042:refunded:R9");
    assert_eq!(refund.value, d("40.10"));
    assert_eq!(refund.occurred_at, at(5, 9));
    assert_eq!(
        refund.properties,
        json!({
            "Categories": ["byxor", "herr", "rea"],
            "DiscountCodes": ["SPRING2015"],
            "EmailDomain": "gmail.com",
            "IsDiscounted": true,
            "Items": ["Byxor"],
            "ItemCount": 1,
            "TotalDiscounts": 10,
        })
    );
}

#[test]
fn a_lightspeed_r_shipment_is_a_shipped_order_and_a_shopify_fulfilment_a_fulfilled_order() {
    let mut sale = lightspeed_sale();
    sale.fulfillments.push(OrderFulfillment {
        fulfillment_id: "S1".into(),
        fulfilled_at: at(3, 12),
        line_ids: vec![],
    });
    let shipped = events(&sale);
    let shipped = of_kind(&shipped, OrderEventKind::FulfilledOrder);
    assert_eq!(shipped.len(), 1);
    assert_eq!(shipped[0].metric, "Shipped Order");
    assert_eq!(shipped[0].value, d("60.10"));

    let mut order = lightspeed_sale();
    order.source = "shopify".into();
    order.order_id = "gid://shopify/Order/5001".into();
    order.lines[0].collections = vec!["Summer".into(), "Men".into()];
    order.lines[1].collections = vec!["Men".into(), "Sale".into()];
    order.fulfillments.push(OrderFulfillment {
        fulfillment_id: "gid://shopify/Fulfillment/9".into(),
        fulfilled_at: at(3, 12),
        line_ids: vec!["L1".into(), "L2".into()],
    });
    let events = events(&order);
    let fulfilled = of_kind(&events, OrderEventKind::FulfilledOrder);
    assert_eq!(fulfilled[0].metric, "Fulfilled Order");
    assert_eq!(
        fulfilled[0].properties,
        json!({
            "Items": ["T-shirt", "Byxor"],
            "Collections": ["Summer", "Men", "Sale"],
            "DiscountCodes": ["SPRING2015"],
            "TotalDiscounts": 10,
        })
    );
    // Colons in the source's ids are escaped, so the id has exactly four parts.
    assert_eq!(
        fulfilled[0].unique_id,
        "shopify:gid%3A//shopify/Order/5001:fulfilled:gid%3A//shopify/Fulfillment/9"
    );
    assert_eq!(fulfilled[0].unique_id.matches(':').count(), 3);
}

#[test]
fn orders_worth_zero_are_not_synced() {
    let mut order = lightspeed_sale();
    order.total = Some(d("0.00"));
    assert_eq!(
        order_events(&order, &EventOptions::default()),
        OrderOutcome::Skipped(SkipReason::ZeroValue)
    );
}

#[test]
fn orders_without_an_email_are_not_synced_and_neither_are_invalid_ones() {
    let mut order = lightspeed_sale();
    order.customer.email = "  ".into();
    assert_eq!(
        order_events(&order, &EventOptions::default()),
        OrderOutcome::Skipped(SkipReason::NoEmail)
    );
    order.customer.email = "anna at gmail".into();
    assert_eq!(
        order_events(&order, &EventOptions::default()),
        OrderOutcome::Skipped(SkipReason::InvalidEmail)
    );
}

#[test]
fn shipments_not_tied_to_a_customer_are_not_synced() {
    let mut order = lightspeed_sale();
    order.customer = OrderCustomer::default();
    order.fulfillments.push(OrderFulfillment {
        fulfillment_id: "S1".into(),
        fulfilled_at: at(3, 12),
        line_ids: vec![],
    });
    let page = events_of_orders(&[order], &EventOptions::default(), None);
    assert!(page.events.is_empty());
    assert_eq!(page.skipped.get(&SkipReason::NoEmail), Some(&1));
}

#[test]
fn open_and_cancelled_orders_give_nothing_and_are_counted() {
    let mut open = lightspeed_sale();
    open.status = OrderStatus::Open;
    let mut cancelled = lightspeed_sale();
    cancelled.order_id = "1043".into();
    cancelled.status = OrderStatus::Cancelled;
    // A cancelled order is not even validated: its malformation does not matter.
    cancelled.total = None;
    let page = events_of_orders(&[open, cancelled], &EventOptions::default(), None);
    assert!(page.events.is_empty());
    assert!(page.rejected.is_empty());
    assert_eq!(page.skipped.get(&SkipReason::NotCompleted), Some(&1));
    assert_eq!(page.skipped.get(&SkipReason::Cancelled), Some(&1));
}

#[test]
fn malformed_orders_are_rejected_whole_with_their_reason() {
    type Edit = Box<dyn Fn(&mut Order)>;
    let cases: Vec<(&str, Edit)> = vec![
        ("no total", Box::new(|o| o.total = None)),
        ("no currency", Box::new(|o| o.currency = String::new())),
        ("ISO 4217", Box::new(|o| o.currency = "ABC".into())),
        ("ISO 4217", Box::new(|o| o.currency = "usd".into())),
        ("ISO 4217", Box::new(|o| o.currency = "XXX".into())),
        (
            "negative quantity",
            Box::new(|o| o.lines[1].quantity = d("-1")),
        ),
        (
            "no product",
            Box::new(|o| o.lines[0].product_id = " ".into()),
        ),
        ("no id", Box::new(|o| o.lines[0].line_id = String::new())),
        (
            "appears twice",
            Box::new(|o| o.lines[1].line_id = "L1".into()),
        ),
        ("negative", Box::new(|o| o.total = Some(d("-3")))),
        (
            "does not have",
            Box::new(|o| {
                o.refunds.push(OrderRefund {
                    refund_id: "R1".into(),
                    refunded_at: at(4, 1),
                    amount: d("1"),
                    line_ids: vec!["L7".into()],
                })
            }),
        ),
        (
            "before 1990",
            Box::new(|o| o.placed_at = Utc.with_ymd_and_hms(1989, 12, 31, 0, 0, 0).unwrap()),
        ),
    ];
    for (expected, edit) in cases {
        let mut order = lightspeed_sale();
        edit(&mut order);
        let good = lightspeed_sale();
        let mut other = good.clone();
        other.order_id = "2000".into();
        let page = events_of_orders(&[order, other], &EventOptions::default(), None);
        assert_eq!(page.rejected.len(), 1, "{expected}");
        assert_eq!(page.rejected[0].order_id, "1042");
        assert!(
            page.rejected[0].reason.contains(expected),
            "{expected}: {}",
            page.rejected[0].reason
        );
        // None of the malformed order's events, all of the good one's.
        assert!(
            page.events.iter().all(|e| e.order_id == "2000"),
            "{expected}"
        );
        assert_eq!(page.events.len(), 3, "{expected}");
    }
    // Real currencies other than USD are fine.
    let mut order = lightspeed_sale();
    order.currency = "SEK".into();
    assert!(matches!(
        order_events(&order, &EventOptions::default()),
        OrderOutcome::Events(_)
    ));
}

#[test]
fn history_before_the_sync_started_is_backfill_and_news_after_it_is_live() {
    let mut order = lightspeed_sale();
    order.refunds.push(OrderRefund {
        refund_id: "R1".into(),
        refunded_at: at(20, 9),
        amount: d("15"),
        line_ids: vec!["L1".into()],
    });
    let options = EventOptions {
        kinds: EventKinds::all(),
        live_from: Some(at(10, 0)),
    };
    let OrderOutcome::Events(events) = order_events(&order, &options) else {
        panic!()
    };
    for event in &events {
        let expect = event.kind != OrderEventKind::RefundedOrder;
        assert_eq!(event.backfill, expect, "{}", event.unique_id);
    }
}

#[test]
fn only_the_enabled_kinds_are_produced() {
    let mut order = lightspeed_sale();
    order.refunds.push(OrderRefund {
        refund_id: "R1".into(),
        refunded_at: at(4, 9),
        amount: d("15"),
        line_ids: vec![],
    });
    let options = EventOptions {
        kinds: EventKinds::only(&[OrderEventKind::RefundedOrder]),
        live_from: None,
    };
    let OrderOutcome::Events(events) = order_events(&order, &options) else {
        panic!()
    };
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, OrderEventKind::RefundedOrder);
    // All lines refunded when the source names none.
    assert_eq!(events[0].properties["ItemCount"], json!(3));
}

#[test]
fn kinds_are_named_as_the_order_sync_spec_names_them() {
    for kind in OrderEventKind::ALL {
        assert_eq!(OrderEventKind::from_spec_name(kind.spec_name()), Some(kind));
    }
    assert_eq!(
        OrderEventKind::from_spec_name("fulfilledOrder"),
        Some(OrderEventKind::FulfilledOrder)
    );
    assert_eq!(OrderEventKind::from_spec_name("shippedOrder"), None);
    assert_eq!(EventKinds::default(), EventKinds::all());
}

#[test]
fn money_is_decimal_not_float() {
    let mut order = lightspeed_sale();
    order.lines = vec![
        line("A", "1", "a", "1", "0.1"),
        line("B", "2", "b", "1", "0.2"),
    ];
    order.total = Some(d("0.3"));
    order.total_discounts = d("0.10");
    let events = events(&order);
    let values: Decimal = of_kind(&events, OrderEventKind::OrderedProduct)
        .iter()
        .map(|e| e.value)
        .sum();
    assert_eq!(values, events[0].value);
    assert_eq!(events[0].properties["TotalDiscounts"], json!(0.1));
}

#[test]
fn an_order_listed_twice_gives_its_events_once() {
    let order = lightspeed_sale();
    let page = events_of_orders(&[order.clone(), order], &EventOptions::default(), None);
    assert_eq!(page.events.len(), 3);
    assert_eq!(page.already_sent, 3);
    assert_eq!(page.orders, 1);
}

#[test]
fn unique_ids_of_different_events_never_collide() {
    let a = unique_id("shopify", "a:b", OrderEventKind::OrderedProduct, Some("c"));
    let b = unique_id("shopify", "a", OrderEventKind::OrderedProduct, Some("b:c"));
    let c = unique_id(
        "shopify",
        "a%3Ab",
        OrderEventKind::OrderedProduct,
        Some("c"),
    );
    assert_ne!(a, b);
    assert_ne!(a, c);
    assert_ne!(b, c);
}

/// Sizes as a JSON encoder would give them, roughly: enough to test the cuts.
struct JsonSizer;

impl BatchSizer for JsonSizer {
    fn overhead(&self) -> usize {
        100
    }
    fn profile_bytes(&self, _: usize, event: &OrderEvent) -> usize {
        60 + event.email.as_str().len()
    }
    fn event_bytes(&self, _: usize, event: &OrderEvent) -> usize {
        serde_json::to_vec(event).unwrap().len()
    }
}

fn many_orders(n: usize, lines: usize) -> Vec<Order> {
    (0..n)
        .map(|i| {
            let mut order = lightspeed_sale();
            order.order_id = format!("{i}");
            order.customer.email = format!("c{}@shop.io", i % 7);
            order.lines = (0..lines)
                .map(|l| line(&format!("L{l}"), "p", "n", "1", "2"))
                .collect();
            order
        })
        .collect()
}

#[test]
fn batches_hold_at_most_a_thousand_events_and_never_split_an_order() {
    // 625 orders of 4 events each: 2,500 events in three batches (1000, 1000, 500), cut on
    // order boundaries.
    let page = events_of_orders(&many_orders(625, 3), &EventOptions::default(), None);
    assert_eq!(page.events.len(), 2500);
    let batches = plan_batches(&page.events, KLAVIYO_BULK, &JsonSizer);
    assert_eq!(batches, vec![0..1000, 1000..2000, 2000..2500]);
    // 7-event orders: a batch ends where the next order would pass 1,000 (142 × 7 = 994).
    let page = events_of_orders(&many_orders(300, 6), &EventOptions::default(), None);
    let batches = plan_batches(&page.events, KLAVIYO_BULK, &JsonSizer);
    assert_eq!(batches[0], 0..994);
    for range in &batches {
        let first = &page.events[range.start];
        assert_eq!(first.kind, OrderEventKind::PlacedOrder, "starts an order");
        assert!(range.len() <= 1000);
    }
    assert_eq!(batches.last().unwrap().end, page.events.len());
}

#[test]
fn batches_stay_under_the_byte_limit_and_an_order_too_large_for_one_is_split() {
    let page = events_of_orders(&many_orders(40, 4), &EventOptions::default(), None);
    let limits = BatchLimits {
        max_events: 1000,
        max_bytes: 8_000,
    };
    let batches = plan_batches(&page.events, limits, &JsonSizer);
    assert!(batches.len() > 1);
    for range in &batches {
        let events = &page.events[range.clone()];
        let emails: std::collections::HashSet<_> = events.iter().map(|e| &e.email).collect();
        let bytes = 100
            + emails.iter().map(|e| 61 + e.as_str().len()).sum::<usize>()
            + events
                .iter()
                .map(|e| JsonSizer.event_bytes(0, e) + 1)
                .sum::<usize>();
        assert!(bytes <= limits.max_bytes, "{bytes}");
        assert_eq!(events[0].kind, OrderEventKind::PlacedOrder);
    }
    // One order of 2,001 events: three batches, split inside the order.
    let page = events_of_orders(&many_orders(1, 2000), &EventOptions::default(), None);
    let batches = plan_batches(&page.events, KLAVIYO_BULK, &JsonSizer);
    assert_eq!(batches, vec![0..1000, 1000..2000, 2000..2001]);
    assert!(plan_batches(&[], KLAVIYO_BULK, &JsonSizer).is_empty());
}

/// The rules every target shares decide the same way for events and for order stores:
/// `sendable` skips and rejects exactly what `order_events` skips and rejects.
#[test]
fn sendable_agrees_with_order_events() {
    use audience_core::order_events::{Unsendable, sendable};
    let good = lightspeed_sale();
    let mut zero = good.clone();
    zero.total = Some(Decimal::ZERO);
    let mut no_email = good.clone();
    no_email.customer.email.clear();
    let mut bad_email = good.clone();
    bad_email.customer.email = "not an address".into();
    let mut cancelled = good.clone();
    cancelled.status = audience_core::order::OrderStatus::Cancelled;
    let mut no_total = good.clone();
    no_total.total = None;
    let mut negative = good.clone();
    negative.lines[0].quantity = d("-1");
    for order in [
        good, zero, no_email, bad_email, cancelled, no_total, negative,
    ] {
        let events = order_events(&order, &EventOptions::default());
        match (sendable(&order), events) {
            (Ok(email), OrderOutcome::Events(_)) => {
                assert_eq!(email.as_str(), order.customer.email.trim().to_lowercase())
            }
            (Err(Unsendable::Skipped(a)), OrderOutcome::Skipped(b)) => assert_eq!(a, b),
            (Err(Unsendable::Rejected(a)), OrderOutcome::Rejected(b)) => assert_eq!(a, b),
            (s, e) => panic!("sendable {s:?} but order_events {e:?}"),
        }
    }
}
