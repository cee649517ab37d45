//! Parse stage: bytes -> lines -> typed trace records -> typed events.

pub mod framing;
pub mod heartbeat;
pub mod line;
pub mod message;
mod scan;

pub use framing::{LineBuffer, DEFAULT_MAX_LINE};
pub use heartbeat::{heartbeat, Heartbeat};
pub use line::{parse_line, Header, Line, TraceLine};
pub use message::{parse_message, Body, Fields, Message, Packet, ProbeEvent, ProbeKind, SchedKind};
