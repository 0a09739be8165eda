//! Check functions shared by the fuzz targets (`fuzz/`) and the stable test suite.
//!
//! Each function takes arbitrary bytes, runs one part of the crate on them and panics when an
//! invariant breaks. The fuzz targets call them under libFuzzer; `cargo test` replays them over
//! the committed seeds and over seeded random inputs. Not part of the stable API.
