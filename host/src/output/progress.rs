//! Progress lines on their way to stderr, gathered for a moment and written together.
//!
//! A run of 10,000 steps printed 10,000 lines, each its own write, and a reader at the other end
//! of a pipe (CI, a chat bot, `journald`, the bench) was woken for every one: ~35 µs a step on
//! a 2-core machine. Held lines reach stderr at most [`DELAY`] after they were printed (a thread
//! writes them), at once when [`MAX_HELD`] bytes are waiting, and before anything else the
//! printer writes, so nothing is shown out of order.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// The longest a progress line waits before it is written.
pub const DELAY: Duration = Duration::from_millis(20);
/// Bytes held at most; a line that brings the held text past this writes it all at once.
pub const MAX_HELD: usize = 64 * 1024;

/// What [`Held::push`] asks of its caller.
#[derive(Debug, PartialEq, Eq)]
enum Then {
    /// Write the held text now.
    Write,
    /// The text was empty until now: wake the writer thread, which waits [`DELAY`].
    Wake,
    /// The writer thread is already on its way.
    Wait,
}

/// Text not yet written.
#[derive(Default)]
struct Held {
    text: Vec<u8>,
}

impl Held {
    fn push(&mut self, line: &str) -> Then {
        let was_empty = self.text.is_empty();
        self.text.extend_from_slice(line.as_bytes());
        self.text.push(b'\n');
        if self.text.len() >= MAX_HELD {
            Then::Write
        } else if was_empty {
            Then::Wake
        } else {
            Then::Wait
        }
    }

    fn write_to(&mut self, out: &mut impl Write) {
        if !self.text.is_empty() {
            let _ = out.write_all(&self.text);
            self.text.clear();
        }
    }
}

static HELD: Mutex<Held> = Mutex::new(Held { text: Vec::new() });
static WAKE: Condvar = Condvar::new();
/// Set once the writer thread runs; until then (or if it cannot start) lines are written at once.
static WRITER: AtomicBool = AtomicBool::new(false);

fn held() -> MutexGuard<'static, Held> {
    HELD.lock().unwrap_or_else(|e| e.into_inner())
}

/// Prints `line` (without its newline) to stderr within [`DELAY`].
pub fn line(line: &str) {
    start_writer();
    let mut held = held();
    match held.push(line) {
        Then::Write => held.write_to(&mut std::io::stderr().lock()),
        Then::Wake if WRITER.load(Ordering::Acquire) => WAKE.notify_one(),
        Then::Wake => held.write_to(&mut std::io::stderr().lock()),
        Then::Wait => {}
    }
}

/// Writes every held line now: before other output, and before the process exits.
pub fn flush() {
    held().write_to(&mut std::io::stderr().lock());
}

/// [`flush`], unless the held text is being written right now (by this thread, maybe: a panic
/// hook must not wait for a lock its own thread holds).
pub fn flush_unless_busy() {
    if let Ok(mut held) = HELD.try_lock() {
        held.write_to(&mut std::io::stderr().lock());
    }
}

fn start_writer() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        let started = std::thread::Builder::new()
            .name("progress".into())
            .spawn(|| {
                loop {
                    let mut held = held();
                    while held.text.is_empty() {
                        held = WAKE.wait(held).unwrap_or_else(|e| e.into_inner());
                    }
                    drop(held);
                    std::thread::sleep(DELAY);
                    flush();
                }
            });
        WRITER.store(started.is_ok(), Ordering::Release);
    });
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Counts the writes it is given.
    #[derive(Default)]
    pub(crate) struct Writes {
        pub(crate) calls: usize,
        pub(crate) bytes: Vec<u8>,
    }

    impl Write for Writes {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.calls += 1;
            self.bytes.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_are_held_and_written_together_in_order() {
        let mut held = Held::default();
        assert_eq!(held.push("  ✓ main.a succeeded 0ms"), Then::Wake);
        assert_eq!(held.push("  ✓ main.b succeeded 0ms"), Then::Wait);
        let mut out = Writes::default();
        held.write_to(&mut out);
        assert_eq!(out.calls, 1);
        assert_eq!(
            String::from_utf8(out.bytes.clone()).unwrap(),
            "  ✓ main.a succeeded 0ms\n  ✓ main.b succeeded 0ms\n"
        );
        // Written text is gone; the next line wakes the writer again.
        held.write_to(&mut out);
        assert_eq!(out.calls, 1);
        assert_eq!(held.push("c"), Then::Wake);
    }

    #[test]
    fn a_full_buffer_is_written_at_once() {
        let mut held = Held::default();
        let line = "x".repeat(1000);
        let mut pushes = 0;
        loop {
            pushes += 1;
            match held.push(&line) {
                Then::Write => break,
                Then::Wake => assert_eq!(pushes, 1),
                Then::Wait => {}
            }
        }
        assert_eq!(pushes, MAX_HELD.div_ceil(1001));
    }
}
