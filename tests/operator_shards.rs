//! Sharding on the real control plane: three operator processes (in-process instances, each with
//! its own shard Leases) split 30 AudienceSyncs by the hash of their names; every sync is run by
//! exactly one process, the owner of its shard. When one process dies without releasing its
//! Leases, a survivor takes its shard once the Lease expires and runs what was asked of that
//! shard meanwhile (the gain triggers its syncs); when it comes back, the shard is handed back.
//!
//! Who ran a sync is observed three ways: the connector factory of each process records the
//! audiences it built a target for (one build per run), the Events name the reporting process,
//! and the Mailchimp simulator holds each audience's members exactly once.
//!
//! For the benchmark numbers run alone: `cargo test --test operator_shards -- --test-threads=1
//! --nocapture` (lines starting `BENCH`).

mod operator_support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use audience_operator::crd::AudienceSync;
use audience_operator::leader::LeaseSettings;
use audience_operator::operator::Operator;
use audience_operator::shard::{ShardSettings, shard_of};
use audience_sandbox::Vendor;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use operator_support::*;
use serde_json::json;

const SHARDS: u32 = 3;
const SYNCS: usize = 30;
const LEASE: Duration = Duration::from_secs(4);

fn audience(i: usize) -> String {
    format!("aud{i:02}")
}

fn sync_name(i: usize) -> String {
    format!("s{i:02}")
}

fn identity(k: usize) -> String {
    format!("shard-{k}")
}

/// One process of a sharded operator, with home shard `ordinal`.
async fn start_sharded(h: &Harness, ordinal: usize, log: &BuildLog) -> Operator {
    let mut options = h.options();
    options.settings.instance = identity(ordinal);
    options.connectors = Arc::new(RecordingConnectors {
        process: ordinal,
        inner: sandbox_connectors(),
        log: log.clone(),
    });
    let mut lease = LeaseSettings::new("audience-operator", &h.ns, identity(ordinal));
    lease.duration = LEASE;
    lease.grace = Duration::from_secs(2);
    let mut shards = ShardSettings::new(SHARDS, Some(ordinal as u32), lease);
    shards.poll = Duration::from_millis(300);
    options.shards = Some(shards);
    options.http_addr = Some("127.0.0.1:0".parse().unwrap());
    Operator::start(h.client.clone(), options)
        .await
        .expect("operator starts")
}

