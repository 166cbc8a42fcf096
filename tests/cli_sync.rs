//! `audience-operator sync -f FILE --sandbox URL`: the built binary against a sandbox served by the
//! test, whose simulators the test then inspects.

use std::process::Output;

use audience_sandbox::mailchimp::{DEMO_LIST_ID, EXAMPLE_API_KEY, MemberStatus};
use audience_sandbox::{RunningSandbox, Sandbox, SandboxOptions, Vendor, seed};
use serde_json::Value;

mod secret_scan_support;

const BIN: &str = env!("CARGO_BIN_EXE_audience-operator");
const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
const CUSTOMERS: usize = 40;

const ALL_EXAMPLES: [&str; 6] = [
    "lightspeed-x-to-mailchimp.yaml",
    "shopify-to-mailchimp.yaml",
    "lightspeed-r-to-mailchimp.yaml",
    "retailcrm-segment-exact.yaml",
    "retailcrm-segment-union.yaml",
    "retailcrm-segment-subtract.yaml",
];

async fn sandbox() -> RunningSandbox {
    Sandbox::new(SandboxOptions {
        customers: CUSTOMERS,
        ..SandboxOptions::default()
    })
    .serve("127.0.0.1:0".parse().unwrap())
    .await
    .expect("sandbox serves")
}

fn example(file: &str) -> String {
    std::fs::read_to_string(format!("{EXAMPLES}/{file}")).expect("example exists")
}

/// The example without its Secret documents.
fn without_secrets(text: &str) -> String {
    text.split("\n---\n")
        .filter(|doc| !doc.contains("kind: Secret"))
        .collect::<Vec<_>>()
        .join("\n---\n")
}

fn write_manifest(dir: &tempdir::Dir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// Runs the binary with only `env` in its environment (no stray credentials), and fails if a
/// credential of the manifest or of `env` shows in what it prints.
async fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    if let Some(file) = args
        .iter()
        .position(|a| *a == "-f")
        .and_then(|i| args.get(i + 1))
    {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        secret_scan_support::register_manifest_secrets(file, &text);
    }
    for (k, v) in env {
        secret_scan_support::register(&format!("${k}"), v);
    }
    let mut command = tokio::process::Command::new(BIN);
    command.args(args).env_clear();
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().await.expect("the binary runs");
    secret_scan_support::assert_no_secret_in(&[
        (&format!("the stdout of {args:?}"), &stdout(&out)),
        (&format!("the stderr of {args:?}"), &stderr(&out)),
    ]);
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            stdout(out),
            stderr(out)
        )
    })
}

