//! The metrics API's objects as far as kubetrail reads them, and their projection into rows.
//! Only the fields used are parsed: name, namespace, timestamp, window and the two usages.

use serde::Deserialize;

use crate::model::quantity::{parse_cpu_millis, parse_memory_bytes};
use crate::model::time::parse_rfc3339_ms;
use crate::model::usage::{ContainerUsageRow, NodeUsageSampleRow};

#[derive(Debug, Deserialize)]
pub struct List<T> {
    #[serde(default = "Vec::new")]
    pub items: Vec<T>,
}

#[derive(Debug, Deserialize)]
pub struct Meta {
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub cpu: Option<String>,
    #[serde(default)]
    pub memory: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Container {
    pub name: String,
    #[serde(default)]
    pub usage: Usage,
}

#[derive(Debug, Deserialize)]
pub struct PodMetrics {
    pub metadata: Meta,
    pub timestamp: String,
    pub window: String,
    #[serde(default)]
    pub containers: Vec<Container>,
}

#[derive(Debug, Deserialize)]
pub struct NodeMetrics {
    pub metadata: Meta,
    pub timestamp: String,
    pub window: String,
    #[serde(default)]
    pub usage: Usage,
}

/// Why an item could not be read (it is skipped and logged, the rest of the sample is kept).
pub type Bad = String;

/// A Go `time.Duration` string as metrics-server writes the window (`15s`, `10.5s`, `1m0s`,
/// `500ms`), in milliseconds.
pub fn parse_go_duration_ms(raw: &str) -> Result<i64, Bad> {
    let bad = || format!("window {raw:?} is not a duration such as 15s or 1m0s");
    let mut rest = raw;
    let mut total = 0f64;
    if rest.is_empty() {
        return Err(bad());
    }
    if rest == "0" {
        return Ok(0);
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let value: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ns" => 1e-6,
            "us" | "µs" => 1e-3,
            "ms" => 1.0,
            "s" => 1e3,
            "m" => 60e3,
            "h" => 3_600e3,
            _ => return Err(bad()),
        };
        total += value * factor;
        rest = &rest[unit_len..];
    }
    Ok(total.round() as i64)
}

fn times(timestamp: &str, window: &str) -> Result<(i64, i64), Bad> {
    let at_ms = parse_rfc3339_ms(timestamp)
        .ok_or_else(|| format!("timestamp {timestamp:?} is not an RFC 3339 time"))?;
    Ok((at_ms, parse_go_duration_ms(window)?))
}

fn usage(u: &Usage) -> Result<(i64, i64), Bad> {
    let cpu = match &u.cpu {
        Some(q) => parse_cpu_millis(q).map_err(|e| format!("cpu: {e}"))?,
        None => 0,
    };
    let memory = match &u.memory {
        Some(q) => parse_memory_bytes(q).map_err(|e| format!("memory: {e}"))?,
        None => 0,
    };
    Ok((cpu, memory))
}

impl PodMetrics {
    /// The sample's time (ms) and one row per container.
    pub fn rows(&self) -> Result<(i64, Vec<ContainerUsageRow>), Bad> {
        let (at_ms, window_ms) = times(&self.timestamp, &self.window)?;
        let namespace = self.metadata.namespace.clone().unwrap_or_default();
        let rows = self
            .containers
            .iter()
            .map(|c| {
                let (cpu_millis, memory_bytes) =
                    usage(&c.usage).map_err(|e| format!("container {}: {e}", c.name))?;
                Ok(ContainerUsageRow {
                    namespace: namespace.clone(),
                    pod: self.metadata.name.clone(),
                    container: c.name.clone(),
                    at_ms,
                    window_ms,
                    cpu_millis,
                    memory_bytes,
                    // The metrics API has no requests: the recorder's cache fills them in.
                    resources: None,
                })
            })
            .collect::<Result<_, Bad>>()?;
        Ok((at_ms, rows))
    }
}

impl NodeMetrics {
    pub fn row(&self) -> Result<NodeUsageSampleRow, Bad> {
        let (at_ms, window_ms) = times(&self.timestamp, &self.window)?;
        let (cpu_millis, memory_bytes) = usage(&self.usage)?;
        Ok(NodeUsageSampleRow {
            node: self.metadata.name.clone(),
            at_ms,
            window_ms,
            cpu_millis,
            memory_bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_as_metrics_server_writes_windows() {
        for (raw, ms) in [
            ("15s", 15_000),
            ("10.5s", 10_500),
            ("1m0s", 60_000),
            ("1m30.25s", 90_250),
            ("500ms", 500),
            ("1h0m0s", 3_600_000),
            ("0", 0),
        ] {
            assert_eq!(parse_go_duration_ms(raw), Ok(ms), "{raw}");
        }
        for bad in ["", "s", "15", "15x", "-1s"] {
            assert!(parse_go_duration_ms(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_pod_sample_becomes_rows_in_millicores_rounded_up_and_bytes() {
        let pod: PodMetrics = serde_json::from_str(
            r#"{"metadata":{"name":"web-1","namespace":"shop"},
                "timestamp":"2026-12-01T00:00:15Z","window":"15s",
                "containers":[{"name":"app","usage":{"cpu":"250000001n","memory":"1024Ki"}},
                              {"name":"idle","usage":{"cpu":"0","memory":"0"}}]}"#,
        )
        .unwrap();
        let (at, rows) = pod.rows().unwrap();
        assert_eq!(at, 1_796_083_215_000);
        assert_eq!(
            (rows[0].cpu_millis, rows[0].memory_bytes, rows[0].window_ms),
            (251, 1 << 20, 15_000)
        );
        assert_eq!((rows[1].cpu_millis, rows[1].memory_bytes), (0, 0));
        let bad: PodMetrics = serde_json::from_str(
            r#"{"metadata":{"name":"x","namespace":"y"},"timestamp":"yesterday","window":"15s"}"#,
        )
        .unwrap();
        assert!(bad.rows().unwrap_err().contains("yesterday"));
    }
}
