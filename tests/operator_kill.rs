//! Process faults (issue 14): the real binary is killed with SIGKILL at random points of a
//! 20,000-contact first push, then started again, several times over. Afterwards the audience
//! holds exactly the source's contacts with the right fields and consent, none lost, and no
//! write was repeated beyond the batches in flight when the process died.
//!
//! The same for an OrderSync backfill into Klaviyo: every event once, and a restart resumes at the
//! cursor saved during the run.
//!
//! Seeds: `AUDIENCE_OPERATOR_KILL_SEEDS` (default 3 in `make test`; `make reliability` runs 10).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use audience_operator::crd::{AudienceSync, CREDENTIALS_LABEL, OrderSync};
use audience_sandbox::mailchimp::MemberStatus;
use audience_sandbox::{RunningSandbox, Sandbox, SandboxOptions, Vendor};
use audience_testenv::TestEnv;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use serde_json::json;

const CONTACTS: usize = 20_000;
const AUDIENCE: &str = "killaud";
/// Members a Mailchimp batch call writes, and batch calls in flight at once on one key.
const BATCH: u64 = 500;
const IN_FLIGHT: u64 = 10;
const WAIT: Duration = Duration::from_secs(300);

/// Kills the operator when the test ends early, so no process outlives the test binary.
struct Operator(Child);

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(env: &TestEnv, ns: &str, sandbox: &RunningSandbox) -> Operator {
    let child = Command::new(env!("CARGO_BIN_EXE_audience-operator"))
        .args(["run", "--namespace", ns, "--no-leader-election"])
        .args(["--metrics-addr", "127.0.0.1:0", "--sandbox", &sandbox.url()])
        .env("KUBECONFIG", env.kubeconfig_path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting the binary");
    Operator(child)
}

/// A small deterministic generator (no test may depend on the clock for its choices).
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn seeds() -> u64 {
    std::env::var("AUDIENCE_OPERATOR_KILL_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

async fn secret(api: &Api<Secret>, name: &str, key: &str, value: &str) {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some([(CREDENTIALS_LABEL.to_string(), "true".to_string())].into()),
            ..Default::default()
        },
        data: Some([(key.to_string(), ByteString(value.as_bytes().to_vec()))].into()),
        ..Default::default()
    };
    api.create(&PostParams::default(), &secret).await.unwrap();
}

async fn ready_reason(api: &Api<AudienceSync>, name: &str) -> Option<String> {
    let o = api.get(name).await.ok()?;
    o.status?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.reason.clone())
}

