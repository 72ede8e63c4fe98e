//! The retention policy as data: what may be removed and when, validated, in database units.
//! Here rather than in `retention` because the store computes what a policy would remove
//! (`Snapshot::plan`); the flags that make one are `retention::policy`'s.
//!
//! Every age is measured back from "now" (the pass's clock) and every rule is optional: None
//! keeps that kind of history forever.

use super::bytes::format_size;
use super::rollup::floor_to_bucket;
use super::time::format_duration_ms;

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

#[cfg(test)]
mod tests {
    use super::*;

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
