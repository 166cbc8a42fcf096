//! Leader election on a `coordination.k8s.io/v1` Lease (through `kube-lease-manager`), so that two
//! replicas never sync the same object. The elector renews the lease in the background and
//! reports leadership changes on a watch channel; dropping [`Leadership`] releases the lease.

use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Lease timing.
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    pub name: String,
    pub namespace: String,
    /// This replica's identity (pod name, or host name and pid).
    pub identity: String,
    /// How long a lease is valid without renewal.
    pub duration: Duration,
    /// How long before expiry the holder renews.
    pub grace: Duration,
}

impl LeaseSettings {
    pub fn new(
        name: impl Into<String>,
        namespace: impl Into<String>,
        identity: impl Into<String>,
    ) -> Self {
        LeaseSettings {
            name: name.into(),
            namespace: namespace.into(),
            identity: identity.into(),
            duration: Duration::from_secs(15),
            grace: Duration::from_secs(5),
        }
    }
}

/// A running elector.
pub struct Leadership {
    rx: watch::Receiver<bool>,
    handle: Option<JoinHandle<Result<kube_lease_manager::LeaseManager, LeaseManagerError>>>,
}

impl Leadership {
    /// Starts competing for the lease.
    pub async fn start(
        client: Client,
        settings: &LeaseSettings,
    ) -> Result<Leadership, LeaseManagerError> {
        let manager = LeaseManagerBuilder::new(client, &settings.name)
            .with_namespace(&settings.namespace)
            .with_identity(&settings.identity)
            .with_duration(settings.duration.as_secs().max(2))
            .with_grace(
                settings
                    .grace
                    .as_secs()
                    .clamp(1, settings.duration.as_secs().max(2) - 1),
            )
            .build()
            .await?;
        let (rx, handle) = manager.watch().await;
        Ok(Leadership {
            rx,
            handle: Some(handle),
        })
    }

    /// A receiver of leadership changes (true while leader).
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.rx.clone()
    }

    pub fn is_leader(&self) -> bool {
        *self.rx.borrow()
    }

    /// Stops renewing without releasing: the lease expires on its own, as a killed process's
    /// does (the sharding tests simulate a crash with it).
    pub fn abandon(mut self) {
        if let Some(handle) = self.handle.take() {
            handle.abort();
        }
    }

    /// Releases the lease (when held) and stops the elector.
    pub async fn release(mut self) {
        let handle = self.handle.take();
        drop(self);
        if let Some(handle) = handle {
            match tokio::time::timeout(Duration::from_secs(5), handle).await {
                Ok(Ok(Ok(_))) => tracing::info!("leader lease released"),
                Ok(Ok(Err(e))) => tracing::warn!(error = %e, "releasing the leader lease"),
                Ok(Err(e)) => tracing::warn!(error = %e, "leader elector task failed"),
                Err(_) => tracing::warn!("timed out releasing the leader lease"),
            }
        }
    }
}
