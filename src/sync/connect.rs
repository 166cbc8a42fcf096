//! Building connectors from a sync's spec and the credentials read from its Secret.
//!
//! Every vendor dispatch is a `match` on [`SourceRef`] or [`TargetRef`], so a new vendor is a
//! compile error until it is handled here; the vendor's own facts (default Secret key, API path,
//! mapping rules) come from its connector module's `DESCRIPTOR` and functions.
//!
//! Where each connector sends its calls, first match wins:
//!
//! 1. `sandbox` (the `--sandbox URL` flag): the simulators served at that URL, each under its
//!    vendor's name with the vendor's API path (`{sandbox}/mailchimp/3.0`, `{sandbox}/shopify`,
//!    `{sandbox}/lightspeed-x/api/2.0`, `{sandbox}/lightspeed-r/API/V3/Account/{accountId}`,
//!    `{sandbox}/retailcrm`), whatever the spec's `endpoint` says;
//! 2. the spec's `endpoint` (see [`source_base_url`] and [`target_base_url`] for how each is
//!    completed);
//! 3. the vendor's real URL, built by the connector from the shop domain, domain prefix, account
//!    or API key's data centre.
//!
//! Errors name the Secret and key, never a secret's value.

use audience_connectors::http::RetryPolicy;
use audience_connectors::klaviyo::{self, KlaviyoConfig, KlaviyoEventSink, KlaviyoTarget, ListRef};
use audience_connectors::lightspeed_r::{self, LightspeedRSource};
use audience_connectors::lightspeed_x::{self, LightspeedXSource};
use audience_connectors::mailchimp::{
    self, MailchimpConfig, MailchimpOrderConfig, MailchimpOrderSink, MailchimpTarget,
};
use audience_connectors::retailcrm::{self, RetailCrmConfig, RetailCrmSource};
use audience_connectors::shopify::{self, ShopifyConfig, ShopifySource};
use audience_connectors::vendor::VendorDescriptor;
use audience_core::{
    ConnectorError, ErrorKind, FieldMapping, OrderDestination, OrderSource, Source, Target,
};
use url::Url;

use super::credentials::Credentials;
use crate::crd::{EventTargetRef, KlaviyoListRef, SourceRef, TargetRef};

/// Why a connector could not be built. Messages never contain a secret.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The spec names no usable source or target.
    #[error("invalid connection settings: {0}")]
    Invalid(String),
    /// The credentials are unusable as given (e.g. a Mailchimp key without a data-centre suffix).
    #[error("unusable credentials: {0}")]
    BadCredentials(String),
    /// This build cannot talk to that vendor (yet).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The spec's endpoint is a host credentials may not be sent to.
    #[error("{0}")]
    EndpointNotAllowed(String),
}

/// The facts of the source's vendor.
pub fn source_descriptor(source: SourceRef<'_>) -> &'static VendorDescriptor {
    match source {
        SourceRef::Shopify(_) => &shopify::DESCRIPTOR,
        SourceRef::LightspeedXSeries(_) => &lightspeed_x::DESCRIPTOR,
        SourceRef::LightspeedRSeries(_) => &lightspeed_r::DESCRIPTOR,
        SourceRef::Retailcrm(_) => &retailcrm::DESCRIPTOR,
    }
}

/// The facts of the target's vendor.
pub fn target_descriptor(target: TargetRef<'_>) -> &'static VendorDescriptor {
    match target {
        TargetRef::Mailchimp(_) => &mailchimp::DESCRIPTOR,
        TargetRef::Klaviyo(_) => &klaviyo::DESCRIPTOR,
    }
}

/// The facts of an OrderSync target's vendor.
pub fn event_sink_descriptor(target: EventTargetRef<'_>) -> &'static VendorDescriptor {
    match target {
        EventTargetRef::Klaviyo { .. } => &klaviyo::DESCRIPTOR,
        EventTargetRef::Mailchimp(_) => &mailchimp::DESCRIPTOR,
    }
}

/// The mapping a sync into this target starts from (the names its spec leaves out).
pub fn default_mapping(target: TargetRef<'_>) -> FieldMapping {
    match target {
        TargetRef::Mailchimp(_) => mailchimp::default_mapping(),
        TargetRef::Klaviyo(_) => klaviyo::default_mapping(),
    }
}

/// The target vendor's own rules for a field mapping (e.g. Mailchimp's merge tags).
pub fn validate_mapping(target: TargetRef<'_>, mapping: &FieldMapping) -> Result<(), String> {
    match target {
        TargetRef::Mailchimp(_) => mailchimp::validate_mapping(mapping),
        TargetRef::Klaviyo(_) => klaviyo::validate_mapping(mapping),
    }
}

/// How the real connectors are built, beyond what the spec says.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// Retries of rate limits, 5xx and timeouts for every connector; `None` keeps each vendor's
    /// own default (tests shorten the delays).
    pub retry: Option<RetryPolicy>,
    /// Which `endpoint` (and RetailCRM `url`) hosts credentials may be sent to.
    pub endpoints: EndpointPolicy,
}

/// Where a spec's `endpoint` may point. Whoever may create a sync must not be able to send a
/// Secret's value to a host of their choosing, so by default only the vendors' own hosts are
/// allowed; the operator adds hosts with `--allow-endpoint-host` (Helm `allowedEndpointHosts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointPolicy {
    /// The vendor's own hosts over https, and these hosts (an exact name, or `*.domain`) over
    /// https, or over plain http when the host is a loopback address (a local simulator).
    Listed(Vec<String>),
    /// Any http(s) endpoint: `sync -f`, where the person running it holds the credentials.
    Any,
}

impl Default for EndpointPolicy {
    fn default() -> Self {
        EndpointPolicy::Listed(Vec::new())
    }
}

impl EndpointPolicy {
    /// Whether credentials may be sent to `url` (already checked to be an http(s) URL).
    fn check(&self, vendor: &VendorDescriptor, field: &str, url: &str) -> Result<(), ConnectError> {
        let EndpointPolicy::Listed(hosts) = self else {
            return Ok(());
        };
        let parsed = Url::parse(url)
            .map_err(|_| ConnectError::Invalid(format!("{field} {url:?} is not a URL")))?;
        let host = parsed.host_str().unwrap_or("");
        let loopback = match parsed.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
            None => false,
        };
        let listed = hosts.iter().any(|pattern| {
            audience_connectors::vendor::host_matches(pattern, host.trim_matches(['[', ']']))
        });
        let secure = parsed.scheme() == "https";
        if secure && (vendor.owns_host(host) || listed) {
            return Ok(());
        }
        if !secure && listed && loopback {
            return Ok(());
        }
        let why = if !secure && listed {
            "plain http is allowed only to a loopback address"
        } else if !secure {
            "plain http is allowed only to an allowed loopback address"
        } else {
            "the host is not one of the vendor's own and not in the operator's allow-list"
        };
        Err(ConnectError::EndpointNotAllowed(format!(
            "{field}: the {} will not be sent to {host:?}: {why}; an operator administrator can allow it with --allow-endpoint-host {host} (Helm value allowedEndpointHosts)",
            vendor.credential_name
        )))
    }
}

