//! `audience-operator sandbox`: every vendor simulator on one port, with demo data, until ctrl-c.

use std::fmt::Write as _;
use std::io::Write as _;

use anyhow::Context as _;
use audience_sandbox::{
    Sandbox, SandboxOptions, klaviyo, lightspeed_r, lightspeed_x, mailchimp, retailcrm, shopify,
};

use super::SandboxArgs;

pub async fn main(args: SandboxArgs) -> anyhow::Result<()> {
    super::sync::init_logging();
    let sandbox = Sandbox::new(SandboxOptions {
        customers: args.customers,
        ..SandboxOptions::default()
    });
    let running = sandbox
        .serve(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let url = running.url();
    let mut out = std::io::stdout().lock();
    writeln!(out, "sandbox listening on {url}")?;
    write!(out, "{}", describe(&url, args.customers))?;
    writeln!(out, "serving until ctrl-c")?;
    out.flush()?;
    drop(out);
    shutdown_signal().await;
    eprintln!("sandbox stopped");
    drop(running);
    Ok(())
}

/// Waits for ctrl-c (or SIGTERM on Unix).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The base URL of every simulator, the demo credentials each accepts, and how to use them.
pub fn describe(url: &str, customers: usize) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{customers} demo customers in each source (the same people in every one)\n"
    );
    let rows = [
        (
            "mailchimp",
            format!("{url}/mailchimp/3.0"),
            format!(
                "apiKey {} (any <32 hex>-<dc> key); audience {}",
                mailchimp::EXAMPLE_API_KEY,
                mailchimp::DEMO_LIST_ID
            ),
        ),
        (
            "klaviyo",
            format!("{url}/klaviyo"),
            format!(
                "apiKey {} (any pk_ key); lists are created by name (listName)",
                klaviyo::EXAMPLE_API_KEY
            ),
        ),
        (
            "shopify",
            format!("{url}/shopify"),
            format!(
                "accessToken {}; any *.myshopify.com domain; Admin API {}",
                shopify::DEFAULT_ACCESS_TOKEN,
                shopify::API_VERSION
            ),
        ),
        (
            "lightspeed-x",
            format!("{url}/lightspeed-x/api/2.0"),
            format!("token {}; any domain prefix", lightspeed_x::DEMO_TOKEN),
        ),
        (
            "lightspeed-r",
            format!(
                "{url}/lightspeed-r/API/V3/Account/{}",
                lightspeed_r::DEMO_ACCOUNT_ID
            ),
            format!(
                "token {}; accountId {}",
                lightspeed_r::DEMO_TOKEN,
                lightspeed_r::DEMO_ACCOUNT_ID
            ),
        ),
        (
            "retailcrm",
            format!("{url}/retailcrm"),
            format!(
                "apiKey {}; site {}; segments vip, newsletter",
                retailcrm::DEFAULT_API_KEY,
                retailcrm::SITE
            ),
        ),
    ];
    let width = rows
        .iter()
        .map(|(_, base, _)| base.len())
        .max()
        .unwrap_or(0);
    for (vendor, base, creds) in rows {
        let _ = writeln!(s, "  {vendor:<13} {base:<width$}  {creds}");
    }
    let _ = writeln!(
        s,
        "\n  control       {url}/_sandbox/stats (GET: requests per vendor), {url}/_sandbox/reset (POST), {url}/_sandbox/faults (POST)\n"
    );
    let _ = writeln!(
        s,
        "try: audience-operator sync -f examples/lightspeed-x-to-mailchimp.yaml --sandbox {url}"
    );
    let _ = writeln!(
        s,
        "     (the manifests in examples/ carry these credentials; every vendor call goes to the sandbox)"
    );
    s
}
