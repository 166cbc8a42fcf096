//! Webhook registration at a vendor (`webhooks.register`): the operator keeps one subscription
//! per topic the vendor offers pointing at its public receiver URL, and removes them when the
//! sync goes or registration is turned off. Connectors do the calls; the decision of what to
//! create and what to delete is here, pure, so it is the same for every vendor.

use async_trait::async_trait;

use crate::connector::ConnectorError;

/// One subscription as the vendor lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSubscription {
    /// The vendor's id (a Shopify `gid://shopify/WebhookSubscription/…`, a Mailchimp webhook id).
    pub id: String,
    /// The vendor's topic name (`CUSTOMERS_UPDATE`); vendors with one subscription for all
    /// events (Mailchimp) use [`WebhookRegistry::topics`]' single entry.
    pub topic: String,
    pub url: String,
}

/// A vendor account that can list, create and delete webhook subscriptions.
#[async_trait]
pub trait WebhookRegistry: Send + Sync {
    /// The topics the operator subscribes to at this vendor.
    fn topics(&self) -> Vec<String>;

    /// Every subscription of the account (not only the operator's).
    async fn webhook_subscriptions(&self) -> Result<Vec<WebhookSubscription>, ConnectorError>;

    async fn create_webhook_subscription(
        &self,
        topic: &str,
        url: &str,
    ) -> Result<WebhookSubscription, ConnectorError>;

    async fn delete_webhook_subscription(&self, id: &str) -> Result<(), ConnectorError>;
}

/// What [`ensure`] or [`remove`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistrationReport {
    pub created: u64,
    /// Subscriptions already in place (not created again).
    pub kept: u64,
    pub deleted: u64,
}

/// The topics of `wanted` that no subscription in `existing` covers for `url`.
pub fn missing_topics(
    wanted: &[String],
    existing: &[WebhookSubscription],
    url: &str,
) -> Vec<String> {
    wanted
        .iter()
        .filter(|t| !existing.iter().any(|s| &s.topic == *t && s.url == url))
        .cloned()
        .collect()
}

/// Creates the subscriptions for `url` that are not there yet: one list call, then one create
/// per missing topic. Never duplicates a subscription that exists.
pub async fn ensure(
    registry: &dyn WebhookRegistry,
    url: &str,
) -> Result<RegistrationReport, ConnectorError> {
    let wanted = registry.topics();
    let existing = registry.webhook_subscriptions().await?;
    let missing = missing_topics(&wanted, &existing, url);
    let mut report = RegistrationReport {
        kept: (wanted.len() - missing.len()) as u64,
        ..RegistrationReport::default()
    };
    for topic in missing {
        registry.create_webhook_subscription(&topic, url).await?;
        report.created += 1;
    }
    Ok(report)
}

/// Deletes every subscription whose URL is the operator's (`ours`), whatever its topic, and only
/// those: a subscription someone else made for another URL stays.
pub async fn remove(
    registry: &dyn WebhookRegistry,
    ours: &(dyn Fn(&str) -> bool + Sync),
) -> Result<RegistrationReport, ConnectorError> {
    let existing = registry.webhook_subscriptions().await?;
    let mut report = RegistrationReport::default();
    for s in existing.iter().filter(|s| ours(&s.url)) {
        registry.delete_webhook_subscription(&s.id).await?;
        report.deleted += 1;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(id: &str, topic: &str, url: &str) -> WebhookSubscription {
        WebhookSubscription {
            id: id.into(),
            topic: topic.into(),
            url: url.into(),
        }
    }

    #[test]
    fn only_topics_without_a_subscription_for_this_url_are_missing() {
        let wanted = vec!["A".to_string(), "B".to_string(), "C".to_string()];
        let existing = [
            sub("1", "A", "https://op/hooks"),
            sub("2", "B", "https://elsewhere/hooks"),
        ];
        assert_eq!(
            missing_topics(&wanted, &existing, "https://op/hooks"),
            ["B", "C"]
        );
    }
}
