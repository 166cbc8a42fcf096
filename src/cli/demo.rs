//! `audience-operator demo`: every vendor simulator in-process on a free loopback port, the
//! manifests in `examples/` run against it through the code path of `sync --sandbox`, what each
//! changed, then all of them again to show that a second run writes nothing (counted by the
//! sandbox's request stats). Needs no cluster, no account and no network.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;
use audience_sandbox::mailchimp::MemberStatus;
use audience_sandbox::{Sandbox, SandboxOptions, Vendor};
use url::Url;

use super::DemoArgs;
use super::manifest::{self, Manifests, SyncManifest};
use super::report::SyncReport;
use super::sync::{SyncOptions, run_manifests};
use crate::crd::SegmentSyncMode;

/// Where the examples live in the source tree this binary was built from.
pub const EXAMPLES_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");

/// The examples built into the binary, in the order the demo runs them: the audiences first (every
/// source pushes the same demo people, each adding what it knows), then the segments.
pub const EMBEDDED: &[(&str, &str)] = &[
    (
        "lightspeed-x-to-mailchimp.yaml",
        include_str!("../../examples/lightspeed-x-to-mailchimp.yaml"),
    ),
    (
        "shopify-to-mailchimp.yaml",
        include_str!("../../examples/shopify-to-mailchimp.yaml"),
    ),
    (
        "store-and-web-to-mailchimp.yaml",
        include_str!("../../examples/store-and-web-to-mailchimp.yaml"),
    ),
    (
        "shopify-two-way-mailchimp.yaml",
        include_str!("../../examples/shopify-two-way-mailchimp.yaml"),
    ),
    (
        "lightspeed-r-to-mailchimp.yaml",
        include_str!("../../examples/lightspeed-r-to-mailchimp.yaml"),
    ),
    (
        "retailcrm-segment-exact.yaml",
        include_str!("../../examples/retailcrm-segment-exact.yaml"),
    ),
    (
        "retailcrm-segment-union.yaml",
        include_str!("../../examples/retailcrm-segment-union.yaml"),
    ),
    (
        "retailcrm-segment-subtract.yaml",
        include_str!("../../examples/retailcrm-segment-subtract.yaml"),
    ),
    (
        "lightspeed-r-to-klaviyo.yaml",
        include_str!("../../examples/lightspeed-r-to-klaviyo.yaml"),
    ),
    (
        "shopify-to-klaviyo.yaml",
        include_str!("../../examples/shopify-to-klaviyo.yaml"),
    ),
    (
        "retailcrm-segment-to-klaviyo.yaml",
        include_str!("../../examples/retailcrm-segment-to-klaviyo.yaml"),
    ),
    (
        "lightspeed-r-orders-to-klaviyo.yaml",
        include_str!("../../examples/lightspeed-r-orders-to-klaviyo.yaml"),
    ),
    (
        "shopify-orders-to-klaviyo.yaml",
        include_str!("../../examples/shopify-orders-to-klaviyo.yaml"),
    ),
    (
        "shopify-orders-to-mailchimp.yaml",
        include_str!("../../examples/shopify-orders-to-mailchimp.yaml"),
    ),
    (
        "lightspeed-x-orders-to-klaviyo.yaml",
        include_str!("../../examples/lightspeed-x-orders-to-klaviyo.yaml"),
    ),
    (
        "retailcrm-orders-to-klaviyo.yaml",
        include_str!("../../examples/retailcrm-orders-to-klaviyo.yaml"),
    ),
];

/// The simulators the examples write to.
const TARGETS: [Vendor; 2] = [Vendor::Mailchimp, Vendor::Klaviyo];

/// One example manifest.
#[derive(Debug, Clone)]
pub struct Example {
    pub file: String,
    pub text: String,
}

/// The examples: read from [`EXAMPLES_DIR`] when it exists (so edits show at once; extra `*.yaml`
/// files there run after the built-in ones, by name), else the copies built into the binary.
/// Also says where they came from.
pub fn examples() -> (Vec<Example>, String) {
    examples_from(Path::new(EXAMPLES_DIR))
}

