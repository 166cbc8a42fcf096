//! Sharding across replicas, after Argo CD's application controller: `replicas: N` runs as a
//! StatefulSet, every sync belongs to one of `N` shards by a stable hash, and a process reconciles
//! only the syncs of the shards whose Lease (`<prefix>-shard-K`) it holds. Leader election is per
//! shard, not per process, so two pods that both believe they are shard K (a rolling update, a
//! partition) never both reconcile it: the Lease decides.
//!
//! Who holds which shard:
//! - A process with an ordinal K (the `-K` of a StatefulSet pod's name, or `--shard K`) holds a
//!   *member* Lease `<prefix>-member-K` for as long as it lives, and always competes for its
//!   *home* shard K.
//! - Every process also competes for any other shard whose member Lease is free or expired (its
//!   home pod is gone): with 3 pods and 3 shards each holds one; when a pod stops, a survivor
//!   takes its shard once the shard Lease is released (a graceful stop) or expired (a crash),
//!   that is within one lease duration plus one poll.
//! - Until one lease duration after its start a process competes only for its home shard, so
//!   replicas starting together each take their own instead of the first one up taking all.
//! - When the home pod comes back (its member Lease is held again) the foster holder hands the
//!   shard back: it stops reconciling the shard, waits until no run of that shard is in flight
//!   (see [`ShardManager::start`]'s `in_flight`), and only then releases the Lease.
//!
//! A process that gains a shard reconciles that shard's syncs at once (the controllers trigger
//! them, see `crate::controller`), so a sync-now asked while its shard had no owner is not left
//! waiting for the next resync.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::FutureExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::leader::{Leadership, LeaseSettings};
use crate::metrics::Metrics;

/// Shards are numbered `0..count`.
pub type Shards = BTreeSet<u32>;

/// The shard a sync belongs to.
///
/// The key is the sync's `namespace/name`, hashed with xxh3 (a fixed algorithm with no per-process
/// seed, unlike std's `RandomState`), so every process and every restart agrees without talking
/// to each other. Why the name and not the uid: the name is known before the object exists (a
/// person can tell which pod runs a sync from its manifest), it survives a delete and re-apply by
/// GitOps (the same pod keeps the same sync and its warm clients), and an object that does not
/// even deserialize still has one, so it is filtered like any other. Why not the credential (as
/// the guide suggests, so the per-key budgets stay exact): the Secret reference is part of the
/// spec, which changes, and a sync whose shard moves on an edit can be reconciled by two
/// processes whose caches disagree for a moment; a name never changes. The cost: syncs sharing
/// one API key can land in different processes, each with its own budget for that key (see
/// `docs/helm.md`, "Sharding").
pub fn shard_of(namespace: &str, name: &str, count: u32) -> u32 {
    if count <= 1 {
        return 0;
    }
    let key = format!("{namespace}/{name}");
    (xxhash_rust::xxh3::xxh3_64(key.as_bytes()) % u64::from(count)) as u32
}

/// The ordinal of a StatefulSet pod (`audience-operator-2` → 2).
pub fn ordinal_of(pod_name: &str) -> Option<u32> {
    pod_name.rsplit_once('-')?.1.parse().ok()
}

/// What a process needs to know about sharding.
#[derive(Debug, Clone)]
pub struct ShardSettings {
    /// How many shards there are (the StatefulSet's replicas).
    pub count: u32,
    /// This process's home shard, if it has one (a process without one only fills in for
    /// shards whose home pod is gone).
    pub ordinal: Option<u32>,
    /// The Leases are `<name>-shard-K` and `<name>-member-K`; identity, namespace and timing
    /// as in leader election.
    pub lease: LeaseSettings,
    /// How often member Leases are checked (for orphaned shards and returning home pods).
    pub poll: Duration,
    /// Other shards are not competed for until this long after the start, so that replicas
    /// starting together each take their own first instead of the first one up taking all
    /// and handing them back.
    pub settle: Duration,
}

impl ShardSettings {
    pub fn new(count: u32, ordinal: Option<u32>, lease: LeaseSettings) -> Self {
        let poll = lease.grace.max(Duration::from_secs(1));
        let settle = lease.duration;
        ShardSettings {
            count: count.max(1),
            ordinal,
            lease,
            poll,
            settle,
        }
    }

    pub fn shard_lease(&self, shard: u32) -> String {
        format!("{}-shard-{shard}", self.lease.name)
    }

    pub fn member_lease(&self, shard: u32) -> String {
        format!("{}-member-{shard}", self.lease.name)
    }

    fn lease(&self, name: String) -> LeaseSettings {
        LeaseSettings {
            name,
            ..self.lease.clone()
        }
    }
}

