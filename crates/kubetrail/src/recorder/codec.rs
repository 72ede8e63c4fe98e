//! The stored form of a pod's compact state (`pod_state.state`): a small binary encoding.
//!
//! Every open pod's state is written on the initial list and rewritten on each change of the
//! pod, so its size is paid by the writer on every pod event. As JSON it averaged 308 bytes on
//! a 100k-pod list (the largest table that list writes); this encoding takes 85 (BENCHMARKS.md,
//! "The open pods' state in a binary encoding"). It keeps exactly the fields the JSON form keeps (the ones `PodState` does
//! not mark `serde(skip)`).
//!
//! The layout, version 1:
//! - one byte, the version (`1`). A state stored as JSON by an older recorder starts with `{`
//!   and is still read (the migration to this encoding keeps those rows as they were);
//! - a varint of presence flags, then each present field in flag order;
//! - integers as zigzag LEB128 varints; times as the difference from the time written just
//!   before them in the same state (the first from 0), since a pod's times lie seconds apart;
//! - strings as a varint length and UTF-8 bytes; lists as a varint count.
//!
//! Decoding checks everything: a truncated, unknown or corrupt state is an error naming what
//! is wrong, never a panic, and never an allocation larger than the input allows.

use std::sync::Arc;

use super::maybe::MaybeI64;
use super::state::{
    ContainerResize, ContainerState, PodResize, PodState, ResourceQuad, Termination, Text, Waiting,
};

const VERSION: u8 = 1;

