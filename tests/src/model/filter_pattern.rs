//! CloudWatch Logs metric filter patterns, in the forms the template uses: JSON patterns,
//! `{ SELECTOR OPERATOR VALUE }`, joined by `&&` and `||` and grouped by parentheses. A selector
//! is `$.` and a dotted path; a value is a number (compared numerically, with `=`, `!=`, `<`,
//! `<=`, `>`, `>=`), a string, quoted or bare (with `=` and `!=`, where `*` ends a prefix), or
//! `*` alone (the field exists). A field that is missing, or of the wrong type for the
//! comparison, does not match; a log event that is not JSON matches no JSON pattern.
//! (<https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/FilterAndPatternSyntax.html>)

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub enum Pattern {
    Compare {
        selector: Vec<String>,
        operator: Operator,
        value: Operand,
    },
    And(Box<Pattern>, Box<Pattern>),
    Or(Box<Pattern>, Box<Pattern>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Operator {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Number(f64),
    Text(String),
}

impl Pattern {
    pub fn parse(text: &str) -> Result<Self, String> {
        let body = text
            .trim()
            .strip_prefix('{')
            .and_then(|rest| rest.strip_suffix('}'))
            .ok_or_else(|| format!("not a JSON pattern: {text}"))?;
        let mut parser = Parser {
            tokens: tokenize(body)?,
            at: 0,
        };
        let pattern = parser.or()?;
        match parser.tokens.get(parser.at) {
            None => Ok(pattern),
            Some(extra) => Err(format!("unexpected {extra:?} in {text}")),
        }
    }

    /// Whether a log event (one line) matches.
    pub fn matches(&self, event: &str) -> bool {
        match serde_json::from_str::<Value>(event) {
            Ok(value @ Value::Object(_)) => self.matches_json(&value),
            _ => false,
        }
    }

    fn matches_json(&self, event: &Value) -> bool {
        match self {
            Self::And(left, right) => left.matches_json(event) && right.matches_json(event),
            Self::Or(left, right) => left.matches_json(event) || right.matches_json(event),
            Self::Compare {
                selector,
                operator,
                value,
            } => {
                let Some(field) = select(event, selector) else {
                    return false;
                };
                compare(field, *operator, value)
            }
        }
    }
}

/// The value a `$.a.b` selector names in `event`, as a dimension or a metric value reads it.
pub fn select_text(event: &str, selector: &str) -> Option<String> {
    let path: Vec<String> = selector
        .strip_prefix("$.")?
        .split('.')
        .map(str::to_owned)
        .collect();
    let event: Value = serde_json::from_str(event).ok()?;
    match select(&event, &path)? {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

fn select<'a>(event: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(event, |value, key| value.get(key))
}

fn compare(field: &Value, operator: Operator, operand: &Operand) -> bool {
    match operand {
        Operand::Number(expected) => {
            let Some(actual) = field.as_f64() else {
                return false;
            };
            match operator {
                Operator::Eq => actual == *expected,
                Operator::Ne => actual != *expected,
                Operator::Lt => actual < *expected,
                Operator::Le => actual <= *expected,
                Operator::Gt => actual > *expected,
                Operator::Ge => actual >= *expected,
            }
        }
        Operand::Text(expected) => {
            let actual = match field {
                Value::String(text) => text.clone(),
                Value::Number(_) | Value::Bool(_) => field.to_string(),
                _ => return false,
            };
            let equal = match expected.strip_suffix('*') {
                Some(prefix) => actual.starts_with(prefix),
                None => actual == *expected,
            };
            match operator {
                Operator::Eq => equal,
                Operator::Ne => !equal,
                _ => false,
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Selector(Vec<String>),
    Operator(Operator),
    Number(f64),
    Text(String),
    And,
    Or,
    Open,
    Close,
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut rest = text.trim_start();
    while let Some(c) = rest.chars().next() {
        let (token, length) = match c {
            '(' => (Token::Open, 1),
            ')' => (Token::Close, 1),
            '&' if rest.starts_with("&&") => (Token::And, 2),
            '|' if rest.starts_with("||") => (Token::Or, 2),
            '>' | '<' | '=' | '!' => {
                let two = rest.get(..2).unwrap_or_default();
                match two {
                    ">=" => (Token::Operator(Operator::Ge), 2),
                    "<=" => (Token::Operator(Operator::Le), 2),
                    "!=" => (Token::Operator(Operator::Ne), 2),
                    _ if c == '>' => (Token::Operator(Operator::Gt), 1),
                    _ if c == '<' => (Token::Operator(Operator::Lt), 1),
                    _ if c == '=' => (Token::Operator(Operator::Eq), 1),
                    _ => return Err(format!("unexpected {c} in {text}")),
                }
            }
            '"' => {
                let end = rest[1..]
                    .find('"')
                    .ok_or_else(|| format!("unterminated string in {text}"))?;
                (Token::Text(rest[1..=end].to_owned()), end + 2)
            }
            _ => {
                let end = rest
                    .find(|c: char| c.is_whitespace() || "()&|<>=!\"".contains(c))
                    .unwrap_or(rest.len());
                let word = &rest[..end];
                let token = if let Some(path) = word.strip_prefix("$.") {
                    Token::Selector(path.split('.').map(str::to_owned).collect())
                } else if let Ok(number) = word.parse::<f64>() {
                    Token::Number(number)
                } else {
                    Token::Text(word.to_owned())
                };
                (token, end)
            }
        };
        tokens.push(token);
        rest = rest[length..].trim_start();
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn or(&mut self) -> Result<Pattern, String> {
        let mut left = self.and()?;
        while self.peek() == Some(&Token::Or) {
            self.at += 1;
            left = Pattern::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Pattern, String> {
        let mut left = self.term()?;
        while self.peek() == Some(&Token::And) {
            self.at += 1;
            left = Pattern::And(Box::new(left), Box::new(self.term()?));
        }
        Ok(left)
    }

    fn term(&mut self) -> Result<Pattern, String> {
        match self.next() {
            Some(Token::Open) => {
                let inner = self.or()?;
                match self.next() {
                    Some(Token::Close) => Ok(inner),
                    other => Err(format!("expected ), found {other:?}")),
                }
            }
            Some(Token::Selector(selector)) => {
                let Some(Token::Operator(operator)) = self.next() else {
                    return Err("a selector without an operator".into());
                };
                let value = match self.next() {
                    Some(Token::Number(number)) => Operand::Number(number),
                    Some(Token::Text(text)) => Operand::Text(text),
                    other => return Err(format!("expected a value, found {other:?}")),
                };
                Ok(Pattern::Compare {
                    selector,
                    operator,
                    value,
                })
            }
            other => Err(format!("expected a selector, found {other:?}")),
        }
    }
}
