//! A small GraphQL reader: enough of the language (operations, variables, arguments, aliases,
//! nested selections, inline fragments `... on Type { … }` and named fragments
//! `fragment Name on Type { … }` spread with `...Name`) for the simulator to resolve the root
//! fields it knows and to answer with exactly the fields a client selected, as Shopify does.
//!
//! Fragments are flattened when parsed: each field inside one carries the type conditions it sits
//! under ([`Field::on`]), and [`project`] keeps it only on objects of a matching type (the object's
//! `__typename`, or an interface or union holding it, from the 2025-01 schema's types in
//! `schema_types.txt`). As GraphQL validation requires, a condition naming no type of the schema,
//! a fragment that can never apply where it is spread, an undefined, unused, duplicated or
//! self-including fragment are errors. [U] The sandbox checks the fields inside a fragment
//! against the objects it returns (as it does every field), not statically against the schema:
//! a misspelt field under a condition that matches no returned object goes unnoticed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::LazyLock;

use serde_json::{Map, Value};

/// One field of a selection set: `alias: name(args) { selection }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub alias: Option<String>,
    pub name: String,
    /// Argument values with variables already substituted.
    pub args: BTreeMap<String, Value>,
    pub selection: Vec<Field>,
    /// The type conditions of the fragments the field was selected in, outermost first (empty:
    /// selected on the field's own type).
    pub on: Vec<String>,
}

impl Field {
    /// The key this field has in the response.
    pub fn response_key(&self) -> &str {
        self.alias.as_deref().unwrap_or(&self.name)
    }
}

/// A parsed operation: `query` or `mutation` and its root fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub kind: OperationKind,
    pub fields: Vec<Field>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationKind {
    Query,
    Mutation,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Name(String),
    Punct(char),
    Spread,
    Int(i64),
    Float(f64),
    Str(String),
}

fn tokenize(source: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() || c == ',' || c == '\u{feff}' {
            i += 1;
        } else if c == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '.' {
            if chars.get(i + 1) == Some(&'.') && chars.get(i + 2) == Some(&'.') {
                tokens.push(Token::Spread);
                i += 3;
            } else {
                return Err("Parse error on \".\"".into());
            }
        } else if "!$()[]{}:=@|&".contains(c) {
            tokens.push(Token::Punct(c));
            i += 1;
        } else if c == '_' || c.is_ascii_alphabetic() {
            let start = i;
            while i < chars.len() && (chars[i] == '_' || chars[i].is_ascii_alphanumeric()) {
                i += 1;
            }
            tokens.push(Token::Name(chars[start..i].iter().collect()));
        } else if c == '-' || c.is_ascii_digit() {
            let start = i;
            i += 1;
            let mut float = false;
            while i < chars.len()
                && (chars[i].is_ascii_digit()
                    || matches!(chars[i], '.' | 'e' | 'E')
                    || (matches!(chars[i], '+' | '-') && matches!(chars[i - 1], 'e' | 'E')))
            {
                float |= matches!(chars[i], '.' | 'e' | 'E');
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            if float {
                let value = text
                    .parse::<f64>()
                    .map_err(|_| format!("Parse error on \"{text}\""))?;
                tokens.push(Token::Float(value));
            } else {
                let value = text
                    .parse::<i64>()
                    .map_err(|_| format!("Parse error on \"{text}\""))?;
                tokens.push(Token::Int(value));
            }
        } else if c == '"' {
            if chars.get(i + 1) == Some(&'"') && chars.get(i + 2) == Some(&'"') {
                i += 3;
                let start = i;
                loop {
                    if i + 2 >= chars.len() {
                        return Err("Parse error: unterminated block string".into());
                    }
                    if chars[i] == '"' && chars[i + 1] == '"' && chars[i + 2] == '"' {
                        break;
                    }
                    i += 1;
                }
                tokens.push(Token::Str(chars[start..i].iter().collect()));
                i += 3;
            } else {
                i += 1;
                let mut text = String::new();
                loop {
                    let Some(&c) = chars.get(i) else {
                        return Err("Parse error: unterminated string".into());
                    };
                    i += 1;
                    match c {
                        '"' => break,
                        '\\' => {
                            let escaped = chars.get(i).copied().unwrap_or('\\');
                            i += 1;
                            match escaped {
                                'n' => text.push('\n'),
                                't' => text.push('\t'),
                                'r' => text.push('\r'),
                                'b' => text.push('\u{8}'),
                                'f' => text.push('\u{c}'),
                                'u' => {
                                    let hex: String = chars
                                        .get(i..i + 4)
                                        .map(|h| h.iter().collect())
                                        .unwrap_or_default();
                                    let code = u32::from_str_radix(&hex, 16)
                                        .ok()
                                        .and_then(char::from_u32)
                                        .ok_or("Parse error: bad unicode escape")?;
                                    text.push(code);
                                    i += 4;
                                }
                                other => text.push(other),
                            }
                        }
                        '\n' => return Err("Parse error: newline in string".into()),
                        c => text.push(c),
                    }
                }
                tokens.push(Token::Str(text));
            }
        } else {
            return Err(format!("Parse error on \"{c}\""));
        }
    }
    Ok(tokens)
}