/// A source connector of one vendor (customers, and orders where the vendor has them).
enum VendorSource {
    Shopify(ShopifySource),
    LightspeedX(LightspeedXSource),
    LightspeedR(LightspeedRSource),
    Retailcrm(RetailCrmSource),
}

/// Builds the source a spec describes.
pub fn build_source(
    spec: SourceRef<'_>,
    creds: &Credentials,
    sandbox: Option<&Url>,
    options: &ConnectOptions,
) -> Result<Box<dyn Source>, ConnectError> {
    Ok(match build_vendor_source(spec, creds, sandbox, options)? {
        VendorSource::Shopify(s) => Box::new(s),
        VendorSource::LightspeedX(s) => Box::new(s),
        VendorSource::LightspeedR(s) => Box::new(s),
        VendorSource::Retailcrm(s) => Box::new(s),
    })
}

/// Builds the order source a spec describes (an OrderSync's `source`).
pub fn build_order_source(
    spec: SourceRef<'_>,
    creds: &Credentials,
    sandbox: Option<&Url>,
    options: &ConnectOptions,
) -> Result<Box<dyn OrderSource>, ConnectError> {
    Ok(match build_vendor_source(spec, creds, sandbox, options)? {
        VendorSource::Shopify(s) => Box::new(s),
        VendorSource::LightspeedX(s) => Box::new(s),
        VendorSource::LightspeedR(s) => Box::new(s),
        VendorSource::Retailcrm(s) => Box::new(s),
    })
}

/// Builds where an OrderSync's `target` sends: Klaviyo's event sink, or a Mailchimp
/// e-commerce store. The endpoint goes through the same host check as every target's, so the API
/// key never goes to a host outside the vendor's.
pub fn build_event_sink(
    spec: EventTargetRef<'_>,
    creds: &Credentials,
    sandbox: Option<&Url>,
    options: &ConnectOptions,
) -> Result<OrderDestination, ConnectError> {
    let secret = secret_value(creds)?;
    match spec {
        EventTargetRef::Klaviyo { endpoint, .. } => {
            let base = resolve(
                sandbox,
                &klaviyo::DESCRIPTOR,
                endpoint.map(|e| ("klaviyo.endpoint", e)),
                &options.endpoints,
                str::to_string,
            )?;
            // The sink uses no list: events are not list members.
            let mut config = KlaviyoConfig::new(secret, ListRef::Name(String::new()));
            config.base_url = base;
            if let Some(retry) = options.retry.clone() {
                config.retry = retry;
            }
            KlaviyoEventSink::new(config)
                .map(|s| OrderDestination::Events(Box::new(s)))
                .map_err(|e| from_connector(e, creds))
        }
        EventTargetRef::Mailchimp(m) => {
            let base = resolve(
                sandbox,
                &mailchimp::DESCRIPTOR,
                m.endpoint.as_deref().map(|e| ("mailchimp.endpoint", e)),
                &options.endpoints,
                mailchimp::api_base,
            )?;
            let mut config =
                MailchimpOrderConfig::new(secret, m.store_id.trim(), m.audience_id.trim());
            config.base_url = base;
            config.domain = m.domain.clone();
            if let Some(retry) = options.retry.clone() {
                config.retry = retry;
            }
            MailchimpOrderSink::new(config)
                .map(|s| OrderDestination::Orders(Box::new(s)))
                .map_err(|e| from_connector(e, creds))
        }
    }
}