fn examples_from(dir: &Path) -> (Vec<Example>, String) {
    if !dir.is_dir() {
        let embedded = EMBEDDED
            .iter()
            .map(|(file, text)| Example {
                file: file.to_string(),
                text: text.to_string(),
            })
            .collect();
        return (embedded, "the copies built into this binary".to_string());
    }
    let mut examples: Vec<Example> = EMBEDDED
        .iter()
        .map(|(file, text)| Example {
            file: file.to_string(),
            text: std::fs::read_to_string(dir.join(file)).unwrap_or_else(|_| text.to_string()),
        })
        .collect();
    let mut extra: Vec<(String, String)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let file = entry.file_name().to_string_lossy().to_string();
            let known = EMBEDDED.iter().any(|(f, _)| *f == file);
            (!known && (file.ends_with(".yaml") || file.ends_with(".yml")))
                .then(|| {
                    std::fs::read_to_string(entry.path())
                        .ok()
                        .map(|t| (file, t))
                })
                .flatten()
        })
        .collect();
    extra.sort();
    examples.extend(extra.into_iter().map(|(file, text)| Example { file, text }));
    (examples, dir.display().to_string())
}

/// What one pass over one example did.
struct PassResult {
    reports: Vec<SyncReport>,
    /// Write calls (POST, PUT, PATCH, DELETE) the target simulators (Mailchimp, Klaviyo) served.
    target_writes: u64,
    /// Calls each vendor served.
    requests: BTreeMap<&'static str, u64>,
}

