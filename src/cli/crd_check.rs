//! The CRD's own schema and CEL rules applied to a manifest's sync before `sync -f` runs it, so a
//! manifest the API server refuses is refused here too, with a message naming the same field.
//!
//! The schema is the one `audience-operator crd` prints (types, required fields, enums, patterns,
//! lengths, ranges, map sizes, unknown fields as `fieldValidation=Strict` refuses them). CEL rules
//! are not evaluated by an interpreter: each rule text of the CRDs has a Rust equivalent in
//! [`rule_holds`], and a rule without one is reported (a unit test keeps the table complete).

use serde_json::Value;

use crate::crd::audience::{
    FIELD_PRECEDENCE_SOURCES_RULE, SMS_WRITE_BACK_RULE, TWO_WAY_RULE, TWO_WAY_UNSUBSCRIBES_RULE,
};
use crate::crd::common::{
    KLAVIYO_NO_PENDING_RULE, KLAVIYO_NO_TAGS_RULE, MAILCHIMP_MERGE_TAGS_RULE,
};

/// Every way `object` (an AudienceSync or SegmentSync, as JSON) breaks its CRD, in the API
/// server's terms (`spec.x.y: ...`); empty when it conforms.
pub fn check(kind: &str, object: &Value) -> Vec<String> {
    let Some(schema) = schema_of(kind) else {
        return vec![format!("no CRD for kind {kind:?}")];
    };
    let mut errors = Vec::new();
    let Some(fields) = object.as_object() else {
        return vec!["the document is not an object".into()];
    };
    for (key, value) in fields {
        match key.as_str() {
            // Checked by the manifest reader; the status is the operator's, not the author's.
            "apiVersion" | "kind" | "metadata" | "status" => {}
            "spec" => walk(&schema["properties"]["spec"], value, "spec", &mut errors),
            other => errors.push(format!("unknown field {other:?}")),
        }
    }
    if object.get("spec").is_none_or(Value::is_null) {
        errors.push("spec: Required value".into());
    }
    errors
}