fn build_vendor_source(
    spec: SourceRef<'_>,
    creds: &Credentials,
    sandbox: Option<&Url>,
    options: &ConnectOptions,
) -> Result<VendorSource, ConnectError> {
    let secret = secret_value(creds)?;
    let base = source_base_url(spec, sandbox, &options.endpoints)?;
    let retry = options.retry.clone();
    let built: Result<VendorSource, ConnectorError> = match spec {
        SourceRef::Shopify(s) => {
            if s.api_version != shopify::API_VERSION {
                return Err(ConnectError::Unsupported(format!(
                    "shopify apiVersion {}: this build reads the Admin API {}; set apiVersion: {} or leave it out",
                    s.api_version,
                    shopify::API_VERSION,
                    shopify::API_VERSION
                )));
            }
            let mut config = ShopifyConfig::new(s.shop_domain.trim(), secret);
            config.base_url = base;
            if let Some(retry) = retry {
                config.retry = retry;
            }
            ShopifySource::new(config).map(VendorSource::Shopify)
        }
        SourceRef::LightspeedXSeries(s) => LightspeedXSource::new(&s.domain_prefix, secret)
            .and_then(|source| match &base {
                Some(base) => source.with_base_url(base),
                None => Ok(source),
            })
            .map(|source| match retry {
                Some(retry) => source.with_retry_policy(retry),
                None => source,
            })
            .map(VendorSource::LightspeedX),
        SourceRef::LightspeedRSeries(s) => LightspeedRSource::new(&s.account_id, secret)
            .and_then(|source| match &base {
                Some(base) => source.with_base_url(base),
                None => Ok(source),
            })
            .map(|source| match retry {
                Some(retry) => source.with_retry_policy(retry),
                None => source,
            })
            .map(VendorSource::LightspeedR),
        SourceRef::Retailcrm(s) => {
            let mut config =
                RetailCrmConfig::new(s.account.as_deref().unwrap_or("").trim(), secret);
            config.base_url = base;
            config.site = s
                .site
                .as_deref()
                .map(str::trim)
                .filter(|site| !site.is_empty())
                .map(str::to_string);
            if let Some(retry) = retry {
                config.retry = retry;
            }
            match s.time_zone.as_deref() {
                Some(zone) => config.with_time_zone(zone),
                None => Ok(config),
            }
            .and_then(RetailCrmSource::new)
            .map(VendorSource::Retailcrm)
        }
    };
    built.map_err(|e| from_connector(e, creds))
}

/// Builds the target a spec describes.
pub fn build_target(
    spec: TargetRef<'_>,
    creds: &Credentials,
    sandbox: Option<&Url>,
    options: &ConnectOptions,
) -> Result<Box<dyn Target>, ConnectError> {
    let secret = secret_value(creds)?;
    let base = target_base_url(spec, sandbox, &options.endpoints)?;
    let built: Result<Box<dyn Target>, ConnectorError> = match spec {
        TargetRef::Mailchimp(m) => {
            let mut config = MailchimpConfig::new(secret, m.audience_id.trim());
            config.base_url = base;
            if let Some(retry) = options.retry.clone() {
                config.retry = retry;
            }
            MailchimpTarget::new(config).map(|t| Box::new(t) as Box<dyn Target>)
        }
        TargetRef::Klaviyo(k) => {
            let list = match k.list {
                KlaviyoListRef::Id(id) => ListRef::Id(id.trim().to_string()),
                KlaviyoListRef::Name(name) => ListRef::Name(name.trim().to_string()),
            };
            let mut config = KlaviyoConfig::new(secret, list);
            config.base_url = base;
            // Every subscription is a history import unless the sync asks for list flows (the
            // first run's plan is one in any case).
            config.historical_import = !k.trigger_list_flows;
            if let Some(retry) = options.retry.clone() {
                config.retry = retry;
            }
            KlaviyoTarget::new(config).map(|t| Box::new(t) as Box<dyn Target>)
        }
    };
    built.map_err(|e| from_connector(e, creds))
}

/// The API base URL a source connector is given: under the sandbox when there is one, else the
/// spec's `endpoint` (RetailCRM: then its `url`), completed with the vendor's API path where the
/// connector expects it. `None` leaves the vendor's real URL to the connector.
///
/// | source | sandbox | `endpoint` given as `E` |
/// |---|---|---|
/// | Shopify | `{sandbox}/shopify` | `E` (the shop's origin; the connector adds `/admin/api/{version}/graphql.json`) |
/// | Lightspeed X-Series | `{sandbox}/lightspeed-x/api/2.0` | `E`, plus `/api/2.0` unless `E` ends with it |
/// | Lightspeed R-Series | `{sandbox}/lightspeed-r/API/V3/Account/{accountId}` | `E`, plus `/API/V3/Account/{accountId}` unless `E` holds `/API/V3/Account/` |
/// | RetailCRM | `{sandbox}/retailcrm` | `E` (the CRM's origin; the connector adds `/api/v5/...`) |
pub fn source_base_url(
    spec: SourceRef<'_>,
    sandbox: Option<&Url>,
    policy: &EndpointPolicy,
) -> Result<Option<String>, ConnectError> {
    let vendor = source_descriptor(spec);
    match spec {
        SourceRef::Shopify(s) => resolve(
            sandbox,
            vendor,
            s.endpoint.as_deref().map(|e| ("shopify.endpoint", e)),
            policy,
            shopify::base_url_for_endpoint,
        ),
        SourceRef::LightspeedXSeries(s) => resolve(
            sandbox,
            vendor,
            s.endpoint
                .as_deref()
                .map(|e| ("lightspeedXSeries.endpoint", e)),
            policy,
            lightspeed_x::api_base,
        ),
        SourceRef::LightspeedRSeries(s) => resolve(
            sandbox,
            vendor,
            s.endpoint
                .as_deref()
                .map(|e| ("lightspeedRSeries.endpoint", e)),
            policy,
            |base| lightspeed_r::api_base(base, &s.account_id),
        ),
        SourceRef::Retailcrm(s) => {
            let given = match (&s.endpoint, &s.url) {
                (Some(endpoint), _) => Some(("retailcrm.endpoint", endpoint.as_str())),
                (None, Some(url)) => Some(("retailcrm.url", url.as_str())),
                (None, None) => None,
            };
            if sandbox.is_none()
                && given.is_none()
                && s.account.as_deref().is_none_or(|a| a.trim().is_empty())
            {
                return Err(ConnectError::Invalid(
                    "retailcrm: give account or url".into(),
                ));
            }
            resolve(
                sandbox,
                vendor,
                given,
                policy,
                retailcrm::base_url_for_endpoint,
            )
        }
    }
}

