//! The chart's RBAC is enough for the operator (cluster-wide mode): after `helm install`, the
//! operator binary, run locally *as the chart's ServiceAccount* (a TokenRequest token), takes the
//! Lease, answers its probes and brings the Lightspeed X-Series -> Mailchimp example to
//! `Ready=True` against the sandbox, recording Events and never being refused.

mod helm_support;

use audience_testenv::TestEnv;
use helm_support::*;

const RELEASE: &str = "audience-operator";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_as_chart_service_account_brings_example_ready() {
    let env = TestEnv::shared().await;
    let rel_ns = env.namespace("helm-op-release").await;
    let app_ns = env.namespace("helm-op-app").await;
    helm_install(env, RELEASE, &rel_ns, &[]).await;
    wait_crds_established(&env.client()).await;

    let (mut op, _sandbox) =
        operator_brings_example_ready(env, &rel_ns, RELEASE, RELEASE, &app_ns, &[]).await;
    op.kill().await;
}
