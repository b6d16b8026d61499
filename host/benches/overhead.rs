//! `scripts/bench`: datum's costs next to baselines measured in the same run.
//!
//! Needs the bundled registry (`scripts/build-registry --release`). Prints medians and
//! the ratio of each datum path to its bare baseline; asserts nothing about time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use abi_stable::std_types::{RStr, RString};
use datum::loader::{self, LoadOptions};
use datum::paths::Home;
use datum::runtime::Runtime;
use datum::workshop::Workshop;
use datum_plugin_api::abi::native::{HostCallbacks, PluginModuleRef};

mod common;
use common::{datum, median};

fn time_n(n: usize, mut f: impl FnMut()) -> Duration {
    // Warm up, then take the median per-iteration time over batches.
    for _ in 0..n.min(100) {
        f();
    }
    let batches = 15;
    let per = (n / batches).max(1);
    let samples = (0..batches)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..per {
                f();
            }
            t.elapsed() / per as u32
        })
        .collect();
    median(samples)
}

fn fmt(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    if ns < 1_000.0 {
        format!("{ns:.0} ns")
    } else if ns < 1_000_000.0 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{:.2} ms", ns / 1e6)
    }
}

fn row(what: &str, value: Duration, baseline: Option<(&str, Duration)>) {
    match baseline {
        Some((name, b)) => println!(
            "{what:<44} {:>10}   vs {name:<26} {:>10}   ratio {:.2}x",
            fmt(value),
            fmt(b),
            value.as_secs_f64() / b.as_secs_f64()
        ),
        None => println!("{what:<44} {:>10}", fmt(value)),
    }
}

