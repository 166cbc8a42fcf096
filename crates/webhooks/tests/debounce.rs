//! The debouncer on Tokio's paused clock: time moves only when the test says (or when every task
//! is idle), so "within the window" and "after it" are exact, with no real sleeps.

use std::time::Duration;

use audience_webhooks::{Hint, Scope, Trigger, Vendor, debounce};
use tokio::sync::mpsc;
use tokio::time::{advance, timeout};

fn hint(account: &str, topic: &str, email: &str) -> Hint {
    Hint {
        vendor: Vendor::Shopify,
        account: account.into(),
        topic: topic.into(),
        scope: Scope::Customers,
        emails: vec![email.into()],
    }
}

const WINDOW: Duration = Duration::from_secs(2);

/// Nothing arrives within `d` (the paused clock jumps there if the debouncer has nothing due).
async fn quiet_for(rx: &mut mpsc::Receiver<Trigger>, d: Duration) {
    if let Ok(got) = timeout(d, rx.recv()).await {
        panic!("expected no trigger yet, got {got:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn five_hints_within_the_window_are_one_trigger() {
    let (tx, rx) = mpsc::channel(16);
    let mut triggers = debounce(WINDOW, rx);
    for i in 0..5 {
        tx.send(hint(
            "a.myshopify.com",
            if i % 2 == 0 {
                "customers/update"
            } else {
                "customers/create"
            },
            &format!("p{i}@x.co"),
        ))
        .await
        .unwrap();
        // Let the debouncer take the hint at this instant before the clock moves on.
        tokio::task::yield_now().await;
        advance(Duration::from_millis(300)).await;
    }
    // 1.5 s after the first hint: the window is still open.
    quiet_for(&mut triggers, Duration::from_millis(400)).await;
    let trigger = timeout(Duration::from_millis(200), triggers.recv())
        .await
        .expect("the window closed at 2 s")
        .expect("open");
    assert_eq!(trigger.hints, 5);
    assert_eq!(trigger.account, "a.myshopify.com");
    assert_eq!(trigger.topics.len(), 2);
    assert_eq!(trigger.emails.len(), 5);
    assert!(!trigger.emails_truncated);
    // And only one.
    quiet_for(&mut triggers, Duration::from_secs(10)).await;
}

#[tokio::test(start_paused = true)]
async fn accounts_are_debounced_apart_and_a_later_hint_opens_a_new_window() {
    let (tx, rx) = mpsc::channel(16);
    let mut triggers = debounce(WINDOW, rx);
    tx.send(hint("a.myshopify.com", "customers/update", "x@x.co"))
        .await
        .unwrap();
    tx.send(hint("b.myshopify.com", "customers/update", "y@x.co"))
        .await
        .unwrap();
    let mut accounts = vec![
        triggers.recv().await.unwrap().account,
        triggers.recv().await.unwrap().account,
    ];
    accounts.sort();
    assert_eq!(accounts, ["a.myshopify.com", "b.myshopify.com"]);
    tx.send(hint("a.myshopify.com", "customers/update", "x@x.co"))
        .await
        .unwrap();
    let again = triggers.recv().await.unwrap();
    assert_eq!(
        (again.account.as_str(), again.hints),
        ("a.myshopify.com", 1)
    );
}

#[tokio::test(start_paused = true)]
async fn a_steady_stream_still_triggers_every_window() {
    let (tx, rx) = mpsc::channel(64);
    let mut triggers = debounce(WINDOW, rx);
    let start = tokio::time::Instant::now();
    let feeder = tokio::spawn(async move {
        for _ in 0..20 {
            tx.send(hint("a.myshopify.com", "orders/create", "x@x.co"))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    let mut seen = Vec::new();
    while let Some(t) = triggers.recv().await {
        seen.push((start.elapsed(), t.hints));
    }
    feeder.await.unwrap();
    // 20 hints over 10 s: a trigger at the end of each window, none waiting for the stream to
    // stop. A window opens at the first hint after the last trigger; a hint sent at the very
    // instant a window closes may fall on either side of it (equal instants on the paused clock),
    // so windows are 2 to 2.5 s apart: 4 or 5 triggers, each within a window and a hint's gap of
    // the one before.
    assert_eq!(seen.iter().map(|(_, n)| n).sum::<usize>(), 20);
    assert!(seen.len() >= 4, "{seen:?}");
    assert!(seen[0].0 <= WINDOW, "first trigger at {:?}", seen[0].0);
    for pair in seen.windows(2) {
        assert!(
            pair[1].0 - pair[0].0 <= WINDOW + Duration::from_millis(500),
            "{seen:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn addresses_are_capped_and_the_cap_is_reported() {
    let (tx, rx) = mpsc::channel(2048);
    let mut triggers = debounce(WINDOW, rx);
    for i in 0..1500 {
        tx.send(hint(
            "a.myshopify.com",
            "customers/update",
            &format!("p{i}@x.co"),
        ))
        .await
        .unwrap();
    }
    let t = triggers.recv().await.unwrap();
    assert_eq!(t.hints, 1500);
    assert_eq!(t.emails.len(), audience_webhooks::MAX_EMAILS_PER_TRIGGER);
    assert!(t.emails_truncated);
}

#[tokio::test(start_paused = true)]
async fn closing_the_hints_flushes_what_is_pending() {
    let (tx, rx) = mpsc::channel(16);
    let mut triggers = debounce(Duration::from_secs(3600), rx);
    tx.send(hint("a.myshopify.com", "customers/update", "x@x.co"))
        .await
        .unwrap();
    drop(tx);
    let t = triggers.recv().await.expect("flushed");
    assert_eq!(t.hints, 1);
    assert!(triggers.recv().await.is_none());
}
