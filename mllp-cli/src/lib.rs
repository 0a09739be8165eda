//! The benchmark engine of the `mllp` tool, apart from its command-line layer: `mllp bench`,
//! `mllp demo` and `cargo bench --bench loopback` all measure with [`bench::run`].
//!
//! It measures a ping-pong over loopback with this crate or a raw `std::net` loop on either
//! side (the raw pair is the baseline every figure is a ratio to), in one process or with each
//! side in a child process of its own pinned to a CPU with `taskset`.

pub mod bench;
