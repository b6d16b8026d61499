//! Print the verdict on every vector of a file: `cargo run -p flux-core --example upstream FILE`.
fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: upstream VECTORS.json");
        std::process::exit(2);
    };
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        eprintln!("{path}: {e}");
        std::process::exit(2)
    });
    let file = flux_core::conformance::VectorFile::parse(&text).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    });
    let verdicts =
        flux_core::conformance::run_file(&file, flux_core::DEFAULT_MAX_STEPS).unwrap_or_default();
    let passed = verdicts.iter().filter(|v| v.pass).count();
    for v in verdicts.iter().filter(|v| !v.pass) {
        println!("FAIL {:<40} {}", v.name, v.reason);
    }
    println!("{passed}/{} passed", verdicts.len());
}
