//! Kubernetes label selectors, one implementation for every place that takes one: `record -l`
//! (checked up front, and matched against stored labels when a restart reconciles),
//! `query ... -l` (matched against the JSON object in `label_sets.labels`; labels are not indexed,
//! so matching happens in Rust on rows the indexed filters already narrowed down) and the
//! simulator's `labelSelector` parameter (matched against an object's label pairs).
//!
//! The grammar and validity rules are apimachinery's: comma-separated requirements, each
//! `key=value`, `key==value`, `key!=value`, `key in (a,b)`, `key notin (a,b)`, `key` (exists) or
//! `!key` (does not exist); keys are (optionally prefixed) qualified names, values at most 63
//! characters of alphanumerics, `-`, `_` and `.`.

use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Op {
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    DoesNotExist,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Requirement {
    key: String,
    op: Op,
}

/// A parsed label selector. The empty selector matches every pod.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    pub fn parse(input: &str) -> Result<LabelSelector, String> {
        let bad = |why: &str| {
            format!(
                "invalid label selector {input:?}: {why}; expected e.g. app=web, tier!=db, \
                 env in (prod,staging), !canary"
            )
        };
        let mut requirements = Vec::new();
        for term in split_terms(input) {
            let term = term.trim();
            if term.is_empty() {
                if input.trim().is_empty() {
                    continue;
                }
                return Err(bad("empty requirement"));
            }
            requirements.push(parse_term(term).map_err(|why| bad(&why))?);
        }
        Ok(LabelSelector { requirements })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Matches the JSON object stored in `label_sets.labels` (NULL or unparsable means no labels).
    pub fn matches_json(&self, labels_json: Option<&str>) -> bool {
        if self.is_empty() {
            return true;
        }
        let labels: BTreeMap<String, String> = labels_json
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default();
        self.matches(&labels)
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matches_with(|key| labels.get(key).map(String::as_str))
    }

    /// Matches labels held as (key, value) pairs.
    pub fn matches_pairs(&self, labels: &[(String, String)]) -> bool {
        self.matches_with(|key| {
            labels
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        })
    }

    fn matches_with<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.requirements.iter().all(|req| {
            let value = get(&req.key);
            match &req.op {
                Op::In(values) => value.is_some_and(|v| values.iter().any(|x| x == v)),
                // As in Kubernetes: an object without the key satisfies `!=` and `notin`.
                Op::NotIn(values) => value.is_none_or(|v| values.iter().all(|x| x != v)),
                Op::Exists => value.is_some(),
                Op::DoesNotExist => value.is_none(),
            }
        })
    }
}

/// Splits on commas that are not inside the parentheses of an `in (...)` list.
fn split_terms(input: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in input.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                terms.push(&input[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&input[start..]);
    terms
}

fn parse_term(term: &str) -> Result<Requirement, String> {
    if let Some(key) = term.strip_prefix('!') {
        return Ok(Requirement {
            key: valid_key(key.trim())?,
            op: Op::DoesNotExist,
        });
    }
    for (operator, negated) in [("!=", true), ("==", false), ("=", false)] {
        if let Some((key, value)) = term.split_once(operator) {
            let value = valid_value(value.trim())?;
            let op = if negated {
                Op::NotIn(vec![value])
            } else {
                Op::In(vec![value])
            };
            return Ok(Requirement {
                key: valid_key(key.trim())?,
                op,
            });
        }
    }
    let mut words = term.splitn(2, char::is_whitespace);
    let key = words.next().unwrap_or_default();
    let Some(rest) = words.next().map(str::trim) else {
        return Ok(Requirement {
            key: valid_key(key)?,
            op: Op::Exists,
        });
    };
    let (negated, list) = if let Some(list) = rest.strip_prefix("notin") {
        (true, list)
    } else if let Some(list) = rest.strip_prefix("in") {
        (false, list)
    } else {
        return Err(format!("unknown operator in {term:?}"));
    };
    let list = list
        .trim()
        .strip_prefix('(')
        .and_then(|l| l.strip_suffix(')'))
        .ok_or_else(|| format!("expected a (comma, separated) list in {term:?}"))?;
    if list.trim().is_empty() {
        return Err(format!("the value list of {term:?} is empty"));
    }
    let values = list
        .split(',')
        .map(|v| valid_value(v.trim()))
        .collect::<Result<Vec<_>, _>>()?;
    let op = if negated {
        Op::NotIn(values)
    } else {
        Op::In(values)
    };
    Ok(Requirement {
        key: valid_key(key)?,
        op,
    })
}

/// A qualified name, optionally with a DNS-subdomain prefix: `app`, `app.kubernetes.io/name`.
fn valid_key(key: &str) -> Result<String, String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.'))
    });
    if name_ok && prefix_ok {
        Ok(key.to_string())
    } else {
        Err(format!(
            "bad label key {key:?} (alphanumerics, '-', '_' or '.', starting and ending with an \
             alphanumeric, optionally after a DNS prefix and '/')"
        ))
    }
}

/// Empty, or up to 63 alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric.
fn valid_value(value: &str) -> Result<String, String> {
    let ok = value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && (value.is_empty()
            || (value.starts_with(|c: char| c.is_ascii_alphanumeric())
                && value.ends_with(|c: char| c.is_ascii_alphanumeric())));
    if ok {
        Ok(value.to_string())
    } else {
        Err(format!(
            "bad label value {value:?} (at most 63 alphanumerics, '-', '_' or '.')"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn matches_like_kubectl() {
        let web = labels(&[("app", "web"), ("env", "prod")]);
        let db = labels(&[("app", "db")]);
        for (selector, want_web, want_db) in [
            ("", true, true),
            ("app=web", true, false),
            ("app==web", true, false),
            ("app!=web", false, true),
            ("env", true, false),
            ("!env", false, true),
            ("app in (web, db)", true, true),
            ("app notin (web)", false, true),
            ("env notin (prod)", false, true),
            ("app=web,env=prod", true, false),
            ("app in (web,db),!env", false, true),
        ] {
            let s = LabelSelector::parse(selector).unwrap();
            assert_eq!(s.matches(&web), want_web, "{selector} on web");
            assert_eq!(s.matches(&db), want_db, "{selector} on db");
        }
    }

    #[test]
    fn matches_stored_json() {
        let s = LabelSelector::parse("app=web").unwrap();
        assert!(s.matches_json(Some(r#"{"app":"web"}"#)));
        assert!(!s.matches_json(None));
        assert!(LabelSelector::default().matches_json(None));
    }

    #[test]
    fn refuses_garbage_naming_it() {
        for input in ["app=web,", "app ~ web", "app in web", "a b=c", "=x"] {
            let err = LabelSelector::parse(input).unwrap_err();
            assert!(err.contains(&format!("{input:?}")), "{err}");
        }
    }
}
