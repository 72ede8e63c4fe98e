//! Label and field selectors, parsed from the query string and matched against the fields the
//! store keeps beside each object. Label selectors are the shared `model::selector` (the
//! grammar of k8s.io/apimachinery); field selectors support `=`, `==` and `!=` on the fields
//! the real apiserver indexes for these resources.

use super::store::{ResourceKind, StoredObject};
pub use kubetrail::model::selector::LabelSelector;

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
            && self.labels.matches_pairs(&object.fields.labels)
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
                LabelSelector::parse(sel).unwrap().matches_pairs(&l),
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
