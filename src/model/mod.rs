//! Plain data shared by every stage: the transition vocabulary, resource quantities and the
//! effective-resources rule. No I/O here.

pub mod quantity;
pub mod resources;
pub mod transition;

pub use resources::{ContainerResources, Effective, PodResourceSpec, Resources};
pub use transition::{Subject, TransitionKind};
