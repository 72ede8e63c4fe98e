//! The retention policy: what may be removed and when, parsed from the flags that `record`,
//! `prune` and `stats` share, and validated before any work starts.
//!
//! Every age is measured back from "now" (the pass's clock) and every rule is optional: `off`
//! keeps that kind of history forever. The defaults are safe for a recorder that runs for
//! months: a month of pod history, a week of exact utilisation, a bit over a year of hourly
//! utilisation, and no size cap unless one is asked for (a cap deletes history early, so it is
//! an explicit choice).

use std::time::Duration;

use super::bytes::{format_size, parse_size};
pub use crate::model::rollup::floor_to_bucket;
use crate::model::time::{format_duration_ms, parse_duration_ms};

/// A validated policy, in database units.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Ended pods (and deleted nodes) whose deletion is older than this go, with their history.
    pub max_age_ms: Option<i64>,
    /// Raw node utilisation older than this is rolled up into hourly rows.
    pub raw_usage_age_ms: Option<i64>,
    /// Hourly rollups older than this go.
    pub rollup_age_ms: Option<i64>,
    /// The file (with its write-ahead log) is kept within this many bytes.
    pub max_db_bytes: Option<u64>,
}

pub const DEFAULT_MAX_AGE: &str = "30d";
pub const DEFAULT_RAW_USAGE_AGE: &str = "7d";
pub const DEFAULT_ROLLUP_AGE: &str = "400d";
pub const DEFAULT_INTERVAL: &str = "10m";

impl Default for Policy {
    fn default() -> Self {
        const DAY: i64 = 86_400_000;
        Policy {
            max_age_ms: Some(30 * DAY),
            raw_usage_age_ms: Some(7 * DAY),
            rollup_age_ms: Some(400 * DAY),
            max_db_bytes: None,
        }
    }
}

impl Policy {
    /// Refuses combinations that would destroy what another rule keeps.
    pub fn validate(self) -> Result<Policy, String> {
        if let (Some(raw), Some(rollup)) = (self.raw_usage_age_ms, self.rollup_age_ms)
            && rollup < raw
        {
            return Err(format!(
                "--rollup-age {} is shorter than --raw-usage-age {}: the rollups would be \
                 deleted as soon as they are made; give a --rollup-age of at least {}",
                format_duration_ms(rollup),
                format_duration_ms(raw),
                format_duration_ms(raw)
            ));
        }
        Ok(self)
    }

    /// Ended pods and deleted nodes whose `deleted_at_ms` is before this go.
    pub fn ended_cutoff_ms(&self, now_ms: i64) -> Option<i64> {
        self.max_age_ms.map(|age| now_ms.saturating_sub(age))
    }

    /// Raw usage before this is rolled up. Aligned down to a rollup bucket, so every rollup
    /// bucket is complete when it is written.
    pub fn raw_horizon_ms(&self, now_ms: i64) -> Option<i64> {
        self.raw_usage_age_ms
            .map(|age| floor_to_bucket(now_ms.saturating_sub(age)))
    }

    /// Rollup buckets that end at or before this go.
    pub fn rollup_cutoff_ms(&self, now_ms: i64) -> Option<i64> {
        self.rollup_age_ms.map(|age| now_ms.saturating_sub(age))
    }

    /// One line for logs and reports: "max-age 30d, raw-usage-age 7d, rollup-age 400d, no size cap".
    pub fn describe(&self) -> String {
        let age = |ms: Option<i64>| ms.map_or_else(|| "off".to_string(), format_duration_ms);
        format!(
            "max-age {}, raw-usage-age {}, rollup-age {}, {}",
            age(self.max_age_ms),
            age(self.raw_usage_age_ms),
            age(self.rollup_age_ms),
            self.max_db_bytes.map_or_else(
                || "no size cap".to_string(),
                |b| format!("max-db-size {}", format_size(b))
            )
        )
    }
}

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

    #[test]
    fn the_raw_horizon_is_aligned_to_an_hour() {
        let policy = Policy {
            raw_usage_age_ms: Some(90 * 60_000),
            ..Policy::default()
        };
        let now = 10 * 3_600_000 + 20 * 60_000; // 10:20
        assert_eq!(policy.raw_horizon_ms(now), Some(8 * 3_600_000)); // 8:50 -> 8:00
    }
}