struct Parser<'a> {
    tokens: Vec<Token>,
    pos: usize,
    variables: &'a Map<String, Value>,
    defaults: Map<String, Value>,
    /// Fragment name → (type condition, position of its selection set).
    fragments: HashMap<String, (String, usize)>,
    used: HashSet<String>,
    /// The named fragments being expanded, innermost last (a cycle is an error).
    expanding: Vec<String>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        token
    }

    fn is_punct(&self, c: char) -> bool {
        self.peek() == Some(&Token::Punct(c))
    }

    fn expect_punct(&mut self, c: char) -> Result<(), String> {
        match self.next() {
            Some(Token::Punct(p)) if p == c => Ok(()),
            other => Err(format!(
                "Parse error on {} (expected \"{c}\")",
                describe(other.as_ref())
            )),
        }
    }

    fn expect_name(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Token::Name(name)) => Ok(name),
            other => Err(format!(
                "Parse error on {} (expected a name)",
                describe(other.as_ref())
            )),
        }
    }

    /// Skips a balanced `{ … }` starting at the current token.
    fn skip_braces(&mut self) -> Result<(), String> {
        let mut depth = 0usize;
        loop {
            match self.next() {
                Some(Token::Punct('{')) => depth += 1,
                Some(Token::Punct('}')) => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(());
                    }
                }
                None => return Err("Parse error on end of document (expected \"}\")".into()),
                Some(_) if depth == 0 => {
                    return Err(format!(
                        "Parse error on {} (expected \"{{\")",
                        describe(self.tokens.get(self.pos - 1))
                    ));
                }
                Some(_) => {}
            }
        }
    }

    /// The document's definitions: its fragments (kept by name, parsed where spread) and the
    /// position of its one operation.
    fn definitions(&mut self) -> Result<usize, String> {
        let mut operation = None;
        while let Some(token) = self.peek().cloned() {
            let start = self.pos;
            match token {
                Token::Name(n) if n == "fragment" => {
                    self.pos += 1;
                    let name = self.expect_name()?;
                    if name == "on" {
                        return Err("Parse error on \"on\" (expected a fragment name)".into());
                    }
                    match self.next() {
                        Some(Token::Name(on)) if on == "on" => {}
                        other => {
                            return Err(format!(
                                "Parse error on {} (expected \"on\")",
                                describe(other.as_ref())
                            ));
                        }
                    }
                    let type_name = self.expect_name()?;
                    if self.is_punct('@') {
                        return Err("Directives are not supported by the sandbox".into());
                    }
                    let body = self.pos;
                    self.skip_braces()?;
                    if self
                        .fragments
                        .insert(name.clone(), (type_name, body))
                        .is_some()
                    {
                        return Err(format!("Fragment name \"{name}\" must be unique"));
                    }
                }
                Token::Name(n) if n == "subscription" => {
                    return Err("Subscriptions are not supported".into());
                }
                Token::Name(n) if n == "query" || n == "mutation" => {
                    if operation.replace(start).is_some() {
                        return Err(
                            "Only one operation per document is supported by the sandbox".into(),
                        );
                    }
                    self.pos += 1;
                    // Past the name and variable definitions (whose defaults may hold braces).
                    let mut parens = 0usize;
                    while parens > 0 || !self.is_punct('{') {
                        match self.next() {
                            None => {
                                return Err(
                                    "Parse error on end of document (expected \"{\")".into()
                                );
                            }
                            Some(Token::Punct('(')) => parens += 1,
                            Some(Token::Punct(')')) => parens = parens.saturating_sub(1),
                            Some(_) => {}
                        }
                    }
                    self.skip_braces()?;
                }
                Token::Punct('{') => {
                    if operation.replace(start).is_some() {
                        return Err(
                            "Only one operation per document is supported by the sandbox".into(),
                        );
                    }
                    self.skip_braces()?;
                }
                other => return Err(format!("Parse error on {}", describe(Some(&other)))),
            }
        }
        operation.ok_or_else(|| "Document must contain an operation".to_string())
    }

    fn document(&mut self) -> Result<Operation, String> {
        self.pos = self.definitions()?;
        let kind = match self.peek() {
            Some(Token::Name(n)) if n == "mutation" => {
                self.pos += 1;
                OperationKind::Mutation
            }
            Some(Token::Name(_)) => {
                self.pos += 1;
                OperationKind::Query
            }
            _ => OperationKind::Query,
        };
        if let Some(Token::Name(_)) = self.peek() {
            self.pos += 1; // operation name
        }
        if self.is_punct('(') {
            self.variable_definitions()?;
        }
        let fields = self.selection_set()?;
        let mut unused: Vec<&String> = self
            .fragments
            .keys()
            .filter(|name| !self.used.contains(*name))
            .collect();
        unused.sort();
        if let Some(name) = unused.first() {
            return Err(format!("Fragment {name} was defined, but not used"));
        }
        Ok(Operation { kind, fields })
    }

    /// The fields of `...Name` (a named fragment) or `... on Type { … }` / `... { … }` (an
    /// inline one), each under the fragment's type condition.
    fn spread(&mut self) -> Result<Vec<Field>, String> {
        self.pos += 1; // `...`
        let (condition, fields) = match self.peek().cloned() {
            Some(Token::Name(n)) if n == "on" => {
                self.pos += 1;
                let type_name = self.expect_name()?;
                if self.is_punct('@') {
                    return Err("Directives are not supported by the sandbox".into());
                }
                (Some(type_name), self.selection_set()?)
            }
            Some(Token::Punct('{')) => (None, self.selection_set()?),
            Some(Token::Punct('@')) => {
                return Err("Directives are not supported by the sandbox".into());
            }
            Some(Token::Name(name)) => {
                self.pos += 1;
                if self.is_punct('@') {
                    return Err("Directives are not supported by the sandbox".into());
                }
                let Some((type_name, body)) = self.fragments.get(&name).cloned() else {
                    return Err(format!("Fragment {name} was used, but not defined"));
                };
                if self.expanding.contains(&name) {
                    return Err(format!("Fragment {name} contains an infinite loop"));
                }
                self.used.insert(name.clone());
                self.expanding.push(name);
                let resume = self.pos;
                self.pos = body;
                let fields = self.selection_set();
                self.pos = resume;
                self.expanding.pop();
                (Some(type_name), fields?)
            }
            other => {
                return Err(format!(
                    "Parse error on {} (expected a fragment name or \"on\")",
                    describe(other.as_ref())
                ));
            }
        };
        Ok(fields
            .into_iter()
            .map(|mut field| {
                if let Some(t) = &condition {
                    field.on.insert(0, t.clone());
                }
                field
            })
            .collect())
    }

    fn variable_definitions(&mut self) -> Result<(), String> {
        self.expect_punct('(')?;
        while !self.is_punct(')') {
            self.expect_punct('$')?;
            let name = self.expect_name()?;
            self.expect_punct(':')?;
            self.type_ref()?;
            if self.is_punct('=') {
                self.pos += 1;
                let value = self.value(true)?;
                self.defaults.insert(name, value);
            }
        }
        self.expect_punct(')')
    }

    fn type_ref(&mut self) -> Result<(), String> {
        if self.is_punct('[') {
            self.pos += 1;
            self.type_ref()?;
            self.expect_punct(']')?;
        } else {
            self.expect_name()?;
        }
        if self.is_punct('!') {
            self.pos += 1;
        }
        Ok(())
    }

    fn selection_set(&mut self) -> Result<Vec<Field>, String> {
        self.expect_punct('{')?;
        let mut fields = Vec::new();
        while !self.is_punct('}') {
            if self.peek() == Some(&Token::Spread) {
                fields.extend(self.spread()?);
                continue;
            }
            if self.peek().is_none() {
                return Err("Parse error on end of document (expected \"}\")".into());
            }
            fields.push(self.field()?);
        }
        self.pos += 1;
        if fields.is_empty() {
            return Err("Parse error: empty selection set".into());
        }
        Ok(fields)
    }

    fn field(&mut self) -> Result<Field, String> {
        let first = self.expect_name()?;
        let (alias, name) = if self.is_punct(':') {
            self.pos += 1;
            (Some(first), self.expect_name()?)
        } else {
            (None, first)
        };
        let mut args = BTreeMap::new();
        if self.is_punct('(') {
            self.pos += 1;
            while !self.is_punct(')') {
                let arg = self.expect_name()?;
                self.expect_punct(':')?;
                let value = self.value(false)?;
                args.insert(arg, value);
            }
            self.pos += 1;
        }
        if self.is_punct('@') {
            return Err("Directives are not supported by the sandbox".into());
        }
        let selection = if self.is_punct('{') {
            self.selection_set()?
        } else {
            Vec::new()
        };
        Ok(Field {
            alias,
            name,
            args,
            selection,
            on: Vec::new(),
        })
    }

    fn value(&mut self, constant: bool) -> Result<Value, String> {
        match self.next() {
            Some(Token::Punct('$')) if !constant => {
                let name = self.expect_name()?;
                Ok(self
                    .variables
                    .get(&name)
                    .or_else(|| self.defaults.get(&name))
                    .cloned()
                    .unwrap_or(Value::Null))
            }
            Some(Token::Int(i)) => Ok(Value::from(i)),
            Some(Token::Float(f)) => Ok(Value::from(f)),
            Some(Token::Str(s)) => Ok(Value::String(s)),
            Some(Token::Name(n)) => Ok(match n.as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                "null" => Value::Null,
                _ => Value::String(n),
            }),
            Some(Token::Punct('[')) => {
                let mut items = Vec::new();
                while !self.is_punct(']') {
                    if self.peek().is_none() {
                        return Err("Parse error: unterminated list".into());
                    }
                    items.push(self.value(constant)?);
                }
                self.pos += 1;
                Ok(Value::Array(items))
            }
            Some(Token::Punct('{')) => {
                let mut object = Map::new();
                while !self.is_punct('}') {
                    let key = self.expect_name()?;
                    self.expect_punct(':')?;
                    object.insert(key, self.value(constant)?);
                }
                self.pos += 1;
                Ok(Value::Object(object))
            }
            other => Err(format!(
                "Parse error on {} (expected a value)",
                describe(other.as_ref())
            )),
        }
    }
}

