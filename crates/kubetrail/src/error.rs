//! The one error type every layer shares: a problem that is the user's fault.
//!
//! Queries, retention policies and the command line all reject bad input the same way, and
//! the binary turns a [`UsageError`] anywhere in an error's chain into exit code 2.

/// An error that is the user's fault (bad flag value, unknown pod, ...): exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Builds a [`UsageError`] wrapped in anyhow, for `return Err(usage!(...))`.
#[macro_export]
macro_rules! usage {
    ($($arg:tt)*) => { anyhow::Error::new($crate::error::UsageError(format!($($arg)*))) };
}
