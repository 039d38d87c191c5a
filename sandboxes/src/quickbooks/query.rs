//! The QuickBooks query language, as far as the hub uses it:
//!
//! ```text
//! SELECT * | COUNT(*) | field, ... FROM <Entity>
//!   [WHERE <field> <op> <value> [AND ...]]
//!   [ORDERBY <field> [ASC|DESC], ...]
//!   [STARTPOSITION <n>] [MAXRESULTS <n>]
//! ```
//!
//! Operators: `=`, `!=`, `<`, `<=`, `>`, `>=`, `IN (...)`, `LIKE '%x%'`.
//! Keywords and field names are case-insensitive; there is no `OR` (QuickBooks
//! has none). Values compare as numbers when both sides are numbers, as
//! instants when both are date-times (a bare date means midnight at the
//! field's own offset), else as strings. A field list is accepted but whole
//! entities are returned.

use crate::common::money::json_decimal;
use crate::common::time::parse_rfc3339;
use rust_decimal::Decimal;
use serde_json::Value;
use std::cmp::Ordering;

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Query {
    pub count: bool,
    pub entity: String,
    pub conditions: Vec<Condition>,
    pub order: Vec<(String, bool)>,
    pub start_position: usize,
    pub max_results: Option<usize>,
}

/// `field op values`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Condition {
    pub field: String,
    pub op: Op,
    pub values: Vec<Literal>,
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    Like,
}

/// A literal in a condition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Literal {
    Str(String),
    Num(Decimal),
    Bool(bool),
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Str(String),
    Num(Decimal),
    Sym(String),
}

fn tokenize(s: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' {
            let mut lit = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err("unterminated string literal".into()),
                    Some('\\') if chars.get(i + 1) == Some(&'\'') => {
                        lit.push('\'');
                        i += 2;
                    }
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                        lit.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(&ch) => {
                        lit.push(ch);
                        i += 1;
                    }
                }
            }
            out.push(Token::Str(lit));
        } else if c.is_ascii_digit()
            || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            let start = i;
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            let n = text
                .parse::<Decimal>()
                .map_err(|_| format!("bad number {text}"))?;
            out.push(Token::Num(n));
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '.')
            {
                i += 1;
            }
            out.push(Token::Word(chars[start..i].iter().collect()));
        } else if "<>!".contains(c) && chars.get(i + 1) == Some(&'=') {
            out.push(Token::Sym(format!("{c}=")));
            i += 2;
        } else if "=<>*(),".contains(c) {
            out.push(Token::Sym(c.to_string()));
            i += 1;
        } else {
            return Err(format!("unexpected character '{c}'"));
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn keyword(&mut self, kw: &str) -> bool {
        if matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(kw)) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect_keyword(&mut self, kw: &str) -> Result<(), String> {
        if self.keyword(kw) {
            Ok(())
        } else {
            Err(format!("expected {kw}, found {}", self.describe()))
        }
    }

    fn sym(&mut self, s: &str) -> bool {
        if matches!(self.peek(), Some(Token::Sym(x)) if x == s) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn word(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Token::Word(w)) => Ok(w),
            other => Err(format!("expected a name, found {other:?}")),
        }
    }

    fn number(&mut self) -> Result<usize, String> {
        match self.next() {
            Some(Token::Num(n)) => {
                usize::try_from(n.trunc().mantissa()).map_err(|_| format!("bad count {n}"))
            }
            other => Err(format!("expected a number, found {other:?}")),
        }
    }

    fn literal(&mut self) -> Result<Literal, String> {
        match self.next() {
            Some(Token::Str(s)) => Ok(Literal::Str(s)),
            Some(Token::Num(n)) => Ok(Literal::Num(n)),
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("true") => Ok(Literal::Bool(true)),
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("false") => Ok(Literal::Bool(false)),
            other => Err(format!("expected a value, found {other:?}")),
        }
    }

    fn describe(&self) -> String {
        match self.peek() {
            None => "end of query".into(),
            Some(t) => format!("{t:?}"),
        }
    }
}