/// Which syncs this process may reconcile right now (the shards it holds).
#[derive(Debug, Clone)]
pub struct ShardFilter {
    pub count: u32,
    owned: watch::Receiver<Shards>,
}

impl ShardFilter {
    pub fn new(count: u32, owned: watch::Receiver<Shards>) -> Self {
        ShardFilter { count, owned }
    }

    pub fn owns(&self, namespace: &str, name: &str) -> bool {
        self.owns_shard(shard_of(namespace, name, self.count))
    }

    pub fn owns_shard(&self, shard: u32) -> bool {
        self.owned.borrow().contains(&shard)
    }

    /// The shards held now.
    pub fn owned(&self) -> Shards {
        self.owned.borrow().clone()
    }

    /// Changes of the shards held.
    pub fn subscribe(&self) -> watch::Receiver<Shards> {
        self.owned.clone()
    }
}

/// How the manager ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Running,
    /// Release every Lease (a graceful stop).
    Release,
    /// Stop renewing without releasing (what a killed pod does; tests use it).
    Abandon,
}

/// A running shard elector.
pub struct ShardManager {
    pub count: u32,
    owned: watch::Receiver<Shards>,
    end: watch::Sender<End>,
    handle: JoinHandle<()>,
}

impl ShardManager {
    /// Starts competing for shards. `in_flight` says which shards may have runs under way (the
    /// controllers publish it); a shard is released only once it is not in it.
    pub async fn start(
        client: Client,
        settings: ShardSettings,
        in_flight: watch::Receiver<Shards>,
    ) -> anyhow::Result<ShardManager> {
        if let Some(k) = settings.ordinal {
            anyhow::ensure!(
                k < settings.count,
                "shard ordinal {k} is not below the shard count {}",
                settings.count
            );
        }
        let (owned_tx, owned) = watch::channel(Shards::new());
        let (end, end_rx) = watch::channel(End::Running);
        let mut electors = BTreeMap::new();
        let member = match settings.ordinal {
            Some(k) => {
                electors.insert(
                    k,
                    Leadership::start(client.clone(), &settings.lease(settings.shard_lease(k)))
                        .await?,
                );
                Some(
                    Leadership::start(client.clone(), &settings.lease(settings.member_lease(k)))
                        .await?,
                )
            }
            None => None,
        };
        let count = settings.count;
        let handle = tokio::spawn(manage(
            client, settings, member, electors, owned_tx, in_flight, end_rx,
        ));
        Ok(ShardManager {
            count,
            owned,
            end,
            handle,
        })
    }

    pub fn filter(&self) -> ShardFilter {
        ShardFilter::new(self.count, self.owned.clone())
    }

    /// Releases every Lease held and stops.
    pub async fn release(self) {
        let _ = self.end.send(End::Release);
        let _ = self.handle.await;
    }

    /// Stops renewing without releasing: the Leases expire on their own, as a killed pod's do.
    pub async fn abandon(self) {
        let _ = self.end.send(End::Abandon);
        let _ = self.handle.await;
    }
}

/// Whether a member Lease is held and fresh: its home pod is alive. `None` when it cannot be
/// told (API error): the caller then changes nothing.
async fn member_alive(api: &Api<Lease>, name: &str) -> Option<bool> {
    let lease = match api.get_opt(name).await {
        Ok(lease) => lease,
        Err(e) => {
            tracing::debug!(lease = name, error = %e, "reading a member lease");
            return None;
        }
    };
    let Some(spec) = lease.and_then(|l| l.spec) else {
        return Some(false);
    };
    let held = spec
        .holder_identity
        .as_deref()
        .is_some_and(|h| !h.is_empty());
    let fresh = match (spec.renew_time, spec.lease_duration_seconds) {
        (Some(renewed), Some(secs)) => {
            let expiry = renewed
                .0
                .checked_add(jiff::SignedDuration::from_secs(i64::from(secs)))
                .unwrap_or(jiff::Timestamp::MAX);
            expiry > jiff::Timestamp::now()
        }
        _ => false,
    };
    Some(held && fresh)
}