pub async fn main(args: DemoArgs) -> anyhow::Result<()> {
    super::sync::init_logging();
    let (examples, origin) = examples();
    let parsed: Vec<(Example, Manifests)> = examples
        .into_iter()
        .map(|example| {
            let manifests = manifest::parse(&example.text)
                .with_context(|| format!("reading example {}", example.file))?;
            Ok((example, manifests))
        })
        .collect::<anyhow::Result<_>>()?;

    let sandbox = Sandbox::new(SandboxOptions {
        customers: args.customers,
        ..SandboxOptions::default()
    });
    let running = sandbox
        .serve("127.0.0.1:0".parse().expect("a socket address"))
        .await
        .context("starting the sandbox on a loopback port")?;
    let shown = running.url();
    let url = Url::parse(&shown)?;
    println!("audience-operator demo");
    println!(
        "  sandbox: every vendor simulator on {shown}, {} demo customers in each source (the same people in every one)",
        args.customers
    );
    println!("  examples: {origin}");
    println!(
        "  each runs as `audience-operator sync -f examples/<file> --sandbox {shown}` would\n"
    );

    // The OrderSyncs' cursors live in memory for the demo (both passes share them), where
    // `sync -f` keeps them in its --state file.
    let options = SyncOptions {
        sandbox: Some(url.clone()),
        state: Some(std::sync::Arc::new(std::sync::Mutex::new(
            super::state::CliState::default(),
        ))),
        ..SyncOptions::default()
    };
    let no_env = |_: &str| None;

    println!("First pass: what each example changed");
    let mut first = Vec::new();
    for (i, (example, manifests)) in parsed.iter().enumerate() {
        println!("\n[{}/{}] {}", i + 1, parsed.len(), example.file);
        prepare(&sandbox, manifests);
        let pass = run_pass(&sandbox, manifests, &options, &no_env).await;
        for report in &pass.reports {
            print!(
                "{}",
                indent(&report.render_text(&format!("examples/{}", example.file)))
            );
        }
        println!(
            "      sandbox: {}; requests served: {}",
            plural(pass.target_writes, "target write call"),
            requests_line(&pass.requests)
        );
        first.push(pass);
    }

    // The file names column fits the longest name, whatever examples are added.
    let width = parsed
        .iter()
        .map(|(example, _)| example.file.len())
        .max()
        .unwrap_or(0);
    println!("\nSecond pass: the same examples again (nothing changed at the sources)");
    let mut second = Vec::new();
    for (example, manifests) in &parsed {
        let pass = run_pass(&sandbox, manifests, &options, &no_env).await;
        let changes: u64 = pass.reports.iter().map(SyncReport::changes).sum();
        let failed = pass.reports.iter().filter(|r| !r.ok).count();
        println!(
            "  {:<width$} {}, {}{}",
            example.file,
            plural(changes, "change"),
            plural(pass.target_writes, "target write"),
            if failed > 0 { " (FAILED)" } else { "" }
        );
        second.push(pass);
    }

    println!("\nSummary");
    println!("  {:<width$} {:<62} second pass", "example", "first pass");
    let mut failures = Vec::new();
    for (((example, _), one), two) in parsed.iter().zip(&first).zip(&second) {
        for (a, b) in one.reports.iter().zip(&two.reports) {
            if !a.ok {
                failures.push(format!("{} ({}, first pass)", a.name, a.outcome));
            }
            if !b.ok {
                failures.push(format!("{} ({}, second pass)", b.name, b.outcome));
            }
        }
        let summary = one
            .reports
            .iter()
            .map(short_counts)
            .collect::<Vec<_>>()
            .join("; ");
        println!(
            "  {:<width$} {:<62} {} writes",
            example.file,
            format!("{summary}, {} writes", one.target_writes),
            two.target_writes
        );
    }
    let mut lists: Vec<String> = Vec::new();
    for list in parsed
        .iter()
        .flat_map(|(_, m)| m.syncs.iter())
        .filter_map(|s| match s {
            SyncManifest::Audience(a) => a
                .spec
                .target
                .mailchimp
                .as_ref()
                .map(|m| m.audience_id.clone()),
            SyncManifest::Segment(s) => s
                .spec
                .target
                .mailchimp
                .as_ref()
                .map(|m| m.audience_id.clone()),
            SyncManifest::Order(_) => None,
        })
    {
        if !lists.contains(&list) {
            lists.push(list);
        }
    }
    println!();
    for list in &lists {
        println!("{}", audience_line(&sandbox, list, &parsed));
    }
    for line in klaviyo_lines(&sandbox, &parsed) {
        println!("{line}");
    }
    for line in store_lines(&sandbox, &parsed) {
        println!("{line}");
    }
    let second_writes: u64 = second.iter().map(|p| p.target_writes).sum();
    two_way_round(&sandbox, &parsed, &options, &no_env, &mut failures).await;
    println!(
        "\nNext: `audience-operator sandbox` serves the same simulators until ctrl-c, and\n`audience-operator sync -f examples/<file> --sandbox http://127.0.0.1:8089` runs one example against it."
    );
    drop(running);
    if !failures.is_empty() {
        anyhow::bail!("the demo failed: {}", failures.join(", "));
    }
    if second_writes > 0 {
        anyhow::bail!("the second pass wrote {second_writes} times; it should write nothing");
    }
    Ok(())
}

/// Runs one example's syncs and counts what the simulators served meanwhile.
async fn run_pass(
    sandbox: &Sandbox,
    manifests: &Manifests,
    options: &SyncOptions,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
) -> PassResult {
    let target_writes = || -> u64 { TARGETS.iter().map(|v| sandbox.stats.writes(*v)).sum() };
    let writes_before = target_writes();
    let requests_before: Vec<u64> = Vendor::ALL
        .iter()
        .map(|v| sandbox.stats.total(*v))
        .collect();
    let reports = run_manifests(manifests, options, env).await;
    let requests = Vendor::ALL
        .iter()
        .zip(requests_before)
        .map(|(v, before)| (v.name(), sandbox.stats.total(*v) - before))
        .filter(|(_, n)| *n > 0)
        .collect();
    PassResult {
        reports,
        target_writes: target_writes() - writes_before,
        requests,
    }
}