fn main() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned();
    let registry = repo.join("registry/dist");
    assert!(
        registry.join("registry.json").is_file(),
        "run `scripts/build-registry --release` first (scripts/bench does)"
    );
    let reg = registry.to_str().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let home_dir = tmp.path().join("home");
    let home = Home::new(&home_dir);
    let ws = |name: &str| tmp.path().join(name);
    let wasm_artifact = first_artifact(&registry, "wasm");
    let native_artifact = first_artifact(&registry, "so");

    println!("datum overhead benchmark (medians; ratios against baselines from this run)\n");

    // --- CLI wall times -------------------------------------------------------------
    let first_boot = datum(
        &home_dir,
        &[
            "boot",
            "--workshop",
            ws("b0").to_str().unwrap(),
            "--registry",
            reg,
        ],
    );
    let boots: Vec<Duration> = (1..=10)
        .map(|i| {
            datum(
                &home_dir,
                &[
                    "boot",
                    "--workshop",
                    ws(&format!("b{i}")).to_str().unwrap(),
                    "--registry",
                    reg,
                ],
            )
        })
        .collect();
    let reboot = median(
        (0..5)
            .map(|_| {
                datum(
                    &home_dir,
                    &[
                        "boot",
                        "--workshop",
                        ws("b1").to_str().unwrap(),
                        "--registry",
                        reg,
                    ],
                )
            })
            .collect(),
    );
    let b1 = ws("b1");
    let status = median(
        (0..15)
            .map(|_| datum(&home_dir, &["status", "--workshop", b1.to_str().unwrap()]))
            .collect(),
    );
    let flux = median(
        (0..15)
            .map(|_| {
                datum(
                    &home_dir,
                    &[
                        "flux",
                        "run",
                        "--bytecode",
                        "550500000055070000001000",
                        "--workshop",
                        b1.to_str().unwrap(),
                    ],
                )
            })
            .collect(),
    );
    let version = median((0..15).map(|_| datum(&home_dir, &["--version"])).collect());
    row("datum boot, first (cold store + compile)", first_boot, None);
    row(
        "datum boot, new workshop (warm store)",
        median(boots),
        Some(("process start (--version)", version)),
    );
    row(
        "datum boot, existing workshop",
        reboot,
        Some(("process start (--version)", version)),
    );
    row(
        "datum status",
        status,
        Some(("process start (--version)", version)),
    );
    row(
        "datum flux run (wasm, end to end)",
        flux,
        Some(("process start (--version)", version)),
    );
    println!();

    // --- load times -----------------------------------------------------------------
    let limits = datum_plugin_api::Limits::default();
    let cold_cache = tmp.path().join("cold-cache");
    let cache_config = |dir: &Path| {
        std::fs::create_dir_all(dir).unwrap();
        let cfg = dir.join("wasmtime.toml");
        std::fs::write(
            &cfg,
            format!(
                "[cache]\ndirectory = {:?}\n",
                dir.join("c").display().to_string()
            ),
        )
        .unwrap();
        cfg
    };
    let opts = |artifact: &Path| LoadOptions {
        limits,
        wasm_cache: Some(cold_cache.join("datum")),
        // As the runtime passes it: the store's verified digest.
        digest: Some(datum::store::sha256_hex(&std::fs::read(artifact).unwrap())),
    };
    // The first load of each kind, then the median of ten more (cache warm).
    let load_times = |kind: datum::loader::Kind, artifact: &Path| {
        let options = opts(artifact);
        let load = || {
            let t = Instant::now();
            drop(loader::load(kind, artifact, &options, loader::no_services()).unwrap());
            t.elapsed()
        };
        let first = load();
        (first, median((0..10).map(|_| load()).collect()))
    };
    let (wasm_first, wasm_cached) = load_times(datum::loader::Kind::Wasm, &wasm_artifact);
    // Baseline: the same module through Extism with wasmtime's own cache (how datum
    // loaded WASM plugins before it ran them on wasmtime directly).
    let extism_config = cache_config(&cold_cache);
    let extism_load = |artifact: &Path| {
        let t = Instant::now();
        let noop = extism::Function::new(
            "datum_host",
            [extism::PTR],
            [extism::PTR],
            extism::UserData::new(()),
            |_, _, _, _| Ok(()),
        );
        let manifest = extism::Manifest::new([extism::Wasm::file(artifact)]);
        let plugin = extism::PluginBuilder::new(manifest)
            .with_functions([noop])
            .with_cache_config(&extism_config)
            .build()
            .unwrap();
        drop(plugin);
        t.elapsed()
    };
    let _ = extism_load(&wasm_artifact);
    let extism_cached = median((0..10).map(|_| extism_load(&wasm_artifact)).collect());
    let (native_first, native_cached) = load_times(datum::loader::Kind::Native, &native_artifact);
    row("WASM plugin load, first (compile)", wasm_first, None);
    row(
        "WASM plugin load, cached",
        wasm_cached,
        Some(("Extism + wasmtime's cache", extism_cached)),
    );
    for artifact in wasm_artifacts(&registry) {
        let name = artifact.parent().and_then(Path::parent).unwrap();
        let name = name.file_name().unwrap().to_string_lossy();
        let kb = std::fs::metadata(&artifact).unwrap().len() / 1024;
        let (_, ours) = load_times(datum::loader::Kind::Wasm, &artifact);
        let _ = extism_load(&artifact);
        let theirs = median((0..10).map(|_| extism_load(&artifact)).collect());
        row(
            &format!("  cached load, {name} ({kb} KB)"),
            ours,
            Some(("Extism + wasmtime's cache", theirs)),
        );
    }
    row(
        "native plugin load, first (dlopen + checks)",
        native_first,
        None,
    );
    row(
        "native plugin load, cached",
        native_cached,
        Some(("first load", native_first)),
    );
    println!();

    // --- per-call overhead ------------------------------------------------------------
    let request = |runtime: &Runtime| runtime.request("flux run").with_arg("bytecode", "00");
    let wasm_ws = Workshop::open(&b1).unwrap();
    let wasm_rt = Runtime::open(home.clone(), wasm_ws).unwrap();
    let wire = serde_json::to_string(&request(&wasm_rt)).unwrap();

    // Baseline: the same artifact called through bare Extism with the same bytes.
    let noop = extism::Function::new(
        "datum_host",
        [extism::PTR],
        [extism::PTR],
        extism::UserData::new(()),
        |p, i, o, _| {
            let _: String = p.memory_get_val(&i[0])?;
            let h = p.memory_new("{}")?;
            o[0] = p.memory_to_val(h);
            Ok(())
        },
    );
    let manifest = extism::Manifest::new([extism::Wasm::file(&wasm_artifact)]);
    let mut bare = extism::PluginBuilder::new(manifest)
        .with_functions([noop])
        .with_cache_disabled()
        .build()
        .unwrap();
    let bare_extism = time_n(20_000, || {
        let _: String = bare.call("invoke", wire.as_str()).unwrap();
    });
    let mut wasm_session = wasm_rt.session("flux-vm").unwrap();
    let datum_wasm = time_n(20_000, || {
        wasm_session.invoke(request(&wasm_rt)).unwrap();
    });
    let one_shot = time_n(200, || {
        wasm_rt.invoke("flux-vm", request(&wasm_rt)).unwrap();
    });
    row(
        "WASM invoke via datum (session)",
        datum_wasm,
        Some(("bare Extism call", bare_extism)),
    );
    row(
        "WASM invoke via datum (load per call)",
        one_shot,
        Some(("session (batch form)", datum_wasm)),
    );

    let native_ws_dir = ws("native");
    datum(
        &home_dir,
        &[
            "boot",
            "--workshop",
            native_ws_dir.to_str().unwrap(),
            "--registry",
            reg,
            "--kind",
            "native",
        ],
    );
    let native_rt = Runtime::open(home.clone(), Workshop::open(&native_ws_dir).unwrap()).unwrap();
    let header = abi_stable::library::lib_header_from_path(&native_artifact).unwrap();
    let module = header.init_root_module::<PluginModuleRef>().unwrap();
    extern "C" fn no_service(_: *const (), _: RStr<'_>) -> RString {
        RString::from("{}")
    }
    let callbacks = HostCallbacks {
        ctx: std::ptr::null(),
        call: no_service,
    };
    let bare_native = time_n(200_000, || {
        let _ = (module.invoke())(callbacks, RStr::from_str(&wire));
    });
    let mut native_session = native_rt.session("flux-vm").unwrap();
    let datum_native = time_n(50_000, || {
        native_session.invoke(request(&native_rt)).unwrap();
    });
    row(
        "native invoke via datum (session)",
        datum_native,
        Some(("bare abi_stable call", bare_native)),
    );
    println!();

    // --- FLUX speed in each build -----------------------------------------------------
    // The countdown loop (3 instructions a round) through each build's `flux run`.
    let rounds = 10_000_000u64;
    let countdown =
        flux_core::asm::assemble(&format!("push {rounds}\ntick: dec\n dup\n jnz tick\n halt"))
            .unwrap();
    let flux_request = |rt: &Runtime| {
        rt.request("flux run")
            .with_arg("bytecode", flux_core::hex::encode(&countdown))
            .with_arg("max-steps", (rounds * 3 + 10) as i64)
    };
    let instr = (rounds * 3 + 2) as f64;
    let timed = |f: &mut dyn FnMut()| {
        median(
            (0..3)
                .map(|_| {
                    let t = Instant::now();
                    f();
                    t.elapsed()
                })
                .collect(),
        )
    };
    let core_flux = timed(&mut || {
        let r = flux_core::run(
            &countdown,
            &flux_core::Config {
                max_steps: u64::MAX,
                ..flux_core::Config::default()
            },
        );
        assert_eq!(r.stack, vec![0]);
    });
    let native_flux = timed(&mut || {
        native_session.invoke(flux_request(&native_rt)).unwrap();
    });
    let wasm_flux = timed(&mut || {
        wasm_session.invoke(flux_request(&wasm_rt)).unwrap();
    });
    let mips = |d: Duration| instr / d.as_secs_f64() / 1e6;
    println!(
        "{:<44} {:>7.1} M instr/s",
        "FLUX countdown, flux-core directly",
        mips(core_flux)
    );
    println!(
        "{:<44} {:>7.1} M instr/s   native/core {:.2}x",
        "FLUX countdown, native flux-vm",
        mips(native_flux),
        core_flux.as_secs_f64() / native_flux.as_secs_f64()
    );
    println!(
        "{:<44} {:>7.1} M instr/s   wasm/native {:.2}x",
        "FLUX countdown, WASM flux-vm",
        mips(wasm_flux),
        native_flux.as_secs_f64() / wasm_flux.as_secs_f64()
    );
}

/// Every WASM artifact of the registry (each plugin's newest version).
fn wasm_artifacts(registry: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for plugin in std::fs::read_dir(registry.join("artifacts")).unwrap() {
        let mut versions: Vec<PathBuf> = std::fs::read_dir(plugin.unwrap().path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        versions.sort();
        if let Some(newest) = versions.last() {
            out.extend(
                std::fs::read_dir(newest)
                    .unwrap()
                    .map(|e| e.unwrap().path())
                    .filter(|p| p.extension().is_some_and(|e| e == "wasm")),
            );
        }
    }
    out.sort();
    out
}

fn first_artifact(registry: &Path, ext: &str) -> PathBuf {
    let dir = registry.join("artifacts/flux-vm");
    let version = std::fs::read_dir(&dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::read_dir(version)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == ext))
        .unwrap()
}
