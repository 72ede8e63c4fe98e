//! Runs the scenario engine on its own thread, paced to real time: tick k is released when the
//! wall clock reaches start + k × tick (catching up in a burst if the engine fell behind). API
//! commands and pause/resume are handled between ticks, so the engine stays single-threaded
//! and deterministic. The truth file is flushed at least every 100 ms. An advance runs a stretch
//! of virtual time at once ("an hour later"), and pacing goes on from its end.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::clock::TICK_MS;
use super::scenario::{Command, Scenario, ScenarioStats};

/// Messages to the engine thread.
pub enum Control {
    Command(Command),
    Pause(oneshot::Sender<()>),
    Resume(oneshot::Sender<()>),
    /// Runs this many ticks now, without waiting for the wall clock, then replies.
    Advance(u64, oneshot::Sender<()>),
    Shutdown,
}

/// The running engine: a channel to it and what it last reported.
pub struct Engine {
    tx: Mutex<Sender<Control>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    paused: Arc<AtomicBool>,
    stats: Arc<Mutex<ScenarioStats>>,
}

const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// Ticks run in a burst before commands are looked at again.
const BURST: u64 = 64;

impl Engine {
    pub fn spawn(scenario: Scenario, start_paused: bool) -> std::io::Result<Engine> {
        let (tx, rx) = mpsc::channel();
        let paused = Arc::new(AtomicBool::new(start_paused));
        let stats = Arc::new(Mutex::new(scenario.stats()));
        let thread = std::thread::Builder::new()
            .name("kubetrail-sim-engine".into())
            .spawn({
                let paused = paused.clone();
                let stats = stats.clone();
                move || run(scenario, rx, paused, stats)
            })?;
        Ok(Engine {
            tx: Mutex::new(tx),
            thread: Mutex::new(Some(thread)),
            paused,
            stats,
        })
    }

    /// Sends a message; false if the engine has stopped.
    pub fn send(&self, control: Control) -> bool {
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        tx.send(control).is_ok()
    }

    pub async fn pause(&self) {
        let (reply, done) = oneshot::channel();
        if self.send(Control::Pause(reply)) {
            let _ = done.await;
        }
    }

    pub async fn resume(&self) {
        let (reply, done) = oneshot::channel();
        if self.send(Control::Resume(reply)) {
            let _ = done.await;
        }
    }

    /// Runs `ticks` ticks of the scenario at once (paused or not), and returns when they ran.
    pub async fn advance(&self, ticks: u64) {
        let (reply, done) = oneshot::channel();
        if self.send(Control::Advance(ticks, reply)) {
            let _ = done.await;
        }
    }

    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    pub fn stats(&self) -> ScenarioStats {
        self.stats.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Stops the engine and waits for it to flush the truth file.
    pub fn stop(&self) {
        self.send(Control::Shutdown);
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop();
    }
}

fn tick_ms(ticks: u64) -> Duration {
    Duration::from_millis(TICK_MS as u64 * ticks)
}

fn run(
    mut scenario: Scenario,
    rx: Receiver<Control>,
    paused: Arc<AtomicBool>,
    stats: Arc<Mutex<ScenarioStats>>,
) {
    // Wall-clock instant of tick 0; moved forward on resume so a pause is not caught up.
    let mut base = Instant::now();
    let mut last_flush = Instant::now();
    let publish = |scenario: &mut Scenario| {
        if let Err(err) = scenario.flush_truth() {
            tracing::warn!("cannot write the truth file: {err}");
        }
        *stats.lock().unwrap_or_else(|p| p.into_inner()) = scenario.stats();
    };
    // Returns false on shutdown.
    let handle = |control: Control, scenario: &mut Scenario, base: &mut Instant| -> bool {
        match control {
            Control::Command(command) => scenario.apply(command),
            Control::Pause(reply) => {
                paused.store(true, Ordering::SeqCst);
                publish(scenario);
                let _ = reply.send(());
            }
            Control::Resume(reply) => {
                if paused.swap(false, Ordering::SeqCst) {
                    *base = Instant::now() - tick_ms(scenario.tick());
                }
                let _ = reply.send(());
            }
            Control::Advance(ticks, reply) => {
                for _ in 0..ticks {
                    scenario.step();
                }
                // Pacing goes on from the advanced tick: the wall-clock instant of tick 0 moves
                // back by the stretch run, so the engine neither waits for it nor runs it again.
                *base = base.checked_sub(tick_ms(ticks)).unwrap_or(*base);
                publish(scenario);
                let _ = reply.send(());
            }
            Control::Shutdown => return false,
        }
        true
    };
    if paused.load(Ordering::SeqCst) {
        publish(&mut scenario);
    }
    loop {
        loop {
            match rx.try_recv() {
                Ok(control) => {
                    if !handle(control, &mut scenario, &mut base) {
                        publish(&mut scenario);
                        return;
                    }
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    publish(&mut scenario);
                    return;
                }
            }
        }
        let wait = if paused.load(Ordering::SeqCst) {
            // Commands still run while paused and may write truth lines.
            publish(&mut scenario);
            FLUSH_EVERY
        } else {
            let due = (base.elapsed().as_millis() / TICK_MS as u128) as u64;
            let mut burst = 0;
            while scenario.tick() < due && burst < BURST {
                scenario.step();
                burst += 1;
            }
            if last_flush.elapsed() >= FLUSH_EVERY {
                publish(&mut scenario);
                last_flush = Instant::now();
            }
            if scenario.tick() < due {
                continue;
            }
            let next = base + tick_ms(scenario.tick() + 1);
            next.saturating_duration_since(Instant::now())
        };
        match rx.recv_timeout(wait) {
            Ok(control) => {
                if !handle(control, &mut scenario, &mut base) {
                    publish(&mut scenario);
                    return;
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                publish(&mut scenario);
                return;
            }
        }
    }
}