/// Two-way consent, shown going both ways: after the two passes, one member unsubscribes in the
/// Mailchimp simulator (an unsubscribe link) and the merchant marks one customer subscribed in
/// the Shopify simulator; the two-way example runs again and the demo prints where each change
/// arrived, then runs it once more to show nothing goes back and forth.
async fn two_way_round(
    sandbox: &Sandbox,
    parsed: &[(Example, Manifests)],
    options: &SyncOptions,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
    failures: &mut Vec<String>,
) {
    let Some((example, manifests, list)) = parsed.iter().find_map(|(example, m)| {
        m.syncs.iter().find_map(|s| match s {
            SyncManifest::Audience(a) if a.spec.consent_policy.two_way => a
                .spec
                .target
                .mailchimp
                .as_ref()
                .map(|t| (example, m, t.audience_id.clone())),
            _ => None,
        })
    }) else {
        return;
    };
    let shop = &sandbox.shopify;
    let by_email: BTreeMap<String, u64> = shop
        .customer_ids()
        .into_iter()
        .filter_map(|id| {
            let email = shop.customer(id)?.email?;
            Some((email.to_lowercase(), id))
        })
        .collect();
    let members = sandbox.mailchimp.members(&list);
    let pick = |status: MemberStatus, state: &str| {
        members.iter().find_map(|m| {
            let id = *by_email.get(&m.email_address.to_lowercase())?;
            (m.status == status && shop.customer(id)?.marketing_state == state)
                .then(|| (m.email_address.clone(), id))
        })
    };
    let (Some((leaving, leaving_id)), Some((joining, joining_id))) = (
        pick(MemberStatus::Subscribed, "SUBSCRIBED"),
        pick(MemberStatus::Transactional, "NOT_SUBSCRIBED"),
    ) else {
        failures.push(format!(
            "{}: no subscriber and no transactional contact to change",
            example.file
        ));
        return;
    };
    println!(
        "\nTwo-way consent: one change on each side, then {} again",
        example.file
    );
    // Mailchimp keeps whole seconds: the unsubscribe is a second later than anything before it.
    sandbox
        .mailchimp
        .advance_clock(chrono::Duration::seconds(1));
    sandbox
        .mailchimp
        .set_member_status(&list, &leaving, MemberStatus::Unsubscribed);
    shop.edit_customer(joining_id, |c| {
        c.marketing_state = "SUBSCRIBED".into();
        c.marketing_opt_in_level = Some("SINGLE_OPT_IN".into());
        c.consent_updated_at = Some(chrono::Utc::now());
    });
    println!("  (demo) {leaving} clicked unsubscribe in the Mailchimp simulator");
    println!("  (demo) the merchant marked {joining} subscribed in the Shopify simulator");
    let pass = run_pass(sandbox, manifests, options, env).await;
    for report in &pass.reports {
        print!(
            "{}",
            indent(&report.render_text(&format!("examples/{}", example.file)))
        );
    }
    let in_shop = shop
        .customer(leaving_id)
        .map(|c| c.marketing_state)
        .unwrap_or_default();
    let in_mailchimp = sandbox
        .mailchimp
        .member(&list, &joining)
        .map(|m| m.status.as_str().to_string())
        .unwrap_or_default();
    println!("  Mailchimp → Shopify: {leaving} is now {in_shop} in Shopify");
    println!("  Shopify → Mailchimp: {joining} is now {in_mailchimp} in Mailchimp");
    if in_shop != "UNSUBSCRIBED" || in_mailchimp != "subscribed" {
        failures.push(format!("{}: a consent change did not cross", example.file));
    }
    let shop_writes = || shop.counters().consent_updates;
    let before = shop_writes();
    let again = run_pass(sandbox, manifests, options, env).await;
    let changes: u64 = again.reports.iter().map(SyncReport::changes).sum();
    let shop_written = shop_writes() - before;
    println!(
        "  once more: {}, {}, {}",
        plural(changes, "change"),
        plural(again.target_writes, "Mailchimp write"),
        plural(shop_written, "Shopify consent write")
    );
    if changes + again.target_writes + shop_written > 0 {
        failures.push(format!("{}: two-way consent wrote again", example.file));
    }
}

