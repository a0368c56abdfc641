//! One event stream for a run, two views of it: a compact human log and `--json`. Command code
//! prints only through [`Printer`]. Redaction happens once, where events are made.

mod events;
mod printer;

pub use events::{Event, EventSink};
pub use printer::{ColorChoice, Printer, fmt_ms};