/// Why a stored state could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("the stored state is empty")]
    Empty,
    #[error("the stored state has encoding version {0}, which this kubetrail does not know")]
    UnknownVersion(u8),
    #[error("the stored state ends in the middle of {0}")]
    Truncated(&'static str),
    #[error("the stored state has unknown flags {flags:#x} in {what}")]
    UnknownFlags { what: &'static str, flags: u64 },
    #[error("the stored state has a string that is not UTF-8 in {0}")]
    NotUtf8(&'static str),
    #[error("the stored state has a number out of range in {0}")]
    OutOfRange(&'static str),
    #[error("the stored state has {0} bytes after its end")]
    Trailing(usize),
    #[error("the stored state is JSON that does not parse: {0}")]
    Json(String),
}

// Presence flags of a pod, in the order their fields follow.
const P_REASON: u64 = 1;
const P_MESSAGE: u64 = 1 << 1;
const P_DELETION_AT: u64 = 1 << 2;
const P_DELETION_GRACE: u64 = 1 << 3;
const P_SCHEDULED: u64 = 1 << 4;
const P_START: u64 = 1 << 5;
const P_READY: u64 = 1 << 6;
const P_READY_CHANGED: u64 = 1 << 7;
const P_VERSION: u64 = 1 << 8;
const P_RESIZE: u64 = 1 << 9;
const P_RESIZE_REPORTED: u64 = 1 << 10;
const P_ALL: u64 = (1 << 11) - 1;

// Of a container.
const C_INIT: u64 = 1;
const C_RUN_ID: u64 = 1 << 1;
const C_STARTED: u64 = 1 << 2;
const C_TERMINATED: u64 = 1 << 3;
const C_LAST_TERMINATED: u64 = 1 << 4;
const C_WAITING: u64 = 1 << 5;
const C_ALL: u64 = (1 << 6) - 1;

// Of a termination.
const T_FINISHED: u64 = 1;
const T_EXIT_CODE: u64 = 1 << 1;
const T_REASON: u64 = 1 << 2;
const T_STARTED: u64 = 1 << 3;
const T_RUN: u64 = 1 << 4;
const T_ID: u64 = 1 << 5;
const T_ALL: u64 = (1 << 6) - 1;

// Of a waiting state, a resize, and one container's resize.
const W_MESSAGE: u64 = 1;
const R_PENDING_REASON: u64 = 1;
const R_PENDING_MESSAGE: u64 = 1 << 1;
const R_IN_PROGRESS: u64 = 1 << 2;
const R_ALL: u64 = (1 << 3) - 1;
const CR_REPORTED: u64 = 1;
const CR_ACTUATED: u64 = 1 << 1;
const CR_ALL: u64 = (1 << 2) - 1;

/// The stored form of `state`.
pub fn encoded_pod(state: &PodState) -> Vec<u8> {
    let mut w = Encoder {
        out: Vec::with_capacity(160),
        last_ms: 0,
    };
    w.out.push(VERSION);
    let flags = flag(state.reason.is_some(), P_REASON)
        | flag(state.message.is_some(), P_MESSAGE)
        | flag(state.deletion_at_ms.is_some(), P_DELETION_AT)
        | flag(state.deletion_grace_secs.is_some(), P_DELETION_GRACE)
        | flag(state.scheduled_at_ms.is_some(), P_SCHEDULED)
        | flag(state.start_time_ms.is_some(), P_START)
        | flag(state.ready, P_READY)
        | flag(state.ready_changed_at_ms.is_some(), P_READY_CHANGED)
        | flag(state.resource_version.is_some(), P_VERSION)
        | flag(state.resize_kept.is_some(), P_RESIZE)
        | flag(state.resize_reported, P_RESIZE_REPORTED);
    w.uint(flags);
    w.opt_text(&state.reason);
    w.opt_text(&state.message);
    w.maybe_time(state.deletion_at_ms);
    w.maybe_int(state.deletion_grace_secs);
    w.maybe_time(state.scheduled_at_ms);
    w.maybe_time(state.start_time_ms);
    w.maybe_time(state.ready_changed_at_ms);
    w.maybe_int(state.resource_version);
    w.uint(state.containers.len() as u64);
    for c in &state.containers {
        w.container(c);
    }
    if let Some(resize) = &state.resize_kept {
        w.resize(resize);
    }
    w.out
}

/// Reads a stored state: this encoding, or the JSON an older recorder wrote. The fields a
/// stored state leaves out (identity, node, phase, resources) are left at their defaults.
pub fn decode_pod(bytes: &[u8]) -> Result<PodState, DecodeError> {
    match bytes.first() {
        None => Err(DecodeError::Empty),
        Some(b'{') => serde_json::from_slice(bytes).map_err(|e| DecodeError::Json(e.to_string())),
        Some(&VERSION) => {
            let mut r = Decoder {
                bytes: &bytes[1..],
                last_ms: 0,
            };
            let state = r.pod()?;
            match r.bytes.len() {
                0 => Ok(state),
                n => Err(DecodeError::Trailing(n)),
            }
        }
        Some(&other) => Err(DecodeError::UnknownVersion(other)),
    }
}

fn flag(present: bool, bit: u64) -> u64 {
    if present { bit } else { 0 }
}

struct Encoder {
    out: Vec<u8>,
    /// The time written last: the next one is written as the difference from it.
    last_ms: i64,
}

impl Encoder {
    fn uint(&mut self, mut n: u64) {
        while n >= 0x80 {
            self.out.push(n as u8 | 0x80);
            n >>= 7;
        }
        self.out.push(n as u8);
    }

    fn int(&mut self, n: i64) {
        self.uint(((n << 1) ^ (n >> 63)) as u64);
    }

    fn time(&mut self, ms: i64) {
        self.int(ms.wrapping_sub(self.last_ms));
        self.last_ms = ms;
    }

    fn maybe_time(&mut self, ms: MaybeI64) {
        if let Some(ms) = ms.get() {
            self.time(ms);
        }
    }

    fn maybe_int(&mut self, n: MaybeI64) {
        if let Some(n) = n.get() {
            self.int(n);
        }
    }

    fn text(&mut self, text: &str) {
        self.uint(text.len() as u64);
        self.out.extend_from_slice(text.as_bytes());
    }

    fn opt_text(&mut self, text: &Option<Text>) {
        if let Some(text) = text {
            self.text(text);
        }
    }

    fn container(&mut self, c: &ContainerState) {
        let flags = flag(c.init, C_INIT)
            | flag(c.run_id != 0, C_RUN_ID)
            | flag(c.started_at_ms.is_some(), C_STARTED)
            | flag(c.terminated.is_some(), C_TERMINATED)
            | flag(c.last_terminated.is_some(), C_LAST_TERMINATED)
            | flag(c.waiting.is_some(), C_WAITING);
        self.uint(flags);
        self.text(&c.name);
        if c.run_id != 0 {
            self.uint(u64::from(c.run_id));
        }
        self.int(c.restart_count);
        if let Some(ms) = c.started_at_ms {
            self.time(ms);
        }
        for t in [&c.terminated, &c.last_terminated].into_iter().flatten() {
            self.termination(t);
        }
        if let Some(w) = &c.waiting {
            self.uint(flag(w.message.is_some(), W_MESSAGE));
            self.text(&w.reason);
            self.opt_text(&w.message);
        }
    }

    fn termination(&mut self, t: &Termination) {
        let flags = flag(t.finished_at_ms.is_some(), T_FINISHED)
            | flag(t.exit_code.is_some(), T_EXIT_CODE)
            | flag(t.reason.is_some(), T_REASON)
            | flag(t.started_at_ms.is_some(), T_STARTED)
            | flag(t.run != 0, T_RUN)
            | flag(t.id != 0, T_ID);
        self.uint(flags);
        if let Some(ms) = t.finished_at_ms {
            self.time(ms);
        }
        if let Some(code) = t.exit_code {
            self.int(code);
        }
        self.opt_text(&t.reason);
        if let Some(ms) = t.started_at_ms {
            self.time(ms);
        }
        if t.run != 0 {
            self.int(t.run);
        }
        if t.id != 0 {
            self.uint(u64::from(t.id));
        }
    }

    fn resize(&mut self, r: &PodResize) {
        let flags = flag(r.pending_reason.is_some(), R_PENDING_REASON)
            | flag(r.pending_message.is_some(), R_PENDING_MESSAGE)
            | flag(r.in_progress, R_IN_PROGRESS);
        self.uint(flags);
        self.opt_text(&r.pending_reason);
        self.opt_text(&r.pending_message);
        self.uint(r.containers.len() as u64);
        for c in &r.containers {
            self.uint(
                flag(c.reported, CR_REPORTED) | flag(c.actuated_other.is_some(), CR_ACTUATED),
            );
            self.text(&c.name);
            self.quad(&c.desired);
            if let Some(q) = &c.actuated_other {
                self.quad(q);
            }
        }
    }

    fn quad(&mut self, q: &ResourceQuad) {
        for n in q {
            self.int(*n);
        }
    }
}

struct Decoder<'a> {
    bytes: &'a [u8],
    last_ms: i64,
}

impl Decoder<'_> {
    fn uint(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self
                .bytes
                .split_first()
                .ok_or(DecodeError::Truncated(what))?;
            self.bytes = rest;
            if shift == 63 && b > 1 {
                return Err(DecodeError::OutOfRange(what));
            }
            n |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(n);
            }
        }
        Err(DecodeError::OutOfRange(what))
    }

    fn int(&mut self, what: &'static str) -> Result<i64, DecodeError> {
        let z = self.uint(what)?;
        Ok((z >> 1) as i64 ^ -((z & 1) as i64))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        u32::try_from(self.uint(what)?).map_err(|_| DecodeError::OutOfRange(what))
    }

    fn time(&mut self, what: &'static str) -> Result<i64, DecodeError> {
        let ms = self.last_ms.wrapping_add(self.int(what)?);
        self.last_ms = ms;
        Ok(ms)
    }

    fn flags(&mut self, what: &'static str, known: u64) -> Result<u64, DecodeError> {
        let flags = self.uint(what)?;
        match flags & !known {
            0 => Ok(flags),
            unknown => Err(DecodeError::UnknownFlags {
                what,
                flags: unknown,
            }),
        }
    }

    /// A list's length, no more than the bytes left (each element takes at least one).
    fn count(&mut self, what: &'static str) -> Result<usize, DecodeError> {
        let n = self.uint(what)?;
        if n > self.bytes.len() as u64 {
            return Err(DecodeError::Truncated(what));
        }
        Ok(n as usize)
    }

    fn text(&mut self, what: &'static str) -> Result<Text, DecodeError> {
        let len = self.count(what)?;
        let (text, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        std::str::from_utf8(text)
            .map(Text::from)
            .map_err(|_| DecodeError::NotUtf8(what))
    }

    fn opt_text(&mut self, on: bool, what: &'static str) -> Result<Option<Text>, DecodeError> {
        on.then(|| self.text(what)).transpose()
    }

    fn opt(
        &mut self,
        on: bool,
        what: &'static str,
        read: fn(&mut Self, &'static str) -> Result<i64, DecodeError>,
    ) -> Result<MaybeI64, DecodeError> {
        Ok(MaybeI64::from(on.then(|| read(self, what)).transpose()?))
    }

    fn pod(&mut self) -> Result<PodState, DecodeError> {
        let f = self.flags("the pod's flags", P_ALL)?;
        let on = |bit| f & bit != 0;
        let mut state = PodState {
            reason: self.opt_text(on(P_REASON), "the pod's reason")?,
            message: self.opt_text(on(P_MESSAGE), "the pod's message")?,
            deletion_at_ms: self.opt(on(P_DELETION_AT), "the deletion time", Self::time)?,
            deletion_grace_secs: self.opt(on(P_DELETION_GRACE), "the grace period", Self::int)?,
            scheduled_at_ms: self.opt(on(P_SCHEDULED), "the scheduled time", Self::time)?,
            start_time_ms: self.opt(on(P_START), "the start time", Self::time)?,
            ready: on(P_READY),
            ready_changed_at_ms: self.opt(on(P_READY_CHANGED), "the ready time", Self::time)?,
            resource_version: self.opt(on(P_VERSION), "the resource version", Self::int)?,
            resize_reported: on(P_RESIZE_REPORTED),
            ..PodState::default()
        };
        let n = self.count("the containers")?;
        let mut containers = Vec::with_capacity(n);
        for _ in 0..n {
            containers.push(self.container()?);
        }
        state.containers = containers.into_boxed_slice();
        if on(P_RESIZE) {
            state.resize_kept = Some(Arc::new(self.resize()?));
        }
        Ok(state)
    }

    fn container(&mut self) -> Result<ContainerState, DecodeError> {
        let f = self.flags("a container's flags", C_ALL)?;
        let on = |bit| f & bit != 0;
        let name = self.text("a container's name")?;
        let run_id = if on(C_RUN_ID) {
            self.u32("a container's run id")?
        } else {
            0
        };
        let restart_count = self.int("a container's restart count")?;
        let started_at_ms = self
            .opt(on(C_STARTED), "a container's start", Self::time)?
            .get();
        let terminated = on(C_TERMINATED)
            .then(|| self.termination().map(Box::new))
            .transpose()?;
        let last_terminated = on(C_LAST_TERMINATED)
            .then(|| self.termination().map(Box::new))
            .transpose()?;
        let waiting = on(C_WAITING).then(|| self.waiting()).transpose()?;
        Ok(ContainerState {
            name,
            init: on(C_INIT),
            run_id,
            restart_count,
            started_at_ms,
            terminated,
            last_terminated,
            waiting,
        })
    }

    fn termination(&mut self) -> Result<Termination, DecodeError> {
        let f = self.flags("a termination's flags", T_ALL)?;
        let on = |bit| f & bit != 0;
        Ok(Termination {
            finished_at_ms: self.opt(on(T_FINISHED), "a finish", Self::time)?.get(),
            exit_code: self.opt(on(T_EXIT_CODE), "an exit code", Self::int)?.get(),
            reason: self.opt_text(on(T_REASON), "a termination's reason")?,
            started_at_ms: self.opt(on(T_STARTED), "a run's start", Self::time)?.get(),
            run: if on(T_RUN) { self.int("a run")? } else { 0 },
            id: if on(T_ID) { self.u32("a run id")? } else { 0 },
        })
    }

    fn waiting(&mut self) -> Result<Box<Waiting>, DecodeError> {
        let f = self.flags("a waiting state's flags", W_MESSAGE)?;
        Ok(Box::new(Waiting {
            reason: self.text("a waiting reason")?,
            message: self.opt_text(f & W_MESSAGE != 0, "a waiting message")?,
        }))
    }

    fn resize(&mut self) -> Result<PodResize, DecodeError> {
        let f = self.flags("the resize's flags", R_ALL)?;
        let on = |bit| f & bit != 0;
        let pending_reason = self.opt_text(on(R_PENDING_REASON), "the resize's reason")?;
        let pending_message = self.opt_text(on(R_PENDING_MESSAGE), "the resize's message")?;
        let n = self.count("the resize's containers")?;
        let mut containers = Vec::with_capacity(n);
        for _ in 0..n {
            let cf = self.flags("a container resize's flags", CR_ALL)?;
            let name = self.text("a container resize's name")?;
            let desired = self.quad("the desired resources")?;
            let actuated_other = (cf & CR_ACTUATED != 0)
                .then(|| self.quad("the applied resources").map(Box::new))
                .transpose()?;
            containers.push(ContainerResize {
                name,
                desired,
                reported: cf & CR_REPORTED != 0,
                actuated_other,
            });
        }
        Ok(PodResize {
            containers,
            pending_reason,
            pending_message,
            in_progress: on(R_IN_PROGRESS),
        })
    }

    fn quad(&mut self, what: &'static str) -> Result<ResourceQuad, DecodeError> {
        Ok([
            self.int(what)?,
            self.int(what)?,
            self.int(what)?,
            self.int(what)?,
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A state with every stored field set, times in the order a kubelet reports them.
    fn full() -> PodState {
        let termination = |run, reason: &str| Termination {
            finished_at_ms: Some(1_764_000_009_000),
            exit_code: Some(137),
            reason: Some(reason.into()),
            started_at_ms: Some(1_764_000_004_000),
            run,
            id: 3_011_499_425,
        };
        PodState {
            reason: Some("Evicted".into()),
            message: Some("The node was low on resource: memory. ünïcode".into()),
            deletion_at_ms: MaybeI64::some(1_764_000_020_000),
            deletion_grace_secs: MaybeI64::some(30),
            scheduled_at_ms: MaybeI64::some(1_764_000_000_000),
            start_time_ms: MaybeI64::some(1_764_000_001_000),
            ready: true,
            ready_changed_at_ms: MaybeI64::some(1_763_999_000_000),
            resource_version: MaybeI64::some(9_258),
            containers: vec![
                ContainerState {
                    name: "init-config".into(),
                    init: true,
                    run_id: 3_752_127_937,
                    restart_count: 0,
                    started_at_ms: Some(1_764_000_001_500),
                    terminated: Some(Box::new(termination(0, "Completed"))),
                    ..ContainerState::default()
                },
                ContainerState {
                    name: "app".into(),
                    run_id: u32::MAX,
                    restart_count: 4,
                    last_terminated: Some(Box::new(termination(3, "OOMKilled"))),
                    waiting: Some(Box::new(Waiting {
                        reason: "CrashLoopBackOff".into(),
                        message: Some("back-off 1m20s restarting failed container".into()),
                    })),
                    ..ContainerState::default()
                },
                ContainerState {
                    name: "sidecar".into(),
                    restart_count: -1,
                    waiting: Some(Box::new(Waiting {
                        reason: "ContainerCreating".into(),
                        message: None,
                    })),
                    ..ContainerState::default()
                },
            ]
            .into_boxed_slice(),
            resize_kept: Some(Arc::new(PodResize {
                containers: vec![
                    ContainerResize {
                        name: "app".into(),
                        desired: [100, 33_554_432, 200, i64::MAX],
                        reported: true,
                        actuated_other: Some(Box::new([50, 1, -1, 0])),
                    },
                    ContainerResize {
                        name: "sidecar".into(),
                        desired: [0, 0, 0, 0],
                        reported: false,
                        actuated_other: None,
                    },
                ],
                pending_reason: Some("Infeasible".into()),
                pending_message: Some("Node didn't have enough capacity".into()),
                in_progress: true,
            })),
            resize_reported: true,
            ..PodState::default()
        }
    }

    /// The truth is the JSON form (serde's, which this codec does not use): a state read back
    /// from its binary form serializes to the same JSON as the state written.
    fn assert_round_trips(state: &PodState) {
        let bytes = encoded_pod(state);
        let back = decode_pod(&bytes).unwrap();
        assert_eq!(
            serde_json::to_string(&back).unwrap(),
            serde_json::to_string(state).unwrap()
        );
        assert_eq!(&back, state);
    }

    #[test]
    fn every_stored_field_round_trips() {
        assert_round_trips(&full());
        assert_round_trips(&PodState::default());
        // Each optional part on its own, so that no field's presence depends on another's.
        let f = full();
        let one_container = |c: &ContainerState| PodState {
            containers: vec![c.clone()].into_boxed_slice(),
            ..PodState::default()
        };
        for c in f.containers.iter() {
            assert_round_trips(&one_container(c));
        }
        assert_round_trips(&PodState {
            resize_kept: f.resize_kept.clone(),
            ..PodState::default()
        });
        assert_round_trips(&PodState {
            deletion_grace_secs: MaybeI64::some(0),
            ready_changed_at_ms: MaybeI64::some(i64::MAX),
            start_time_ms: MaybeI64::some(i64::MIN + 1),
            ..PodState::default()
        });
    }

    #[test]
    fn the_fields_the_pods_row_holds_are_not_stored() {
        let mut state = full();
        state.uid = "0b6c0f3e-1111-4222-8333-444455556666".into();
        state.name = "web-1".into();
        state.namespace = "shop".into();
        state.node = Some("node-7".into());
        state.created_at_ms = 1_764_000_000_000;
        let bytes = encoded_pod(&state);
        assert_eq!(bytes, encoded_pod(&full()));
        let back = decode_pod(&bytes).unwrap();
        assert!(back.uid.is_empty() && back.node.is_none() && back.created_at_ms == 0);
    }

    /// A state an older recorder stored as JSON still reads: the migration to this encoding
    /// keeps those rows as they were.
    #[test]
    fn a_json_state_from_an_older_recorder_is_read() {
        let json = r#"{"sa":1796574967000,"st":1796574968000,"rd":true,"ra":1796574972000,"c":[{"n":"cache","id":3011499425,"c":0,"s":1796574970000}],"rv":9258,"rr":true}"#;
        let state = decode_pod(json.as_bytes()).unwrap();
        assert_eq!(state, serde_json::from_str::<PodState>(json).unwrap());
        assert_eq!(state.resource_version.get(), Some(9258));
        assert!(matches!(
            decode_pod(b"{\"c\": 5}"),
            Err(DecodeError::Json(_))
        ));
    }

    /// The size the writer pays for on every pod event: this typical running pod's state (from
    /// the 100k-pod list) takes 153 bytes as JSON.
    #[test]
    fn a_running_pods_state_takes_a_third_of_its_json() {
        let json = r#"{"sa":1796574967000,"st":1796574968000,"rd":true,"ra":1796574972000,"c":[{"n":"cache","id":3011499425,"c":0,"s":1796574970000}],"rv":9258,"rr":true}"#;
        let state: PodState = serde_json::from_str(json).unwrap();
        let bytes = encoded_pod(&state);
        assert!(bytes.len() * 3 <= json.len(), "{} bytes", bytes.len());
        let full_json = serde_json::to_string(&full()).unwrap();
        assert!(encoded_pod(&full()).len() * 2 <= full_json.len());
    }

    #[test]
    fn bad_input_is_an_error_that_names_it() {
        assert_eq!(decode_pod(b""), Err(DecodeError::Empty));
        assert_eq!(decode_pod(&[7, 0, 0]), Err(DecodeError::UnknownVersion(7)));
        let bytes = encoded_pod(&full());
        // Cut anywhere, it is truncated (or, where the cut lands on a length, out of range).
        for end in 1..bytes.len() {
            let err = decode_pod(&bytes[..end]).unwrap_err();
            assert!(
                matches!(err, DecodeError::Truncated(_) | DecodeError::OutOfRange(_)),
                "cut at {end}: {err}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode_pod(&longer), Err(DecodeError::Trailing(1)));
        // A flag this version does not know (from a newer kubetrail).
        let err = decode_pod(&[VERSION, 0x80, 0x10, 0]).unwrap_err();
        assert_eq!(
            err,
            DecodeError::UnknownFlags {
                what: "the pod's flags",
                flags: 1 << 11
            }
        );
        assert!(
            err.to_string()
                .contains("unknown flags 0x800 in the pod's flags")
        );
        // A container name that is not UTF-8.
        assert_eq!(
            decode_pod(&[VERSION, 0, 1, 0, 2, 0xff, 0xfe, 0]),
            Err(DecodeError::NotUtf8("a container's name"))
        );
        // A varint longer than 64 bits.
        assert!(matches!(
            decode_pod(&[
                VERSION, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f
            ]),
            Err(DecodeError::OutOfRange(_))
        ));
        // A count far past the input is refused before anything is allocated for it.
        assert_eq!(
            decode_pod(&[VERSION, 0, 0xff, 0xff, 0xff, 0xff, 0x0f]),
            Err(DecodeError::Truncated("the containers"))
        );
    }

    /// Any bytes at all: an error or a state, never a panic.
    #[test]
    fn arbitrary_bytes_never_panic() {
        let good = encoded_pod(&full());
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let mut bytes = good.clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() % bytes.len() as u64) as usize;
                bytes[at] = next() as u8;
            }
            bytes[0] = VERSION;
            let _ = decode_pod(&bytes);
        }
    }
}