/// The demo's stand-in for a marketer: a `subtract` example removes people from a segment someone
/// builds in Mailchimp, so before its first run every subscribed member is tagged with it by hand.
fn prepare(sandbox: &Sandbox, manifests: &Manifests) {
    for sync in &manifests.syncs {
        let SyncManifest::Segment(segment) = sync else {
            continue;
        };
        let Some(target) = &segment.spec.target.mailchimp else {
            continue;
        };
        if segment.spec.mode != SegmentSyncMode::Subtract
            || sandbox
                .mailchimp
                .segment_id(&target.audience_id, target.segment.trim())
                .is_some()
        {
            continue;
        }
        let mut tagged = 0;
        for member in sandbox.mailchimp.members(&target.audience_id) {
            if member.status == MemberStatus::Subscribed
                && sandbox.mailchimp.tag_member(
                    &target.audience_id,
                    &member.email_address,
                    target.segment.trim(),
                )
            {
                tagged += 1;
            }
        }
        println!(
            "    (demo) tagged {tagged} subscribed members {:?} by hand in the Mailchimp simulator, as a marketer would",
            target.segment.trim()
        );
    }
}

/// What each OrderSync's Mailchimp e-commerce store holds now.
fn store_lines(sandbox: &Sandbox, parsed: &[(Example, Manifests)]) -> Vec<String> {
    let mc = &sandbox.mailchimp;
    parsed
        .iter()
        .flat_map(|(_, m)| m.syncs.iter())
        .filter_map(|s| match s {
            SyncManifest::Order(o) => o.spec.target.mailchimp.as_ref(),
            _ => None,
        })
        .map(|target| {
            let store = target.store_id.trim();
            format!(
                "Mailchimp store {store:?} (audience {}) now: {} orders, {} customers, {} products, {} promo codes; is_syncing written {:?}",
                mc.store_list_id(store).unwrap_or_default(),
                mc.ecommerce_orders(store).len(),
                mc.ecommerce_customers(store).len(),
                mc.ecommerce_products(store).len(),
                mc.ecommerce_promo_codes(store).len(),
                mc.store_syncing_history(store),
            )
        })
        .collect()
}

fn short_counts(report: &SyncReport) -> String {
    if !report.ok {
        return format!("FAILED ({})", report.outcome);
    }
    let Some(c) = report.counts else {
        return "no counts".into();
    };
    if report.mode == "orders" && report.target == "mailchimp" {
        // A store keeps orders, not events (the per-kind counts are orders and their lines).
        return format!(
            "{} of {} orders into the store",
            c.events.placed_order, c.source
        );
    }
    if report.mode == "orders" {
        return format!("{} events from {} orders", c.events.total(), c.source);
    }
    let mut s = format!(
        "+{} created, ~{} updated, -{} archived",
        c.created, c.updated, c.archived
    );
    if report.segment.is_some() {
        s = format!(
            "+{} created, segment +{} -{}",
            c.created, c.segment_added, c.segment_removed
        );
    }
    s
}

fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

fn requests_line(requests: &BTreeMap<&'static str, u64>) -> String {
    if requests.is_empty() {
        return "none".into();
    }
    requests
        .iter()
        .map(|(vendor, n)| format!("{vendor} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}\n")).collect()
}