/// Parses a query; the error is the parser's complaint.
pub(crate) fn parse(text: &str) -> Result<Query, String> {
    let mut p = Parser {
        tokens: tokenize(text)?,
        at: 0,
    };
    p.expect_keyword("select")?;
    let mut count = false;
    if p.sym("*") {
    } else if p.keyword("count") {
        if !(p.sym("(") && p.sym("*") && p.sym(")")) {
            return Err("expected COUNT(*)".into());
        }
        count = true;
    } else {
        p.word()?;
        while p.sym(",") {
            p.word()?;
        }
    }
    p.expect_keyword("from")?;
    let entity = p.word()?;
    let mut conditions = Vec::new();
    if p.keyword("where") {
        loop {
            let field = p.word()?;
            let op = match p.next() {
                Some(Token::Sym(s)) => match s.as_str() {
                    "=" => Op::Eq,
                    "!=" => Op::Ne,
                    "<" => Op::Lt,
                    "<=" => Op::Le,
                    ">" => Op::Gt,
                    ">=" => Op::Ge,
                    _ => return Err(format!("unexpected {s}")),
                },
                Some(Token::Word(w)) if w.eq_ignore_ascii_case("in") => Op::In,
                Some(Token::Word(w)) if w.eq_ignore_ascii_case("like") => Op::Like,
                other => return Err(format!("expected an operator, found {other:?}")),
            };
            let values = if op == Op::In {
                if !p.sym("(") {
                    return Err("expected ( after IN".into());
                }
                let mut v = vec![p.literal()?];
                while p.sym(",") {
                    v.push(p.literal()?);
                }
                if !p.sym(")") {
                    return Err("expected ) after IN values".into());
                }
                v
            } else {
                vec![p.literal()?]
            };
            conditions.push(Condition { field, op, values });
            if !p.keyword("and") {
                break;
            }
        }
    }
    let mut order = Vec::new();
    let mut start_position = 1;
    let mut max_results = None;
    loop {
        if p.keyword("orderby") || (p.keyword("order") && p.keyword("by")) {
            loop {
                let field = p.word()?;
                let desc = if p.keyword("desc") {
                    true
                } else {
                    p.keyword("asc");
                    false
                };
                order.push((field, desc));
                if !p.sym(",") {
                    break;
                }
            }
        } else if p.keyword("startposition") {
            start_position = p.number()?.max(1);
        } else if p.keyword("maxresults") {
            max_results = Some(p.number()?);
        } else {
            break;
        }
    }
    if p.peek().is_some() {
        return Err(format!("unexpected {}", p.describe()));
    }
    Ok(Query {
        count,
        entity,
        conditions,
        order,
        start_position,
        max_results,
    })
}

/// A (dotted) field of an entity, any letter case.
pub(crate) fn field<'a>(entity: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(entity, |v, part| {
        let obj = v.as_object()?;
        obj.get(part).or_else(|| {
            obj.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(part))
                .map(|(_, v)| v)
        })
    })
}

fn is_date_only(s: &str) -> bool {
    s.len() == 10 && s.as_bytes().get(4) == Some(&b'-') && s.as_bytes().get(7) == Some(&b'-')
}

/// Orders a field value against a literal.
fn compare(value: &Value, lit: &Literal) -> Option<Ordering> {
    match (value, lit) {
        (Value::Bool(a), Literal::Bool(b)) => Some(a.cmp(b)),
        (Value::String(s), Literal::Bool(b)) => Some(if s.eq_ignore_ascii_case(&b.to_string()) {
            Ordering::Equal
        } else {
            Ordering::Less
        }),
        (_, Literal::Num(n)) => json_decimal(value).map(|d| d.cmp(n)),
        (Value::Number(_), Literal::Str(s)) => {
            let n: Decimal = s.trim().parse().ok()?;
            json_decimal(value).map(|d| d.cmp(&n))
        }
        (Value::String(a), Literal::Str(b)) => {
            if let (Ok(x), Ok(y)) = (a.trim().parse::<Decimal>(), b.trim().parse::<Decimal>()) {
                return Some(x.cmp(&y));
            }
            if let Some(x) = parse_rfc3339(a) {
                let y = if is_date_only(b) && a.len() >= 6 {
                    let offset = &a[a.len() - 6..];
                    let offset = if offset.starts_with('+') || offset.starts_with('-') {
                        offset
                    } else {
                        "+00:00"
                    };
                    parse_rfc3339(&format!("{b}T00:00:00{offset}"))
                } else {
                    parse_rfc3339(b)
                };
                if let Some(y) = y {
                    return Some(x.cmp(&y));
                }
            }
            Some(a.as_str().cmp(b.as_str()))
        }
        _ => None,
    }
}

