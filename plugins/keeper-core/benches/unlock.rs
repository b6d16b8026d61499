//! `cargo bench -p keeper-core`: what an unlock costs (PBKDF2 at the real 600 000
//! rounds) and how fast secrets come out of an unlocked vault, next to the seed
//! Keeper's design — deriving the key again for every request — measured in this run.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use keeper_core::{Kdf, Vault};

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault.json");
    let mut v = Vault::create(&path, b"master", Kdf::default()).unwrap();
    for i in 0..100 {
        v.put(&format!("secret-{i}"), format!("value-{i}").as_bytes())
            .unwrap();
    }
    let unlock = (0..3)
        .map(|_| {
            let t = Instant::now();
            drop(
                Vault::open(&path)
                    .unwrap()
                    .unlock(b"master", keeper_core::MIN_ITERATIONS)
                    .unwrap(),
            );
            t.elapsed()
        })
        .min()
        .unwrap_or(Duration::MAX);
    let v = Vault::open(&path)
        .unwrap()
        .unlock(b"master", keeper_core::MIN_ITERATIONS)
        .unwrap();
    let n = 200_000;
    let t = Instant::now();
    for i in 0..n {
        assert!(v.get(&format!("secret-{}", i % 100)).unwrap().is_some());
    }
    let per_get = t.elapsed() / n;
    println!(
        "unlock (PBKDF2-HMAC-SHA256, {} rounds)      {:>10.1} ms",
        keeper_core::MIN_ITERATIONS,
        unlock.as_secs_f64() * 1e3
    );
    println!(
        "get from an unlocked vault (in process)       {:>10.2} µs   {:>12.0} gets/s",
        per_get.as_secs_f64() * 1e6,
        1.0 / per_get.as_secs_f64()
    );
    println!(
        "baseline: derive the key per request (seed)   {:>10.1} ms   {:>12.1} gets/s   unlocked-vault speedup {:.0}x",
        unlock.as_secs_f64() * 1e3,
        1.0 / unlock.as_secs_f64(),
        unlock.as_secs_f64() / per_get.as_secs_f64()
    );
}