/// What the demo audience holds at the end.
fn audience_line(sandbox: &Sandbox, list: &str, parsed: &[(Example, Manifests)]) -> String {
    let mc = &sandbox.mailchimp;
    let mut line = format!(
        "Mailchimp audience {list} now: {} members ({} subscribed, {} unsubscribed, {} transactional, {} cleaned, {} archived)",
        mc.member_count(list),
        mc.count_by_status(list, MemberStatus::Subscribed),
        mc.count_by_status(list, MemberStatus::Unsubscribed),
        mc.count_by_status(list, MemberStatus::Transactional),
        mc.count_by_status(list, MemberStatus::Cleaned),
        mc.count_by_status(list, MemberStatus::Archived),
    );
    let mut segments: Vec<String> = parsed
        .iter()
        .flat_map(|(_, m)| m.syncs.iter())
        .filter_map(|s| match s {
            SyncManifest::Segment(s) => s
                .spec
                .target
                .mailchimp
                .as_ref()
                .filter(|m| m.audience_id == list)
                .map(|m| m.segment.trim().to_string()),
            SyncManifest::Audience(_) | SyncManifest::Order(_) => None,
        })
        .collect();
    segments.dedup();
    let sizes: Vec<String> = segments
        .iter()
        .map(|s| format!("{s:?} {}", mc.tag_members(list, s).len()))
        .collect();
    if !sizes.is_empty() {
        line.push_str(&format!("; segments: {}", sizes.join(", ")));
    }
    line
}

