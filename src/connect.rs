//! Building connectors from a sync's spec and the credentials read from its Secret.
//!
//! The controller and `audience-operator sync` both call [`build_source`] and [`build_target`].
//! Where each connector sends its calls, first match wins:
//!
//! 1. `sandbox` (the `--sandbox URL` flag): the simulators served at that URL, each under its
//!    prefix with the vendor's API path (`{sandbox}/mailchimp/3.0`, `{sandbox}/shopify`,
//!    `{sandbox}/lightspeed-x/api/2.0`, `{sandbox}/lightspeed-r/API/V3/Account/{accountId}`,
//!    `{sandbox}/retailcrm`), whatever the spec's `endpoint` says;
//! 2. the spec's `endpoint` (see [`source_base_url`] and [`target_base_url`] for how each is
//!    completed);
//! 3. the vendor's real URL, built by the connector from the shop domain, domain prefix, account
//!    or API key's data centre.
//!
//! Errors name the Secret and key, never a secret's value.

use std::collections::BTreeMap;
use std::fmt;

use audience_connectors::lightspeed_r::LightspeedRSource;
use audience_connectors::lightspeed_x::LightspeedXSource;
use audience_connectors::mailchimp::{MailchimpConfig, MailchimpTarget};
use audience_connectors::retailcrm::{RetailCrmConfig, RetailCrmSource};
use audience_connectors::shopify::{self, ShopifyConfig, ShopifySource};
use audience_core::{ConnectorError, ErrorKind, Source, Target};
use url::Url;

use crate::crd::{AudienceTarget, SourceSpec};

/// The data of a Secret a sync references, with the one key the spec points at.
#[derive(Clone)]
pub struct Credentials {
    /// The Secret's name (for messages).
    pub secret_name: String,
    /// The key read (the spec's `key`, or the vendor's default).
    pub key: String,
    /// The value under `key`, trimmed.
    pub value: String,
    /// Every key of the Secret that holds UTF-8 text (for vendors that need more than one value).
    pub data: BTreeMap<String, String>,
}

impl Credentials {
    /// Another key of the same Secret.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.data.get(key).map(String::as_str)
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("secret_name", &self.secret_name)
            .field("key", &self.key)
            .field("value", &"<redacted>")
            .field("keys", &self.data.keys().collect::<Vec<_>>())
            .finish()
    }
}

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
}

/// Builds the source a spec describes.
pub fn build_source(
    spec: &SourceSpec,
    creds: &Credentials,
    sandbox: Option<&Url>,
) -> Result<Box<dyn Source>, ConnectError> {
    let secret = secret_value(creds)?;
    let base = source_base_url(spec, sandbox)?;
    let built: Result<Box<dyn Source>, ConnectorError> = if let Some(s) = &spec.shopify {
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
        ShopifySource::new(config).map(|s| Box::new(s) as Box<dyn Source>)
    } else if let Some(s) = &spec.lightspeed_x_series {
        LightspeedXSource::new(&s.domain_prefix, secret)
            .and_then(|source| match &base {
                Some(base) => source.with_base_url(base),
                None => Ok(source),
            })
            .map(|s| Box::new(s) as Box<dyn Source>)
    } else if let Some(s) = &spec.lightspeed_r_series {
        LightspeedRSource::new(&s.account_id, secret)
            .and_then(|source| match &base {
                Some(base) => source.with_base_url(base),
                None => Ok(source),
            })
            .map(|s| Box::new(s) as Box<dyn Source>)
    } else if let Some(s) = &spec.retailcrm {
        let mut config = RetailCrmConfig::new(s.account.as_deref().unwrap_or("").trim(), secret);
        config.base_url = base;
        config.site = s
            .site
            .as_deref()
            .map(str::trim)
            .filter(|site| !site.is_empty())
            .map(str::to_string);
        RetailCrmSource::new(config).map(|s| Box::new(s) as Box<dyn Source>)
    } else {
        return Err(no_source());
    };
    built.map_err(|e| from_connector(e, creds))
}