/// The API base URL of the target. Mailchimp: `{sandbox}/mailchimp/3.0`, else the spec's
/// `endpoint` (plus `/3.0` unless it ends with it), else `None` for
/// `https://{dc}.api.mailchimp.com/3.0`. Klaviyo: `{sandbox}/klaviyo`, else the `endpoint` as
/// given, else `None` for `https://a.klaviyo.com`.
pub fn target_base_url(
    spec: TargetRef<'_>,
    sandbox: Option<&Url>,
    policy: &EndpointPolicy,
) -> Result<Option<String>, ConnectError> {
    let vendor = target_descriptor(spec);
    match spec {
        TargetRef::Mailchimp(m) => resolve(
            sandbox,
            vendor,
            m.endpoint.map(|e| ("mailchimp.endpoint", e)),
            policy,
            mailchimp::api_base,
        ),
        // Klaviyo's paths start at the host (`/api/...`): the endpoint is used as given.
        TargetRef::Klaviyo(k) => resolve(
            sandbox,
            vendor,
            k.endpoint.map(|e| ("klaviyo.endpoint", e)),
            policy,
            str::to_string,
        ),
    }
}

/// The sandbox's vendor URL, else the spec's endpoint (field name, value), each completed by the
/// vendor's `complete`; `None` when neither is given.
fn resolve(
    sandbox: Option<&Url>,
    vendor: &VendorDescriptor,
    endpoint: Option<(&str, &str)>,
    policy: &EndpointPolicy,
    complete: impl Fn(&str) -> String,
) -> Result<Option<String>, ConnectError> {
    Ok(match (sandbox, endpoint) {
        // The sandbox is the operator's own setting, never a tenant's.
        (Some(sandbox), _) => Some(complete(&under_sandbox(sandbox, vendor.name)?)),
        (None, Some((field, endpoint))) => {
            let url = checked_url(field, endpoint)?;
            policy.check(vendor, field, &url)?;
            Some(complete(&url))
        }
        (None, None) => None,
    })
}

/// `{sandbox}/{prefix}`, whatever path the sandbox URL has (its query and fragment dropped).
fn under_sandbox(sandbox: &Url, prefix: &str) -> Result<String, ConnectError> {
    if !matches!(sandbox.scheme(), "http" | "https") || sandbox.host_str().is_none() {
        return Err(ConnectError::Invalid(format!(
            "the sandbox URL {:?} is not an http(s) URL",
            sandbox.as_str()
        )));
    }
    let mut base = sandbox.clone();
    base.set_query(None);
    base.set_fragment(None);
    Ok(format!("{}/{prefix}", base.as_str().trim_end_matches('/')))
}

/// An http(s) URL from the spec, without a trailing `/`.
fn checked_url(field: &str, value: &str) -> Result<String, ConnectError> {
    let trimmed = value.trim().trim_end_matches('/');
    match Url::parse(trimmed) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => {
            Ok(trimmed.to_string())
        }
        _ => Err(ConnectError::Invalid(format!(
            "{field} {trimmed:?} is not an http(s) URL"
        ))),
    }
}

/// The secret, or why it is unusable (naming the Secret and key, never the value).
fn secret_value(creds: &Credentials) -> Result<&str, ConnectError> {
    let value = creds.value.trim();
    if value.is_empty() {
        return Err(ConnectError::BadCredentials(format!(
            "key {:?} of Secret {} is empty",
            creds.key, creds.secret_name
        )));
    }
    Ok(value)
}

/// A connector's refusal of its configuration, by the error's kind. Any value of the Secret
/// that shows up is masked (connectors promise never to echo one; this makes sure).
fn from_connector(error: ConnectorError, creds: &Credentials) -> ConnectError {
    let message = creds.redact(&error.to_string());
    match error.kind {
        ErrorKind::InvalidCredentials | ErrorKind::Auth => ConnectError::BadCredentials(format!(
            "{message} (Secret {}, key {:?})",
            creds.secret_name, creds.key
        )),
        ErrorKind::Unsupported => ConnectError::Unsupported(message),
        _ => ConnectError::Invalid(message),
    }
}

/// Builds connectors for the controller and `sync -f`. The default builds the real ones;
/// tests may inject scripted connectors.
pub trait ConnectorFactory: Send + Sync {
    fn source(
        &self,
        spec: SourceRef<'_>,
        creds: &Credentials,
        sandbox: Option<&Url>,
    ) -> Result<Box<dyn Source>, ConnectError>;

    fn target(
        &self,
        spec: TargetRef<'_>,
        creds: &Credentials,
        sandbox: Option<&Url>,
    ) -> Result<Box<dyn Target>, ConnectError>;

    /// The order half of a source (OrderSync).
    fn order_source(
        &self,
        spec: SourceRef<'_>,
        creds: &Credentials,
        sandbox: Option<&Url>,
    ) -> Result<Box<dyn OrderSource>, ConnectError> {
        build_order_source(spec, creds, sandbox, &ConnectOptions::default())
    }

    /// Where an OrderSync's orders go (events or an order store).
    fn event_sink(
        &self,
        spec: EventTargetRef<'_>,
        creds: &Credentials,
        sandbox: Option<&Url>,
    ) -> Result<OrderDestination, ConnectError> {
        build_event_sink(spec, creds, sandbox, &ConnectOptions::default())
    }
}

