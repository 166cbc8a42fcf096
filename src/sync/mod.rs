//! The one path from a sync object to a finished run, shared by the controller and `sync -f`:
//!
//! ```text
//! object ──validate──▶ connections (SourceRef, TargetRef)
//!        ──CredentialSource──▶ Credentials (Kubernetes Secrets | manifest Secrets / env)
//!        ──ConnectorFactory──▶ Source + Target connectors        = Prepared
//! Prepared ──run──▶ engine (read → plan → check → apply) ──▶ Executed | SyncError
//! ```
//!
//! An order sync (OrderSync: its [`SyncObject::event_target`] is given) is prepared into an
//! order source and an event sink instead, and runs through [`SyncObject::execute_orders`].
//!
//! Only where credentials come from differs between the two callers; validation, vendor
//! dispatch, the run and the failure reasons are the same code.

pub mod audience;
pub mod connect;
pub mod credentials;
pub mod error;
pub mod object;
pub mod order;
pub mod segment;

use audience_core::{ApplyControl, OrderDestination, OrderSource, Source, Target};
use url::Url;

pub use audience::{full_run_reason, record_full_resync};
pub use connect::{ConnectError, ConnectOptions, ConnectorFactory, DefaultConnectors};
pub use credentials::{CredentialSource, Credentials, Role};
pub use error::SyncError;
pub use object::{Connections, Executed, JobParts, NamedSource, Notice, OrderParts, SyncObject};

use crate::engine::ProgressFn;

/// A sync ready to run: its connectors, built from its spec and credentials.
pub struct Prepared {
    /// Each source's connector, by the name the spec gives it, in spec order.
    pub sources: Vec<(String, Box<dyn Source>)>,
    /// The audience target (`None` for an order sync).
    pub target: Option<Box<dyn Target>>,
    /// An order sync's order source and where its orders go.
    pub orders: Option<(Box<dyn OrderSource>, OrderDestination)>,
}

/// How a prepared run is steered by its caller.
#[derive(Default)]
pub struct RunControl {
    /// The plan id a person approved after a safety stop.
    pub approved_plan: Option<String>,
    /// The stop flag checked between batches.
    pub control: ApplyControl,
    pub progress: Option<ProgressFn>,
    /// Told each order cursor the target accepted during the run (OrderSync only).
    pub on_checkpoint: Option<crate::engine::CheckpointFn>,
    /// OrderSync into events: the ids the target accepted in earlier runs.
    pub sent_events: Option<audience_core::SentLedger>,
}

/// Validates `obj`, reads its credentials and builds its connectors.
pub async fn prepare<K: SyncObject>(
    obj: &K,
    credentials: &dyn CredentialSource,
    connectors: &dyn ConnectorFactory,
    sandbox: Option<&Url>,
) -> Result<Prepared, SyncError> {
    obj.validate().map_err(SyncError::InvalidSpec)?;
    if let Some(events) = obj.event_target() {
        return prepare_orders(obj, events, credentials, connectors, sandbox).await;
    }
    let Connections { sources, target } = obj.connections()?;
    let mut built = Vec::with_capacity(sources.len());
    for (name, source) in sources {
        let source_creds = credentials
            .credentials(
                Role::Source,
                source.credentials(),
                connect::source_descriptor(source).default_secret_key,
            )
            .await?;
        built.push((
            name.to_string(),
            connectors.source(source, &source_creds, sandbox)?,
        ));
    }
    let target_creds = credentials
        .credentials(
            Role::Target,
            target.credentials(),
            connect::target_descriptor(target).default_secret_key,
        )
        .await?;
    Ok(Prepared {
        sources: built,
        target: Some(connectors.target(target, &target_creds, sandbox)?),
        orders: None,
    })
}

async fn prepare_orders<K: SyncObject>(
    obj: &K,
    events: crate::crd::EventTargetRef<'_>,
    credentials: &dyn CredentialSource,
    connectors: &dyn ConnectorFactory,
    sandbox: Option<&Url>,
) -> Result<Prepared, SyncError> {
    let (_, spec) = obj
        .source_specs()
        .into_iter()
        .next()
        .ok_or_else(|| SyncError::InvalidSpec("no source".into()))?;
    let source = spec
        .get()
        .ok_or_else(|| SyncError::InvalidSpec("the source names no kind".into()))?;
    let source_creds = credentials
        .credentials(
            Role::Source,
            source.credentials(),
            connect::source_descriptor(source).default_secret_key,
        )
        .await?;
    let order_source = connectors.order_source(source, &source_creds, sandbox)?;
    let sink_creds = credentials
        .credentials(
            Role::Target,
            events.credentials(),
            connect::event_sink_descriptor(events).default_secret_key,
        )
        .await?;
    let sink = connectors.event_sink(events, &sink_creds, sandbox)?;
    Ok(Prepared {
        sources: Vec::new(),
        target: None,
        orders: Some((order_source, sink)),
    })
}

impl Prepared {
    /// Runs `obj` with these connectors.
    pub async fn run<K: SyncObject>(
        &self,
        obj: &K,
        control: RunControl,
    ) -> Result<Executed, SyncError> {
        if let Some((source, sink)) = &self.orders {
            let parts = OrderParts {
                source: source.as_ref(),
                sink,
                control: control.control,
                progress: control.progress,
                on_checkpoint: control.on_checkpoint,
                sent_events: control.sent_events,
            };
            return Ok(obj.execute_orders(parts).await?);
        }
        let target = self
            .target
            .as_ref()
            .ok_or_else(|| SyncError::InvalidSpec("no target".into()))?;
        let parts = JobParts {
            sources: self
                .sources
                .iter()
                .map(|(name, source)| NamedSource {
                    name,
                    source: source.as_ref(),
                })
                .collect(),
            target: target.as_ref(),
            approved_plan: control.approved_plan,
            control: control.control,
            progress: control.progress,
        };
        Ok(obj.execute(parts).await?)
    }
}
