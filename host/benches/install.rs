//! What checking a signed registry costs an install. Each row installs flux-vm into a
//! fresh workshop (warm store and WASM cache, so the difference is the registry work),
//! next to a baseline measured in the same run: the same registry copied without its
//! signature and snapshot and installed with `--allow-unsigned`.
//!
//! `cargo bench -p datum --bench install` (after `scripts/build-registry --release`).
#![allow(clippy::unwrap_used)] // a benchmark: a failed unwrap is a failed run

use std::path::Path;
use std::time::Duration;

use datum_test_support::{copy_dir, web::WebServer};

mod common;
use common::{datum, median};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned();
    let bundled = repo.join("registry/dist");
    assert!(
        bundled.join("registry.json").is_file(),
        "run `scripts/build-registry --release` first (scripts/bench does)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    // A signed copy (pinned on first use like any registry not beside the binary), and
    // an unsigned one.
    let signed = tmp.path().join("signed");
    copy_dir(&bundled, &signed);
    let unsigned = tmp.path().join("unsigned");
    copy_dir(&bundled, &unsigned);
    for f in ["snapshot.json", "snapshot.json.minisig", "registry.pub"] {
        let _ = std::fs::remove_file(unsigned.join(f));
    }
    let web = WebServer::start(&signed);
    let runs = 15;
    let mut n = 0;
    let mut install = |registry: &str, extra: &[&str]| {
        median(
            (0..runs)
                .map(|_| {
                    n += 1;
                    let ws = tmp.path().join(format!("w{n}"));
                    let ws = ws.to_str().unwrap();
                    datum(&home, &["boot", "--workshop", ws, "--no-plugins"]);
                    let mut args = vec![
                        "plugin",
                        "install",
                        "flux-vm",
                        "--workshop",
                        ws,
                        "--registry",
                        registry,
                    ];
                    args.extend_from_slice(extra);
                    datum(&home, &args)
                })
                .collect(),
        )
    };
    // Warm the store, the WASM cache and the HTTP mirror first.
    install(signed.to_str().unwrap(), &[]);
    install(&web.url, &[]);
    let plain = install(unsigned.to_str().unwrap(), &["--allow-unsigned"]);
    let folder = install(signed.to_str().unwrap(), &[]);
    let http = install(&web.url, &[]);
    println!("plugin install flux-vm into a fresh workshop (median of {runs}; warm store)\n");
    println!(
        "{:<44} {:>8.1} ms",
        "unsigned folder (--allow-unsigned): baseline",
        ms(plain)
    );
    println!(
        "{:<44} {:>8.1} ms   +{:.1} ms, {:.2}x the baseline",
        "signed folder (signature, snapshot, pin)",
        ms(folder),
        ms(folder) - ms(plain),
        folder.as_secs_f64() / plain.as_secs_f64()
    );
    println!(
        "{:<44} {:>8.1} ms   +{:.1} ms, {:.2}x the baseline",
        "signed HTTP registry (mirror, ETags, checks)",
        ms(http),
        ms(http) - ms(plain),
        http.as_secs_f64() / plain.as_secs_f64()
    );
}
