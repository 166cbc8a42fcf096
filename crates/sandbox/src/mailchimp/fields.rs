//! `fields` / `exclude_fields`: "A comma-separated list of fields to return. Reference parameters
//! of sub-objects with dot notation." Paths walk through arrays, so `members.email_address` keeps
//! the address of every member.

use std::collections::BTreeMap;

use serde_json::Value;

#[derive(Default, Debug)]
struct Node {
    /// The path ends here: the whole value is meant.
    leaf: bool,
    children: BTreeMap<String, Node>,
}

fn tree(list: &str) -> Node {
    let mut root = Node::default();
    for path in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let mut node = &mut root;
        for part in path.split('.') {
            node = node.children.entry(part.to_string()).or_default();
        }
        node.leaf = true;
    }
    root
}

/// Applies `fields`, then `exclude_fields`, to a response document.
pub fn trim(value: Value, fields: Option<&str>, exclude: Option<&str>) -> Value {
    let mut value = value;
    if let Some(fields) = fields.filter(|f| !f.trim().is_empty()) {
        value = include(value, &tree(fields));
    }
    if let Some(exclude) = exclude.filter(|f| !f.trim().is_empty()) {
        remove(&mut value, &tree(exclude));
    }
    value
}

fn include(value: Value, node: &Node) -> Value {
    if node.leaf {
        return value;
    }
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter_map(|(k, v)| node.children.get(&k).map(|child| (k, include(v, child))))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(|v| include(v, node)).collect()),
        other => other,
    }
}

fn remove(value: &mut Value, node: &Node) {
    match value {
        Value::Object(map) => {
            for (key, child) in &node.children {
                if child.leaf {
                    map.remove(key);
                } else if let Some(v) = map.get_mut(key) {
                    remove(v, child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| remove(v, node)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_and_drops_dotted_paths_through_arrays() {
        let doc = json!({
            "members": [
                {"email_address": "a@b.co", "status": "subscribed", "merge_fields": {"FNAME": "A", "LNAME": "B"}},
                {"email_address": "c@d.co", "status": "pending", "merge_fields": {"FNAME": "C", "LNAME": "D"}}
            ],
            "list_id": "x",
            "total_items": 2,
            "_links": []
        });
        let kept = trim(
            doc.clone(),
            Some("members.email_address,members.merge_fields.FNAME,total_items"),
            None,
        );
        assert_eq!(
            kept,
            json!({
                "members": [
                    {"email_address": "a@b.co", "merge_fields": {"FNAME": "A"}},
                    {"email_address": "c@d.co", "merge_fields": {"FNAME": "C"}}
                ],
                "total_items": 2
            })
        );
        let dropped = trim(doc, None, Some("members.merge_fields,_links,list_id"));
        assert_eq!(
            dropped,
            json!({
                "members": [
                    {"email_address": "a@b.co", "status": "subscribed"},
                    {"email_address": "c@d.co", "status": "pending"}
                ],
                "total_items": 2
            })
        );
    }
}
