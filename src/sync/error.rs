//! Why a sync did not succeed, as the controller and `sync -f` both report it: the `Ready`
//! reason it leaves, and the plan waiting for approval on a safety stop. Categories come from the
//! error types (the connector's [`ErrorKind`], the step that failed), never from message text.

use audience_core::{ConnectorError, ErrorKind};

use super::connect::ConnectError;
use crate::crd::PendingApproval;
use crate::engine::RunError;
use crate::status::Reason;

/// A failed step of a sync.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The spec is unusable beyond what the API server checks.
    #[error("{0}")]
    InvalidSpec(String),
    /// A referenced Secret or key is missing or empty.
    #[error("{0}")]
    CredentialsMissing(String),
    /// The operator will not use that Secret (it does not opt in), or will not send credentials
    /// to that endpoint (its host is not allowed).
    #[error("{0}")]
    CredentialsNotAllowed(String),
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

impl SyncError {
    /// The `Ready` reason this error leaves.
    pub fn reason(&self) -> Reason {
        match self {
            SyncError::InvalidSpec(_) => Reason::InvalidSpec,
            SyncError::CredentialsMissing(_) => Reason::CredentialsMissing,
            SyncError::CredentialsNotAllowed(_) => Reason::CredentialsNotAllowed,
            SyncError::Connect(ConnectError::BadCredentials(_)) => Reason::AuthFailed,
            SyncError::Connect(ConnectError::EndpointNotAllowed(_)) => {
                Reason::CredentialsNotAllowed
            }
            SyncError::Connect(_) => Reason::InvalidSpec,
            SyncError::Run(e) => run_reason(e),
            SyncError::Kube(_) => Reason::KubernetesError,
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
        ErrorKind::Auth | ErrorKind::InvalidCredentials => Reason::AuthFailed,
        ErrorKind::RateLimited => Reason::RateLimited,
        ErrorKind::CapacityExceeded => Reason::CapacityExceeded,
        _ => otherwise,
    }
}

#[cfg(test)]
mod tests {
    use audience_core::SafetyStop;

    use super::*;

    fn conn(kind: ErrorKind) -> ConnectorError {
        ConnectorError::new("mailchimp", "GET /lists/{list_id}", kind, "boom")
    }

    #[test]
    fn reasons_follow_the_error_types() {
        let auth = SyncError::Run(RunError::Target(conn(ErrorKind::Auth)));
        assert_eq!(auth.reason(), Reason::AuthFailed);
        let limited = SyncError::Run(RunError::Source(conn(ErrorKind::RateLimited)));
        assert_eq!(limited.reason(), Reason::RateLimited);
        let server = SyncError::Run(RunError::Source(conn(ErrorKind::Server)));
        assert_eq!(server.reason(), Reason::SourceError);
        let server = SyncError::Run(RunError::Target(conn(ErrorKind::Server)));
        assert_eq!(server.reason(), Reason::TargetError);
        let invalid = SyncError::Run(RunError::InvalidMapping("x".into()));
        assert_eq!(invalid.reason(), Reason::InvalidSpec);
        let kube = SyncError::Kube(kube::Error::LinesCodecMaxLineLengthExceeded);
        assert_eq!(kube.reason(), Reason::KubernetesError);
        let stop = SyncError::Run(RunError::Safety(SafetyStop {
            removals: 50,
            audience: 100,
            share: 50.0,
            limit: 10.0,
            plan_id: "abc".into(),
        }));
        assert_eq!(stop.reason(), Reason::SafetyStop);
        assert_eq!(stop.pending_approval().unwrap().plan_id, "abc");
    }
}
