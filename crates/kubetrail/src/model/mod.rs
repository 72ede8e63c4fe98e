//! Plain data shared by every stage, and the pure rules over it: the transition vocabulary, pod
//! phases, resource quantities, times, label selectors, the effective-resources rule and the
//! utilisation integrator. No I/O here, and no other module of the crate is named.
//!
//! It also holds what the layers above exchange through the store: the reports' filters and
//! rows (`report`), what an hourly rollup is and how rollups combine (`rollup`), the retention
//! policy (`policy`) and byte sizes (`bytes`). They live here rather than with the layer that
//! uses them most, so that the store takes and returns them without naming `query` or
//! `retention`; how they print, and the flags that make them, stay up there.

pub mod bytes;
pub mod event;
pub mod owner;
pub mod phase;
pub mod policy;
pub mod quantity;
pub mod report;
pub mod resources;
pub mod rollup;
pub mod selector;
pub mod time;
pub mod transition;
pub mod uid;
pub mod usage;
pub mod utilisation;

pub use phase::Phase;
pub use resources::{ContainerResources, Effective, PodResourceSpec, Resources};
pub use transition::{Subject, TransitionKind};