/// Builds the target a spec describes (a SegmentSync's target converts to an [`AudienceTarget`]).
pub fn build_target(
    spec: &AudienceTarget,
    creds: &Credentials,
    sandbox: Option<&Url>,
) -> Result<Box<dyn Target>, ConnectError> {
    let mailchimp = spec.mailchimp.as_ref().ok_or_else(|| {
        ConnectError::Invalid("give a target: mailchimp (klaviyo is planned)".into())
    })?;
    let secret = secret_value(creds)?;
    let mut config = MailchimpConfig::new(secret, mailchimp.audience_id.trim());
    config.base_url = target_base_url(spec, sandbox)?;
    MailchimpTarget::new(config)
        .map(|t| Box::new(t) as Box<dyn Target>)
        .map_err(|e| from_connector(e, creds))
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
    spec: &SourceSpec,
    sandbox: Option<&Url>,
) -> Result<Option<String>, ConnectError> {
    if let Some(s) = &spec.shopify {
        let base = match (sandbox, &s.endpoint) {
            (Some(sandbox), _) => Some(under_sandbox(sandbox, "shopify")?),
            (None, Some(endpoint)) => {
                let base = checked_url("shopify.endpoint", endpoint)?;
                // Tolerate an endpoint written as the full GraphQL URL.
                Some(match base.find("/admin/api/") {
                    Some(at) => base[..at].to_string(),
                    None => base,
                })
            }
            (None, None) => None,
        };
        Ok(base)
    } else if let Some(s) = &spec.lightspeed_x_series {
        const API: &str = "/api/2.0";
        Ok(match (sandbox, &s.endpoint) {
            (Some(sandbox), _) => Some(format!("{}{API}", under_sandbox(sandbox, "lightspeed-x")?)),
            (None, Some(endpoint)) => Some(with_suffix(
                checked_url("lightspeedXSeries.endpoint", endpoint)?,
                API,
            )),
            (None, None) => None,
        })
    } else if let Some(s) = &spec.lightspeed_r_series {
        let account = s.account_id.trim();
        let api = format!("/API/V3/Account/{account}");
        Ok(match (sandbox, &s.endpoint) {
            (Some(sandbox), _) => Some(format!("{}{api}", under_sandbox(sandbox, "lightspeed-r")?)),
            (None, Some(endpoint)) => {
                let base = checked_url("lightspeedRSeries.endpoint", endpoint)?;
                Some(if base.contains("/API/V3/Account/") {
                    base
                } else {
                    format!("{base}{api}")
                })
            }
            (None, None) => None,
        })
    } else if let Some(s) = &spec.retailcrm {
        let strip_api = |base: String| match base.strip_suffix("/api/v5") {
            Some(origin) => origin.to_string(),
            None => base,
        };
        Ok(match (sandbox, &s.endpoint, &s.url) {
            (Some(sandbox), _, _) => Some(under_sandbox(sandbox, "retailcrm")?),
            (None, Some(endpoint), _) => {
                Some(strip_api(checked_url("retailcrm.endpoint", endpoint)?))
            }
            (None, None, Some(url)) => Some(strip_api(checked_url("retailcrm.url", url)?)),
            (None, None, None) => {
                if s.account.as_deref().is_none_or(|a| a.trim().is_empty()) {
                    return Err(ConnectError::Invalid(
                        "retailcrm: give account or url".into(),
                    ));
                }
                None
            }
        })
    } else {
        Err(no_source())
    }
}

/// The API base URL of the Mailchimp target: `{sandbox}/mailchimp/3.0`, else the spec's `endpoint`
/// (plus `/3.0` unless it ends with it), else `None` for `https://{dc}.api.mailchimp.com/3.0`.
pub fn target_base_url(
    spec: &AudienceTarget,
    sandbox: Option<&Url>,
) -> Result<Option<String>, ConnectError> {
    const API: &str = "/3.0";
    let mailchimp = spec.mailchimp.as_ref().ok_or_else(|| {
        ConnectError::Invalid("give a target: mailchimp (klaviyo is planned)".into())
    })?;
    Ok(match (sandbox, &mailchimp.endpoint) {
        (Some(sandbox), _) => Some(format!("{}{API}", under_sandbox(sandbox, "mailchimp")?)),
        (None, Some(endpoint)) => Some(with_suffix(
            checked_url("mailchimp.endpoint", endpoint)?,
            API,
        )),
        (None, None) => None,
    })
}