/// The real connectors.
#[derive(Debug, Clone, Default)]
pub struct DefaultConnectors {
    pub options: ConnectOptions,
}

impl DefaultConnectors {
    pub fn new(options: ConnectOptions) -> Self {
        DefaultConnectors { options }
    }
}

impl ConnectorFactory for DefaultConnectors {
    fn source(
        &self,
        spec: SourceRef<'_>,
        creds: &Credentials,
        sandbox: Option<&Url>,
    ) -> Result<Box<dyn Source>, ConnectError> {
        build_source(spec, creds, sandbox, &self.options)
    }

    fn target(
        &self,
        spec: TargetRef<'_>,
        creds: &Credentials,
        sandbox: Option<&Url>,
    ) -> Result<Box<dyn Target>, ConnectError> {
        build_target(spec, creds, sandbox, &self.options)
    }

    fn order_source(
        &self,
        spec: SourceRef<'_>,
        creds: &Credentials,
        sandbox: Option<&Url>,
    ) -> Result<Box<dyn OrderSource>, ConnectError> {
        build_order_source(spec, creds, sandbox, &self.options)
    }

    fn event_sink(
        &self,
        spec: EventTargetRef<'_>,
        creds: &Credentials,
        sandbox: Option<&Url>,
    ) -> Result<OrderDestination, ConnectError> {
        build_event_sink(spec, creds, sandbox, &self.options)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::crd::{
        AudienceTarget, LightspeedRSeriesSource, LightspeedXSeriesSource,
        MailchimpTarget as MailchimpSpec, RetailcrmSource, SecretKeyRef, ShopifySource, SourceSpec,
    };

    const SECRET: &str = "s3cr3t-Value-0f-the-Secret";

    fn creds(value: &str) -> Credentials {
        Credentials {
            secret_name: "vendor-credentials".into(),
            key: "apiKey".into(),
            value: value.into(),
            data: BTreeMap::from([("apiKey".to_string(), value.to_string())]),
        }
    }

    fn secret_ref() -> SecretKeyRef {
        SecretKeyRef {
            name: "vendor-credentials".into(),
            key: None,
        }
    }

    fn empty() -> SourceSpec {
        SourceSpec {
            shopify: None,
            lightspeed_x_series: None,
            lightspeed_r_series: None,
            retailcrm: None,
        }
    }

    fn shopify(endpoint: Option<&str>) -> SourceSpec {
        SourceSpec {
            shopify: Some(ShopifySource {
                shop_domain: "demo-shop.myshopify.com".into(),
                api_version: "2025-01".into(),
                endpoint: endpoint.map(str::to_string),
                credentials_secret_ref: secret_ref(),
            }),
            ..empty()
        }
    }

    fn lightspeed_x(endpoint: Option<&str>) -> SourceSpec {
        SourceSpec {
            lightspeed_x_series: Some(LightspeedXSeriesSource {
                domain_prefix: "demo".into(),
                endpoint: endpoint.map(str::to_string),
                credentials_secret_ref: secret_ref(),
            }),
            ..empty()
        }
    }

    fn lightspeed_r(endpoint: Option<&str>) -> SourceSpec {
        SourceSpec {
            lightspeed_r_series: Some(LightspeedRSeriesSource {
                account_id: "230001".into(),
                endpoint: endpoint.map(str::to_string),
                credentials_secret_ref: secret_ref(),
            }),
            ..empty()
        }
    }

    fn retailcrm(endpoint: Option<&str>, url: Option<&str>, account: Option<&str>) -> SourceSpec {
        SourceSpec {
            retailcrm: Some(RetailcrmSource {
                account: account.map(str::to_string),
                url: url.map(str::to_string),
                site: Some("main-store".into()),
                time_zone: None,
                endpoint: endpoint.map(str::to_string),
                credentials_secret_ref: secret_ref(),
            }),
            ..empty()
        }
    }

    fn mailchimp(endpoint: Option<&str>) -> AudienceTarget {
        AudienceTarget {
            mailchimp: Some(MailchimpSpec {
                audience_id: "a1b2c3d4e5".into(),
                credentials_secret_ref: secret_ref(),
                endpoint: endpoint.map(str::to_string),
                contact_limit: None,
            }),
            klaviyo: None,
        }
    }

    fn klaviyo(endpoint: Option<&str>) -> AudienceTarget {
        AudienceTarget {
            mailchimp: None,
            klaviyo: Some(crate::crd::KlaviyoTarget {
                list_id: None,
                list_name: Some("Customers".into()),
                credentials_secret_ref: secret_ref(),
                endpoint: endpoint.map(str::to_string),
                trigger_list_flows: false,
            }),
        }
    }

    #[test]
    fn a_klaviyo_target_is_built_under_the_sandbox_or_its_endpoint() {
        let sandbox = Url::parse("http://127.0.0.1:8089/").unwrap();
        let any = EndpointPolicy::Any;
        assert_eq!(
            target_base_url(klaviyo(None).get().unwrap(), Some(&sandbox), &any).unwrap(),
            Some("http://127.0.0.1:8089/klaviyo".to_string())
        );
        assert_eq!(
            target_base_url(
                klaviyo(Some("https://proxy.example/k/")).get().unwrap(),
                None,
                &any
            )
            .unwrap(),
            Some("https://proxy.example/k".to_string())
        );
        assert_eq!(
            target_base_url(klaviyo(None).get().unwrap(), None, &any).unwrap(),
            None,
            "the connector's own https://a.klaviyo.com"
        );
        // Klaviyo's own host is allowed without a list; another is refused.
        let listed = EndpointPolicy::default();
        assert!(
            target_base_url(
                klaviyo(Some("https://a.klaviyo.com")).get().unwrap(),
                None,
                &listed
            )
            .is_ok()
        );
        assert!(matches!(
            target_base_url(
                klaviyo(Some("https://evil.example")).get().unwrap(),
                None,
                &listed
            ),
            Err(ConnectError::EndpointNotAllowed(_))
        ));
        let target = target_of(&klaviyo(None), &creds("pk_0123456789"), Some(&sandbox)).unwrap();
        assert_eq!(target.vendor(), "klaviyo");
    }

    #[test]
    fn a_mailchimp_store_target_sends_the_key_only_to_allowed_hosts() {
        let store = |endpoint: Option<&str>| crate::crd::MailchimpOrderTarget {
            store_id: "shop-1".into(),
            audience_id: "a1b2c3d4e5".into(),
            domain: None,
            credentials_secret_ref: secret_ref(),
            endpoint: endpoint.map(str::to_string),
            promo_codes: Default::default(),
        };
        let key = creds("0123456789abcdef0123456789abcdef-us6");
        let listed = ConnectOptions::default();
        let build = |t: &crate::crd::MailchimpOrderTarget, sandbox: Option<&Url>| {
            build_event_sink(EventTargetRef::Mailchimp(t), &key, sandbox, &listed)
        };
        let sink = build(&store(None), None).unwrap();
        assert!(matches!(sink, OrderDestination::Orders(_)));
        assert_eq!(sink.vendor(), "mailchimp");
        assert!(build(&store(Some("https://us6.api.mailchimp.com")), None).is_ok());
        assert!(matches!(
            build(&store(Some("https://evil.example")), None),
            Err(ConnectError::EndpointNotAllowed(_))
        ));
        // The sandbox (the operator's own setting) wins over the spec's endpoint.
        let sandbox = Url::parse("http://127.0.0.1:8089/").unwrap();
        assert!(build(&store(Some("https://evil.example")), Some(&sandbox)).is_ok());
        let bad = crate::crd::MailchimpOrderTarget {
            store_id: "a/b".into(),
            ..store(None)
        };
        assert!(build(&bad, None).is_err());
    }

    #[test]
    fn each_target_fills_in_its_own_default_names() {
        let spec = crate::crd::FieldMappingSpec::default();
        let mc = spec.to_mapping(&default_mapping(mailchimp(None).get().unwrap()));
        assert_eq!(mc.first_name.as_deref(), Some("FNAME"));
        let kl = spec.to_mapping(&default_mapping(klaviyo(None).get().unwrap()));
        assert_eq!(kl.first_name.as_deref(), Some("first_name"));
        assert_eq!(kl.last_name.as_deref(), Some("last_name"));
        assert_eq!(validate_mapping(klaviyo(None).get().unwrap(), &kl), Ok(()));
        // A Mailchimp merge tag in a Klaviyo mapping is refused with Klaviyo's name for it.
        let copied = crate::crd::FieldMappingSpec {
            first_name: Some("FNAME".into()),
            ..Default::default()
        };
        let err = validate_mapping(
            klaviyo(None).get().unwrap(),
            &copied.to_mapping(&default_mapping(klaviyo(None).get().unwrap())),
        )
        .unwrap_err();
        assert!(err.contains("first_name"), "{err}");
    }

    fn sandbox() -> Url {
        Url::parse("http://127.0.0.1:8089/").unwrap()
    }

    fn base(spec: &SourceSpec, sandbox: Option<&Url>) -> Option<String> {
        source_base_url(spec.get().unwrap(), sandbox, &EndpointPolicy::Any).unwrap()
    }

    fn target_base(
        spec: &AudienceTarget,
        sandbox: Option<&Url>,
    ) -> Result<Option<String>, ConnectError> {
        target_base_url(spec.get().unwrap(), sandbox, &EndpointPolicy::Any)
    }

    fn source_of(
        spec: &SourceSpec,
        creds: &Credentials,
        sandbox: Option<&Url>,
    ) -> Result<Box<dyn Source>, ConnectError> {
        build_source(
            spec.get().unwrap(),
            creds,
            sandbox,
            &ConnectOptions::default(),
        )
    }

    fn target_of(
        spec: &AudienceTarget,
        creds: &Credentials,
        sandbox: Option<&Url>,
    ) -> Result<Box<dyn Target>, ConnectError> {
        build_target(
            spec.get().unwrap(),
            creds,
            sandbox,
            &ConnectOptions::default(),
        )
    }

    #[test]
    fn the_sandbox_wins_over_the_endpoint() {
        let sb = sandbox();
        let sb = Some(&sb);
        let e = Some("https://proxy.example.com");
        assert_eq!(
            base(&shopify(e), sb).as_deref(),
            Some("http://127.0.0.1:8089/shopify")
        );
        assert_eq!(
            base(&lightspeed_x(e), sb).as_deref(),
            Some("http://127.0.0.1:8089/lightspeed-x/api/2.0")
        );
        assert_eq!(
            base(&lightspeed_r(e), sb).as_deref(),
            Some("http://127.0.0.1:8089/lightspeed-r/API/V3/Account/230001")
        );
        assert_eq!(
            base(&retailcrm(e, None, Some("demo")), sb).as_deref(),
            Some("http://127.0.0.1:8089/retailcrm")
        );
        assert_eq!(
            target_base(&mailchimp(e), sb).unwrap().as_deref(),
            Some("http://127.0.0.1:8089/mailchimp/3.0")
        );
    }

    #[test]
    fn a_sandbox_under_a_path_keeps_it() {
        let sb = Url::parse("https://sandbox.example.com/team-a/?x=1").unwrap();
        assert_eq!(
            target_base(&mailchimp(None), Some(&sb)).unwrap().as_deref(),
            Some("https://sandbox.example.com/team-a/mailchimp/3.0")
        );
        let bad = Url::parse("ftp://sandbox.example.com").unwrap();
        assert!(matches!(
            target_base(&mailchimp(None), Some(&bad)),
            Err(ConnectError::Invalid(_))
        ));
    }

    #[test]
    fn the_endpoint_wins_over_the_vendor() {
        assert_eq!(
            base(&shopify(Some("http://proxy:8080/shopify/")), None).as_deref(),
            Some("http://proxy:8080/shopify")
        );
        assert_eq!(
            base(
                &shopify(Some("http://proxy/admin/api/2025-01/graphql.json")),
                None
            )
            .as_deref(),
            Some("http://proxy")
        );
        assert_eq!(
            base(&lightspeed_x(Some("http://proxy/x")), None).as_deref(),
            Some("http://proxy/x/api/2.0")
        );
        assert_eq!(
            base(&lightspeed_x(Some("http://proxy/x/api/2.0/")), None).as_deref(),
            Some("http://proxy/x/api/2.0")
        );
        assert_eq!(
            base(&lightspeed_r(Some("http://proxy/r")), None).as_deref(),
            Some("http://proxy/r/API/V3/Account/230001")
        );
        assert_eq!(
            base(
                &lightspeed_r(Some("http://proxy/r/API/V3/Account/230001")),
                None
            )
            .as_deref(),
            Some("http://proxy/r/API/V3/Account/230001")
        );
        assert_eq!(
            base(
                &retailcrm(
                    Some("http://proxy/crm/api/v5"),
                    Some("https://crm.example.com"),
                    None
                ),
                None
            )
            .as_deref(),
            Some("http://proxy/crm"),
            "endpoint wins over url"
        );
        assert_eq!(
            base(
                &retailcrm(None, Some("https://crm.example.com/"), None),
                None
            )
            .as_deref(),
            Some("https://crm.example.com")
        );
        assert_eq!(
            target_base(&mailchimp(Some("http://proxy/mc")), None)
                .unwrap()
                .as_deref(),
            Some("http://proxy/mc/3.0")
        );
        assert_eq!(
            target_base(&mailchimp(Some("http://proxy/mc/3.0")), None)
                .unwrap()
                .as_deref(),
            Some("http://proxy/mc/3.0")
        );
    }

    #[test]
    fn without_either_the_connector_uses_the_vendor() {
        assert_eq!(base(&shopify(None), None), None);
        assert_eq!(base(&lightspeed_x(None), None), None);
        assert_eq!(base(&lightspeed_r(None), None), None);
        assert_eq!(base(&retailcrm(None, None, Some("demo")), None), None);
        assert_eq!(target_base(&mailchimp(None), None).unwrap(), None);
        assert!(matches!(
            source_base_url(
                retailcrm(None, None, None).get().unwrap(),
                None,
                &EndpointPolicy::Any
            ),
            Err(ConnectError::Invalid(_))
        ));
        assert!(matches!(
            source_base_url(
                shopify(Some("not a url")).get().unwrap(),
                None,
                &EndpointPolicy::Any
            ),
            Err(ConnectError::Invalid(_))
        ));
    }

    #[test]
    fn every_connector_builds() {
        let sb = sandbox();
        for spec in [
            shopify(None),
            lightspeed_x(None),
            lightspeed_r(None),
            retailcrm(None, None, Some("demo")),
        ] {
            for sandbox in [None, Some(&sb)] {
                let source = source_of(&spec, &creds("token_0123456789"), sandbox)
                    .unwrap_or_else(|e| panic!("{spec:?}: {e}"));
                assert!(!source.vendor().is_empty());
            }
        }
        let key = "0123456789abcdef0123456789abcdef-us6";
        for sandbox in [None, Some(&sb)] {
            let target = target_of(&mailchimp(None), &creds(key), sandbox).unwrap();
            assert_eq!(target.vendor(), "mailchimp");
        }
    }

    #[test]
    fn no_source_or_target_gives_no_reference() {
        assert!(empty().get().is_none());
        assert_eq!(empty().kinds_given(), 0);
        let none = AudienceTarget {
            mailchimp: None,
            klaviyo: None,
        };
        assert!(none.get().is_none());
        assert_eq!(none.kinds_given(), 0);
    }

    fn assert_hidden(err: &ConnectError, secret: &str) {
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains(secret), "{shown} shows the secret");
        assert!(
            shown.contains("vendor-credentials"),
            "{shown} names the Secret"
        );
    }

