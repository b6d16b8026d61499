//! datum's end-to-end tests: the real `datum` binary (cargo builds it for this test and
//! names it in `CARGO_BIN_EXE_datum`, which `datum_test_support::datum_bin` reads) in
//! throw-away workshops with a private DATUM_HOME, against the bundled and fixture
//! registries. One test binary, one module
//! per area (wasmtime's `tests/all` is the model): `cargo test -p datum --test all`
//! runs them all, `cargo test -p datum --test all hostile::` one area.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod authoring;
mod boot;
mod bus;
mod errors;
mod evolve;
mod fleet;
mod flux;
mod growth;
mod hostile;
mod keeper;
mod life;
mod mib;
mod misbehaving;
mod plugins;
mod promises;
mod services;
mod think;
mod vulkan;
