//! What a failed run means for the next attempt. The reason it leaves is the sync layer's
//! ([`SyncError::reason`]); when to try again is the controller's policy, decided here from the
//! error's type alone.

use std::time::Duration;

use audience_core::{ConnectorError, ErrorKind};

use crate::engine::RunError;
use crate::sync::{ConnectError, SyncError};

/// How long to wait before the next attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Only a change (spec, annotation, Secret) helps.
    OnChange,
    /// A person must act (credentials); retry slowly.
    Slow,
    /// Per-object exponential backoff, at least this long (a vendor's Retry-After).
    Backoff { at_least: Option<Duration> },
    /// At the next scheduled run (the situation may resolve itself, e.g. capacity freed by hand).
    Schedule,
}

/// When to try again after `error`.
pub fn retry_for(error: &SyncError) -> Retry {
    match error {
        SyncError::InvalidSpec(_) => Retry::OnChange,
        SyncError::CredentialsMissing(_) => Retry::Slow,
        // Labelling the Secret (the watch sees it) or changing the spec retries at once.
        SyncError::CredentialsNotAllowed(_) => Retry::OnChange,
        SyncError::Connect(ConnectError::BadCredentials(_)) => Retry::Slow,
        SyncError::Connect(_) => Retry::OnChange,
        // The API server usually comes back by itself: back off, like a vendor outage.
        SyncError::Kube(_) => Retry::Backoff { at_least: None },
        SyncError::Run(e) => match e {
            RunError::InvalidMapping(_) => Retry::OnChange,
            RunError::Safety(_) => Retry::Schedule,
            RunError::Capacity(_) => Retry::Schedule,
            RunError::Source(c) | RunError::Target(c) => connector_retry(c),
        },
    }
}

fn connector_retry(c: &ConnectorError) -> Retry {
    match c.kind {
        ErrorKind::Auth | ErrorKind::InvalidConfig | ErrorKind::InvalidCredentials => Retry::Slow,
        ErrorKind::RateLimited
        | ErrorKind::Transport
        | ErrorKind::Server
        | ErrorKind::InvalidResponse => Retry::Backoff {
            at_least: c.retry_after,
        },
        ErrorKind::CapacityExceeded => Retry::Schedule,
        ErrorKind::NotFound | ErrorKind::Rejected | ErrorKind::Unsupported => Retry::Slow,
    }
}

/// Per-object exponential backoff: `base * 2^(failures-1)`, capped.
pub fn backoff_delay(failures: u32, base: Duration, max: Duration) -> Duration {
    let exp = failures.saturating_sub(1).min(20);
    base.saturating_mul(1u32 << exp).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(kind: ErrorKind) -> ConnectorError {
        ConnectorError::new("some-vendor", "GET /things", kind, "boom")
    }

    #[test]
    fn categories() {
        let auth = SyncError::Run(RunError::Target(conn(ErrorKind::Auth)));
        assert_eq!(retry_for(&auth), Retry::Slow);

        let mut limited = conn(ErrorKind::RateLimited);
        limited.retry_after = Some(Duration::from_secs(30));
        let limited = SyncError::Run(RunError::Source(limited));
        assert_eq!(
            retry_for(&limited),
            Retry::Backoff {
                at_least: Some(Duration::from_secs(30))
            }
        );

        let server = SyncError::Run(RunError::Source(conn(ErrorKind::Server)));
        assert!(matches!(retry_for(&server), Retry::Backoff { .. }));

        let invalid = SyncError::Run(RunError::InvalidMapping("x".into()));
        assert_eq!(retry_for(&invalid), Retry::OnChange);

        let kube = SyncError::Kube(kube::Error::LinesCodecMaxLineLengthExceeded);
        assert_eq!(retry_for(&kube), Retry::Backoff { at_least: None });

        assert_eq!(
            retry_for(&SyncError::CredentialsMissing("x".into())),
            Retry::Slow
        );
    }

    #[test]
    fn backoff_grows_and_caps() {
        let b = Duration::from_secs(5);
        let m = Duration::from_secs(300);
        assert_eq!(backoff_delay(1, b, m), Duration::from_secs(5));
        assert_eq!(backoff_delay(2, b, m), Duration::from_secs(10));
        assert_eq!(backoff_delay(4, b, m), Duration::from_secs(40));
        assert_eq!(backoff_delay(30, b, m), m);
    }
}
