//! Hostile `Retry-After` values: never a panic, never an overflow, never a wait beyond the cap.

use std::time::Duration;

use audience_connectors::http::{self, MAX_WAIT, budget_for, capped_secs, parse_retry_after};

#[test]
fn nonsense_is_no_hint() {
    for value in [
        "inf",
        "-inf",
        "+inf",
        "infinity",
        "1e400",
        "NaN",
        "-5",
        "-0.5",
        "",
        "soon",
        "0x10",
        "Wed, 99 Foo 2024 25:61:61 GMT",
        "Sun, 06 Nov 1994 08:49:37 XYZ",
    ] {
        assert_eq!(parse_retry_after(value), None, "{value:?}");
    }
}

#[test]
fn sane_values_are_read_and_huge_ones_capped() {
    assert_eq!(parse_retry_after("0"), Some(Duration::ZERO));
    assert_eq!(parse_retry_after(" 2 "), Some(Duration::from_secs(2)));
    assert_eq!(parse_retry_after("1.5"), Some(Duration::from_millis(1500)));
    for huge in [
        "1e300",
        "18446744073709551616",
        "99999999999",
        "1.7976931348623157e308",
    ] {
        assert_eq!(parse_retry_after(huge), Some(MAX_WAIT), "{huge:?}");
    }
    // A date in the past is now; one far in the future is the cap.
    assert_eq!(
        parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
        Some(Duration::ZERO)
    );
    assert_eq!(
        parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT"),
        Some(MAX_WAIT)
    );
}

#[test]
fn vendor_seconds_never_panic() {
    assert_eq!(capped_secs(f64::INFINITY), MAX_WAIT);
    assert_eq!(capped_secs(f64::NAN), Duration::ZERO);
    assert_eq!(capped_secs(-1.0), Duration::ZERO);
    assert_eq!(capped_secs(1e300), MAX_WAIT);
    assert_eq!(capped_secs(0.25), Duration::from_millis(250));
}

#[tokio::test]
async fn a_huge_pause_neither_overflows_nor_is_ignored() {
    let budget = budget_for("test", "retry-after-huge-pause", 2);
    // `Instant::now() + Duration::MAX` overflows (a panic) without the cap.
    budget.pause_for(Duration::MAX);
    budget.pause_for(Duration::from_secs(u64::MAX));
    // The (capped) pause holds the key.
    let acquired = tokio::time::timeout(Duration::from_millis(50), budget.acquire()).await;
    assert!(acquired.is_err(), "the key is paused");
    let _ = http::MAX_BODY_BYTES;
}
