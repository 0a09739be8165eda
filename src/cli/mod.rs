//! The pieces of the `mllp` command-line tool: one module per subcommand, the options they
//! share, the argument parser, and the small services they use (logging, signals).

pub mod args;
pub mod bench;
pub mod bench_cmd;
pub mod demo;
pub mod listen;
pub mod logger;
pub mod options;
pub mod send;
pub mod signal;
pub mod split;