    #[test]
    fn bad_credentials_never_show_the_secret() {
        // A Mailchimp key without a usable data-centre suffix.
        let Err(err) = target_of(&mailchimp(None), &creds(SECRET), None) else {
            panic!("a key without a data centre was accepted");
        };
        assert!(matches!(err, ConnectError::BadCredentials(_)), "{err:?}");
        assert_hidden(&err, SECRET);
        assert_hidden(&err, "s3cr3t");

        // Tokens with inner spaces are refused by every source.
        let spaced = "s3cr3t token value";
        for spec in [
            shopify(None),
            lightspeed_x(None),
            lightspeed_r(None),
            retailcrm(None, None, Some("demo")),
        ] {
            let err = match source_of(&spec, &creds(spaced), None) {
                Err(e) => e,
                Ok(_) => panic!("{spec:?} accepted a token with spaces"),
            };
            assert!(matches!(err, ConnectError::BadCredentials(_)), "{err:?}");
            assert_hidden(&err, spaced);
        }

        // An empty value names the key.
        let err = match source_of(&lightspeed_x(None), &creds("  "), None) {
            Err(e) => e,
            Ok(_) => panic!("empty token accepted"),
        };
        assert!(err.to_string().contains("\"apiKey\""), "{err}");
    }

    #[test]
    fn unsupported_shopify_api_version_is_named() {
        let mut spec = shopify(None);
        spec.shopify.as_mut().unwrap().api_version = "2024-04".into();
        let err = match source_of(&spec, &creds("shpat_x"), None) {
            Err(e) => e,
            Ok(_) => panic!("2024-04 accepted"),
        };
        assert!(matches!(err, ConnectError::Unsupported(_)), "{err:?}");
        assert!(err.to_string().contains("2024-04"), "{err}");
    }

