//! `audience-operator demo`, the README's first command: no cluster, no accounts, no network.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_audience-operator");

const EXAMPLES: [&str; 16] = [
    "lightspeed-x-to-mailchimp.yaml",
    "shopify-to-mailchimp.yaml",
    "store-and-web-to-mailchimp.yaml",
    "shopify-two-way-mailchimp.yaml",
    "lightspeed-r-to-mailchimp.yaml",
    "retailcrm-segment-exact.yaml",
    "retailcrm-segment-union.yaml",
    "retailcrm-segment-subtract.yaml",
    "lightspeed-r-to-klaviyo.yaml",
    "shopify-to-klaviyo.yaml",
    "retailcrm-segment-to-klaviyo.yaml",
    "lightspeed-r-orders-to-klaviyo.yaml",
    "shopify-orders-to-klaviyo.yaml",
    "shopify-orders-to-mailchimp.yaml",
    "lightspeed-x-orders-to-klaviyo.yaml",
    "retailcrm-orders-to-klaviyo.yaml",
];

/// The numbers in a piece of text.
fn numbers(text: &str) -> Vec<u64> {
    text.split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect()
}

#[test]
fn demo_changes_something_per_example_then_nothing() {
    let out = Command::new(BIN)
        .arg("demo")
        .env_clear()
        .current_dir(std::env::temp_dir())
        .output()
        .expect("the binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");

    // First pass: every example is shown with what it did.
    for (i, file) in EXAMPLES.iter().enumerate() {
        assert!(
            stdout.contains(&format!("[{}/{}] {file}", i + 1, EXAMPLES.len())),
            "{file} missing:\n{stdout}"
        );
    }

    // The Mailchimp e-commerce store of shopify-orders-to-mailchimp: the 8 sendable demo orders,
    // the history loaded under is_syncing.
    assert!(
        stdout.contains(
            "Mailchimp store \"demo-shop\" (audience a1b2c3d4e5) now: 8 orders, 8 customers"
        ) && stdout.contains("is_syncing written [true, false]"),
        "{stdout}"
    );

    // The summary: per example, first-pass counts and writes above zero, then zero writes.
    let summary = stdout.split_once("\nSummary\n").expect("a summary").1;
    for file in EXAMPLES {
        let line = summary
            .lines()
            .find(|l| l.trim_start().starts_with(file))
            .unwrap_or_else(|| panic!("{file} not in the summary:\n{summary}"));
        let rest = line.trim_start()[file.len()..].trim();
        let first = rest
            .strip_suffix(" 0 writes")
            .unwrap_or_else(|| panic!("second pass of {file} wrote: {line}"))
            .trim();
        let first_numbers = numbers(first);
        let (writes, counts) = first_numbers.split_last().expect("counts and writes");
        assert!(first.ends_with(" writes"), "{line}");
        assert!(
            *writes > 0,
            "{file} wrote nothing on the first pass: {line}"
        );
        assert!(
            counts.iter().sum::<u64>() > 0,
            "{file} changed nothing: {line}"
        );
    }

    // The second pass, example by example.
    let second = stdout
        .split_once("\nSecond pass")
        .expect("a second pass")
        .1
        .split_once("\nSummary\n")
        .unwrap()
        .0;
    for file in EXAMPLES {
        let line = second
            .lines()
            .find(|l| l.trim_start().starts_with(file))
            .unwrap_or_else(|| panic!("{file} not in the second pass:\n{second}"));
        assert!(line.ends_with("0 changes, 0 target writes"), "{line}");
    }
    // Two-way consent: a change on each side reached the other, and nothing went back.
    let two_way = stdout
        .split_once("\nTwo-way consent: one change on each side")
        .expect("a two-way consent round")
        .1;
    let line = |prefix: &str| {
        two_way
            .lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line:\n{two_way}"))
            .to_string()
    };
    assert!(
        line("Mailchimp → Shopify:").ends_with("is now UNSUBSCRIBED in Shopify"),
        "{two_way}"
    );
    assert!(
        line("Shopify → Mailchimp:").ends_with("is now subscribed in Mailchimp"),
        "{two_way}"
    );
    assert!(
        two_way.contains("1 written back to the source"),
        "{two_way}"
    );
    assert_eq!(
        line("once more:").trim(),
        "once more: 0 changes, 0 Mailchimp writes, 0 Shopify consent writes",
        "{two_way}"
    );
    for audience in [
        audience_sandbox::mailchimp::DEMO_LIST_ID,
        audience_sandbox::mailchimp::COMBINED_LIST_ID,
        audience_sandbox::mailchimp::TWO_WAY_LIST_ID,
    ] {
        assert!(
            stdout.contains(&format!("Mailchimp audience {audience} now:")),
            "{stdout}"
        );
    }
    // Each Klaviyo list holds what its source pushed, and the history import started no
    // welcome flow (seed 003).
    for list in [
        "Lightspeed customers",
        "Shopify customers",
        "RetailCRM customers",
    ] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("Klaviyo list {list:?} now:")))
            .unwrap_or_else(|| panic!("no line for {list}:\n{stdout}"));
        let profiles = numbers(line.split_once("now:").unwrap().1)[0];
        assert!(profiles > 0, "{line}");
        assert!(
            line.contains("\"added to list\" flows started: 0"),
            "{line}"
        );
    }
}
