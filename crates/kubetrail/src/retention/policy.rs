//! The retention policy's flags: what may be removed and when, parsed from the flags that
//! `record`, `prune` and `stats` share into a [`Policy`], validated before any work starts. The
//! policy itself is plain data in `model::policy` (the store plans with it).
//!
//! Every age is measured back from "now" (the pass's clock) and every rule is optional: `off`
//! keeps that kind of history forever. The defaults are safe for a recorder that runs for
//! months: a month of pod history, a week of exact utilisation, a bit over a year of hourly
//! utilisation, and no size cap unless one is asked for (a cap deletes history early, so it is
//! an explicit choice).

use std::time::Duration;

use crate::model::bytes::parse_size;
pub use crate::model::policy::Policy;
pub use crate::model::rollup::floor_to_bucket;
use crate::model::time::parse_duration_ms;

pub const DEFAULT_MAX_AGE: &str = "30d";
pub const DEFAULT_RAW_USAGE_AGE: &str = "7d";
pub const DEFAULT_ROLLUP_AGE: &str = "400d";
pub const DEFAULT_INTERVAL: &str = "10m";

/// An age flag's value: a positive duration, or `off` (None) to keep that history forever.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Age(pub Option<i64>);

/// Parses an age flag; the message names the value and says what is accepted.
pub fn parse_age(input: &str) -> Result<Age, String> {
    if input.trim().eq_ignore_ascii_case("off") {
        return Ok(Age(None));
    }
    let ms = parse_duration_ms(input).map_err(|e| format!("{e}, or off"))?;
    if ms <= 0 {
        return Err(format!(
            "{input:?} is zero; give a positive duration such as 30d, or off to keep forever"
        ));
    }
    Ok(Age(Some(ms)))
}

/// Parses `--max-db-size`. A zero budget is refused here; a budget too small for the live
/// state is only known against a database, and gets a warning there.
pub fn parse_budget(input: &str) -> Result<u64, String> {
    let bytes = parse_size(input).map_err(|e| e.to_string())?;
    if bytes == 0 {
        return Err(format!(
            "{input:?} is zero; give the largest size the file may reach, such as 2GiB"
        ));
    }
    Ok(bytes)
}

/// The policy flags, shared by `record`, `prune` and `stats`.
#[derive(Clone, Debug, clap::Args)]
#[command(next_help_heading = "Retention")]
pub struct PolicyArgs {
    /// Delete pods deleted longer ago than this, with their transitions and resource history
    /// (and deleted nodes' transitions and capacity history). Open pods and nodes are never
    /// deleted, however old. `off` keeps ended pods forever.
    #[arg(long, value_name = "DURATION", default_value = DEFAULT_MAX_AGE, value_parser = parse_age)]
    pub max_age: Age,
    /// Roll node utilisation older than this up into hourly average and peak per node, and
    /// delete the raw rows. `off` keeps the raw rows forever.
    #[arg(long, value_name = "DURATION", default_value = DEFAULT_RAW_USAGE_AGE, value_parser = parse_age)]
    pub raw_usage_age: Age,
    /// Delete hourly utilisation rollups older than this. `off` keeps them forever.
    #[arg(long, value_name = "DURATION", default_value = DEFAULT_ROLLUP_AGE, value_parser = parse_age)]
    pub rollup_age: Age,
    /// Keep the database file (with its write-ahead log) within this size, e.g. 2GiB or 500MB:
    /// ended history and raw utilisation (rolled up early) go first, oldest first, then the
    /// oldest rollups. The state of live pods and nodes is never deleted. Default: no cap.
    #[arg(long, value_name = "SIZE", value_parser = parse_budget)]
    pub max_db_size: Option<u64>,
}

impl PolicyArgs {
    /// The validated policy; an inconsistent combination is a usage error (exit 2).
    pub fn policy(&self) -> anyhow::Result<Policy> {
        Policy {
            max_age_ms: self.max_age.0,
            raw_usage_age_ms: self.raw_usage_age.0,
            rollup_age_ms: self.rollup_age.0,
            max_db_bytes: self.max_db_size,
        }
        .validate()
        .map_err(|e| crate::usage!("{e}"))
    }
}

/// The retention flags of `record`: the policy and how often to apply it.
#[derive(Clone, Debug, clap::Args)]
pub struct RetentionArgs {
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Apply the retention policy this often while recording (the first pass runs a minute
    /// after start). `off` never prunes inside `record`; run `kubetrail prune` instead.
    #[arg(long, value_name = "DURATION", default_value = DEFAULT_INTERVAL, value_parser = parse_age,
          help_heading = "Retention")]
    pub retention_interval: Age,
}

impl RetentionArgs {
    /// The policy and the interval, or None when periodic retention is off.
    pub fn schedule(&self) -> anyhow::Result<Option<(Policy, Duration)>> {
        let policy = self.policy.policy()?;
        Ok(self
            .retention_interval
            .0
            .map(|ms| (policy, Duration::from_millis(ms as u64))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        retention: RetentionArgs,
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let cli = Cli::try_parse_from(["x"]).unwrap();
        assert_eq!(cli.retention.policy.policy().unwrap(), Policy::default());
        let (_, interval) = cli.retention.schedule().unwrap().unwrap();
        assert_eq!(interval, Duration::from_secs(600));
    }

    #[test]
    fn off_disables_a_rule_and_sizes_parse() {
        let cli = Cli::try_parse_from([
            "x",
            "--max-age",
            "off",
            "--max-db-size",
            "2GiB",
            "--retention-interval",
            "off",
        ])
        .unwrap();
        let policy = cli.retention.policy.policy().unwrap();
        assert_eq!(policy.max_age_ms, None);
        assert_eq!(policy.max_db_bytes, Some(2 << 30));
        assert!(cli.retention.schedule().unwrap().is_none());
    }

    #[test]
    fn malformed_values_name_the_value() {
        for args in [
            ["x", "--max-age", "30x"],
            ["x", "--max-db-size", "2000"],
            ["x", "--rollup-age", "0d"],
        ] {
            let err = Cli::try_parse_from(args).err().unwrap();
            assert_eq!(err.exit_code(), 2);
            assert!(err.to_string().contains(&format!("{:?}", args[2])), "{err}");
        }
    }

    #[test]
    fn rollups_must_outlive_raw_usage() {
        let cli =
            Cli::try_parse_from(["x", "--raw-usage-age", "30d", "--rollup-age", "7d"]).unwrap();
        let err = cli.retention.policy.policy().unwrap_err();
        assert!(err.downcast_ref::<crate::error::UsageError>().is_some());
        assert!(err.to_string().contains("--rollup-age 7d"), "{err}");
    }
}
