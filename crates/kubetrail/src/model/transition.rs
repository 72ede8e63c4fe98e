//! The transition vocabulary: the one list of pod and node lifecycle events that the recorder
//! writes, the simulator's ground truth uses, and queries print. Names are part of the public
//! contract (database, CSV, JSON, truth files), so they never change once shipped.
//!
//! Each kind also has a small integer code, which is what the database stores: a one-byte column
//! instead of a 20-byte string keeps a transition row well under the 200-byte budget. The
//! `transition_kinds` table in the schema maps the codes back to names for other SQLite tools.

use std::fmt;
use std::str::FromStr;

/// What a transition row is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Subject {
    Pod,
    Node,
}

impl Subject {
    pub fn as_str(self) -> &'static str {
        match self {
            Subject::Pod => "pod",
            Subject::Node => "node",
        }
    }
}

macro_rules! kinds {
    ($( $variant:ident = $code:literal, $name:literal, $subject:ident; )*) => {
        /// One kind of lifecycle transition (docs/recording.md and docs/queries.md list them).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum TransitionKind { $( $variant, )* }

        impl TransitionKind {
            /// Every kind, in code order.
            pub const ALL: &'static [TransitionKind] = &[ $( TransitionKind::$variant, )* ];

            /// The stable name used in the database views, CSV, JSON and truth files.
            pub fn as_str(self) -> &'static str {
                match self { $( TransitionKind::$variant => $name, )* }
            }

            /// The integer stored in the database.
            pub fn code(self) -> i64 {
                match self { $( TransitionKind::$variant => $code, )* }
            }

            pub fn from_code(code: i64) -> Option<Self> {
                match code { $( $code => Some(TransitionKind::$variant), )* _ => None }
            }

            pub fn subject(self) -> Subject {
                match self { $( TransitionKind::$variant => Subject::$subject, )* }
            }
        }

        impl TransitionKind {
            /// Parses a kind name for the given subject. Pods and nodes share some names
            /// (`ready`, `deleted`), so the subject decides which one is meant.
            pub fn from_name(subject: Subject, s: &str) -> Result<Self, String> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|k| k.subject() == subject && k.as_str() == s)
                    .ok_or_else(|| {
                        let names: Vec<&str> = Self::ALL
                            .iter()
                            .filter(|k| k.subject() == subject)
                            .map(|k| k.as_str())
                            .collect();
                        format!(
                            "unknown {} transition kind {s:?}; expected one of: {}",
                            subject.as_str(),
                            names.join(", ")
                        )
                    })
            }
        }

        impl FromStr for TransitionKind {
            type Err = String;
            /// Parses a pod kind name (the common case for `--kind`).
            fn from_str(s: &str) -> Result<Self, String> {
                Self::from_name(Subject::Pod, s)
            }
        }
    };
}

kinds! {
    Created = 1, "created", Pod;
    Scheduled = 2, "scheduled", Pod;
    Started = 3, "started", Pod;
    Ready = 4, "ready", Pod;
    Unready = 5, "unready", Pod;
    ContainerRestarted = 6, "container_restarted", Pod;
    ContainerTerminated = 7, "container_terminated", Pod;
    Succeeded = 8, "succeeded", Pod;
    Failed = 9, "failed", Pod;
    Terminating = 10, "terminating", Pod;
    Deleted = 11, "deleted", Pod;
    Resized = 12, "resized", Pod;
    ContainerWaiting = 13, "container_waiting", Pod;
    LeftScope = 14, "left_scope", Pod;
    EnteredScope = 15, "entered_scope", Pod;
    ResizeRequested = 16, "resize_requested", Pod;
    NodeAdded = 20, "added", Node;
    NodeDeleted = 21, "deleted", Node;
    NodeReady = 22, "ready", Node;
    NodeNotReady = 23, "not_ready", Node;
    Cordoned = 24, "cordoned", Node;
    Uncordoned = 25, "uncordoned", Node;
    CapacityChanged = 26, "capacity_changed", Node;
}

impl fmt::Display for TransitionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_codes_round_trip() {
        for kind in TransitionKind::ALL {
            assert_eq!(
                TransitionKind::from_name(kind.subject(), kind.as_str()).unwrap(),
                *kind
            );
            assert_eq!(TransitionKind::from_code(kind.code()), Some(*kind));
        }
        assert_eq!(
            "ready".parse::<TransitionKind>().unwrap(),
            TransitionKind::Ready
        );
        assert_eq!(
            TransitionKind::from_name(Subject::Node, "ready").unwrap(),
            TransitionKind::NodeReady
        );
        assert!(
            "bogus"
                .parse::<TransitionKind>()
                .unwrap_err()
                .contains("created")
        );
    }
}
