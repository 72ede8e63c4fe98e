//! What the owners task has handed on: the last row per uid, so that an unchanged MODIFIED or
//! a relist writes nothing, and a relist can mark the owners it no longer finds as deleted.
//!
//! A cluster holds many owners: one Job per batch pod, so about 30k at 100k pods. Each row is
//! kept packed in one allocation ([`pack`]): a plain `OwnerRow` is seven strings and six
//! options, about 530 bytes in a map, where the packed row takes about 220. The map is compared
//! on every event and unpacked only for the few rows a relist finds gone.

use std::collections::{HashMap, HashSet};

use crate::model::owner::{OwnerFilter, OwnerKind, join_images};
use crate::store::{OwnerRow, Snapshot, StoreError};

/// The last row handed on per uid (its observation time aside), packed.
#[derive(Debug, Default)]
pub struct Known {
    owners: HashMap<Box<str>, Box<[u8]>>,
}

impl Known {
    /// The open owners the store holds (in `namespace`, or all), as last written.
    pub fn load(read: &mut dyn Snapshot, namespace: Option<&str>) -> Result<Known, StoreError> {
        let filter = OwnerFilter {
            namespace: namespace.map(str::to_string),
            open_only: true,
            ..OwnerFilter::default()
        };
        let mut known = Known::default();
        for o in read.owners(&filter)? {
            let kind = match o.kind {
                "Job" => OwnerKind::Job,
                _ => OwnerKind::ReplicaSet,
            };
            let last = o.scales.last();
            let row = OwnerRow {
                uid: o.uid,
                kind,
                namespace: o.namespace,
                name: o.name,
                controller_kind: o.controller_kind,
                controller_name: o.controller_name,
                revision: o.revision,
                template_hash: o.template_hash,
                images: join_images(o.images.iter().map(String::as_str)),
                created_at_ms: o.created_at_ms,
                deleted_at_ms: o.deleted_at_ms,
                spec_replicas: last.and_then(|s| s.spec_replicas),
                status_replicas: last.and_then(|s| s.status_replicas),
                observed_at_ms: 0,
            };
            known.owners.insert(row.uid.as_str().into(), pack(&row));
        }
        Ok(known)
    }

    pub fn len(&self) -> usize {
        self.owners.len()
    }

    pub fn is_empty(&self) -> bool {
        self.owners.is_empty()
    }

    /// Whether `row` differs from what was handed on for its uid; if so it is remembered.
    pub fn admit(&mut self, row: &OwnerRow) -> bool {
        let packed = pack(row);
        match self.owners.get_mut(row.uid.as_str()) {
            Some(old) if *old == packed => false,
            Some(old) => {
                *old = packed;
                true
            }
            None => {
                self.owners.insert(row.uid.as_str().into(), packed);
                true
            }
        }
    }

    /// Rows for the open owners of `kind` a list did not return: they were deleted while the
    /// watch was away. They are forgotten once handed on.
    pub fn gone(&mut self, kind: OwnerKind, listed: &HashSet<String>, at_ms: i64) -> Vec<OwnerRow> {
        let gone: Vec<Box<str>> = self
            .owners
            .iter()
            .filter(|(uid, packed)| {
                header(packed) == (kind, false) && !listed.contains(uid.as_ref())
            })
            .map(|(uid, _)| uid.clone())
            .collect();
        gone.into_iter()
            .filter_map(|uid| self.owners.remove_entry(&uid))
            .map(|(uid, packed)| {
                let mut row = unpack(&uid, &packed);
                row.deleted_at_ms = Some(at_ms);
                row.observed_at_ms = at_ms;
                row
            })
            .collect()
    }

    /// A deleted owner: its row with the deletion time, and it is forgotten.
    pub fn deleted(&mut self, mut row: OwnerRow, at_ms: i64) -> OwnerRow {
        self.owners.remove(row.uid.as_str());
        row.deleted_at_ms = Some(at_ms);
        row.observed_at_ms = at_ms;
        row
    }
}