#[allow(clippy::too_many_arguments)]
async fn manage(
    client: Client,
    settings: ShardSettings,
    member: Option<Leadership>,
    mut electors: BTreeMap<u32, Leadership>,
    owned_tx: watch::Sender<Shards>,
    mut in_flight: watch::Receiver<Shards>,
    mut end: watch::Receiver<End>,
) {
    let metrics = Metrics::global();
    metrics.set_shard_count(settings.count);
    let api: Api<Lease> = Api::namespaced(client.clone(), &settings.lease.namespace);
    let home = settings.ordinal;
    // Without a home shard there is nothing to settle into first.
    let settled = tokio::time::Instant::now()
        + if home.is_some() {
            settings.settle
        } else {
            Duration::ZERO
        };
    loop {
        if *end.borrow() != End::Running {
            break;
        }
        let foreign = if tokio::time::Instant::now() >= settled {
            settings.count
        } else {
            0
        };
        for shard in (0..foreign).filter(|s| Some(*s) != home) {
            let Some(alive) = member_alive(&api, &settings.member_lease(shard)).await else {
                continue;
            };
            match (alive, electors.contains_key(&shard)) {
                (false, false) => {
                    match Leadership::start(
                        client.clone(),
                        &settings.lease(settings.shard_lease(shard)),
                    )
                    .await
                    {
                        Ok(l) => {
                            tracing::info!(
                                shard,
                                "shard has no live home replica; competing for it"
                            );
                            electors.insert(shard, l);
                        }
                        Err(e) => tracing::warn!(shard, error = %e, "competing for a shard"),
                    }
                }
                (true, true) => {
                    // The home pod is back: hand its shard over. Stop reconciling it first, wait
                    // until none of its runs is under way, then release the Lease.
                    let elector = electors.remove(&shard).expect("checked above");
                    if elector.is_leader() {
                        tracing::info!(shard, "home replica is back; handing the shard over");
                        publish(&owned_tx, &electors, &metrics);
                        let drained = in_flight.wait_for(|s| !s.contains(&shard));
                        let mut stop = end.clone();
                        tokio::select! {
                            _ = drained => {}
                            _ = stop.wait_for(|e| *e != End::Running) => {}
                        }
                    }
                    if *end.borrow() == End::Abandon {
                        elector.abandon();
                    } else {
                        elector.release().await;
                    }
                }
                _ => {}
            }
        }
        publish(&owned_tx, &electors, &metrics);
        // Until the next poll, an elector's change, or the end.
        let changes: Vec<_> = electors
            .values()
            .map(|l| {
                let mut rx = l.subscribe();
                async move {
                    let _ = rx.changed().await;
                }
                .boxed()
            })
            .collect();
        let any_change = async move {
            if changes.is_empty() {
                futures::future::pending::<()>().await
            } else {
                futures::future::select_all(changes).await;
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(settings.poll) => {}
            _ = any_change => {}
            _ = end.changed() => {}
        }
    }
    // Owning nothing from here on: the controllers stop reconciling before any Lease goes.
    owned_tx.send_replace(Shards::new());
    metrics.set_owned_shards(0);
    let abandon = *end.borrow() == End::Abandon;
    if !abandon {
        let _ = in_flight.wait_for(|s| s.is_empty()).await;
    }
    for (_, elector) in electors {
        if abandon {
            elector.abandon();
        } else {
            elector.release().await;
        }
    }
    if let Some(member) = member {
        if abandon {
            member.abandon();
        } else {
            member.release().await;
        }
    }
}

fn publish(tx: &watch::Sender<Shards>, electors: &BTreeMap<u32, Leadership>, metrics: &Metrics) {
    let held: Shards = electors
        .iter()
        .filter(|(_, l)| l.is_leader())
        .map(|(s, _)| *s)
        .collect();
    metrics.set_owned_shards(held.len());
    tx.send_if_modified(|now| {
        if *now != held {
            tracing::info!(shards = ?held, "shards held");
            *now = held;
            true
        } else {
            false
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shard_of_a_name_is_fixed_and_spreads() {
        // The same in every process and run (no per-process seed).
        assert_eq!(shard_of("ns", "a", 1), 0);
        let first: Vec<u32> = (0..30)
            .map(|i| shard_of("shop", &format!("s{i}"), 3))
            .collect();
        let again: Vec<u32> = (0..30)
            .map(|i| shard_of("shop", &format!("s{i}"), 3))
            .collect();
        assert_eq!(first, again);
        for k in 0..3 {
            let n = first.iter().filter(|s| **s == k).count();
            assert!((4..=16).contains(&n), "shard {k} has {n} of 30: {first:?}");
        }
        // Pinned: these must not change between releases (every sync would move on upgrade).
        let pinned = [
            shard_of("ns", "a", 7),
            shard_of("shop", "s0", 3),
            shard_of("shop", "s1", 3),
            shard_of("agency-7", "acme-newsletter", 5),
        ];
        assert_eq!(pinned, [6, 1, 2, 2]);
    }

    #[test]
    fn ordinals_come_from_statefulset_pod_names() {
        assert_eq!(ordinal_of("audience-operator-2"), Some(2));
        assert_eq!(ordinal_of("audience-operator-12"), Some(12));
        assert_eq!(ordinal_of("audience-operator"), None);
        assert_eq!(ordinal_of("audience-operator-7d9f-x2k"), None);
    }
}
