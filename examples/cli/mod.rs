//! Pieces shared by the command-line examples (`record`, `monitor`,
//! `reclaim`, `lru_sort`): argument parsers, a runner that drives a
//! context on a worker thread or on virtual time, a bounded history of
//! aggregation snapshots, and the text the examples print.
//!
//! Everything here is a plain function or type so that the examples'
//! behaviour can be tested without running their binaries.

mod command;
mod demo_buffer;
mod history;
mod intervals;
mod keys;
mod parse;
mod render;
mod runner;
mod schemes;
mod terminal;
#[cfg(test)]
mod tests;

pub use command::*;
pub use demo_buffer::*;
pub use history::*;
pub use intervals::*;
pub use keys::*;
pub use parse::*;
pub use render::*;
pub use runner::*;
pub use schemes::*;
pub use terminal::*;