/// Waits (deadline) until each process holds exactly the shards given.
async fn wait_held(ops: &[Option<&Operator>], want: &[&[u32]], what: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let held: Vec<BTreeSet<u32>> = ops
            .iter()
            .map(|o| o.map(|o| o.shards().unwrap().owned()).unwrap_or_default())
            .collect();
        let wanted: Vec<BTreeSet<u32>> = want.iter().map(|w| w.iter().copied().collect()).collect();
        if held == wanted {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: held {held:?}, wanted {wanted:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn holder(h: &Harness, shard: u32) -> Option<String> {
    let api: Api<Lease> = h.api();
    api.get(&format!("audience-operator-shard-{shard}"))
        .await
        .ok()?
        .spec?
        .holder_identity
}

/// The processes that built a target for each audience (a process builds a sync's connectors
/// for its first run there, and keeps them for its later runs), from entry `from` of the log on.
fn builders(log: &BuildLog, from: usize) -> BTreeMap<String, BTreeSet<usize>> {
    let mut m: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
    for (p, a) in log.lock().unwrap().iter().skip(from) {
        m.entry(a.clone()).or_default().insert(*p);
    }
    m
}

async fn reporters(h: &Harness, name: &str) -> BTreeSet<String> {
    h.events(name)
        .await
        .iter()
        .filter_map(|e| e.reporting_instance.clone())
        .collect()
}

async fn world(prefix: &str) -> Harness {
    let h = harness(prefix, false).await;
    h.default_secrets().await;
    h.shopify().set_bucket(1e9, 1e9);
    for c in ["a@gmail.com", "b@gmail.com", "c@gmail.com"] {
        h.add_shopify(c, "C", "C");
    }
    for i in 0..SYNCS {
        h.mailchimp().create_list(&audience(i), &audience(i));
    }
    h
}

async fn create_syncs(h: &Harness) {
    for i in 0..SYNCS {
        h.create::<AudienceSync>(audience_sync(
            &sync_name(i),
            json!({"target": {"mailchimp": {"audienceId": audience(i)}}}),
        ))
        .await;
    }
}

async fn wait_all_synced(h: &Harness) {
    let api = h.api::<AudienceSync>();
    for i in 0..SYNCS {
        wait_reason(&api, &sync_name(i), "Synced").await;
    }
}

#[tokio::test]
async fn three_processes_split_the_syncs_and_take_over_a_dead_ones_shard() {
    let h = world("op-shards").await;
    let log: BuildLog = Arc::default();
    let shard = |i: usize| shard_of(&h.ns, &sync_name(i), SHARDS);
    let of_shard = |k: u32| -> Vec<usize> { (0..SYNCS).filter(|i| shard(*i) == k).collect() };
    for k in 0..SHARDS {
        assert!(
            !of_shard(k).is_empty(),
            "every shard has syncs, or the test shows nothing"
        );
    }

    let ops = vec![
        start_sharded(&h, 0, &log).await,
        start_sharded(&h, 1, &log).await,
        start_sharded(&h, 2, &log).await,
    ];
    wait_held(
        &ops.iter().map(Some).collect::<Vec<_>>(),
        &[&[0], &[1], &[2]],
        "each process holds its home shard",
    )
    .await;
    for k in 0..SHARDS {
        assert_eq!(holder(&h, k).await, Some(identity(k as usize)));
    }
    // The gauges (process-wide: the three in-process operators share one registry, and each
    // holds one shard).
    let metrics = reqwest::get(format!("http://{}/metrics", ops[0].http_addr.unwrap()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "audience_operator_owned_shards 1",
        "audience_operator_shards 3",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} not in {metrics}"
        );
    }

    // Every sync is run once, by the owner of its shard.
    let started = Instant::now();
    create_syncs(&h).await;
    wait_all_synced(&h).await;
    println!(
        "BENCH 3 shards: {SYNCS} syncs reconciled in {:?}",
        started.elapsed()
    );
    let built = builders(&log, 0);
    for i in 0..SYNCS {
        let owner = shard(i) as usize;
        assert_eq!(
            built.get(&audience(i)),
            Some(&BTreeSet::from([owner])),
            "{} (shard {owner}) was run by its owner alone",
            sync_name(i)
        );
        assert_eq!(
            reporters(&h, &sync_name(i)).await,
            BTreeSet::from([identity(owner)]),
            "only the owner reported on {}",
            sync_name(i)
        );
        assert_eq!(h.mailchimp().member_count(&audience(i)), 3);
    }
    let runs_before = log.lock().unwrap().len();
    assert_eq!(
        runs_before,
        SYNCS,
        "one run per sync: {:?}",
        log.lock().unwrap()
    );

    // Process 1 dies without releasing its Leases. While its shard has no owner, a new customer
    // arrives and each of its syncs is asked to run.
    let mut ops: Vec<Option<Operator>> = ops.into_iter().map(Some).collect();
    let killed_at = Instant::now();
    ops[1]
        .take()
        .unwrap()
        .kill()
        .await
        .expect("process 1 stops");
    h.add_shopify("late@gmail.com", "L", "L");
    for &i in &of_shard(1) {
        h.annotate::<AudienceSync>(
            &sync_name(i),
            "sync.audience-operator.io/sync-now",
            "after-takeover",
        )
        .await;
    }
    assert_eq!(
        holder(&h, 1).await,
        Some(identity(1)),
        "the dead process's Lease is still valid after the requests were made, so only the \
         takeover itself can run them"
    );
    // A survivor takes shard 1 once its Lease expires; the other keeps only its own.
    let deadline = tokio::time::Instant::now() + WAIT;
    let new_owner = loop {
        let by: Vec<usize> = [0, 2]
            .into_iter()
            .filter(|p| ops[*p].as_ref().unwrap().shards().unwrap().owns_shard(1))
            .collect();
        if let [p] = by[..] {
            break p;
        }
        assert!(by.len() < 2, "two processes hold shard 1");
        assert!(
            tokio::time::Instant::now() < deadline,
            "no survivor took shard 1"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let takeover = killed_at.elapsed();
    println!(
        "BENCH 3 shards: shard 1 taken over {takeover:?} after its owner died (lease {LEASE:?})"
    );
    let other = if new_owner == 0 { 2 } else { 0 };
    assert!(!ops[other].as_ref().unwrap().shards().unwrap().owns_shard(1));
    assert_eq!(holder(&h, 1).await, Some(identity(new_owner)));

    let api = h.api::<AudienceSync>();
    for &i in &of_shard(1) {
        wait_for(
            &api,
            &sync_name(i),
            "the sync-now run by the new owner",
            |o: &AudienceSync| {
                o.status
                    .as_ref()
                    .is_some_and(|s| s.handled_sync_now.as_deref() == Some("after-takeover"))
                    && reason(o).as_deref() == Some("Synced")
            },
        )
        .await;
    }
    println!(
        "BENCH 3 shards: shard 1's {} syncs run by the new owner {:?} after the death",
        of_shard(1).len(),
        killed_at.elapsed()
    );
    let after = builders(&log, runs_before);
    for i in 0..SYNCS {
        if shard(i) == 1 {
            assert_eq!(
                after.get(&audience(i)),
                Some(&BTreeSet::from([new_owner])),
                "{} was run by the new owner alone",
                sync_name(i)
            );
            assert_eq!(h.mailchimp().member_count(&audience(i)), 4);
            assert!(
                reporters(&h, &sync_name(i))
                    .await
                    .contains(&identity(new_owner))
            );
        } else {
            assert_eq!(
                after.get(&audience(i)),
                None,
                "{} was left alone",
                sync_name(i)
            );
            assert_eq!(h.mailchimp().member_count(&audience(i)), 3);
        }
    }

    // Process 1 comes back: the foster owner hands shard 1 back, and each holds its own again.
    ops[1] = Some(start_sharded(&h, 1, &log).await);
    wait_held(
        &ops.iter().map(|o| o.as_ref()).collect::<Vec<_>>(),
        &[&[0], &[1], &[2]],
        "shard 1 back home",
    )
    .await;
    let from = log.lock().unwrap().len();
    let i = of_shard(1)[0];
    h.sync_now::<AudienceSync>(&sync_name(i), "back-home").await;
    assert_eq!(
        builders(&log, from).get(&audience(i)),
        Some(&BTreeSet::from([1])),
        "the home process runs its shard again"
    );

    // One batch write per first run (three members), one per takeover run (the late customer),
    // none for the run back home (nothing changed): a sync run twice at once would write twice.
    let writes = vendor_writes(&h, Vendor::Mailchimp);
    println!("BENCH 3 shards: {writes} Mailchimp write calls in all");
    assert_eq!(writes, (SYNCS + of_shard(1).len()) as u64);
    for op in ops.into_iter().flatten() {
        op.shutdown().await.unwrap();
    }
    for k in 0..SHARDS {
        assert_eq!(
            holder(&h, k).await,
            None,
            "a graceful stop releases shard {k}"
        );
    }
}

/// The same 30 syncs on one unsharded process: the baseline of the benchmark (and a check that
/// without sharding every sync is still run).
#[tokio::test]
async fn one_process_runs_all_thirty() {
    let h = world("op-shards-one").await;
    let log: BuildLog = Arc::default();
    let mut options = h.options();
    options.connectors = Arc::new(RecordingConnectors {
        process: 0,
        inner: sandbox_connectors(),
        log: log.clone(),
    });
    let op = Operator::start(h.client.clone(), options).await.unwrap();
    let started = Instant::now();
    create_syncs(&h).await;
    wait_all_synced(&h).await;
    println!(
        "BENCH 1 process: {SYNCS} syncs reconciled in {:?}",
        started.elapsed()
    );
    assert_eq!(builders(&log, 0).len(), SYNCS);
    op.shutdown().await.unwrap();
}

/// Kills the binary if the test fails before it exits.
struct Reaper(u32);

impl Drop for Reaper {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &self.0.to_string()])
                .status();
        }
    }
}