    fn mapping_rules(spec: &crate::crd::FieldMappingSpec) -> Result<(), String> {
        let target = mailchimp(None);
        let target = target.get().unwrap();
        validate_mapping(target, &spec.to_mapping(&default_mapping(target)))
    }

    #[test]
    fn mapping_validation() {
        let mut m = crate::crd::FieldMappingSpec::default();
        assert!(mapping_rules(&m).is_ok());
        m.custom_fields.insert("company".into(), "COMPANY".into());
        assert!(mapping_rules(&m).is_ok());
        m.custom_fields.insert("vat".into(), "vat number".into());
        assert!(
            mapping_rules(&m)
                .unwrap_err()
                .contains("not a Mailchimp merge tag")
        );
        let twice = crate::crd::FieldMappingSpec {
            last_name: Some("FNAME".into()),
            ..Default::default()
        };
        assert!(mapping_rules(&twice).unwrap_err().contains("mapped twice"));
        let mut email = crate::crd::FieldMappingSpec::default();
        email.custom_fields.insert("mail".into(), "EMAIL".into());
        assert!(mapping_rules(&email).unwrap_err().contains("EMAIL"));
        let off = crate::crd::FieldMappingSpec {
            first_name: Some(String::new()),
            ..Default::default()
        };
        assert!(mapping_rules(&off).is_ok());
        assert_eq!(
            off.to_mapping(&mailchimp::default_mapping()).first_name,
            None
        );
    }

