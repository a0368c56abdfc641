//! One event stream for a run, two views of it: a compact human log and `--json`. Command code
//! prints only through [`Printer`]. Redaction happens once, where events are made; terminal
//! controls are escaped once, where the printer writes.

mod events;
pub mod junit;
mod printer;
pub mod progress;
pub mod terminal;

pub use events::{Event, EventSink};
pub use printer::{ColorChoice, Printer, fmt_ms};
pub use terminal::{escape_line, escape_text};