fn like(value: &Value, pattern: &str) -> bool {
    let Some(s) = value.as_str() else {
        return false;
    };
    let s = s.to_lowercase();
    let p = pattern.to_lowercase();
    match (p.strip_prefix('%'), p.strip_suffix('%')) {
        (Some(rest), Some(_)) => s.contains(rest.trim_end_matches('%')),
        (Some(rest), None) => s.ends_with(rest),
        (None, Some(rest)) => s.starts_with(rest),
        (None, None) => s == p,
    }
}

impl Condition {
    /// Whether `entity` satisfies the condition (a missing field never does).
    pub(crate) fn holds(&self, entity: &Value) -> bool {
        let Some(value) = field(entity, &self.field) else {
            return false;
        };
        match self.op {
            Op::In => self
                .values
                .iter()
                .any(|l| compare(value, l) == Some(Ordering::Equal)),
            Op::Like => match self.values.first() {
                Some(Literal::Str(p)) => like(value, p),
                _ => false,
            },
            op => {
                let Some(lit) = self.values.first() else {
                    return false;
                };
                let Some(ord) = compare(value, lit) else {
                    return false;
                };
                match op {
                    Op::Eq => ord == Ordering::Equal,
                    Op::Ne => ord != Ordering::Equal,
                    Op::Lt => ord == Ordering::Less,
                    Op::Le => ord != Ordering::Greater,
                    Op::Gt => ord == Ordering::Greater,
                    Op::Ge => ord != Ordering::Less,
                    Op::In | Op::Like => false,
                }
            }
        }
    }
}

/// Orders two entities by a field (missing values first).
pub(crate) fn order_by(a: &Value, b: &Value, path: &str) -> Ordering {
    match (field(a, path), field(b, path)) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(x), Some(y)) => {
            let lit = match y {
                Value::String(s) => Literal::Str(s.clone()),
                Value::Bool(b) => Literal::Bool(*b),
                other => match json_decimal(other) {
                    Some(d) => Literal::Num(d),
                    None => return Ordering::Equal,
                },
            };
            compare(x, &lit).unwrap_or(Ordering::Equal)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_the_documented_forms() {
        let q = parse("select * from Account where Metadata.CreateTime > '2014-12-31'").unwrap();
        assert_eq!(q.entity, "Account");
        assert_eq!(q.conditions[0].op, Op::Gt);
        let q = parse("SELECT * FROM SalesReceipt WHERE TxnDate >= '2025-06-01' AND TotalAmt > '300.00' ORDERBY Id DESC STARTPOSITION 11 MAXRESULTS 10").unwrap();
        assert_eq!(q.conditions.len(), 2);
        assert_eq!(q.order, vec![("Id".to_string(), true)]);
        assert_eq!((q.start_position, q.max_results), (11, Some(10)));
        let q = parse("select count(*) from Purchase").unwrap();
        assert!(q.count);
        let q = parse(
            "select Id, Name from Item where Name in ('A', 'B''s') maxresults 5 startposition 2",
        )
        .unwrap();
        assert_eq!(q.conditions[0].values.len(), 2);
        assert_eq!(q.conditions[0].values[1], Literal::Str("B's".into()));
        assert!(parse("select * from").is_err());
        assert!(parse("select * from Account where Name = ").is_err());
        assert!(parse("select * from Account where Active = true or Name = 'x'").is_err());
    }

    #[test]
    fn conditions_compare_numbers_dates_and_strings() {
        let e = json!({"Id": "11", "TotalAmt": 337.5, "TxnDate": "2015-08-25", "Active": true,
            "MetaData": {"CreateTime": "2015-08-27T14:59:48-07:00"}, "Name": "Checking"});
        let holds = |q: &str| parse(q).unwrap().conditions[0].holds(&e);
        assert!(holds("select * from X where TotalAmt > '300.00'"));
        assert!(!holds("select * from X where TotalAmt > 337.5"));
        assert!(holds("select * from X where TotalAmt >= 337.50"));
        assert!(holds("select * from X where Id = '11'"));
        assert!(
            holds("select * from X where Id > '9'"),
            "ids compare as numbers"
        );
        assert!(holds("select * from X where TxnDate >= '2015-08-25'"));
        assert!(holds(
            "select * from X where MetaData.CreateTime > '2015-08-27'"
        ));
        assert!(!holds(
            "select * from X where metadata.createtime > '2015-08-28'"
        ));
        assert!(holds(
            "select * from X where MetaData.CreateTime < '2015-08-27T22:00:00Z'"
        ));
        assert!(holds("select * from X where Active = true"));
        assert!(holds("select * from X where Name like 'Check%'"));
        assert!(!holds("select * from X where Missing = 'x'"));
    }
}
