//! CloudWatch metric math, in the forms the template's alarms use: numbers, the ids of the
//! alarm's other metrics, `+ - * /`, comparisons (1 when true, 0 when false), `AND`, `OR`,
//! parentheses, `FILL(m, value)` and `IF(condition, then, else)`. A metric without a datapoint
//! has no value, and neither has arithmetic on it: `FILL` gives it one.
//! (<https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/using-metric-math.html>)

use std::collections::BTreeMap;

/// Evaluates `expression` with each metric id's datapoint (`None`: no data).
pub fn evaluate(
    expression: &str,
    metrics: &BTreeMap<String, Option<f64>>,
) -> Result<Option<f64>, String> {
    let mut parser = Parser {
        tokens: tokenize(expression)?,
        at: 0,
        metrics,
    };
    let value = parser.or()?;
    match parser.tokens.get(parser.at) {
        None => Ok(value),
        Some(extra) => Err(format!("unexpected {extra:?} in {expression}")),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Number(f64),
    Name(String),
    Symbol(&'static str),
}

const SYMBOLS: [&str; 13] = [
    ">=", "<=", "==", "!=", ">", "<", "+", "-", "*", "/", "(", ")", ",",
];

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        if let Some(symbol) = SYMBOLS.iter().find(|s| rest.starts_with(**s)) {
            tokens.push(Token::Symbol(symbol));
            rest = rest[symbol.len()..].trim_start();
            continue;
        }
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
            .unwrap_or(rest.len());
        if end == 0 {
            return Err(format!("unexpected {rest:?} in {text}"));
        }
        let word = &rest[..end];
        tokens.push(match word.parse::<f64>() {
            Ok(number) => Token::Number(number),
            Err(_) => Token::Name(word.to_owned()),
        });
        rest = rest[end..].trim_start();
    }
    Ok(tokens)
}

struct Parser<'a> {
    tokens: Vec<Token>,
    at: usize,
    metrics: &'a BTreeMap<String, Option<f64>>,
}

type Value = Option<f64>;

fn truth(value: Value) -> bool {
    value.is_some_and(|v| v != 0.0)
}

fn flag(condition: bool) -> Value {
    Some(if condition { 1.0 } else { 0.0 })
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn eat(&mut self, symbol: &str) -> bool {
        let found = matches!(self.peek(), Some(Token::Symbol(s)) if *s == symbol)
            || matches!(self.peek(), Some(Token::Name(n)) if n.eq_ignore_ascii_case(symbol));
        if found {
            self.at += 1;
        }
        found
    }

    fn expect(&mut self, symbol: &str) -> Result<(), String> {
        if self.eat(symbol) {
            Ok(())
        } else {
            Err(format!("expected {symbol}, found {:?}", self.peek()))
        }
    }

    fn or(&mut self) -> Result<Value, String> {
        let mut left = self.and()?;
        while self.eat("OR") || self.eat("||") {
            let right = self.and()?;
            left = flag(truth(left) || truth(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Value, String> {
        let mut left = self.comparison()?;
        while self.eat("AND") || self.eat("&&") {
            let right = self.comparison()?;
            left = flag(truth(left) && truth(right));
        }
        Ok(left)
    }

    fn comparison(&mut self) -> Result<Value, String> {
        let left = self.sum()?;
        for symbol in [">=", "<=", "==", "!=", ">", "<"] {
            if self.eat(symbol) {
                let right = self.sum()?;
                let (Some(l), Some(r)) = (left, right) else {
                    return Ok(None);
                };
                return Ok(flag(match symbol {
                    ">=" => l >= r,
                    "<=" => l <= r,
                    "==" => l == r,
                    "!=" => l != r,
                    ">" => l > r,
                    _ => l < r,
                }));
            }
        }
        Ok(left)
    }

    fn sum(&mut self) -> Result<Value, String> {
        let mut left = self.product()?;
        loop {
            let add = if self.eat("+") {
                true
            } else if self.eat("-") {
                false
            } else {
                return Ok(left);
            };
            let right = self.product()?;
            left = left
                .zip(right)
                .map(|(l, r)| if add { l + r } else { l - r });
        }
    }

    fn product(&mut self) -> Result<Value, String> {
        let mut left = self.unary()?;
        loop {
            let multiply = if self.eat("*") {
                true
            } else if self.eat("/") {
                false
            } else {
                return Ok(left);
            };
            let right = self.unary()?;
            left = match (left, right) {
                (Some(l), Some(r)) if multiply => Some(l * r),
                (Some(l), Some(r)) if r != 0.0 => Some(l / r),
                _ => None,
            };
        }
    }

    fn unary(&mut self) -> Result<Value, String> {
        if self.eat("-") {
            return Ok(self.unary()?.map(|v| -v));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Value, String> {
        let token = self.peek().cloned();
        self.at += 1;
        match token {
            Some(Token::Number(number)) => Ok(Some(number)),
            Some(Token::Symbol("(")) => {
                let inner = self.or()?;
                self.expect(")")?;
                Ok(inner)
            }
            Some(Token::Name(name)) if name.eq_ignore_ascii_case("FILL") => {
                self.expect("(")?;
                let metric = self.or()?;
                self.expect(",")?;
                let fill = self.or()?;
                self.expect(")")?;
                Ok(metric.or(fill))
            }
            Some(Token::Name(name)) if name.eq_ignore_ascii_case("IF") => {
                self.expect("(")?;
                let condition = self.or()?;
                self.expect(",")?;
                let then = self.or()?;
                let otherwise = if self.eat(",") { self.or()? } else { None };
                self.expect(")")?;
                Ok(if truth(condition) { then } else { otherwise })
            }
            Some(Token::Name(name)) => self
                .metrics
                .get(&name)
                .copied()
                .ok_or_else(|| format!("no metric {name}")),
            other => Err(format!("unexpected {other:?}")),
        }
    }
}
