//! Where log lines go: a buffer that a thread of its own writes out every few milliseconds.
//!
//! A line costs its logger one short lock and a copy, and never a wake-up: a writer woken per
//! line (a channel to a sleeping thread) costs the logger a futex call and the writer a context
//! switch for every exchange, which on a busy proxy is more than formatting the line. Only the
//! line that finds the buffer empty wakes the thread, which then waits a tick for more; an idle
//! process has a sleeping thread. Lines are never dropped while the thread runs: a logger that
//! finds the buffer full waits until the thread has written it out. Dropping the [`Flushing`]
//! guard writes what is left and stops the thread, waiting for it at most [`LAST_WRITE`] (an
//! output nobody reads must not keep the process from exiting).

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a line may wait in the buffer.
const FLUSH_EVERY: Duration = Duration::from_millis(10);
/// A buffer this long is written out at once, without waiting for the next tick.
const SOON: usize = 256 << 10;
/// Loggers wait while the buffer holds this much.
const FULL: usize = 4 << 20;
/// How long the end waits for the last lines to be written.
const LAST_WRITE: Duration = Duration::from_secs(1);

#[derive(Default)]
struct State {
    lines: Vec<u8>,
    /// The guard was dropped: write what is left and stop.
    closed: bool,
    /// The thread has stopped: lines have nowhere to go and are not kept.
    gone: bool,
}

struct Shared {
    state: Mutex<State>,
    /// The thread waits on it for a first line, a long buffer or the end.
    wake: Condvar,
    /// Loggers wait on it for room, and the end for the thread to stop.
    room: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A logger that panicked mid-copy leaves at worst a partial line: keep writing.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The [`tracing_subscriber::fmt::MakeWriter`] handed to the subscriber.
#[derive(Clone)]
pub struct LogWriter {
    shared: Arc<Shared>,
}

/// Writes out what is left and stops the thread when dropped.
pub struct Flushing {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl LogWriter {
    /// A writer into `out`, written by a thread named `name`.
    pub fn new<W: Write + Send + 'static>(name: &str, out: W) -> io::Result<(Self, Flushing)> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            room: Condvar::new(),
        });
        let thread = std::thread::Builder::new().name(name.to_owned()).spawn({
            let shared = shared.clone();
            move || write_out(&shared, out)
        })?;
        Ok((
            Self {
                shared: shared.clone(),
            },
            Flushing {
                shared,
                thread: Some(thread),
            },
        ))
    }
}