#[tokio::test]
async fn sigkill_at_random_points_of_a_push_loses_nothing_and_repeats_no_write() {
    let env = TestEnv::shared().await;
    env.apply_crds_from_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("crds"))
        .await
        .expect("crds");
    for seed in 1..=seeds() {
        let ns = env.namespace(&format!("op-kill-{seed}")).await;
        let sandbox = Sandbox::new(SandboxOptions::default())
            .serve("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let sim = &sandbox.sandbox;
        sim.mailchimp.create_list(AUDIENCE, "Kill test");
        // Slow enough that the push takes seconds, so the kills land inside it.
        sim.faults
            .set_latency(Vendor::Mailchimp, Duration::from_millis(300));
        sim.shopify.set_bucket(1_000_000.0, 1_000_000.0);
        for i in 0..CONTACTS {
            sim.shopify
                .add_customer(audience_sandbox::shopify::Customer {
                    email: Some(format!("c{i}@gmail.com")),
                    first_name: Some(format!("First{i}")),
                    last_name: Some("Kill".into()),
                    marketing_state: if i.is_multiple_of(10) {
                        "UNSUBSCRIBED".into()
                    } else {
                        "SUBSCRIBED".into()
                    },
                    ..Default::default()
                });
        }
        let client = env.client();
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
        secret(
            &secrets,
            "shopify",
            "accessToken",
            &sim.shopify.access_token(),
        )
        .await;
        let key = format!("{:032x}-us6", seed + 0xabc0);
        secret(&secrets, "mailchimp", "apiKey", &key).await;
        let api: Api<AudienceSync> = Api::namespaced(client, &ns);
        let object: AudienceSync = serde_json::from_value(json!({
            "apiVersion": "sync.audience-operator.io/v1alpha1",
            "kind": "AudienceSync",
            "metadata": {"name": "big"},
            "spec": {
                "source": {"shopify": {"shopDomain": "kill.myshopify.com", "credentialsSecretRef": {"name": "shopify"}}},
                "target": {"mailchimp": {"audienceId": AUDIENCE, "credentialsSecretRef": {"name": "mailchimp"}}},
                "schedule": {"interval": "1h"}
            }
        }))
        .unwrap();
        api.create(&PostParams::default(), &object).await.unwrap();

        // Kill 1–3 times, each after a random number of the push's write calls.
        let mut rng = 0x9e37_79b9_7f4a_7c15 ^ seed;
        let minimum = CONTACTS as u64 / BATCH;
        let kills = 1 + next(&mut rng) % 3;
        let mut operator = start(env, &ns, &sandbox);
        let mut killed = 0;
        for _ in 0..kills {
            let already = sim.stats.writes(Vendor::Mailchimp);
            let at = already + 1 + next(&mut rng) % (minimum / 2);
            let deadline = tokio::time::Instant::now() + WAIT;
            while sim.stats.writes(Vendor::Mailchimp) < at {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "seed {seed}: the push never reached {at} writes"
                );
                if sim.mailchimp.member_count(AUDIENCE) >= CONTACTS {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            if sim.mailchimp.member_count(AUDIENCE) >= CONTACTS {
                break;
            }
            operator.0.kill().expect("SIGKILL");
            operator.0.wait().unwrap();
            killed += 1;
            operator = start(env, &ns, &sandbox);
        }

        let deadline = tokio::time::Instant::now() + WAIT;
        while ready_reason(&api, "big").await.as_deref() != Some("Synced") {
            assert!(
                tokio::time::Instant::now() < deadline,
                "seed {seed}: not Synced after {killed} kills"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        drop(operator);

        // Exactly the source's contacts, with the source's fields and consent.
        let members = sim.mailchimp.members(AUDIENCE);
        assert_eq!(members.len(), CONTACTS, "seed {seed}");
        for m in &members {
            let i: usize = m.email_address["c".len()..m.email_address.find('@').unwrap()]
                .parse()
                .unwrap();
            assert_eq!(
                m.merge_fields.get("FNAME"),
                Some(&json!(format!("First{i}"))),
                "seed {seed}: {}",
                m.email_address
            );
            let want = if i.is_multiple_of(10) {
                MemberStatus::Unsubscribed
            } else {
                MemberStatus::Subscribed
            };
            assert_eq!(m.status, want, "seed {seed}: {}", m.email_address);
        }
        // No write repeated beyond the batches in flight at each kill (plus the audience's
        // merge-field checks, which write nothing when the fields exist).
        let writes = sim.stats.writes(Vendor::Mailchimp);
        assert!(
            writes <= minimum + killed * IN_FLIGHT,
            "seed {seed}: {writes} write calls for {minimum} batches and {killed} kills"
        );
        eprintln!("seed {seed}: {killed} kills, {writes} write calls (minimum {minimum})");
    }
}

async fn order_ready_reason(api: &Api<OrderSync>, name: &str) -> Option<String> {
    let o = api.get(name).await.ok()?;
    o.status?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.reason.clone())
}

/// Orders: the binary is SIGKILLed twice while an OrderSync sends 18,000 events to Klaviyo. Every
/// event is recorded exactly once, and a restart resumes at the cursor saved during the run, so
/// it re-sends only the jobs after the last saved cursor, not the history from the start.
#[tokio::test]
async fn sigkill_during_an_order_backfill_records_every_event_once_and_resumes_at_the_saved_cursor()
{
    const ORDERS: u64 = 6_000;
    let env = TestEnv::shared().await;
    env.apply_crds_from_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("crds"))
        .await
        .expect("crds");
    let ns = env.namespace("op-kill-orders").await;
    let sandbox = Sandbox::new(SandboxOptions::default())
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let sim = &sandbox.sandbox;
    sim.retailcrm.set_rate_limit(None);
    sim.retailcrm.set_api_key("rcrm_kill_orders_key_0123456789");
    for n in 0..ORDERS {
        sim.retailcrm.add_order(audience_sandbox::retailcrm::Order {
            email: Some(format!("buyer{n}@gmail.com")),
            status: "complete".into(),
            created_at: chrono::Utc::now() - chrono::Duration::days(60),
            items: (0..2)
                .map(|l| audience_sandbox::retailcrm::OrderItem {
                    offer_id: Some(900 + l),
                    product_name: format!("Item {l}"),
                    quantity: 1,
                    initial_price_cents: 2_500,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        });
    }
    // Slow enough that each job is a visible step, so the kills land between them.
    sim.faults
        .set_latency(Vendor::Klaviyo, Duration::from_millis(400));
    let client = env.client();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    secret(&secrets, "crm", "apiKey", "rcrm_kill_orders_key_0123456789").await;
    secret(
        &secrets,
        "klaviyo",
        "apiKey",
        audience_sandbox::klaviyo::EXAMPLE_API_KEY,
    )
    .await;
    let api: Api<OrderSync> = Api::namespaced(client, &ns);
    let object: OrderSync = serde_json::from_value(json!({
        "apiVersion": "sync.audience-operator.io/v1alpha1",
        "kind": "OrderSync",
        "metadata": {"name": "orders"},
        "spec": {
            "source": {"retailcrm": {"account": "demo", "credentialsSecretRef": {"name": "crm"}}},
            "target": {"klaviyo": {"credentialsSecretRef": {"name": "klaviyo"}}},
            "backfill": {"since": "2020-01-01"},
            "schedule": {"interval": "1h"}
        }
    }))
    .unwrap();
    api.create(&PostParams::default(), &object).await.unwrap();

    let jobs = || {
        sim.stats
            .count(Vendor::Klaviyo, Some("POST"), "/api/event-bulk-create-jobs")
    };
    let events = (ORDERS * 3) as usize;
    // Pages of 100 orders (300 events) gathered three to a job: 900 events each.
    let minimum = events.div_ceil(900) as u64;
    let mut operator = start(env, &ns, &sandbox);
    let mut killed = 0u64;
    for at in [8, 16] {
        let deadline = tokio::time::Instant::now() + WAIT;
        while jobs() < at {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the backfill never reached {at} jobs"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        operator.0.kill().expect("SIGKILL");
        operator.0.wait().unwrap();
        killed += 1;
        let saved = api
            .get("orders")
            .await
            .unwrap()
            .status
            .and_then(|s| s.checkpoint);
        // Jobs were accepted before the kill: the run had saved a cursor for them.
        assert!(saved.is_some(), "no cursor saved after {} jobs", jobs());
        operator = start(env, &ns, &sandbox);
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    while order_ready_reason(&api, "orders").await.as_deref() != Some("Synced") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not Synced after {killed} kills"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(operator);

    // None lost, none twice: every order's three events, each unique id once.
    let kl = &sim.klaviyo;
    let mut ids = std::collections::BTreeSet::new();
    for metric in ["Placed Order", "Ordered Product"] {
        for e in kl.events(metric) {
            assert!(ids.insert(e.unique_id.clone().unwrap()), "{e:?} twice");
        }
    }
    assert_eq!(ids.len(), events);
    // The cursor saved during the run (with the progress patches, every 3 s) bounds what a
    // restart sends again: a few jobs per kill. Resending from the start would be 36 here (the
    // second kill would land where the first did).
    let sent = jobs();
    assert!(
        sent <= minimum + killed * 6,
        "{sent} jobs for {minimum} needed and {killed} kills"
    );
    eprintln!("orders: {killed} kills, {sent} jobs (minimum {minimum})");
}