    fn listed(hosts: &[&str]) -> EndpointPolicy {
        EndpointPolicy::Listed(hosts.iter().map(|h| h.to_string()).collect())
    }

    fn allowed(spec: &SourceSpec, policy: &EndpointPolicy) -> Result<Option<String>, ConnectError> {
        source_base_url(spec.get().unwrap(), None, policy)
    }

    #[test]
    fn endpoints_are_refused_unless_the_vendor_owns_the_host_or_it_is_listed() {
        let none = EndpointPolicy::default();
        // The vendor's own hosts, over https only.
        assert!(allowed(&shopify(Some("https://other-shop.myshopify.com")), &none).is_ok());
        assert!(allowed(&shopify(Some("http://other-shop.myshopify.com")), &none).is_err());
        // Anything else is refused, naming the host and how to allow it, and the secret is not
        // part of the message.
        for spec in [
            shopify(Some("https://collector.example.net")),
            lightspeed_x(Some("https://collector.example.net")),
            lightspeed_r(Some("https://collector.example.net")),
            retailcrm(Some("https://collector.example.net"), None, Some("demo")),
            retailcrm(None, Some("https://collector.example.net"), None),
        ] {
            let err = allowed(&spec, &none).unwrap_err();
            assert!(
                matches!(err, ConnectError::EndpointNotAllowed(_)),
                "{err:?}"
            );
            let shown = err.to_string();
            assert!(shown.contains("collector.example.net"), "{shown}");
            assert!(shown.contains("--allow-endpoint-host"), "{shown}");
            let err = build_source(
                spec.get().unwrap(),
                &creds(SECRET),
                None,
                &ConnectOptions::default(),
            )
            .err()
            .expect("refused before a connector exists");
            assert!(!err.to_string().contains(SECRET));
        }
        let err = target_base_url(
            mailchimp(Some("https://collector.example.net"))
                .get()
                .unwrap(),
            None,
            &none,
        )
        .unwrap_err();
        assert!(
            matches!(err, ConnectError::EndpointNotAllowed(_)),
            "{err:?}"
        );
        assert!(
            target_base_url(
                mailchimp(Some("https://us6.api.mailchimp.com"))
                    .get()
                    .unwrap(),
                None,
                &none
            )
            .is_ok()
        );
    }

    #[test]
    fn listed_hosts_are_allowed_and_plain_http_only_to_a_listed_loopback() {
        let policy = listed(&["proxy.internal.example", "*.corp.example", "127.0.0.1"]);
        assert!(allowed(&shopify(Some("https://proxy.internal.example")), &policy).is_ok());
        assert!(allowed(&shopify(Some("https://a.corp.example")), &policy).is_ok());
        assert!(allowed(&shopify(Some("https://corp.example")), &policy).is_err());
        assert!(allowed(&shopify(Some("http://proxy.internal.example")), &policy).is_err());
        assert!(allowed(&shopify(Some("http://127.0.0.1:8089/shopify")), &policy).is_ok());
        // Loopback is not allowed by itself.
        assert!(allowed(&shopify(Some("http://localhost:8089")), &policy).is_err());
        assert!(
            allowed(
                &shopify(Some("http://127.0.0.1:8089")),
                &EndpointPolicy::default()
            )
            .is_err()
        );
        // The sandbox is the operator's own setting: no check.
        let sb = sandbox();
        assert!(
            source_base_url(
                shopify(Some("https://collector.example.net"))
                    .get()
                    .unwrap(),
                Some(&sb),
                &EndpointPolicy::default()
            )
            .is_ok()
        );
    }
}
