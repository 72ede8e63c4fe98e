//! Plain data shared by every stage: the transition vocabulary, pod phases, resource quantities,
//! times, label selectors and the effective-resources rule. No I/O here.

pub mod bytes;
pub mod phase;
pub mod policy;
pub mod quantity;
pub mod report;
pub mod resources;
pub mod rollup;
pub mod selector;
pub mod time;
pub mod transition;
pub mod utilisation;

pub use phase::Phase;
pub use resources::{ContainerResources, Effective, PodResourceSpec, Resources};
pub use transition::{Subject, TransitionKind};