fn describe(token: Option<&Token>) -> String {
    match token {
        None => "end of document".into(),
        Some(Token::Name(n)) => format!("\"{n}\""),
        Some(Token::Punct(c)) => format!("\"{c}\""),
        Some(Token::Spread) => "\"...\"".into(),
        Some(Token::Int(i)) => i.to_string(),
        Some(Token::Float(f)) => f.to_string(),
        Some(Token::Str(s)) => format!("{s:?}"),
    }
}

/// Parses one operation, substituting `variables` (and the defaults declared for them).
pub fn parse(source: &str, variables: &Map<String, Value>) -> Result<Operation, String> {
    let mut parser = Parser {
        tokens: tokenize(source)?,
        pos: 0,
        variables,
        defaults: Map::new(),
        fragments: HashMap::new(),
        used: HashSet::new(),
        expanding: Vec::new(),
    };
    parser.document()
}

/// The schema's object, interface and union types (`schema_types.txt`).
struct SchemaTypes {
    /// Every type a fragment may name.
    names: HashSet<&'static str>,
    /// Interface or union → the object types it holds.
    possible: HashMap<&'static str, HashSet<&'static str>>,
    /// Object type → the interfaces and unions holding it.
    abstracts_of: HashMap<&'static str, Vec<&'static str>>,
}