fn schema_of(kind: &str) -> Option<Value> {
    crate::crd::crds()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .and_then(|c| serde_json::to_value(c).ok())
        .map(|v| v["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone())
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A value as quoted in a message, cut short when long.
fn shown(v: &Value) -> String {
    let text = v.to_string();
    if text.chars().count() > 80 {
        format!("{}...", text.chars().take(77).collect::<String>())
    } else {
        text
    }
}

fn walk(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    if value.is_null() {
        // The API server drops nulls of nullable fields; others are a type error.
        if schema["nullable"] != Value::Bool(true)
            && let Some(t) = schema["type"].as_str()
        {
            errors.push(format!(
                "{path}: Invalid value: \"null\": {path} in body must be of type {t}: \"null\""
            ));
        }
        return;
    }
    if let Some(want) = schema["type"].as_str() {
        let got = json_type(value);
        let fits = got == want || (want == "number" && got == "integer");
        if !fits {
            errors.push(format!(
                "{path}: Invalid value: \"{got}\": {path} in body must be of type {want}: \"{got}\""
            ));
            return;
        }
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
        errors.push(format!(
            "{path}: Unsupported value: {}: supported values: {}",
            shown(value),
            list.join(", ")
        ));
    }
    match value {
        Value::String(s) => check_string(schema, s, value, path, errors),
        Value::Number(n) => {
            if let (Some(max), Some(x)) = (schema["maximum"].as_f64(), n.as_f64())
                && x > max
            {
                errors.push(format!(
                    "{path}: Invalid value: {n}: {path} in body should be less than or equal to {max}"
                ));
            }
            if let (Some(min), Some(x)) = (schema["minimum"].as_f64(), n.as_f64())
                && x < min
            {
                errors.push(format!(
                    "{path}: Invalid value: {n}: {path} in body should be greater than or equal to {min}"
                ));
            }
        }
        Value::Object(map) => {
            if let Some(max) = schema["maxProperties"].as_u64()
                && map.len() as u64 > max
            {
                errors.push(format!(
                    "{path}: Too many: {}: must have at most {max} items",
                    map.len()
                ));
            }
            for required in schema["required"].as_array().into_iter().flatten() {
                let name = required.as_str().unwrap_or_default();
                if map.get(name).is_none_or(Value::is_null) {
                    errors.push(format!("{path}.{name}: Required value"));
                }
            }
            let properties = schema["properties"].as_object();
            for (key, child) in map {
                let child_path = format!("{path}.{key}");
                match properties.and_then(|p| p.get(key)) {
                    Some(child_schema) => walk(child_schema, child, &child_path, errors),
                    None if schema["additionalProperties"].is_object() => {
                        walk(&schema["additionalProperties"], child, &child_path, errors)
                    }
                    None if schema["x-kubernetes-preserve-unknown-fields"] == Value::Bool(true) => {
                    }
                    None => errors.push(format!("unknown field \"{child_path}\"")),
                }
            }
        }
        Value::Array(items) => {
            if let Some(max) = schema["maxItems"].as_u64()
                && items.len() as u64 > max
            {
                errors.push(format!(
                    "{path}: Too many: {}: must have at most {max} items",
                    items.len()
                ));
            }
            if let Some(min) = schema["minItems"].as_u64()
                && (items.len() as u64) < min
            {
                errors.push(format!(
                    "{path}: Invalid value: {}: {path} in body should have at least {min} items",
                    items.len()
                ));
            }
            for (i, item) in items.iter().enumerate() {
                walk(&schema["items"], item, &format!("{path}[{i}]"), errors);
            }
        }
        _ => {}
    }
    for rule in schema["x-kubernetes-validations"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let text = rule["rule"].as_str().unwrap_or_default();
        let message = rule["message"].as_str().unwrap_or(text);
        match rule_holds(text, value) {
            Some(true) => {}
            Some(false) => errors.push(format!(
                "{path}: Invalid value: \"{}\": {message}",
                json_type(value)
            )),
            None => errors.push(format!("{path}: no local check for the CRD rule {text:?}")),
        }
    }
}

fn check_string(schema: &Value, s: &str, value: &Value, path: &str, errors: &mut Vec<String>) {
    let chars = s.chars().count() as u64;
    if let Some(max) = schema["maxLength"].as_u64()
        && chars > max
    {
        errors.push(format!(
            "{path}: Too long: may not be more than {max} bytes"
        ));
    }
    if let Some(min) = schema["minLength"].as_u64()
        && chars < min
    {
        errors.push(format!(
            "{path}: Invalid value: {}: {path} in body should be at least {min} chars long",
            shown(value)
        ));
    }
    if let Some(pattern) = schema["pattern"].as_str() {
        match regex::Regex::new(pattern) {
            Ok(re) if re.is_match(s) => {}
            Ok(_) => errors.push(format!(
                "{path}: Invalid value: {}: {path} in body should match '{pattern}'",
                shown(value)
            )),
            Err(e) => errors.push(format!("{path}: the CRD's pattern {pattern:?}: {e}")),
        }
    }
}

/// `has(self.key)`: present and not null (the API server drops nulls before CEL runs).
fn has(v: &Value, key: &str) -> bool {
    v.get(key).is_some_and(|x| !x.is_null())
}

fn has_path(v: &Value, path: &[&str]) -> bool {
    let mut at = v;
    for key in path {
        if !has(at, key) {
            return false;
        }
        at = &at[*key];
    }
    true
}

fn exactly_one(flags: &[bool]) -> bool {
    flags.iter().filter(|f| **f).count() == 1
}

fn matches(pattern: &str, s: &str) -> bool {
    regex::Regex::new(pattern).is_ok_and(|re| re.is_match(s))
}

/// CEL's `duration()` for the `s`/`m`/`h` strings the interval pattern admits, in seconds.
fn seconds(s: &str) -> Option<u128> {
    let mut total: u128 = 0;
    let mut digits = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => return None,
        };
        total = total.checked_add(digits.parse::<u128>().ok()?.checked_mul(unit)?)?;
        digits.clear();
    }
    digits.is_empty().then_some(total)
}

/// Whether the CRD rule `rule` holds for `v` (the value the rule is attached to); `None` for a
/// rule with no equivalent here.
pub fn rule_holds(rule: &str, v: &Value) -> Option<bool> {
    let s = |key: &str| v[key].as_str().unwrap_or_default();
    let holds = match rule {
        "has(self.account) != has(self.url)" => has(v, "account") != has(v, "url"),
        "has(self.listId) != has(self.listName)" => has(v, "listId") != has(v, "listName"),
        "has(self.interval) != has(self.cron)" => has(v, "interval") != has(v, "cron"),
        "!has(self.timeZone) || has(self.cron)" => !has(v, "timeZone") || has(v, "cron"),
        "[has(self.mailchimp), has(self.klaviyo)].exists_one(x, x)" => {
            exactly_one(&[has(v, "mailchimp"), has(v, "klaviyo")])
        }
        "[has(self.shopify), has(self.lightspeedXSeries), has(self.lightspeedRSeries), has(self.retailcrm)].exists_one(x, x)" => {
            exactly_one(&[
                has(v, "shopify"),
                has(v, "lightspeedXSeries"),
                has(v, "lightspeedRSeries"),
                has(v, "retailcrm"),
            ])
        }
        "[has(self.retailcrmSegment), has(self.shopifySegment), has(self.allCustomers) && self.allCustomers].exists_one(x, x)" => {
            exactly_one(&[
                has(v, "retailcrmSegment"),
                has(v, "shopifySegment"),
                v["allCustomers"] == Value::Bool(true),
            ])
        }
        "!has(self.listName) || self.listName.trim() != self.segmentList.trim()" => {
            !has(v, "listName") || s("listName").trim() != s("segmentList").trim()
        }
        "!self.matches('^([0-9]+(s|m|h))+$') || duration(self) >= duration('60s')" => {
            let text = v.as_str().unwrap_or_default();
            !matches("^([0-9]+(s|m|h))+$", text) || seconds(text).is_none_or(|n| n >= 60)
        }
        "!has(self.sourceSegment.retailcrmSegment) || has(self.source.retailcrm)" => {
            !has_path(v, &["sourceSegment", "retailcrmSegment"])
                || has_path(v, &["source", "retailcrm"])
        }
        "!has(self.sourceSegment.shopifySegment) || has(self.source.shopify)" => {
            !has_path(v, &["sourceSegment", "shopifySegment"])
                || has_path(v, &["source", "shopify"])
        }
        "has(self.source) != has(self.sources)" => has(v, "source") != has(v, "sources"),
        // OrderSync.
        "has(self.klaviyo)" => has(v, "klaviyo"),
        "!has(self.source.retailcrm)" => !has_path(v, &["source", "retailcrm"]),
        "self.all(k, self.filter(j, j == k).size() == 1)" => {
            let items: Vec<&Value> = v.as_array().into_iter().flatten().collect();
            items
                .iter()
                .all(|k| items.iter().filter(|j| *j == k).count() == 1)
        }
        "!has(self.fieldPrecedence) || has(self.sources)" => {
            !has(v, "fieldPrecedence") || has(v, "sources")
        }
        "self.all(s, self.exists_one(t, t.name == s.name))" => {
            let names: Vec<&Value> = v
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| &s["name"])
                .collect();
            names
                .iter()
                .all(|n| names.iter().filter(|m| *m == n).count() == 1)
        }
        r if r == FIELD_PRECEDENCE_SOURCES_RULE => {
            let names: Vec<&Value> = v["sources"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| &s["name"])
                .collect();
            !has(v, "fieldPrecedence")
                || !has(v, "sources")
                || v["fieldPrecedence"]
                    .as_object()
                    .into_iter()
                    .flat_map(|m| m.values())
                    .flat_map(|list| list.as_array().into_iter().flatten())
                    .all(|n| names.contains(&n))
        }
        r if r == TWO_WAY_RULE => {
            v["consentPolicy"]["twoWay"] != Value::Bool(true)
                || (has_path(v, &["source", "shopify"]) && has_path(v, &["target", "mailchimp"]))
        }
        r if r == crate::crd::customer_events::CUSTOMER_EVENTS_RULE => {
            !has_path(v, &["customerEvents"])
                || (has_path(v, &["source", "shopify"]) && has_path(v, &["target", "mailchimp"]))
        }
        r if r == SMS_WRITE_BACK_RULE => {
            (!has(v, "sms") && !has(v, "writeBack"))
                || (has_path(v, &["source", "shopify"]) && has_path(v, &["target", "mailchimp"]))
        }
        r if r == TWO_WAY_UNSUBSCRIBES_RULE => {
            v["consentPolicy"]["twoWay"] != Value::Bool(true)
                || v["consentPolicy"]["propagateUnsubscribes"] != Value::Bool(false)
        }
        r if r == KLAVIYO_NO_PENDING_RULE => {
            !has_path(v, &["target", "klaviyo"]) || v["consentPolicy"]["resubscribe"] != "pending"
        }
        r if r == KLAVIYO_NO_TAGS_RULE => {
            !has_path(v, &["target", "klaviyo"]) || v["fieldMapping"]["tags"] != Value::Bool(true)
        }
        r if r == MAILCHIMP_MERGE_TAGS_RULE => {
            !has_path(v, &["target", "mailchimp"])
                || ["firstName", "lastName", "phone", "address"]
                    .iter()
                    .all(|f| {
                        let tag = v["fieldMapping"][*f].as_str().unwrap_or_default();
                        matches("^([A-Z][A-Z0-9_]{0,9})?$", tag)
                    })
        }
        _ => return None,
    };
    Some(holds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                if let Some(list) = map
                    .get("x-kubernetes-validations")
                    .and_then(|l| l.as_array())
                {
                    out.extend(
                        list.iter()
                            .filter_map(|r| r["rule"].as_str().map(String::from)),
                    );
                }
                map.values().for_each(|c| rules(c, out));
            }
            Value::Array(items) => items.iter().for_each(|c| rules(c, out)),
            _ => {}
        }
    }

    #[test]
    fn every_crd_rule_has_a_local_check() {
        for kind in ["AudienceSync", "SegmentSync", "OrderSync"] {
            let mut found = Vec::new();
            rules(&schema_of(kind).unwrap(), &mut found);
            let least = if kind == "OrderSync" { 5 } else { 8 };
            assert!(found.len() >= least, "{kind}: {found:?}");
            for rule in found {
                assert!(
                    rule_holds(&rule, &json!({})).is_some(),
                    "{kind}: no local check for {rule}"
                );
            }
        }
    }

    #[test]
    fn a_valid_sync_passes_and_an_invalid_one_names_the_field() {
        let valid = json!({
            "apiVersion": "sync.audience-operator.io/v1alpha1", "kind": "AudienceSync",
            "metadata": {"name": "x"},
            "spec": {
                "source": {"shopify": {"shopDomain": "a.myshopify.com", "credentialsSecretRef": {"name": "s"}}},
                "target": {"mailchimp": {"audienceId": "abc", "credentialsSecretRef": {"name": "m"}}},
                "schedule": {"cron": "0 * * * *", "timeZone": "Europe/Amsterdam"},
                "fieldMapping": {"customFields": {"company": "COMPANY"}}
            }
        });
        assert_eq!(check("AudienceSync", &valid), Vec::<String>::new());
        let mut bad = valid.clone();
        bad["spec"]["safety"] = json!({"maxRemovalPercent": 150});
        bad["spec"]["extra"] = json!(1);
        let errors = check("AudienceSync", &bad);
        assert!(
            errors
                .iter()
                .any(|e| e.contains("spec.safety.maxRemovalPercent")),
            "{errors:?}"
        );
        assert!(
            errors.contains(&"unknown field \"spec.extra\"".to_string()),
            "{errors:?}"
        );
    }

    #[test]
    fn durations_are_read_like_cel() {
        assert_eq!(seconds("1h30m"), Some(5400));
        assert_eq!(seconds("59s"), Some(59));
        assert_eq!(seconds("10"), None);
    }
}
