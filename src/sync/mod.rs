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
pub mod cache;
pub mod connect;
pub mod credentials;
pub mod error;
pub mod object;
pub mod order;
pub mod segment;

use audience_core::{ApplyControl, OrderDestination, OrderSource, Source, Target};
use url::Url;

pub use audience::{full_run_reason, record_full_resync};
pub use cache::ConnectorCache;
pub use connect::{ConnectError, ConnectOptions, ConnectorFactory, DefaultConnectors};
pub use credentials::{CredentialSource, Credentials, Role};
pub use error::SyncError;
pub use object::{Connections, Executed, JobParts, NamedSource, Notice, OrderParts, SyncObject};

use crate::crd::{EventTargetRef, SourceRef, TargetRef};
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
    resolve(obj, credentials).await?.build(connectors, sandbox)
}

/// A sync's connections with the credentials read for each side: everything its connectors are
/// built from, so two equal `Resolved` build equal connectors (see [`Resolved::fingerprint`]).
pub struct Resolved<'a> {
    parts: ResolvedParts<'a>,
}

enum ResolvedParts<'a> {
    Audience {
        sources: Vec<(&'a str, SourceRef<'a>, Credentials)>,
        target: (TargetRef<'a>, Credentials),
    },
    Orders {
        source: (SourceRef<'a>, Credentials),
        sink: (EventTargetRef<'a>, Credentials),
    },
}

/// Validates `obj` and reads the credentials of each of its connections.
pub async fn resolve<'a, K: SyncObject>(
    obj: &'a K,
    credentials: &dyn CredentialSource,
) -> Result<Resolved<'a>, SyncError> {
    obj.validate().map_err(SyncError::InvalidSpec)?;
    if let Some(events) = obj.event_target() {
        return resolve_orders(obj, events, credentials).await;
    }
    let Connections { sources, target } = obj.connections()?;
    let mut resolved = Vec::with_capacity(sources.len());
    for (name, source) in sources {
        let source_creds = credentials
            .credentials(
                Role::Source,
                source.credentials(),
                connect::source_descriptor(source).default_secret_key,
            )
            .await?;
        resolved.push((name, source, source_creds));
    }
    let target_creds = credentials
        .credentials(
            Role::Target,
            target.credentials(),
            connect::target_descriptor(target).default_secret_key,
        )
        .await?;
    Ok(Resolved {
        parts: ResolvedParts::Audience {
            sources: resolved,
            target: (target, target_creds),
        },
    })
}

async fn resolve_orders<'a, K: SyncObject>(
    obj: &'a K,
    events: EventTargetRef<'a>,
    credentials: &dyn CredentialSource,
) -> Result<Resolved<'a>, SyncError> {
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
    let sink_creds = credentials
        .credentials(
            Role::Target,
            events.credentials(),
            connect::event_sink_descriptor(events).default_secret_key,
        )
        .await?;
    Ok(Resolved {
        parts: ResolvedParts::Orders {
            source: (source, source_creds),
            sink: (events, sink_creds),
        },
    })
}

impl Resolved<'_> {
    /// Builds the connectors.
    pub fn build(
        &self,
        connectors: &dyn ConnectorFactory,
        sandbox: Option<&Url>,
    ) -> Result<Prepared, SyncError> {
        match &self.parts {
            ResolvedParts::Audience { sources, target } => {
                let mut built = Vec::with_capacity(sources.len());
                for (name, source, creds) in sources {
                    built.push((
                        name.to_string(),
                        connectors.source(*source, creds, sandbox)?,
                    ));
                }
                Ok(Prepared {
                    sources: built,
                    target: Some(connectors.target(target.0, &target.1, sandbox)?),
                    orders: None,
                })
            }
            ResolvedParts::Orders { source, sink } => Ok(Prepared {
                sources: Vec::new(),
                target: None,
                orders: Some((
                    connectors.order_source(source.0, &source.1, sandbox)?,
                    connectors.event_sink(sink.0, &sink.1, sandbox)?,
                )),
            }),
        }
    }

    /// A digest of everything the connectors are built from: each connection's spec (endpoint,
    /// ids, options), the Secret data read for it, and the sandbox. Equal digests build equal
    /// connectors, so a kept connector serves while the digest stays; a rotated Secret or an
    /// edited connection changes it. Never shown anywhere (it is derived from secrets).
    pub fn fingerprint(&self, sandbox: Option<&Url>) -> u128 {
        let mut digest = Digest::default();
        digest.part(sandbox.map(Url::as_str).unwrap_or(""));
        match &self.parts {
            ResolvedParts::Audience { sources, target } => {
                digest.part("audience");
                for (name, source, creds) in sources {
                    digest.part(name);
                    digest.part(&format!("{source:?}"));
                    digest.credentials(creds);
                }
                digest.part(&format!("{:?}", target.0));
                digest.credentials(&target.1);
            }
            ResolvedParts::Orders { source, sink } => {
                digest.part("orders");
                digest.part(&format!("{:?}", source.0));
                digest.credentials(&source.1);
                digest.part(&format!("{:?}", sink.0));
                digest.credentials(&sink.1);
            }
        }
        xxhash_rust::xxh3::xxh3_128(digest.0.as_bytes())
    }
}

/// The input of [`Resolved::fingerprint`]: each part length-prefixed, so no two different
/// inputs concatenate alike.
#[derive(Default)]
struct Digest(String);

impl Digest {
    fn part(&mut self, value: &str) {
        self.0.push_str(&value.len().to_string());
        self.0.push(':');
        self.0.push_str(value);
    }

    fn credentials(&mut self, creds: &Credentials) {
        self.part(&creds.secret_name);
        self.part(&creds.key);
        self.part(&creds.value);
        for (key, value) in &creds.data {
            self.part(key);
            self.part(value);
        }
    }
}

impl Prepared {
    /// Tells each connector to forget what a run learnt (they may be kept for the next run).
    async fn reset_run_state(&self) {
        for (_, source) in &self.sources {
            source.reset_run_state().await;
        }
        if let Some(target) = &self.target {
            target.reset_run_state().await;
        }
        if let Some((source, sink)) = &self.orders {
            source.reset_run_state().await;
            sink.reset_run_state().await;
        }
    }

    /// Runs `obj` with these connectors.
    pub async fn run<K: SyncObject>(
        &self,
        obj: &K,
        control: RunControl,
    ) -> Result<Executed, SyncError> {
        self.reset_run_state().await;
        let result = self.run_once(obj, control).await;
        self.reset_run_state().await;
        result
    }

    async fn run_once<K: SyncObject>(
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
