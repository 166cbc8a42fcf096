//! A sandbox with an empty shop and a Shopify source on it, for the Shopify contract tests.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use audience_connectors::http::RetryPolicy;
use audience_connectors::shopify::{ShopifyConfig, ShopifySource};
use audience_sandbox::{RunningSandbox, Sandbox, SandboxOptions, Vendor};

/// Serves a sandbox with no demo customers and returns it with a source whose access token
/// (unique per call, `shpat_{label}_…`) the shop accepts; retries are quick.
pub async fn start_shop(label: &str) -> (RunningSandbox, ShopifySource) {
    static N: AtomicU32 = AtomicU32::new(0);
    let sandbox = Sandbox::new(SandboxOptions {
        customers: 0,
        seed: 7,
    })
    .serve("127.0.0.1:0".parse().unwrap())
    .await
    .unwrap();
    let token = format!(
        "shpat_{label}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    sandbox.sandbox.shopify.set_access_token(&token);
    let mut config = ShopifyConfig::with_base_url(sandbox.vendor_url(Vendor::Shopify), &token);
    config.retry = RetryPolicy {
        max_retries: 2,
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(100),
        timeout: Duration::from_secs(10),
    };
    let source = ShopifySource::new(config).unwrap();
    (sandbox, source)
}
