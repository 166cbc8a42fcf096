//! A small GraphQL reader: enough of the language (operations, variables, arguments, aliases and
//! nested selections) for the simulator to resolve the root fields it knows and to answer with
//! exactly the fields a client selected, as Shopify does. Fragments are refused with a clear
//! message rather than half-supported.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// One field of a selection set: `alias: name(args) { selection }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub alias: Option<String>,
    pub name: String,
    /// Argument values with variables already substituted.
    pub args: BTreeMap<String, Value>,
    pub selection: Vec<Field>,
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

    fn document(&mut self) -> Result<Operation, String> {
        let kind = match self.peek() {
            Some(Token::Punct('{')) => OperationKind::Query,
            Some(Token::Name(n)) if n == "query" => {
                self.pos += 1;
                OperationKind::Query
            }
            Some(Token::Name(n)) if n == "mutation" => {
                self.pos += 1;
                OperationKind::Mutation
            }
            Some(Token::Name(n)) if n == "fragment" => {
                return Err("Fragments are not supported by the sandbox".into());
            }
            Some(Token::Name(n)) if n == "subscription" => {
                return Err("Subscriptions are not supported".into());
            }
            other => return Err(format!("Parse error on {}", describe(other))),
        };
        if let Some(Token::Name(_)) = self.peek() {
            self.pos += 1; // operation name
        }
        if self.is_punct('(') {
            self.variable_definitions()?;
        }
        let fields = self.selection_set()?;
        if self.pos < self.tokens.len() {
            return Err(
                "Only one operation per document is supported by the sandbox (no fragments)".into(),
            );
        }
        Ok(Operation { kind, fields })
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
                return Err("Fragments are not supported by the sandbox".into());
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
    };
    parser.document()
}

/// Keeps only the selected fields of `full` (recursively, through lists), naming a field that the
/// type does not have. Objects carry their GraphQL type in `__typename`, which is dropped unless
/// selected.
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
                out.insert(field.response_key().to_string(), projected);
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
    fn refuses_fragments_and_garbage() {
        assert!(parse("{ a { ...F } }", &Map::new()).is_err());
        assert!(parse("{ a { b }", &Map::new()).is_err());
        assert!(parse("not graphql at all", &Map::new()).is_err());
    }
}
