//! Label and field selectors, parsed from the query string and matched against the fields the
//! store keeps beside each object. Grammar follows k8s.io/apimachinery: labels support `=`,
//! `==`, `!=`, `in (..)`, `notin (..)`, `key` and `!key`; fields support `=`, `==` and `!=` on
//! the fields the real apiserver indexes for these resources.

use super::store::{ResourceKind, StoredObject};

#[derive(Clone, Debug, PartialEq, Eq)]
enum LabelOp {
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    DoesNotExist,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct LabelRequirement {
    key: String,
    op: LabelOp,
}

/// A parsed `labelSelector`. Empty matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<LabelRequirement>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Name,
    Namespace,
    NodeName,
    Phase,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct FieldRequirement {
    field: Field,
    value: String,
    equal: bool,
}

/// A parsed `fieldSelector`. Empty matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

impl LabelSelector {
    pub fn parse(input: &str) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for term in split_top_level(input) {
            let term = term.trim();
            if term.is_empty() {
                if input.trim().is_empty() {
                    continue;
                }
                return Err(format!(
                    "unable to parse requirement: empty term in {input:?}"
                ));
            }
            requirements.push(parse_label_term(term)?);
        }
        Ok(LabelSelector { requirements })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn matches(&self, labels: &[(String, String)]) -> bool {
        self.requirements.iter().all(|req| {
            let value = labels
                .iter()
                .find(|(k, _)| *k == req.key)
                .map(|(_, v)| v.as_str());
            match &req.op {
                LabelOp::In(values) => value.is_some_and(|v| values.iter().any(|x| x == v)),
                // As in apimachinery: a missing key satisfies `!=` and `notin`.
                LabelOp::NotIn(values) => value.is_none_or(|v| values.iter().all(|x| x != v)),
                LabelOp::Exists => value.is_some(),
                LabelOp::DoesNotExist => value.is_none(),
            }
        })
    }
}

/// Splits on commas that are not inside `( )`.
fn split_top_level(input: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in input.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&input[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&input[start..]);
    parts
}

fn parse_label_term(term: &str) -> Result<LabelRequirement, String> {
    if let Some(key) = term.strip_prefix('!') {
        let key = key.trim();
        validate_key(key)?;
        return Ok(LabelRequirement {
            key: key.to_string(),
            op: LabelOp::DoesNotExist,
        });
    }
    for (token, negate) in [("!=", true), ("==", false), ("=", false)] {
        if let Some((key, value)) = term.split_once(token) {
            let (key, value) = (key.trim(), value.trim());
            validate_key(key)?;
            validate_value(value)?;
            let values = vec![value.to_string()];
            let op = if negate {
                LabelOp::NotIn(values)
            } else {
                LabelOp::In(values)
            };
            return Ok(LabelRequirement {
                key: key.to_string(),
                op,
            });
        }
    }
    // Set-based: `key in (a,b)` / `key notin (a,b)`.
    let mut words = term.splitn(2, char::is_whitespace);
    let key = words.next().unwrap_or_default().trim();
    let rest = words.next().unwrap_or_default().trim();
    if rest.is_empty() {
        validate_key(key)?;
        return Ok(LabelRequirement {
            key: key.to_string(),
            op: LabelOp::Exists,
        });
    }
    validate_key(key)?;
    let (negate, list) = if let Some(list) = rest.strip_prefix("notin") {
        (true, list)
    } else if let Some(list) = rest.strip_prefix("in") {
        (false, list)
    } else {
        return Err(format!(
            "unable to parse requirement {term:?}: expected one of =, ==, !=, in, notin"
        ));
    };
    let list = list.trim();
    let inner = list
        .strip_prefix('(')
        .and_then(|l| l.strip_suffix(')'))
        .ok_or_else(|| {
            format!("unable to parse requirement {term:?}: expected a (value,...) list")
        })?;
    let mut values = Vec::new();
    for value in inner.split(',') {
        let value = value.trim();
        validate_value(value)?;
        values.push(value.to_string());
    }
    if values.is_empty() || (values.len() == 1 && values[0].is_empty()) {
        return Err(format!(
            "unable to parse requirement {term:?}: for 'in', 'notin' operators, values set can't be empty"
        ));
    }
    let op = if negate {
        LabelOp::NotIn(values)
    } else {
        LabelOp::In(values)
    };
    Ok(LabelRequirement {
        key: key.to_string(),
        op,
    })
}

fn validate_key(key: &str) -> Result<(), String> {
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
        Ok(())
    } else {
        Err(format!(
            "invalid label key {key:?}: a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        ))
    }
}

fn validate_value(value: &str) -> Result<(), String> {
    let ok = value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && (value.is_empty()
            || (value.starts_with(|c: char| c.is_ascii_alphanumeric())
                && value.ends_with(|c: char| c.is_ascii_alphanumeric())));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid label value {value:?}: must be 63 characters or less and consist of alphanumeric characters, '-', '_' or '.'"
        ))
    }
}

