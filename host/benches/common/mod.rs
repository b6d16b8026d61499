//! What the benches share: running the built `datum` and taking medians.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

pub fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Wall time of `datum ARGS` with DATUM_HOME = `home` (no workshop or registry from the
/// environment); a failed run fails the bench.
pub fn datum(home: &Path, args: &[&str]) -> Duration {
    let t = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_datum"))
        .args(args)
        .env("DATUM_HOME", home)
        .env_remove("DATUM_WORKSHOP")
        .env_remove("DATUM_REGISTRY")
        .output()
        .unwrap();
    let elapsed = t.elapsed();
    assert!(
        out.status.success(),
        "datum {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    elapsed
}
