//! The `filter` query parameter: `op(field,value)` conditions, joined by commas or `and(...)`,
//! e.g. `equals(email,"a@b.c")` or `any(id,["A","B"])`. Each endpoint says which fields and
//! operators it allows (from the spec's parameter description); anything else is a 400 on
//! `source.parameter = filter`. `or`/`not` are not simulated [U].

use chrono::{DateTime, Utc};

use super::error::ApiError;
use super::jsonapi::parse_time;

#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Text(String),
    List(Vec<String>),
    Time(DateTime<Utc>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub op: String,
    pub field: String,
    pub value: Operand,
}

impl Condition {
    /// Whether a string field's value passes this condition.
    pub fn matches_text(&self, value: Option<&str>) -> bool {
        match (&self.op[..], &self.value) {
            ("equals", Operand::Text(t)) => value == Some(t.as_str()),
            ("any", Operand::List(items)) => value.is_some_and(|v| items.iter().any(|i| i == v)),
            _ => false,
        }
    }

    pub fn matches_time(&self, value: DateTime<Utc>) -> bool {
        match (&self.op[..], &self.value) {
            ("greater-than", Operand::Time(t)) => value > *t,
            ("greater-or-equal", Operand::Time(t)) => value >= *t,
            ("less-than", Operand::Time(t)) => value < *t,
            ("less-or-equal", Operand::Time(t)) => value <= *t,
            ("equals", Operand::Time(t)) => value == *t,
            _ => false,
        }
    }
}

fn bad(detail: impl Into<String>) -> ApiError {
    ApiError::invalid_parameter("filter", detail)
}

/// Parses `raw`, allowing only `(field, operators)` pairs of `allowed`; time fields are those in
/// `time_fields`.
pub fn parse(
    raw: &str,
    allowed: &[(&str, &[&str])],
    time_fields: &[&str],
) -> Result<Vec<Condition>, ApiError> {
    let mut parser = Parser {
        text: raw.trim(),
        pos: 0,
    };
    let mut out = Vec::new();
    parser.conditions(&mut out)?;
    if parser.pos != parser.text.len() {
        return Err(bad(format!("Invalid filter: {raw}")));
    }
    for c in &mut out {
        let Some((_, ops)) = allowed.iter().find(|(f, _)| *f == c.field) else {
            return Err(bad(format!("'{}' is not a valid filter field.", c.field)));
        };
        if !ops.contains(&c.op.as_str()) {
            return Err(bad(format!(
                "'{}' is not a valid operator for '{}'.",
                c.op, c.field
            )));
        }
        if time_fields.contains(&c.field.as_str())
            && let Operand::Text(t) = &c.value
        {
            let time =
                parse_time(t).ok_or_else(|| bad(format!("'{t}' is not a valid date-time.")))?;
            c.value = Operand::Time(time);
        }
        match (&c.op[..], &c.value) {
            ("any", Operand::List(_)) => {}
            ("any", _) => return Err(bad("'any' takes a list of values.")),
            (_, Operand::List(_)) => return Err(bad(format!("'{}' takes one value.", c.op))),
            _ => {}
        }
    }
    Ok(out)
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.text[self.pos..]
    }

    fn skip_ws(&mut self) {
        while self.rest().starts_with(' ') {
            self.pos += 1;
        }
    }

    fn eat(&mut self, s: &str) -> bool {
        self.skip_ws();
        if self.rest().starts_with(s) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, s: &str) -> Result<(), ApiError> {
        if self.eat(s) {
            Ok(())
        } else {
            Err(bad(format!(
                "Invalid filter: expected '{s}' at {}",
                self.pos
            )))
        }
    }

    fn word(&mut self) -> Result<String, ApiError> {
        self.skip_ws();
        let len = self
            .rest()
            .find(|c: char| !(c.is_ascii_alphanumeric() || "-_.".contains(c)))
            .unwrap_or(self.rest().len());
        if len == 0 {
            return Err(bad(format!("Invalid filter at {}", self.pos)));
        }
        let word = self.rest()[..len].to_string();
        self.pos += len;
        Ok(word)
    }

    fn conditions(&mut self, out: &mut Vec<Condition>) -> Result<(), ApiError> {
        loop {
            let op = self.word()?;
            self.expect("(")?;
            if op == "and" {
                self.conditions(out)?;
            } else {
                let field = self.word()?;
                self.expect(",")?;
                let value = self.operand()?;
                out.push(Condition { op, field, value });
            }
            self.expect(")")?;
            if !self.eat(",") {
                return Ok(());
            }
        }
    }

    fn operand(&mut self) -> Result<Operand, ApiError> {
        self.skip_ws();
        if self.eat("[") {
            let mut items = Vec::new();
            if self.eat("]") {
                return Ok(Operand::List(items));
            }
            loop {
                items.push(self.string()?);
                if self.eat("]") {
                    return Ok(Operand::List(items));
                }
                self.expect(",")?;
            }
        }
        if self.rest().starts_with('"') || self.rest().starts_with('\'') {
            return Ok(Operand::Text(self.string()?));
        }
        // Unquoted: a date-time, number or boolean.
        let len = self.rest().find([',', ')']).unwrap_or(self.rest().len());
        let raw = self.rest()[..len].trim().to_string();
        self.pos += len;
        if raw.is_empty() {
            return Err(bad("Invalid filter: missing value."));
        }
        Ok(Operand::Text(raw))
    }

    fn string(&mut self) -> Result<String, ApiError> {
        self.skip_ws();
        let quote = match self.rest().chars().next() {
            Some(q @ ('"' | '\'')) => q,
            _ => return Err(bad("Invalid filter: expected a quoted string.")),
        };
        self.pos += 1;
        let mut out = String::new();
        let mut chars = self.rest().char_indices();
        while let Some((i, c)) = chars.next() {
            if c == '\\' {
                if let Some((_, escaped)) = chars.next() {
                    out.push(escaped);
                }
            } else if c == quote {
                self.pos += i + 1;
                return Ok(out);
            } else {
                out.push(c);
            }
        }
        Err(bad("Invalid filter: unterminated string."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALLOWED: &[(&str, &[&str])] = &[
        ("email", &["any", "equals"]),
        ("created", &["greater-than", "less-than"]),
    ];

    #[test]
    fn parses_equals_any_and_times() {
        let c = parse(r#"equals(email,"a@b.c")"#, ALLOWED, &["created"]).unwrap();
        assert_eq!(c[0].value, Operand::Text("a@b.c".into()));
        let c = parse(
            r#"and(any(email,["a@b.c","d@e.f"]),greater-than(created,2024-01-01T00:00:00Z))"#,
            ALLOWED,
            &["created"],
        )
        .unwrap();
        assert_eq!(c.len(), 2);
        assert!(matches!(c[1].value, Operand::Time(_)));
    }

    #[test]
    fn refuses_unknown_fields_operators_and_garbage() {
        assert!(parse(r#"equals(phone,"1")"#, ALLOWED, &[]).is_err());
        assert!(parse(r#"contains(email,"a")"#, ALLOWED, &[]).is_err());
        assert!(parse(r#"equals(email,"a""#, ALLOWED, &[]).is_err());
        assert!(parse(r#"equals(email,["a"])"#, ALLOWED, &[]).is_err());
    }
}