static SCHEMA_TYPES: LazyLock<SchemaTypes> = LazyLock::new(|| {
    let mut types = SchemaTypes {
        names: HashSet::new(),
        possible: HashMap::new(),
        abstracts_of: HashMap::new(),
    };
    for line in include_str!("schema_types.txt").lines() {
        let mut words = line.split_whitespace();
        let (Some(kind), Some(name)) = (words.next(), words.next()) else {
            continue;
        };
        match kind {
            "type" => {
                types.names.insert(name);
                for interface in words {
                    types.possible.entry(interface).or_default().insert(name);
                    types.abstracts_of.entry(name).or_default().push(interface);
                }
            }
            "interface" => {
                types.names.insert(name);
                types.possible.entry(name).or_default();
            }
            "union" => {
                types.names.insert(name);
                for member in words {
                    types.possible.entry(name).or_default().insert(member);
                    types.abstracts_of.entry(member).or_default().push(name);
                }
            }
            _ => {}
        }
    }
    types
});

impl SchemaTypes {
    /// Whether a fragment on `condition` applies to an object of type `object`, or an error
    /// when it names no type or can never apply there.
    fn applies(&self, condition: &str, object: &str) -> Result<bool, String> {
        if !self.names.contains(condition) {
            return Err(format!(
                "No such type {condition}, so it can't be a fragment condition"
            ));
        }
        if condition == object
            || self
                .possible
                .get(condition)
                .is_some_and(|p| p.contains(object))
        {
            return Ok(true);
        }
        // [U] The field's declared type is not known here, only the object's: a fragment is
        // allowed where some interface or union holding the object could hold the condition.
        let within = |abstract_type: &&str| {
            let members = &self.possible[abstract_type];
            members.contains(condition)
                || self
                    .possible
                    .get(condition)
                    .is_some_and(|p| p.iter().any(|t| members.contains(t)))
        };
        if self
            .abstracts_of
            .get(object)
            .is_some_and(|a| a.iter().any(within))
        {
            return Ok(false);
        }
        Err(format!(
            "Fragment on {condition} can't be spread inside {object}"
        ))
    }
}