impl FieldSelector {
    pub fn parse(input: &str, resource: ResourceKind) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for term in input.split(',') {
            let term = term.trim();
            if term.is_empty() {
                if input.trim().is_empty() {
                    continue;
                }
                return Err(format!("invalid field selector {input:?}: empty term"));
            }
            let (name, value, equal) = if let Some((n, v)) = term.split_once("!=") {
                (n, v, false)
            } else if let Some((n, v)) = term.split_once("==") {
                (n, v, true)
            } else if let Some((n, v)) = term.split_once('=') {
                (n, v, true)
            } else {
                return Err(format!(
                    "invalid selector: {term:?}; can't understand it, expected field=value, field==value or field!=value"
                ));
            };
            let field = match (name.trim(), resource) {
                ("metadata.name", _) => Field::Name,
                ("metadata.namespace", _) => Field::Namespace,
                ("spec.nodeName", ResourceKind::Pods) => Field::NodeName,
                ("status.phase", ResourceKind::Pods | ResourceKind::Namespaces) => Field::Phase,
                (other, _) => {
                    return Err(format!("field label not supported: {other}"));
                }
            };
            requirements.push(FieldRequirement {
                field,
                value: value.trim().to_string(),
                equal,
            });
        }
        Ok(FieldSelector { requirements })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The namespace this selector pins, if any (lets a list skip other namespaces).
    pub fn namespace(&self) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == Field::Namespace && r.equal)
            .map(|r| r.value.as_str())
    }

    pub fn matches(&self, object: &StoredObject) -> bool {
        self.requirements.iter().all(|req| {
            let actual = match req.field {
                Field::Name => object.key.name.as_str(),
                Field::Namespace => object.key.namespace.as_str(),
                Field::NodeName => object.fields.node_name.as_str(),
                Field::Phase => object.fields.phase.as_str(),
            };
            (actual == req.value) == req.equal
        })
    }
}

/// Both selectors of a request, plus the namespace from the URL path.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Filter {
    pub fn matches(&self, object: &StoredObject) -> bool {
        self.namespace
            .as_deref()
            .is_none_or(|ns| object.key.namespace == ns)
            && self.labels.matches(&object.fields.labels)
            && self.fields.matches(object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn label_selector_operators() {
        let l = labels(&[("app", "web"), ("tier", "front")]);
        let cases = [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app in (web,db)", true),
            ("app notin (web,db)", false),
            ("tier", true),
            ("!tier", false),
            ("!missing", true),
            ("missing!=x", true),
            ("app=web,tier=back", false),
            ("app in (db), tier", false),
        ];
        for (sel, want) in cases {
            assert_eq!(
                LabelSelector::parse(sel).unwrap().matches(&l),
                want,
                "{sel}"
            );
        }
    }

    #[test]
    fn bad_label_selectors_are_rejected() {
        for bad in [
            "app=",
            "=web",
            "app in web",
            "a b c",
            "app=we b",
            "app in ()",
            "app,,x",
            "-x",
        ] {
            if bad == "app=" {
                // An empty value is legal (`app=` matches app="").
                assert!(LabelSelector::parse(bad).is_ok());
                continue;
            }
            assert!(
                LabelSelector::parse(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn field_selectors() {
        assert!(
            FieldSelector::parse("spec.nodeName=n1,status.phase!=Running", ResourceKind::Pods)
                .is_ok()
        );
        assert!(
            FieldSelector::parse("spec.bogus=1", ResourceKind::Pods)
                .unwrap_err()
                .contains("spec.bogus")
        );
        assert!(FieldSelector::parse("spec.nodeName=n1", ResourceKind::Nodes).is_err());
        assert!(FieldSelector::parse("nonsense", ResourceKind::Pods).is_err());
    }
}