fn no_source() -> ConnectError {
    ConnectError::Invalid(
        "give a source: shopify, lightspeedXSeries, lightspeedRSeries or retailcrm".into(),
    )
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

fn with_suffix(base: String, suffix: &str) -> String {
    if base.ends_with(suffix) {
        base
    } else {
        format!("{base}{suffix}")
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

/// A connector's refusal of its configuration. Credential problems become
/// [`ConnectError::BadCredentials`]; any secret of the Secret that shows up is masked (connectors
/// promise never to echo one; this makes sure).
fn from_connector(error: ConnectorError, creds: &Credentials) -> ConnectError {
    let message = redact(&error.to_string(), creds);
    let lower = message.to_ascii_lowercase();
    let about_credentials =
        error.endpoint == "API key" || lower.contains("api key") || lower.contains("token");
    if about_credentials {
        ConnectError::BadCredentials(format!(
            "{message} (Secret {}, key {:?})",
            creds.secret_name, creds.key
        ))
    } else if error.kind == ErrorKind::Unsupported {
        ConnectError::Unsupported(message)
    } else {
        ConnectError::Invalid(message)
    }
}

/// `text` with every value of the Secret (four characters or more) masked.
pub fn redact(text: &str, creds: &Credentials) -> String {
    let mut out = text.to_string();
    let values =
        std::iter::once(creds.value.as_str()).chain(creds.data.values().map(String::as_str));
    for value in values {
        let value = value.trim();
        if value.chars().count() >= 4 && out.contains(value) {
            out = out.replace(value, "<redacted>");
        }
    }
    out
}

/// Builds connectors for the controller. The default calls [`build_source`] and [`build_target`];
/// tests may inject scripted connectors.
pub trait ConnectorFactory: Send + Sync {
    fn source(
        &self,
        spec: &SourceSpec,
        creds: &Credentials,
        sandbox: Option<&Url>,
    ) -> Result<Box<dyn Source>, ConnectError>;

    fn target(
        &self,
        spec: &AudienceTarget,
        creds: &Credentials,
        sandbox: Option<&Url>,
    ) -> Result<Box<dyn Target>, ConnectError>;
}

/// The real connectors.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultConnectors;

impl ConnectorFactory for DefaultConnectors {
    fn source(
        &self,
        spec: &SourceSpec,
        creds: &Credentials,
        sandbox: Option<&Url>,
    ) -> Result<Box<dyn Source>, ConnectError> {
        build_source(spec, creds, sandbox)
    }

    fn target(
        &self,
        spec: &AudienceTarget,
        creds: &Credentials,
        sandbox: Option<&Url>,
    ) -> Result<Box<dyn Target>, ConnectError> {
        build_target(spec, creds, sandbox)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{
        LightspeedRSeriesSource, LightspeedXSeriesSource, MailchimpTarget as MailchimpSpec,
        RetailcrmSource, SecretKeyRef, ShopifySource,
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
        }
    }

    fn sandbox() -> Url {
        Url::parse("http://127.0.0.1:8089/").unwrap()
    }

    fn base(spec: &SourceSpec, sandbox: Option<&Url>) -> Option<String> {
        source_base_url(spec, sandbox).unwrap()
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
            target_base_url(&mailchimp(e), sb).unwrap().as_deref(),
            Some("http://127.0.0.1:8089/mailchimp/3.0")
        );
    }

    #[test]
    fn a_sandbox_under_a_path_keeps_it() {
        let sb = Url::parse("https://sandbox.example.com/team-a/?x=1").unwrap();
        assert_eq!(
            target_base_url(&mailchimp(None), Some(&sb))
                .unwrap()
                .as_deref(),
            Some("https://sandbox.example.com/team-a/mailchimp/3.0")
        );
        let bad = Url::parse("ftp://sandbox.example.com").unwrap();
        assert!(matches!(
            target_base_url(&mailchimp(None), Some(&bad)),
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
            target_base_url(&mailchimp(Some("http://proxy/mc")), None)
                .unwrap()
                .as_deref(),
            Some("http://proxy/mc/3.0")
        );
        assert_eq!(
            target_base_url(&mailchimp(Some("http://proxy/mc/3.0")), None)
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
        assert_eq!(target_base_url(&mailchimp(None), None).unwrap(), None);
        assert!(matches!(
            source_base_url(&retailcrm(None, None, None), None),
            Err(ConnectError::Invalid(_))
        ));
        assert!(matches!(
            source_base_url(&shopify(Some("not a url")), None),
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
                let source = build_source(&spec, &creds("token_0123456789"), sandbox)
                    .unwrap_or_else(|e| panic!("{spec:?}: {e}"));
                assert!(!source.vendor().is_empty());
            }
        }
        let key = "0123456789abcdef0123456789abcdef-us6";
        for sandbox in [None, Some(&sb)] {
            let target = build_target(&mailchimp(None), &creds(key), sandbox).unwrap();
            assert_eq!(target.vendor(), "mailchimp");
        }
    }

    #[test]
    fn no_source_or_target_is_invalid() {
        assert!(matches!(
            build_source(&empty(), &creds("t0ken"), None),
            Err(ConnectError::Invalid(_))
        ));
        assert!(matches!(
            build_target(&AudienceTarget { mailchimp: None }, &creds("t0ken"), None),
            Err(ConnectError::Invalid(_))
        ));
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
        let Err(err) = build_target(&mailchimp(None), &creds(SECRET), None) else {
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
            let err = match build_source(&spec, &creds(spaced), None) {
                Err(e) => e,
                Ok(_) => panic!("{spec:?} accepted a token with spaces"),
            };
            assert!(matches!(err, ConnectError::BadCredentials(_)), "{err:?}");
            assert_hidden(&err, spaced);
        }

        // An empty value names the key.
        let err = match build_source(&lightspeed_x(None), &creds("  "), None) {
            Err(e) => e,
            Ok(_) => panic!("empty token accepted"),
        };
        assert!(err.to_string().contains("\"apiKey\""), "{err}");
    }

    #[test]
    fn redaction_masks_every_value_of_the_secret() {
        let mut c = creds(SECRET);
        c.data.insert("other".into(), "another-secret".into());
        c.data.insert("short".into(), "ab".into());
        let text = format!("failed with {SECRET} and another-secret near ab");
        assert_eq!(
            redact(&text, &c),
            "failed with <redacted> and <redacted> near ab"
        );
    }

    #[test]
    fn unsupported_shopify_api_version_is_named() {
        let mut spec = shopify(None);
        spec.shopify.as_mut().unwrap().api_version = "2024-04".into();
        let err = match build_source(&spec, &creds("shpat_x"), None) {
            Err(e) => e,
            Ok(_) => panic!("2024-04 accepted"),
        };
        assert!(matches!(err, ConnectError::Unsupported(_)), "{err:?}");
        assert!(err.to_string().contains("2024-04"), "{err}");
    }
}