/// The emails of the demo people every source simulator serves.
fn demo_emails() -> Vec<String> {
    seed::people(CUSTOMERS, SandboxOptions::default().seed)
        .into_iter()
        .map(|p| p.email)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn sync_pushes_every_customer_into_the_mailchimp_audience() {
    let running = sandbox().await;
    let mc = &running.sandbox.mailchimp;
    let emails = demo_emails();
    let already = emails
        .iter()
        .filter(|e| mc.member(DEMO_LIST_ID, e).is_some())
        .count();
    let file = format!("{EXAMPLES}/lightspeed-x-to-mailchimp.yaml");
    let url = running.url();
    let out = run(
        &["sync", "-f", &file, "--sandbox", &url, "--output", "json"],
        &[],
    )
    .await;
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let report = json(&out);
    assert_eq!(report["ok"], true);
    assert_eq!(report["dryRun"], false);
    let sync = &report["syncs"][0];
    assert_eq!(sync["kind"], "AudienceSync");
    assert_eq!(sync["name"], "lightspeed-x-to-mailchimp");
    assert_eq!(sync["outcome"], "Synced");
    assert_eq!(sync["counts"]["source"], CUSTOMERS as u64);
    assert_eq!(sync["counts"]["created"], (CUSTOMERS - already) as u64);
    assert_eq!(sync["counts"]["archived"], 0);
    assert_eq!(
        sync["credentialsFrom"]["target"],
        "Secret mailchimp-credentials"
    );

    // The simulator holds every customer, with their names.
    assert_eq!(mc.member_count(DEMO_LIST_ID), CUSTOMERS);
    for person in seed::people(CUSTOMERS, SandboxOptions::default().seed) {
        let member = mc
            .member(DEMO_LIST_ID, &person.email)
            .unwrap_or_else(|| panic!("{} is not in the audience", person.email));
        assert_eq!(member.merge_fields["FNAME"], person.first_name);
        assert_eq!(member.merge_fields["LNAME"], person.last_name);
    }
    assert!(running.sandbox.stats.writes(Vendor::Mailchimp) > 0);

    // A second run finds nothing to do and writes nothing.
    let writes = running.sandbox.stats.writes(Vendor::Mailchimp);
    let out = run(
        &["sync", "-f", &file, "--sandbox", &url, "--output", "json"],
        &[],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let counts = &json(&out)["syncs"][0]["counts"];
    assert_eq!(counts["created"], 0);
    assert_eq!(counts["updated"], 0);
    assert_eq!(running.sandbox.stats.writes(Vendor::Mailchimp), writes);
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_of_every_example_writes_nothing() {
    let running = sandbox().await;
    let dir = tempdir::Dir::new();
    let all: Vec<String> = ALL_EXAMPLES.iter().map(|f| example(f)).collect();
    let file = write_manifest(&dir, "all.yaml", &all.join("\n---\n"));
    let url = running.url();
    let out = run(
        &[
            "sync",
            "-f",
            &file,
            "--sandbox",
            &url,
            "--dry-run",
            "--output",
            "json",
        ],
        &[],
    )
    .await;
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let report = json(&out);
    assert_eq!(report["dryRun"], true);
    let syncs = report["syncs"].as_array().unwrap();
    assert_eq!(syncs.len(), ALL_EXAMPLES.len());
    for sync in syncs {
        assert_eq!(sync["ok"], true, "{sync}");
        assert_eq!(sync["outcome"], "DryRun", "{sync}");
        assert_eq!(sync["dryRun"], true);
    }
    let first = &syncs[0];
    assert_eq!(
        first["counts"]["created"],
        (CUSTOMERS - 2) as u64,
        "{first}"
    );
    assert!(
        !first["plan"]["sample"].as_array().unwrap().is_empty(),
        "a dry run shows its plan: {first}"
    );
    assert!(syncs[3]["counts"]["segmentAdded"].as_u64().unwrap() > 0);

    // Nothing was written: no write calls, the audience as seeded.
    assert_eq!(running.sandbox.stats.writes(Vendor::Mailchimp), 0);
    assert_eq!(running.sandbox.mailchimp.member_count(DEMO_LIST_ID), 2);
    assert!(
        running.sandbox.stats.total(Vendor::Mailchimp) > 0,
        "it did read"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_secret_is_a_clear_error() {
    let running = sandbox().await;
    let dir = tempdir::Dir::new();
    let file = write_manifest(
        &dir,
        "x.yaml",
        &without_secrets(&example("lightspeed-x-to-mailchimp.yaml")),
    );
    let url = running.url();
    let out = run(&["sync", "-f", &file, "--sandbox", &url], &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(text.contains("FAILED (CredentialsMissing)"), "{text}");
    assert!(
        text.contains(
            "Secret \"lightspeed-x-credentials\" (key \"token\") is not in the manifest and AUDIENCE_OPERATOR_SECRET_LIGHTSPEED_X_CREDENTIALS_TOKEN is not set"
        ),
        "{text}"
    );
    assert!(
        stderr(&out).contains("lightspeed-x-to-mailchimp failed (CredentialsMissing)"),
        "{}",
        stderr(&out)
    );
    for vendor in Vendor::ALL {
        assert_eq!(
            running.sandbox.stats.total(vendor),
            0,
            "{vendor:?} was called"
        );
    }

    // The environment stands in for the Secrets.
    let out = run(
        &["sync", "-f", &file, "--sandbox", &url, "--output", "json"],
        &[
            (
                "AUDIENCE_OPERATOR_SECRET_LIGHTSPEED_X_CREDENTIALS_TOKEN",
                audience_sandbox::lightspeed_x::DEMO_TOKEN,
            ),
            (
                "AUDIENCE_OPERATOR_SECRET_MAILCHIMP_CREDENTIALS_API_KEY",
                EXAMPLE_API_KEY,
            ),
        ],
    )
    .await;
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let sync = &json(&out)["syncs"][0];
    assert_eq!(
        sync["credentialsFrom"]["source"],
        "$AUDIENCE_OPERATOR_SECRET_LIGHTSPEED_X_CREDENTIALS_TOKEN"
    );
    assert_eq!(
        running.sandbox.mailchimp.member_count(DEMO_LIST_ID),
        CUSTOMERS
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_api_key_is_an_auth_error_that_never_shows_the_key() {
    let running = sandbox().await;
    running.sandbox.mailchimp.set_valid_keys([EXAMPLE_API_KEY]);
    let dir = tempdir::Dir::new();
    let bad_key = "fedcba9876543210fedcba9876543210-us6";
    let file = write_manifest(
        &dir,
        "bad-key.yaml",
        &example("shopify-to-mailchimp.yaml").replace(EXAMPLE_API_KEY, bad_key),
    );
    let url = running.url();
    for output in ["text", "json"] {
        let out = run(
            &["sync", "-f", &file, "--sandbox", &url, "--output", output],
            &[],
        )
        .await;
        assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
        let all = format!("{}{}", stdout(&out), stderr(&out));
        assert!(all.contains("AuthFailed"), "{all}");
        assert!(all.contains("mailchimp"), "names the vendor: {all}");
        assert!(!all.contains(bad_key), "shows the key: {all}");
        assert!(
            !all.contains("fedcba9876543210"),
            "shows part of the key: {all}"
        );
    }
    assert_eq!(running.sandbox.stats.writes(Vendor::Mailchimp), 0);

    // A wrong source token: the same, for the source.
    let bad_token = "lsx-wrong-token-0000";
    let file = write_manifest(
        &dir,
        "bad-token.yaml",
        &example("lightspeed-x-to-mailchimp.yaml")
            .replace(audience_sandbox::lightspeed_x::DEMO_TOKEN, bad_token),
    );
    let out = run(
        &["sync", "-f", &file, "--sandbox", &url, "--output", "json"],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let sync = &json(&out)["syncs"][0];
    assert_eq!(sync["outcome"], "AuthFailed", "{sync}");
    assert!(
        sync["error"].as_str().unwrap().contains("lightspeed-x"),
        "{sync}"
    );
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!all.contains(bad_token), "{all}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_safety_stop_names_the_plan_and_approve_lets_exactly_it_go_ahead() {
    let running = sandbox().await;
    let mc = &running.sandbox.mailchimp;
    // Thirty members an earlier run of this sync created (they carry its owner tag) whom the
    // store no longer has: mirroring would archive 30 of them (far above the 10% limit).
    let owner = audience_core::plan::default_owner_tag("default", "lightspeed-x-to-mailchimp");
    for i in 0..30 {
        let email = format!("former.customer{i}@example.com");
        mc.insert_member(DEMO_LIST_ID, &email, MemberStatus::Subscribed);
        assert!(mc.tag_member(DEMO_LIST_ID, &email, &owner));
    }
    let file = format!("{EXAMPLES}/lightspeed-x-to-mailchimp.yaml");
    let url = running.url();
    let out = run(&["sync", "-f", &file, "--sandbox", &url], &[]).await;
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("STOPPED by the safety limit"), "{text}");
    assert!(text.contains("would remove 30 of 32 members"), "{text}");
    assert!(text.contains("--approve "), "{text}");
    assert_eq!(running.sandbox.stats.writes(Vendor::Mailchimp), 0);

    let out = run(
        &["sync", "-f", &file, "--sandbox", &url, "--output", "json"],
        &[],
    )
    .await;
    let sync = &json(&out)["syncs"][0];
    assert_eq!(sync["outcome"], "SafetyStop");
    let plan_id = sync["pendingApproval"]["planId"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(text.contains(&format!("--approve {plan_id}")), "{text}");
    assert!(
        stderr(&out).contains(&format!("--approve {plan_id}")),
        "{}",
        stderr(&out)
    );

    // Approving another plan changes nothing; approving this one lets it through.
    let out = run(
        &[
            "sync",
            "-f",
            &file,
            "--sandbox",
            &url,
            "--approve",
            "0000000000000000",
        ],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let out = run(
        &[
            "sync",
            "-f",
            &file,
            "--sandbox",
            &url,
            "--approve",
            &plan_id,
            "--output",
            "json",
        ],
        &[],
    )
    .await;
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(json(&out)["syncs"][0]["counts"]["archived"], 30);
    assert_eq!(mc.count_by_status(DEMO_LIST_ID, MemberStatus::Archived), 30);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreadable_manifest_fails_before_any_call() {
    let running = sandbox().await;
    let dir = tempdir::Dir::new();
    let file = write_manifest(
        &dir,
        "bad.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
    );
    let url = running.url();
    let out = run(&["sync", "-f", &file, "--sandbox", &url], &[]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no AudienceSync, SegmentSync or OrderSync"),
        "{}",
        stderr(&out)
    );
    let out = run(&["sync", "-f", "/nonexistent/manifest.yaml"], &[]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("/nonexistent/manifest.yaml"));
    for vendor in Vendor::ALL {
        assert_eq!(running.sandbox.stats.total(vendor), 0);
    }
}

/// A temporary directory removed on drop (std only).
mod tempdir {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU64, Ordering};

    pub struct Dir(PathBuf);

    impl Dir {
        pub fn new() -> Dir {
            static NEXT: AtomicU64 = AtomicU64::new(0);
            let path = std::env::temp_dir().join(format!(
                "cli-sync-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&path).unwrap();
            Dir(path)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_order_sync_keeps_its_cursor_in_the_state_file_and_a_second_run_sends_nothing() {
    let running = sandbox().await;
    let dir = tempdir::Dir::new();
    let file = write_manifest(
        &dir,
        "orders.yaml",
        &example("lightspeed-r-orders-to-klaviyo.yaml"),
    );
    let state = dir.path().join("state.json").display().to_string();
    let url = running.url();
    let args = [
        "sync",
        "-f",
        &file,
        "--sandbox",
        &url,
        "--state",
        &state,
        "--output",
        "json",
    ];
    let out = run(&args, &[]).await;
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let first = &json(&out)["syncs"][0];
    assert_eq!(first["kind"], "OrderSync", "{first}");
    assert_eq!(first["counts"]["events"]["placedOrder"], 9, "{first}");
    assert_eq!(first["counts"]["events"]["orderedProduct"], 17, "{first}");
    let kl = &running.sandbox.klaviyo;
    assert_eq!(kl.events("Placed Order").len(), 9);
    assert!(kl.events("Placed Order").iter().all(|e| e.backfill));
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(&state).expect("the state file")).unwrap();
    assert!(
        saved["orderSyncs"]["default/lightspeed-r-orders-to-klaviyo"]["checkpoint"].is_string(),
        "{saved}"
    );

    let writes = running.sandbox.stats.writes(Vendor::Klaviyo);
    let out = run(&args, &[]).await;
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let second = &json(&out)["syncs"][0];
    assert!(second["counts"].get("events").is_none(), "{second}");
    assert_eq!(
        running.sandbox.stats.writes(Vendor::Klaviyo),
        writes,
        "the second run sends nothing"
    );
    assert_eq!(kl.events("Placed Order").len(), 9);
}

#[tokio::test(flavor = "multi_thread")]
async fn retailcrm_orders_reach_klaviyo_and_a_later_change_sends_only_its_events() {
    let running = sandbox().await;
    let dir = tempdir::Dir::new();
    let file = write_manifest(
        &dir,
        "orders.yaml",
        &example("retailcrm-orders-to-klaviyo.yaml"),
    );
    let url = running.url();
    let args = ["sync", "-f", &file, "--sandbox", &url];
    let out = run(&args, &[]).await;
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    // The report says where the cursor lives (next to the manifest by default).
    let state = dir.path().join(".audience-operator-state");
    assert!(
        text.contains(&format!("order cursors: kept in {}", state.display())),
        "{text}"
    );
    assert!(state.exists());
    let kl = &running.sandbox.klaviyo;
    let crm = &running.sandbox.retailcrm;
    // Four completed orders with an email (#1, #3, #4, #7); #3 came back, #4 was shipped.
    assert_eq!(kl.events("Placed Order").len(), 4, "{text}");
    assert_eq!(kl.events("Refunded Order").len(), 1);
    assert_eq!(kl.events("Fulfilled Order").len(), 1);
    assert!(kl.events("Placed Order").iter().all(|e| e.backfill));
    let refund = &kl.events("Refunded Order")[0];
    let returned = crm.order(3).unwrap();
    assert_eq!(refund.time, returned.status_updated_at);
    assert_eq!(refund.value_currency.as_deref(), Some("RUB"));

    // The open order (#6) completes: the next run sends its Placed Order and its one line only.
    assert!(crm.set_order_status(6, "complete"));
    let out = run(&args, &[]).await;
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(kl.events("Placed Order").len(), 5);
    assert_eq!(kl.events("Ordered Product").len(), 7);
    assert_eq!(kl.events("Refunded Order").len(), 1);
    let placed = kl.events("Placed Order");
    let six = placed
        .iter()
        .find(|e| e.unique_id.as_deref() == Some("retailcrm:6:placed"))
        .unwrap_or_else(|| panic!("order 6's Placed Order: {placed:?}"));
    // Placed (created) in 2025, before the sync started: history, so no flow fires for it.
    assert!(six.backfill, "{six:?}");

    // An order placed now is live: flows may fire.
    let fresh = crm.add_order(audience_sandbox::retailcrm::Order {
        email: Some("fresh.buyer@example.com".into()),
        status: "complete".into(),
        items: vec![audience_sandbox::retailcrm::OrderItem {
            offer_id: Some(501),
            product_name: "Assam tea, 250 g".into(),
            quantity: 1,
            initial_price_cents: 45_000,
            ..Default::default()
        }],
        ..Default::default()
    });
    let out = run(&args, &[]).await;
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let placed = kl.events("Placed Order");
    let live = placed
        .iter()
        .find(|e| e.unique_id.as_deref() == Some(&format!("retailcrm:{fresh}:placed")))
        .unwrap_or_else(|| panic!("the fresh order's Placed Order: {placed:?}"));
    assert!(!live.backfill, "{live:?}");
    assert_eq!(live.value, Some(450.0));

    let writes = running.sandbox.stats.writes(Vendor::Klaviyo);
    let out = run(&args, &[]).await;
    assert!(out.status.success());
    assert_eq!(running.sandbox.stats.writes(Vendor::Klaviyo), writes);
}

#[tokio::test(flavor = "multi_thread")]
async fn lightspeed_x_sales_reach_klaviyo_once() {
    let running = sandbox().await;
    let dir = tempdir::Dir::new();
    let file = write_manifest(
        &dir,
        "orders.yaml",
        &example("lightspeed-x-orders-to-klaviyo.yaml"),
    );
    let url = running.url();
    let args = ["sync", "-f", &file, "--sandbox", &url, "--output", "json"];
    let out = run(&args, &[]).await;
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let first = &json(&out)["syncs"][0];
    // Twelve demo sales fold into 11 orders (a return joins its sale): $0, walk-in and voided
    // sales send nothing; the return is one Refunded Order, the dispatched sale one Fulfilled.
    let kl = &running.sandbox.klaviyo;
    assert_eq!(kl.events("Placed Order").len(), 8, "{first}");
    assert_eq!(kl.events("Refunded Order").len(), 1, "{first}");
    assert_eq!(kl.events("Fulfilled Order").len(), 1, "{first}");
    assert_eq!(first["counts"]["events"]["placedOrder"], 8, "{first}");
    assert!(
        kl.events("Placed Order")
            .iter()
            .all(|e| e.value_currency.as_deref() == Some("NZD"))
    );
    let writes = running.sandbox.stats.writes(Vendor::Klaviyo);
    let out = run(&args, &[]).await;
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(running.sandbox.stats.writes(Vendor::Klaviyo), writes);
    assert_eq!(kl.events("Placed Order").len(), 8);

    // A line of a sent sale comes back: the return joins its sale, read again whole, and only
    // the new Refunded Order goes (the state file keeps the ids Klaviyo accepted).
    let lx = &running.sandbox.lightspeed_x;
    let sent: Vec<String> = kl
        .events("Placed Order")
        .iter()
        .filter_map(|e| e.unique_id.clone())
        .collect();
    let sale = lx
        .sales()
        .into_iter()
        .find(|s| {
            s.return_for.is_none()
                && !s.invoice_number.ends_with("-R")
                && sent.iter().any(|id| id.contains(&s.id))
                && lx
                    .sales()
                    .iter()
                    .all(|r| r.return_for.as_deref() != Some(&s.id))
        })
        .expect("a sent sale with no return yet");
    lx.return_line(&sale.id, &sale.line_items[0].id, 1)
        .expect("a return");
    let out = run(&args, &[]).await;
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let third = &json(&out)["syncs"][0];
    assert_eq!(kl.events("Refunded Order").len(), 2, "{third}");
    assert_eq!(kl.events("Placed Order").len(), 8, "{third}");
    assert_eq!(third["counts"]["events"]["refundedOrder"], 1, "{third}");
    assert_eq!(third["counts"]["events"]["placedOrder"], 0, "{third}");
    assert_eq!(third["counts"]["events"]["orderedProduct"], 0, "{third}");
}

#[tokio::test(flavor = "multi_thread")]
async fn order_events_are_sent_in_jobs_near_klaviyos_1000_not_one_per_source_page() {
    let running = sandbox().await;
    let crm = &running.sandbox.retailcrm;
    crm.set_rate_limit(None);
    // 2,000 more complete orders of two lines: 6,000 events, 300 per RetailCRM page of 100.
    for n in 0..2_000u64 {
        crm.add_order(audience_sandbox::retailcrm::Order {
            email: Some(format!("bulk{n}@example.com")),
            status: "complete".into(),
            created_at: chrono::Utc::now() - chrono::Duration::days(30),
            items: (0..2)
                .map(|l| audience_sandbox::retailcrm::OrderItem {
                    offer_id: Some(600 + l),
                    product_name: format!("Item {l}"),
                    quantity: 1,
                    initial_price_cents: 1_000,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        });
    }
    let dir = tempdir::Dir::new();
    let file = write_manifest(
        &dir,
        "orders.yaml",
        &example("retailcrm-orders-to-klaviyo.yaml"),
    );
    let url = running.url();
    let out = run(&["sync", "-f", &file, "--sandbox", &url], &[]).await;
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let kl = &running.sandbox.klaviyo;
    let events = kl.events("Placed Order").len()
        + kl.events("Ordered Product").len()
        + kl.events("Refunded Order").len()
        + kl.events("Fulfilled Order").len();
    assert_eq!(events, 6_000 + 12, "every event once");
    let jobs =
        running
            .sandbox
            .stats
            .count(Vendor::Klaviyo, Some("POST"), "/api/event-bulk-create-jobs");
    // Whole pages gathered up to 1,000 events: at least 900 a job (a page per job would be 21).
    assert!(jobs >= events.div_ceil(1_000) as u64, "{jobs} jobs");
    assert!(
        jobs <= events.div_ceil(900) as u64,
        "{jobs} jobs for {events} events"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_shops_promo_codes_are_synced_once_per_interval_across_sync_f_runs() {
    let running = sandbox().await;
    let dir = tempdir::Dir::new();
    let file = write_manifest(
        &dir,
        "store.yaml",
        &example("shopify-orders-to-mailchimp.yaml"),
    );
    let url = running.url();
    let args = ["sync", "-f", &file, "--sandbox", &url, "--output", "json"];
    let listings = || {
        running
            .sandbox
            .shopify
            .counters()
            .root_fields
            .get("codeDiscountNodes")
            .copied()
            .unwrap_or(0)
    };
    let out = run(&args, &[]).await;
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(listings(), 1, "the first run lists the shop's discounts");
    // Within `promoCodes.every` (6h): the state file says when they were synced, so the
    // second run makes no promo call.
    let out = run(&args, &[]).await;
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(listings(), 1, "{}", stdout(&out));
    let state = std::fs::read_to_string(dir.path().join(".audience-operator-state")).unwrap();
    assert!(state.contains("promoCodesSyncedAt"), "{state}");
}