/// Puts `value` under `key`, merging it into what a fragment already selected there.
fn merge(out: &mut Map<String, Value>, key: &str, value: Value) {
    match (out.get_mut(key), value) {
        (Some(Value::Object(have)), Value::Object(more)) => {
            for (k, v) in more {
                merge(have, &k, v);
            }
        }
        (Some(Value::Array(have)), Value::Array(more)) if have.len() == more.len() => {
            for (h, m) in have.iter_mut().zip(more) {
                if let (Value::Object(h), Value::Object(m)) = (h, m) {
                    for (k, v) in m {
                        merge(h, &k, v);
                    }
                }
            }
        }
        (_, value) => {
            out.insert(key.to_string(), value);
        }
    }
}

/// Keeps only the selected fields of `full` (recursively, through lists), naming a field that the
/// type does not have. Objects carry their GraphQL type in `__typename`, which is dropped unless
/// selected; a field under a fragment is kept only on objects of the fragment's type.
pub fn project(full: &Value, selection: &[Field]) -> Result<Value, String> {
    match full {
        Value::Array(items) => items
            .iter()
            .map(|item| project(item, selection))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Value::Object(object) => {
            let type_name = object
                .get("__typename")
                .and_then(Value::as_str)
                .unwrap_or("Object");
            if selection.is_empty() {
                return Err(format!(
                    "Field must have selections (field of type '{type_name}' returns an object)"
                ));
            }
            let mut out = Map::new();
            for field in selection {
                let mut applies = true;
                for condition in &field.on {
                    applies &= SCHEMA_TYPES.applies(condition, type_name)?;
                }
                if !applies {
                    continue;
                }
                let Some(value) = object.get(&field.name) else {
                    return Err(format!(
                        "Field '{}' doesn't exist on type '{type_name}'",
                        field.name
                    ));
                };
                let projected = if field.selection.is_empty() {
                    if value.is_object()
                        || value
                            .as_array()
                            .is_some_and(|a| a.first().is_some_and(Value::is_object))
                    {
                        return Err(format!(
                            "Field must have selections (field '{}' returns an object)",
                            field.name
                        ));
                    }
                    value.clone()
                } else if value.is_null() {
                    Value::Null
                } else if value.is_object() || value.is_array() {
                    project(value, &field.selection)?
                } else {
                    return Err(format!(
                        "Selections can't be made on scalars (field '{}')",
                        field.name
                    ));
                };
                merge(&mut out, field.response_key(), projected);
            }
            Ok(Value::Object(out))
        }
        other => Ok(other.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_variables_aliases_and_nesting() {
        let vars = json!({"first": 5, "q": "updated_at:>'2025-01-01T00:00:00Z'"});
        let op = parse(
            r#"query Read($first: Int!, $after: String, $q: String, $sort: CustomerSortKeys = UPDATED_AT) {
                 list: customers(first: $first, after: $after, query: $q, sortKey: $sort) {
                   edges { cursor node { id emailMarketingConsent { marketingState } } }
                   pageInfo { hasNextPage endCursor }
                 }
               }"#,
            vars.as_object().unwrap(),
        )
        .unwrap();
        assert_eq!(op.kind, OperationKind::Query);
        let field = &op.fields[0];
        assert_eq!(field.name, "customers");
        assert_eq!(field.response_key(), "list");
        assert_eq!(field.args["first"], json!(5));
        assert_eq!(field.args["after"], Value::Null);
        assert_eq!(field.args["sortKey"], json!("UPDATED_AT"));
        assert_eq!(field.selection.len(), 2);
    }

    #[test]
    fn projection_names_unknown_fields() {
        let full = json!({"__typename": "Customer", "id": "1", "email": "a@b.c"});
        let op = parse("{ x { id email } }", &Map::new()).unwrap();
        assert_eq!(
            project(&full, &op.fields[0].selection).unwrap(),
            json!({"id": "1", "email": "a@b.c"})
        );
        let op = parse("{ x { id nope } }", &Map::new()).unwrap();
        let err = project(&full, &op.fields[0].selection).unwrap_err();
        assert!(err.contains("'nope'") && err.contains("Customer"), "{err}");
    }

    #[test]
    fn refuses_garbage_and_bad_fragments() {
        let err = |q: &str| parse(q, &Map::new()).unwrap_err();
        assert!(err("{ a { ...F } }").contains("F was used, but not defined"));
        assert!(
            err("{ a { b } } fragment F on Order { id }").contains("F was defined, but not used")
        );
        assert!(err("{ a { ...F } } fragment F on Order { ...F }").contains("infinite loop"));
        assert!(
            err("{ a { ...F } } fragment F on Order { id } fragment F on Order { name }")
                .contains("must be unique")
        );
        assert!(err("{ a { b } } { c { d } }").contains("one operation"));
        assert!(err("{ a { ... on { b } } }").contains("Parse error"));
        assert!(err("{ a { b }").contains("Parse error"));
        assert!(err("not graphql at all").contains("Parse error"));
    }

    /// An order's discount applications as the simulator holds them: one of each kind.
    fn applications() -> Value {
        json!({"__typename": "Order", "id": "gid://shopify/Order/1", "discountApplications": {
            "__typename": "DiscountApplicationConnection",
            "nodes": [
                {"__typename": "DiscountCodeApplication", "code": "WELCOME10", "allocationMethod": "ACROSS",
                 "value": {"__typename": "PricingPercentageValue", "percentage": 10.0}},
                {"__typename": "AutomaticDiscountApplication", "title": "Spring", "allocationMethod": "EACH",
                 "value": {"__typename": "MoneyV2", "amount": "5.0", "currencyCode": "USD"}},
            ]
        }})
    }

    #[test]
    fn inline_fragments_select_by_the_objects_type() {
        let op = parse(
            "query { order(id: \"x\") { id discountApplications(first: 5) { nodes {
               __typename allocationMethod
               value { ... on MoneyV2 { amount currencyCode } ... on PricingPercentageValue { percentage } }
               ... on DiscountCodeApplication { code }
               ... on AutomaticDiscountApplication { title }
             } } } }",
            &Map::new(),
        )
        .unwrap();
        let nodes = &op.fields[0].selection[1].selection[0];
        assert_eq!(
            nodes.selection[3].on,
            vec!["DiscountCodeApplication".to_string()]
        );
        let projected = project(&applications(), &op.fields[0].selection).unwrap();
        assert_eq!(
            projected["discountApplications"]["nodes"],
            json!([
                {"__typename": "DiscountCodeApplication", "allocationMethod": "ACROSS",
                 "value": {"percentage": 10.0}, "code": "WELCOME10"},
                {"__typename": "AutomaticDiscountApplication", "allocationMethod": "EACH",
                 "value": {"amount": "5.0", "currencyCode": "USD"}, "title": "Spring"},
            ])
        );
    }

    #[test]
    fn named_fragments_expand_where_spread_and_merge_with_the_fields_around_them() {
        let op = parse(
            "query Q { order(id: \"x\") { ...OrderBits discountApplications(first: 5) { nodes { value { ...Money } } } } }
             fragment Money on MoneyV2 { amount }
             fragment OrderBits on Order { id discountApplications(first: 5) { nodes { ...Code value { ... on MoneyV2 { currencyCode } } } } }
             fragment Code on DiscountCodeApplication { code }",
            &Map::new(),
        )
        .unwrap();
        let projected = project(&applications(), &op.fields[0].selection).unwrap();
        assert_eq!(projected["id"], json!("gid://shopify/Order/1"));
        assert_eq!(
            projected["discountApplications"]["nodes"],
            json!([
                {"code": "WELCOME10", "value": {}},
                {"value": {"currencyCode": "USD", "amount": "5.0"}},
            ])
        );
    }

    #[test]
    fn fragments_are_checked_against_the_schema() {
        let run = |q: &str| {
            let op = parse(q, &Map::new()).unwrap();
            project(&applications(), &op.fields[0].selection)
        };
        // Not a type of the schema.
        let err = run("{ order(id: 1) { ... on Ordr { id } } }").unwrap_err();
        assert!(err.contains("No such type Ordr"), "{err}");
        // A type that can never be a pricing value.
        let err = run("{ order(id: 1) { discountApplications(first: 1) { nodes { value { ... on Customer { id } } } } } }")
            .unwrap_err();
        assert!(
            err.contains("Fragment on Customer can't be spread inside PricingPercentageValue"),
            "{err}"
        );
        // The interface itself applies to its implementers; an unknown field under it is named.
        let err = run("{ order(id: 1) { discountApplications(first: 1) { nodes { ... on DiscountApplication { nope } } } } }")
            .unwrap_err();
        assert!(
            err.contains("'nope'") && err.contains("DiscountCodeApplication"),
            "{err}"
        );
        // A union member spread inside the union's other member is fine (and selects nothing).
        let ok = run("{ order(id: 1) { discountApplications(first: 1) { nodes { value { ... on PricingPercentageValue { percentage } } } } } }")
            .unwrap();
        assert_eq!(ok["discountApplications"]["nodes"][1]["value"], json!({}));
    }
}