// Which optional fields a packed row holds, one bit each, in the order they are written.
const CONTROLLER_KIND: u8 = 1;
const CONTROLLER_NAME: u8 = 1 << 1;
const TEMPLATE_HASH: u8 = 1 << 2;
const REVISION: u8 = 1 << 3;
const DELETED: u8 = 1 << 4;
const SPEC: u8 = 1 << 5;
const STATUS: u8 = 1 << 6;

/// A row without its uid (the map's key) and its observation time (not part of what changed):
/// kind, presence bits, created, the present integers, then the strings, each after its length.
fn pack(row: &OwnerRow) -> Box<[u8]> {
    let strings = [
        Some(&row.namespace),
        Some(&row.name),
        row.controller_kind.as_ref(),
        row.controller_name.as_ref(),
        row.template_hash.as_ref(),
        Some(&row.images),
    ];
    let ints = [
        row.revision,
        row.deleted_at_ms,
        row.spec_replicas,
        row.status_replicas,
    ];
    let mut flags = 0;
    for (bit, present) in [
        (CONTROLLER_KIND, row.controller_kind.is_some()),
        (CONTROLLER_NAME, row.controller_name.is_some()),
        (TEMPLATE_HASH, row.template_hash.is_some()),
        (REVISION, row.revision.is_some()),
        (DELETED, row.deleted_at_ms.is_some()),
        (SPEC, row.spec_replicas.is_some()),
        (STATUS, row.status_replicas.is_some()),
    ] {
        if present {
            flags |= bit;
        }
    }
    let len = 10
        + 8 * ints.iter().flatten().count()
        + strings.iter().flatten().map(|s| 4 + s.len()).sum::<usize>();
    let mut out = Vec::with_capacity(len);
    out.push(row.kind.code() as u8);
    out.push(flags);
    out.extend_from_slice(&row.created_at_ms.to_le_bytes());
    for v in ints.into_iter().flatten() {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for s in strings.into_iter().flatten() {
        // A Kubernetes name or image list is far below 4 GiB.
        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    out.into_boxed_slice()
}

/// The kind of a packed row, and whether it is marked deleted.
fn header(packed: &[u8]) -> (OwnerKind, bool) {
    let kind = OwnerKind::from_code(i64::from(packed[0])).unwrap_or(OwnerKind::ReplicaSet);
    (kind, packed[1] & DELETED != 0)
}

/// The row [`pack`] packed, with its uid (observed at 0).
fn unpack(uid: &str, packed: &[u8]) -> OwnerRow {
    let (kind, _) = header(packed);
    let flags = packed[1];
    let mut at = 2;
    let mut int = || {
        let v = i64::from_le_bytes(packed[at..at + 8].try_into().expect("8 bytes"));
        at += 8;
        v
    };
    let created_at_ms = int();
    let mut opt_int = |bit: u8| (flags & bit != 0).then(&mut int);
    let revision = opt_int(REVISION);
    let deleted_at_ms = opt_int(DELETED);
    let spec_replicas = opt_int(SPEC);
    let status_replicas = opt_int(STATUS);
    let mut at = 10 + 8 * (flags & (REVISION | DELETED | SPEC | STATUS)).count_ones() as usize;
    let mut string = || {
        let len = u32::from_le_bytes(packed[at..at + 4].try_into().expect("4 bytes")) as usize;
        let s = String::from_utf8_lossy(&packed[at + 4..at + 4 + len]).into_owned();
        at += 4 + len;
        s
    };
    let namespace = string();
    let name = string();
    let mut opt_string = |bit: u8| (flags & bit != 0).then(&mut string);
    let controller_kind = opt_string(CONTROLLER_KIND);
    let controller_name = opt_string(CONTROLLER_NAME);
    let template_hash = opt_string(TEMPLATE_HASH);
    let images = string();
    OwnerRow {
        uid: uid.to_string(),
        kind,
        namespace,
        name,
        controller_kind,
        controller_name,
        revision,
        template_hash,
        images,
        created_at_ms,
        deleted_at_ms,
        spec_replicas,
        status_replicas,
        observed_at_ms: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(uid: &str, spec: i64) -> OwnerRow {
        OwnerRow {
            uid: uid.into(),
            kind: OwnerKind::ReplicaSet,
            namespace: "shop".into(),
            name: format!("web-{uid}"),
            controller_kind: Some("Deployment".into()),
            controller_name: Some("web".into()),
            revision: Some(1),
            template_hash: Some(uid.into()),
            images: "nginx:1".into(),
            created_at_ms: 1,
            deleted_at_ms: None,
            spec_replicas: Some(spec),
            status_replicas: Some(spec),
            observed_at_ms: 100,
        }
    }

    #[test]
    fn only_changed_owners_are_admitted_whenever_they_are_seen() {
        let mut known = Known::default();
        assert!(known.admit(&row("a", 1)));
        let mut later = row("a", 1);
        later.observed_at_ms = 500;
        assert!(!known.admit(&later), "a resync or relist of the same state");
        assert!(known.admit(&row("a", 3)), "scaled up");
    }

    #[test]
    fn a_relist_marks_the_owners_it_no_longer_finds_as_deleted() {
        let mut known = Known::default();
        known.admit(&row("a", 1));
        known.admit(&row("b", 1));
        let mut job = row("j", 1);
        job.kind = OwnerKind::Job;
        known.admit(&job);
        let listed: HashSet<String> = ["a".to_string()].into();
        let gone = known.gone(OwnerKind::ReplicaSet, &listed, 777);
        assert_eq!(gone.len(), 1, "only b: a was listed, j is another kind");
        assert_eq!(
            (gone[0].uid.as_str(), gone[0].deleted_at_ms),
            ("b", Some(777))
        );
        assert!(known.gone(OwnerKind::ReplicaSet, &listed, 800).is_empty());
        assert_eq!(known.len(), 2);
    }

    #[test]
    fn a_packed_row_unpacks_to_itself_whichever_fields_it_has() {
        let full = OwnerRow {
            deleted_at_ms: Some(-5),
            observed_at_ms: 0,
            ..row("0b7e", 3)
        };
        let bare = OwnerRow {
            kind: OwnerKind::Job,
            namespace: String::new(),
            controller_kind: None,
            controller_name: None,
            revision: None,
            template_hash: None,
            images: "r\u{e9}gistry/\u{1f600}:1,b:2".into(),
            spec_replicas: None,
            status_replicas: None,
            observed_at_ms: 0,
            ..row("j", 0)
        };
        for (i, r) in [full, bare].into_iter().enumerate() {
            let packed = pack(&r);
            assert_eq!(unpack(&r.uid, &packed), r, "row {i}");
            assert_eq!(header(&packed), (r.kind, r.deleted_at_ms.is_some()));
        }
        // Each field is part of the comparison.
        let base = row("a", 1);
        let changed = [
            OwnerRow {
                namespace: "x".into(),
                ..base.clone()
            },
            OwnerRow {
                name: "x".into(),
                ..base.clone()
            },
            OwnerRow {
                controller_kind: None,
                ..base.clone()
            },
            OwnerRow {
                controller_name: Some("x".into()),
                ..base.clone()
            },
            OwnerRow {
                revision: Some(2),
                ..base.clone()
            },
            OwnerRow {
                template_hash: None,
                ..base.clone()
            },
            OwnerRow {
                images: "x".into(),
                ..base.clone()
            },
            OwnerRow {
                created_at_ms: 2,
                ..base.clone()
            },
            OwnerRow {
                deleted_at_ms: Some(1),
                ..base.clone()
            },
            OwnerRow {
                spec_replicas: None,
                ..base.clone()
            },
            OwnerRow {
                status_replicas: Some(9),
                ..base.clone()
            },
        ];
        for (i, c) in changed.iter().enumerate() {
            assert_ne!(pack(c), pack(&base), "field {i}");
        }
    }
}
