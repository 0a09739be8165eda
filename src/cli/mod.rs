//! The pieces of the `mllp` command-line tool.
#![allow(dead_code)] // wired up by the subcommands as they land

pub mod args;
pub mod bench;
pub mod split;
