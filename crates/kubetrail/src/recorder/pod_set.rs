//! The cache's pods, keyed by the uid each state already holds.
//!
//! A `HashMap<uid, Box<PodState>>` keeps the uid twice: once in the state and once as the
//! map's key, a 16-byte pointer in each of the table's slots (about 131k slots for 100k pods,
//! so 2 MB). A set of boxed states hashed and compared by their own uid keeps only the 8-byte
//! box in each slot, and `Borrow<str>` still lets a `&str` look a pod up.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};

use foldhash::HashSet;

use super::state::PodState;

/// A cached pod, equal to another and hashed by its uid alone.
#[derive(Debug)]
struct ByUid(Box<PodState>);

impl Borrow<str> for ByUid {
    fn borrow(&self) -> &str {
        &self.0.uid
    }
}

impl PartialEq for ByUid {
    fn eq(&self, other: &Self) -> bool {
        self.0.uid == other.0.uid
    }
}

impl Eq for ByUid {}

impl Hash for ByUid {
    // `Borrow` requires the hash of the borrowed `str`: hash exactly that.
    fn hash<H: Hasher>(&self, state: &mut H) {
        let uid: &str = self.borrow();
        uid.hash(state);
    }
}

/// Pod states by uid: one per uid, a new state for a uid replacing the old.
#[derive(Debug, Default)]
pub struct PodSet {
    pods: HashSet<ByUid>,
}

impl PodSet {
    pub fn get(&self, uid: &str) -> Option<&PodState> {
        self.pods.get(uid).map(|p| &*p.0)
    }

    pub fn contains(&self, uid: &str) -> bool {
        self.pods.contains(uid)
    }

    /// Caches `state`, replacing the state of the same uid (which is dropped).
    pub fn insert(&mut self, state: Box<PodState>) {
        self.pods.replace(ByUid(state));
    }

    pub fn remove(&mut self, uid: &str) -> Option<Box<PodState>> {
        self.pods.take(uid).map(|p| p.0)
    }

    pub fn len(&self) -> usize {
        self.pods.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }

    pub fn values(&self) -> impl Iterator<Item = &PodState> {
        self.pods.iter().map(|p| &*p.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(uid: &str, name: &str) -> Box<PodState> {
        Box::new(PodState {
            uid: uid.into(),
            name: name.into(),
            ..PodState::default()
        })
    }

    #[test]
    fn one_state_per_uid_found_by_str() {
        let mut set = PodSet::default();
        assert!(set.is_empty());
        set.insert(pod("a", "first"));
        set.insert(pod("b", "other"));
        set.insert(pod("a", "second"));
        assert_eq!(set.len(), 2);
        assert_eq!(&*set.get("a").unwrap().name, "second");
        assert!(set.contains("b"));
        assert!(!set.contains("c"));
        assert_eq!(&*set.remove("b").unwrap().name, "other");
        assert!(set.remove("b").is_none());
        let names: Vec<&str> = set.values().map(|p| &*p.name).collect();
        assert_eq!(names, ["second"]);
    }

    #[test]
    fn a_slot_holds_only_the_box() {
        // What the set is for: a slot of the table is the 8-byte box, not a key beside it.
        assert_eq!(size_of::<ByUid>(), size_of::<usize>());
    }
}