/// The thread: from the first line of a batch, waits a tick (less when the buffer grows long),
/// then takes the buffer whole and writes it in one call.
fn write_out<W: Write>(shared: &Shared, mut out: W) {
    /// However the thread stops, loggers stop waiting for it.
    struct Gone<'a>(&'a Shared);
    impl Drop for Gone<'_> {
        fn drop(&mut self) {
            let mut state = self.0.lock();
            state.gone = true;
            state.lines = Vec::new();
            drop(state);
            self.0.room.notify_all();
        }
    }
    let _gone = Gone(shared);
    let mut spare = Vec::new();
    loop {
        let mut state = shared.lock();
        while state.lines.is_empty() && !state.closed {
            state = shared.wake.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        if state.lines.len() < SOON && !state.closed {
            state = shared
                .wake
                .wait_timeout(state, FLUSH_EVERY)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let closed = state.closed;
        std::mem::swap(&mut state.lines, &mut spare);
        drop(state);
        shared.room.notify_all();
        if !spare.is_empty() {
            // Nowhere to say that standard error failed: the lines are gone either way.
            let _ = out.write_all(&spare).and_then(|()| out.flush());
            spare.clear();
            // A burst's buffer is not kept for ever.
            spare.shrink_to(SOON);
        }
        if closed && shared.lock().lines.is_empty() {
            return;
        }
    }
}

impl Write for LogWriter {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let mut state = self.shared.lock();
        while state.lines.len() >= FULL && !state.closed && !state.gone {
            self.shared.wake.notify_one();
            state = self
                .shared
                .room
                .wait(state)
                .unwrap_or_else(|e| e.into_inner());
        }
        if state.gone {
            return Ok(line.len());
        }
        let was = state.lines.len();
        state.lines.extend_from_slice(line);
        if was == 0 || (was < SOON && state.lines.len() >= SOON) {
            self.shared.wake.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Drop for Flushing {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.closed = true;
        self.shared.wake.notify_one();
        let deadline = std::time::Instant::now() + LAST_WRITE;
        while !state.gone {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                // The output does not take what is written: leave the thread to it.
                return;
            }
            state = self
                .shared
                .room
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        drop(state);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An output the test can read back, that counts its writes.
    #[derive(Clone, Default)]
    struct Out(Arc<Mutex<(Vec<u8>, usize)>>);

    impl Write for Out {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            let mut o = self.0.lock().unwrap();
            o.0.extend_from_slice(b);
            o.1 += 1;
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_of_many_loggers_is_written_whole_and_in_few_writes() {
        let out = Out::default();
        let (writer, flushing) = LogWriter::new("test-log", out.clone()).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let mut w = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..5000 {
                        w.write_all(format!("logger {t} line {i}\n").as_bytes())
                            .unwrap();
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        drop(flushing);
        let (bytes, writes) = out.0.lock().unwrap().clone();
        let text = String::from_utf8(bytes).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 20_000);
        for t in 0..4 {
            let mine: Vec<&str> = lines
                .iter()
                .filter(|l| l.starts_with(&format!("logger {t} ")))
                .copied()
                .collect();
            let want: Vec<String> = (0..5000).map(|i| format!("logger {t} line {i}")).collect();
            assert_eq!(mine, want, "logger {t}'s lines, in its order");
        }
        assert!(writes < 1000, "{writes} writes for 20000 lines");
    }

    #[test]
    fn a_line_is_written_within_a_tick_and_a_full_buffer_holds_its_logger_back() {
        let out = Out::default();
        let (mut writer, flushing) = LogWriter::new("test-log", out.clone()).unwrap();
        writer.write_all(b"started\n").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while out.0.lock().unwrap().0.is_empty() {
            assert!(std::time::Instant::now() < deadline, "the line never left");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(out.0.lock().unwrap().0, b"started\n");
        // More than the buffer holds, in one go from one logger: nothing is dropped.
        let big = vec![b'x'; FULL + SOON];
        for _ in 0..3 {
            writer.write_all(&big).unwrap();
        }
        drop(flushing);
        assert_eq!(out.0.lock().unwrap().0.len(), 8 + 3 * big.len());
    }

    /// An output that takes nothing: its write never returns, or panics.
    struct Stuck(bool);

    impl Write for Stuck {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            if self.0 {
                panic!("the output is broken");
            }
            loop {
                std::thread::park();
            }
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn an_output_that_takes_nothing_does_not_keep_the_end_waiting() {
        let (mut writer, flushing) = LogWriter::new("test-log", Stuck(false)).unwrap();
        writer.write_all(b"a line nobody reads\n").unwrap();
        let (done, ended) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            drop(flushing);
            done.send(()).unwrap();
        });
        ended
            .recv_timeout(Duration::from_secs(30))
            .expect("the guard's drop returned");
    }

    #[test]
    fn loggers_do_not_wait_for_a_thread_that_stopped() {
        let (mut writer, _flushing) = LogWriter::new("test-log", Stuck(true)).unwrap();
        writer.write_all(b"the line that breaks it\n").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !writer.shared.lock().gone {
            assert!(
                std::time::Instant::now() < deadline,
                "the thread never stopped"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        // Far more than the buffer holds: nothing waits, and nothing is kept.
        let big = vec![b'x'; FULL];
        for _ in 0..3 {
            writer.write_all(&big).unwrap();
        }
        assert!(writer.shared.lock().lines.is_empty());
    }
}