/// What each Klaviyo list the examples write holds at the end, and the welcome flows started.
fn klaviyo_lines(sandbox: &Sandbox, parsed: &[(Example, Manifests)]) -> Vec<String> {
    let kl = &sandbox.klaviyo;
    let mut names: Vec<(String, Option<String>)> = parsed
        .iter()
        .flat_map(|(_, m)| m.syncs.iter())
        .filter_map(|s| match s {
            SyncManifest::Audience(a) => a
                .spec
                .target
                .klaviyo
                .as_ref()
                .and_then(|k| k.list_name.clone())
                .map(|n| (n, None)),
            SyncManifest::Segment(s) => s.spec.target.klaviyo.as_ref().and_then(|k| {
                k.list_name
                    .clone()
                    .map(|n| (n, Some(k.segment_list.trim().to_string())))
            }),
            SyncManifest::Order(_) => None,
        })
        .collect();
    names.dedup();
    let mut lines = Vec::new();
    for (name, segment) in names {
        let Some(id) = kl.list_id(name.trim()) else {
            continue;
        };
        let emails = kl.list_members(&id);
        let (mut subscribed, mut never, mut out) = (0, 0, 0);
        for email in &emails {
            let Some(p) = kl.profile_by_email(email) else {
                continue;
            };
            let m = &p.email_marketing;
            let opted_out = !m.suppressions.is_empty()
                || m.list_suppressions.iter().any(|(list, _, _)| *list == id);
            match m.consent {
                _ if opted_out => out += 1,
                audience_sandbox::klaviyo::Consent::Subscribed => subscribed += 1,
                audience_sandbox::klaviyo::Consent::Unsubscribed => out += 1,
                audience_sandbox::klaviyo::Consent::NeverSubscribed => never += 1,
            }
        }
        let mut line = format!(
            "Klaviyo list {name:?} now: {} profiles ({subscribed} subscribed, {out} unsubscribed or suppressed, {never} never subscribed); \"added to list\" flows started: {}",
            emails.len(),
            kl.list_flows(&id)
        );
        if let Some(segment) = segment
            && let Some(segment_id) = kl.list_id(&segment)
        {
            line.push_str(&format!(
                "; segment list {segment:?}: {} profiles",
                kl.list_members(&segment_id).len()
            ));
        }
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_examples_parse_and_match_the_directory() {
        for (file, text) in EMBEDDED {
            let m = manifest::parse(text).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(m.syncs.len(), 1, "{file}: one sync per example");
        }
        let (from_dir, origin) = examples();
        assert_eq!(origin, EXAMPLES_DIR);
        assert!(from_dir.len() >= EMBEDDED.len());
    }

    /// The target kind, its audience or list, and the name of its Secret.
    fn own(t: crate::crd::TargetRef<'_>) -> (&'static str, String, String) {
        (
            t.kind_str(),
            t.destination().to_string(),
            t.credentials().name.clone(),
        )
    }

    /// The examples must work against a fresh sandbox: its demo audience, credentials and segments.
    #[test]
    fn examples_use_what_the_sandbox_serves() {
        use audience_sandbox::{lightspeed_r, lightspeed_x, mailchimp, retailcrm, shopify};
        for (file, text) in EMBEDDED {
            let m = manifest::parse(text).unwrap();
            let secret = |name: &str, key: &str| {
                let s = m
                    .secret(name, None)
                    .unwrap_or_else(|| panic!("{file}: no Secret {name}"));
                String::from_utf8(s.data[key].clone()).unwrap()
            };
            let (sources, target) = match &m.syncs[0] {
                SyncManifest::Audience(a) => {
                    let sources: Vec<_> = match &a.spec.source {
                        Some(one) => vec![one.clone()],
                        None => a.spec.sources.iter().map(|s| s.source.clone()).collect(),
                    };
                    (sources, a.spec.target.get().map(own))
                }
                SyncManifest::Segment(s) => {
                    let code = s.spec.source_segment.retailcrm_segment.clone();
                    assert!(
                        matches!(code.as_deref(), Some("vip" | "newsletter")),
                        "{file}: the sandbox's RetailCRM segments are vip and newsletter"
                    );
                    (vec![s.spec.source.clone()], s.spec.target.get().map(own))
                }
                SyncManifest::Order(o) => (
                    vec![o.spec.source.clone()],
                    o.spec.target.get().map(|t| {
                        // A Mailchimp store is connected to one of the sandbox's audiences.
                        let audience = match t {
                            crate::crd::EventTargetRef::Mailchimp(m) => m.audience_id.clone(),
                            crate::crd::EventTargetRef::Klaviyo { .. } => String::new(),
                        };
                        (t.kind_str(), audience, t.credentials().name.clone())
                    }),
                ),
            };
            let (kind, destination, target_secret) = target.unwrap();
            match kind {
                "mailchimp" => {
                    assert!(
                        [
                            mailchimp::DEMO_LIST_ID,
                            mailchimp::COMBINED_LIST_ID,
                            mailchimp::TWO_WAY_LIST_ID,
                        ]
                        .contains(&destination.as_str()),
                        "{file}: {destination}"
                    );
                    assert_eq!(
                        secret(&target_secret, "apiKey"),
                        mailchimp::EXAMPLE_API_KEY,
                        "{file}"
                    );
                }
                "klaviyo" => assert_eq!(
                    secret(&target_secret, "apiKey"),
                    audience_sandbox::klaviyo::EXAMPLE_API_KEY,
                    "{file}"
                ),
                other => panic!("{file}: target {other}"),
            }
            for source in &sources {
                let source_secret = &source.credentials().unwrap().name;
                let kind = source.kind().unwrap();
                let expected = match kind {
                    crate::crd::SourceKind::Shopify => shopify::DEFAULT_ACCESS_TOKEN,
                    crate::crd::SourceKind::LightspeedXSeries => lightspeed_x::DEMO_TOKEN,
                    crate::crd::SourceKind::LightspeedRSeries => {
                        let r = source.lightspeed_r_series.as_ref().unwrap();
                        assert_eq!(r.account_id, lightspeed_r::DEMO_ACCOUNT_ID, "{file}");
                        lightspeed_r::DEMO_TOKEN
                    }
                    crate::crd::SourceKind::Retailcrm => retailcrm::DEFAULT_API_KEY,
                };
                assert_eq!(
                    secret(
                        source_secret,
                        crate::sync::connect::source_descriptor(source.get().unwrap())
                            .default_secret_key
                    ),
                    expected,
                    "{file}"
                );
            }
            assert!(
                !text.contains("namespace:"),
                "{file}: no namespace in examples"
            );
        }
    }

    #[test]
    fn without_the_directory_the_built_in_copies_are_used() {
        let (examples, origin) = examples_from(Path::new("/nonexistent/examples"));
        assert_eq!(examples.len(), EMBEDDED.len());
        assert!(origin.contains("built into"), "{origin}");
        assert_eq!(examples[0].file, "lightspeed-x-to-mailchimp.yaml");
    }
}
