//! Every connector (Shopify, Lightspeed X, Lightspeed R, RetailCRM sources, the Mailchimp and the
//! Klaviyo targets) against a misbehaving vendor: 429 storms with and without `Retry-After` (and with
//! nonsense in it), 5xx bursts, timeouts, connection resets, truncated and malformed bodies, wrong
//! content types, huge bodies, nonsense rate-limit headers and error pages that echo the
//! credential. Never a panic, never a lost or doubled record, the documented `ErrorKind` when the
//! fault outlasts the retries, the secret never in an error, and a clean read once the fault ends.

mod vendor_faults_support;

use std::time::{Duration, Instant};

use audience_core::{ConnectorError, ErrorKind};
use audience_sandbox::{FaultKind, Vendor};
use vendor_faults_support::Rig;

const RECORDS: usize = 260;

fn raw(
    status: u16,
    retry_after: Option<&str>,
    content_type: Option<&str>,
    body: &str,
) -> FaultKind {
    FaultKind::Raw {
        status,
        retry_after: retry_after.map(str::to_string),
        content_type: content_type.map(str::to_string),
        body: body.to_string(),
        headers: Vec::new(),
    }
}

fn assert_secret_absent(rig: &Rig, error: &ConnectorError) {
    for text in [error.to_string(), format!("{error:?}")] {
        assert!(
            !text.contains(&rig.secret),
            "{:?}: the credential leaked: {text}",
            rig.vendor
        );
        if let Some((head, _)) = rig.secret.rsplit_once('-').filter(|(h, _)| h.len() >= 8) {
            assert!(
                !text.contains(head),
                "{:?}: the key leaked: {text}",
                rig.vendor
            );
        }
    }
}

/// Transient faults within the retry budget: the read completes whole, quickly (no hint is
/// waited on for long).
async fn transient_faults_are_retried(vendor: Vendor) {
    let rig = Rig::start(vendor, RECORDS).await;
    let started = Instant::now();
    let nonsense = [
        "inf",
        "1e400",
        "NaN",
        "-5",
        "-inf",
        "",
        "soon",
        "Wed, 99 Foo 2024 25:61:61 GMT",
    ];
    let bursts: Vec<(FaultKind, u32)> = vec![
        (raw(429, None, Some("application/json"), "{}"), 4),
        (raw(429, Some("0"), None, ""), 3),
        (FaultKind::ServerError, 4),
        (
            raw(502, None, Some("text/html"), "<html>Bad gateway</html>"),
            2,
        ),
        (FaultKind::Reset, 3),
        (FaultKind::Timeout, 1),
        (
            FaultKind::Raw {
                status: 429,
                retry_after: Some("1e400".into()),
                content_type: None,
                body: String::new(),
                headers: vec![
                    ("X-RateLimit-Reset".into(), "18446744073709551615".into()),
                    ("X-RateLimit-Remaining".into(), "-1".into()),
                    ("X-LS-API-Bucket-Level".into(), "inf/NaN".into()),
                    ("X-LS-API-Drip-Rate".into(), "-0".into()),
                ],
            },
            2,
        ),
    ];
    for (kind, count) in bursts {
        rig.fault(kind.clone(), count);
        rig.read_whole()
            .await
            .unwrap_or_else(|e| panic!("{vendor:?} after {count} × {kind:?}: {e}"));
    }
    for value in nonsense {
        rig.fault(raw(429, Some(value), None, ""), 1);
        rig.read_whole()
            .await
            .unwrap_or_else(|e| panic!("{vendor:?} after Retry-After {value:?}: {e}"));
    }
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{vendor:?}: no hint was waited on for long ({:?})",
        started.elapsed()
    );
}

/// Faults that outlast the retries or cannot be retried: the documented kind, no secret in the
/// message, and a whole read once the fault has ended.
async fn lasting_faults_fail_clearly_then_recover(vendor: Vendor) {
    let rig = Rig::start(vendor, RECORDS).await;
    let cases: Vec<(FaultKind, u32, ErrorKind)> = vec![
        (raw(429, None, None, ""), 50, ErrorKind::RateLimited),
        (FaultKind::ServerError, 50, ErrorKind::Server),
        (FaultKind::Malformed, 1, ErrorKind::InvalidResponse),
        (
            raw(
                200,
                None,
                Some("text/html"),
                "<html><body>Maintenance</body></html>",
            ),
            1,
            ErrorKind::InvalidResponse,
        ),
        (
            raw(200, None, Some("application/json"), ""),
            1,
            ErrorKind::InvalidResponse,
        ),
        (
            raw(200, None, Some("application/json"), "[1, 2, 3]"),
            1,
            ErrorKind::InvalidResponse,
        ),
        (
            FaultKind::Huge {
                bytes: 40 * 1024 * 1024,
            },
            1,
            ErrorKind::InvalidResponse,
        ),
        (FaultKind::Reset, 50, ErrorKind::Transport),
        (FaultKind::EchoCredential, 1, ErrorKind::Rejected),
    ];
    for (kind, count, expected) in cases {
        rig.fault(kind.clone(), count);
        let error = rig
            .read()
            .await
            .expect_err(&format!("{vendor:?}: {kind:?} must fail the read"));
        assert_eq!(error.kind, expected, "{vendor:?} {kind:?}: {error}");
        assert_secret_absent(&rig, &error);
        // The fault ends; the next read is whole.
        rig.sandbox().faults.clear();
        rig.read_whole()
            .await
            .unwrap_or_else(|e| panic!("{vendor:?} after {kind:?} ended: {e}"));
    }
}

macro_rules! vendor_fault_tests {
    ($($name:ident => $vendor:expr),* $(,)?) => {$(
        mod $name {
            use super::*;

            #[tokio::test]
            async fn transient_faults_are_retried_and_nothing_is_lost() {
                transient_faults_are_retried($vendor).await;
            }

            #[tokio::test]
            async fn lasting_faults_fail_with_their_kind_then_recover() {
                lasting_faults_fail_clearly_then_recover($vendor).await;
            }
        }
    )*};
}

vendor_fault_tests! {
    shopify => Vendor::Shopify,
    lightspeed_x => Vendor::LightspeedX,
    lightspeed_r => Vendor::LightspeedR,
    retailcrm => Vendor::Retailcrm,
    mailchimp => Vendor::Mailchimp,
    klaviyo => Vendor::Klaviyo,
}

/// The echoing error page on a write: the Mailchimp key never leaves in the push's error.
#[tokio::test]
async fn a_mailchimp_write_error_echoing_the_key_is_redacted() {
    let rig = Rig::start(Vendor::Mailchimp, 0).await;
    rig.fault(FaultKind::EchoCredential, 1);
    let error = rig
        .push(10)
        .await
        .expect_err("the echoed 400 fails the push");
    assert_secret_absent(&rig, &error);
}