/// The binary as the StatefulSet runs it: the shard count from `AUDIENCE_OPERATOR_SHARDS`, the
/// home shard from the pod name in `POD_NAME` (`…-2`). It holds shard 2's and member 2's Leases,
/// runs a sync of shard 2, says so on `/metrics`, and releases both Leases on SIGTERM.
#[tokio::test]
async fn the_binary_finds_its_shard_in_its_pod_name() {
    let h = harness("op-shards-bin", false).await;
    h.default_secrets().await;
    h.add_shopify("a@gmail.com", "A", "A");
    let name = (0..)
        .map(|i| format!("b{i}"))
        .find(|n| shard_of(&h.ns, n, SHARDS) == 2)
        .unwrap();
    let env = audience_testenv::TestEnv::shared().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_audience-operator"))
        .args(["run", "--namespace", &h.ns, "--lease-namespace", &h.ns])
        .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
        .args(["--sandbox", &h.sandbox.url()])
        .env("KUBECONFIG", env.kubeconfig_path())
        .env("POD_NAME", "audience-operator-2")
        .env("AUDIENCE_OPERATOR_SHARDS", "3")
        .env("RUST_LOG", std::env::var("OP_LOG").unwrap_or("warn".into()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("starting the binary");
    let _reaper = Reaper(child.id());
    let leases: Api<Lease> = h.api();
    let held = |name: &'static str| {
        let leases = leases.clone();
        async move {
            leases
                .get_opt(name)
                .await
                .ok()
                .flatten()
                .and_then(|l| l.spec?.holder_identity)
        }
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if held("audience-operator-shard-2").await.as_deref() == Some("audience-operator-2")
            && held("audience-operator-member-2").await.as_deref() == Some("audience-operator-2")
        {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "the operator exited");
        assert!(
            tokio::time::Instant::now() < deadline,
            "shard 2 never taken"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        held("audience-operator").await,
        None,
        "no leader Lease with sharding"
    );
    h.create::<AudienceSync>(audience_sync(&name, json!({})))
        .await;
    wait_reason(&h.api::<AudienceSync>(), &name, "Synced").await;
    assert_eq!(
        reporters(&h, &name).await,
        BTreeSet::from(["audience-operator-2".to_string()])
    );
    assert_eq!(h.members().len(), 1);
    let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.lines().any(|l| l == "audience_operator_shards 3"),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("audience_operator_owned_shards ")
                && l != "audience_operator_owned_shards 0"),
        "{metrics}"
    );

    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let deadline = std::time::Instant::now() + WAIT;
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(exit.success(), "{exit:?}");
    assert_eq!(held("audience-operator-shard-2").await, None, "released");
    assert_eq!(held("audience-operator-member-2").await, None, "released");
}
