//! Why a run did not succeed, and what that means for the condition and the next attempt.

use std::time::Duration;

use audience_core::{ConnectorError, ErrorKind};

use crate::connect::ConnectError;
use crate::crd::PendingApproval;
use crate::engine::RunError;
use crate::status::Reason;

/// A failed reconcile step.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The spec is unusable beyond what the API server checks.
    #[error("{0}")]
    InvalidSpec(String),
    /// A referenced Secret or key is missing or empty.
    #[error("{0}")]
    CredentialsMissing(String),
    /// A connector could not be built.
    #[error("{0}")]
    Connect(#[from] ConnectError),
    /// The run failed.
    #[error("{0}")]
    Run(#[from] RunError),
    /// Talking to Kubernetes failed.
    #[error("kubernetes: {0}")]
    Kube(#[from] kube::Error),
}

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

impl SyncError {
    /// The `Ready` reason this error leaves.
    pub fn reason(&self) -> Reason {
        match self {
            SyncError::InvalidSpec(_) => Reason::InvalidSpec,
            SyncError::CredentialsMissing(_) => Reason::CredentialsMissing,
            SyncError::Connect(ConnectError::BadCredentials(_)) => Reason::AuthFailed,
            SyncError::Connect(_) => Reason::InvalidSpec,
            SyncError::Run(e) => run_reason(e),
            SyncError::Kube(_) => Reason::TargetError,
        }
    }

    /// When to try again.
    pub fn retry(&self) -> Retry {
        match self {
            SyncError::InvalidSpec(_) => Retry::OnChange,
            SyncError::CredentialsMissing(_) => Retry::Slow,
            SyncError::Connect(ConnectError::BadCredentials(_)) => Retry::Slow,
            SyncError::Connect(_) => Retry::OnChange,
            SyncError::Kube(_) => Retry::Backoff { at_least: None },
            SyncError::Run(e) => match e {
                RunError::InvalidMapping(_) => Retry::OnChange,
                RunError::Safety(_) => Retry::Schedule,
                RunError::Capacity(_) => Retry::Schedule,
                RunError::Source(c) | RunError::Target(c) => connector_retry(c),
            },
        }
    }

    /// The plan waiting for approval, on a safety stop.
    pub fn pending_approval(&self) -> Option<PendingApproval> {
        match self {
            SyncError::Run(RunError::Safety(stop)) => Some(PendingApproval {
                plan_id: stop.plan_id.clone(),
                removals: stop.removals,
                audience: stop.audience,
                percent: round1(stop.share),
                limit_percent: round1(stop.limit),
            }),
            _ => None,
        }
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn run_reason(e: &RunError) -> Reason {
    match e {
        RunError::InvalidMapping(_) => Reason::InvalidSpec,
        RunError::Safety(_) => Reason::SafetyStop,
        RunError::Capacity(_) => Reason::CapacityExceeded,
        RunError::Source(c) => connector_reason(c, Reason::SourceError),
        RunError::Target(c) => connector_reason(c, Reason::TargetError),
    }
}

fn connector_reason(c: &ConnectorError, otherwise: Reason) -> Reason {
    match c.kind {
        ErrorKind::Auth => Reason::AuthFailed,
        ErrorKind::RateLimited => Reason::RateLimited,
        ErrorKind::CapacityExceeded => Reason::CapacityExceeded,
        _ => otherwise,
    }
}

fn connector_retry(c: &ConnectorError) -> Retry {
    match c.kind {
        ErrorKind::Auth | ErrorKind::InvalidConfig => Retry::Slow,
        ErrorKind::RateLimited => Retry::Backoff {
            at_least: c.retry_after,
        },
        ErrorKind::Transport | ErrorKind::Server | ErrorKind::InvalidResponse => Retry::Backoff {
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
    use audience_core::SafetyStop;

    use super::*;

    fn conn(kind: ErrorKind) -> ConnectorError {
        ConnectorError::new("mailchimp", "GET /lists/{list_id}", kind, "boom")
    }

    #[test]
    fn categories() {
        let auth = SyncError::Run(RunError::Target(conn(ErrorKind::Auth)));
        assert_eq!(auth.reason(), Reason::AuthFailed);
        assert_eq!(auth.retry(), Retry::Slow);

        let mut limited = conn(ErrorKind::RateLimited);
        limited.retry_after = Some(Duration::from_secs(30));
        let limited = SyncError::Run(RunError::Source(limited));
        assert_eq!(limited.reason(), Reason::RateLimited);
        assert_eq!(
            limited.retry(),
            Retry::Backoff {
                at_least: Some(Duration::from_secs(30))
            }
        );

        let server = SyncError::Run(RunError::Source(conn(ErrorKind::Server)));
        assert_eq!(server.reason(), Reason::SourceError);
        assert!(matches!(server.retry(), Retry::Backoff { .. }));

        let invalid = SyncError::Run(RunError::InvalidMapping("x".into()));
        assert_eq!(invalid.reason(), Reason::InvalidSpec);
        assert_eq!(invalid.retry(), Retry::OnChange);

        let stop = SyncError::Run(RunError::Safety(SafetyStop {
            removals: 50,
            audience: 100,
            share: 50.0,
            limit: 10.0,
            plan_id: "abc".into(),
        }));
        assert_eq!(stop.reason(), Reason::SafetyStop);
        assert_eq!(stop.pending_approval().unwrap().plan_id, "abc");

        assert_eq!(
            SyncError::CredentialsMissing("x".into()).retry(),
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
