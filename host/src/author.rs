//! The authoring kit: `datum plugin new` writes a plugin crate that builds and passes
//! its tests at once; `datum plugin test` builds it, loads it through the real loaders
//! with real grants and runs every manifest example as a golden test (nushell's
//! `test_command_examples` idea), with probes a plugin must survive; `datum plugin pack`
//! makes the release builds and a folder registry ready to publish.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context as _};
use datum_plugin_api::{ErrorKind, Grant, Manifest};
use serde::Serialize;

use crate::install::{InstallOptions, Installer, PluginSpec};
use crate::loader::Kind;
use crate::loader::{self, LoadOptions};
use crate::paths::Home;
use crate::registry::{self, Artifact, Registry};
use crate::runtime::{Runtime, RuntimeError};
use crate::workshop::Workshop;

/// The scaffold's files: where each goes, and its template.
const TEMPLATES: [(&str, &str); 5] = [
    (
        "Cargo.toml",
        include_str!("../../templates/plugin/Cargo.toml.tmpl"),
    ),
    (
        "datum-plugin.toml",
        include_str!("../../templates/plugin/datum-plugin.toml.tmpl"),
    ),
    (
        "src/lib.rs",
        include_str!("../../templates/plugin/lib.rs.tmpl"),
    ),
    (
        "README.md",
        include_str!("../../templates/plugin/README.md.tmpl"),
    ),
    (
        ".gitignore",
        include_str!("../../templates/plugin/gitignore.tmpl"),
    ),
];

/// Which builds a plugin ships.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kinds {
    Wasm,
    Native,
    Both,
}

impl Kinds {
    pub fn list(self) -> Vec<Kind> {
        match self {
            Kinds::Wasm => vec![Kind::Wasm],
            Kinds::Native => vec![Kind::Native],
            Kinds::Both => vec![Kind::Wasm, Kind::Native],
        }
    }
}

/// What `plugin new` wrote.
#[derive(Debug, Serialize)]
pub struct Scaffolded {
    pub name: String,
    pub dir: PathBuf,
    pub files: Vec<String>,
    /// How the crate depends on datum-plugin-api.
    pub api: String,
    /// The checkout's Cargo.lock was copied: the dependency versions datum was tested with.
    pub lock_copied: bool,
}

/// Where `datum-plugin-api` comes from for a new crate: `--api-path`, then the copy an
/// installed datum carries (`PREFIX/share/datum/plugin-api`, scripts/install), then the
/// checkout this binary was built from, else crates.io.
fn api_source(api_path: Option<&Path>) -> anyhow::Result<Option<PathBuf>> {
    let is_api = |dir: &Path| {
        std::fs::read_to_string(dir.join("Cargo.toml"))
            .is_ok_and(|t| t.contains("name = \"datum-plugin-api\""))
    };
    if let Some(p) = api_path {
        if !is_api(p) {
            bail!(
                "--api-path {}: no datum-plugin-api crate there (its Cargo.toml names the package datum-plugin-api)",
                p.display()
            );
        }
        return Ok(Some(std::fs::canonicalize(p)?));
    }
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        candidates.push(dir.join("../share/datum/plugin-api"));
    }
    candidates.push(PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../plugin-api"
    )));
    Ok(candidates
        .into_iter()
        .find(|c| is_api(c))
        .and_then(|c| std::fs::canonicalize(c).ok()))
}

/// `datum plugin new NAME`: write the crate into `dir` (default `./NAME`), which must be
/// missing or empty.
pub fn scaffold(
    name: &str,
    kinds: Kinds,
    dir: Option<&Path>,
    api_path: Option<&Path>,
) -> anyhow::Result<Scaffolded> {
    if !datum_plugin_api::valid_name(name) {
        bail!(
            "`{}` is not a plugin name: 1-64 characters of a-z, 0-9 and '-', starting with a letter",
            name.escape_debug()
        );
    }
    let dir = dir.map_or_else(|| PathBuf::from(name), Path::to_path_buf);
    if dir.exists()
        && std::fs::read_dir(&dir)
            .with_context(|| format!("{} is not a folder", dir.display()))?
            .next()
            .is_some()
    {
        bail!(
            "{} is not empty; choose another folder with --dir",
            dir.display()
        );
    }
    let api = api_source(api_path)?;
    let api_dep = match &api {
        // A TOML string literal, quoted and escaped by the toml crate.
        Some(p) => format!(
            "{{ path = {} }}",
            toml::Value::String(p.display().to_string())
        ),
        None => format!("\"{}\"", api_requirement()),
    };
    let kind_names: Vec<&str> = kinds
        .list()
        .iter()
        .map(|k| match k {
            Kind::Wasm => "wasm",
            Kind::Native => "native",
        })
        .collect();
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{api_dep}}", &api_dep)
            .replace("{{api}}", &api_requirement())
            .replace(
                "{{kinds}}",
                &kind_names
                    .iter()
                    .map(|k| format!("\"{k}\""))
                    .collect::<Vec<_>>()
                    .join(", "),
            )
            .replace("{{kinds_text}}", &kind_names.join(" and "))
    };
    let mut files = Vec::new();
    for (rel, template) in TEMPLATES {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, fill(template))
            .with_context(|| format!("cannot write {}", path.display()))?;
        files.push(rel.to_owned());
    }
    // The versions datum itself was built and tested with, so the new crate builds
    // with them too (and without a network round trip when they are cached).
    let mut lock_copied = false;
    if let Some(lock) = api.as_ref().and_then(|a| {
        [a.join("Cargo.lock"), a.join("../Cargo.lock")]
            .into_iter()
            .find(|l| l.is_file())
    }) {
        std::fs::copy(&lock, dir.join("Cargo.lock"))
            .with_context(|| format!("cannot copy {}", lock.display()))?;
        files.push("Cargo.lock".into());
        lock_copied = true;
    }
    Ok(Scaffolded {
        name: name.to_owned(),
        dir,
        files,
        api: match &api {
            Some(p) => format!("path {}", p.display()),
            None => format!("crates.io {}", api_requirement()),
        },
        lock_copied,
    })
}

/// `^MAJOR.MINOR` of the API this datum speaks.
fn api_requirement() -> String {
    let v = semver::Version::parse(datum_plugin_api::API_VERSION)
        .unwrap_or(semver::Version::new(1, 0, 0));
    format!("{}.{}", v.major, v.minor)
}

/// The plugin crate in `dir`: its package name and the builds it declares.
pub struct Crate {
    pub dir: PathBuf,
    pub package: String,
    pub version: String,
    pub description: String,
    pub license: String,
    pub kinds: Vec<Kind>,
}

impl Crate {
    pub fn open(dir: &Path) -> anyhow::Result<Crate> {
        let path = dir.join("Cargo.toml");
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "{}: no plugin crate here (datum plugin new NAME makes one)",
                path.display()
            )
        })?;
        let table: toml::Table =
            toml::from_str(&text).with_context(|| format!("{} is malformed", path.display()))?;
        let package = table
            .get("package")
            .and_then(toml::Value::as_table)
            .with_context(|| format!("{} has no [package]", path.display()))?;
        let text_of = |key: &str| {
            package
                .get(key)
                .and_then(toml::Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let kinds = match package
            .get("metadata")
            .and_then(|m| m.get("datum"))
            .and_then(|d| d.get("kinds"))
            .and_then(toml::Value::as_array)
        {
            None => vec![Kind::Wasm, Kind::Native],
            Some(list) => list
                .iter()
                .map(|k| match k.as_str() {
                    Some("wasm") => Ok(Kind::Wasm),
                    Some("native") => Ok(Kind::Native),
                    _ => bail!(
                        "{}: [package.metadata.datum] kinds may hold \"wasm\" and \"native\", not {k}",
                        path.display()
                    ),
                })
                .collect::<anyhow::Result<_>>()?,
        };
        Ok(Crate {
            dir: dir.to_path_buf(),
            package: text_of("name"),
            version: text_of("version"),
            description: text_of("description"),
            license: text_of("license"),
            kinds,
        })
    }

    /// The plugin's manifest as datum will read it (Cargo's fields filled in).
    pub fn manifest(&self) -> anyhow::Result<Manifest> {
        let path = self.dir.join("datum-plugin.toml");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let name = self
            .package
            .strip_prefix("datum-plugin-")
            .unwrap_or(&self.package);
        Manifest::from_toml_with_defaults(
            &text,
            datum_plugin_api::Defaults {
                name,
                version: &self.version,
                description: &self.description,
                license: &self.license,
            },
        )
        .with_context(|| format!("{} is not a valid manifest", path.display()))
    }

    /// `cargo build` one kind; the built library.
    pub fn build(&self, kind: Kind, release: bool) -> anyhow::Result<PathBuf> {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = std::process::Command::new(cargo);
        cmd.arg("build")
            .arg("--lib")
            .arg("--manifest-path")
            .arg(self.dir.join("Cargo.toml"))
            // Diagnostics as text on stderr, artifacts as JSON on stdout.
            .arg("--message-format=json-render-diagnostics")
            .stderr(std::process::Stdio::inherit());
        if release {
            cmd.arg("--release");
        }
        if kind == Kind::Wasm {
            cmd.args(["--target", crate::loader::WASM_TARGET]);
        }
        let out = cmd
            .output()
            .context("cannot run cargo (is the Rust toolchain installed?)")?;
        if !out.status.success() {
            let hint = if kind == Kind::Wasm {
                format!(
                    " (for the WASM build: `rustup target add {}`)",
                    crate::loader::WASM_TARGET
                )
            } else {
                String::new()
            };
            bail!("cargo build of the {kind} plugin failed: fix the errors above{hint}");
        }
        let wanted = if kind == Kind::Wasm {
            "wasm"
        } else {
            std::env::consts::DLL_EXTENSION
        };
        let mut found = None;
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let cdylib = msg["target"]["crate_types"]
                .as_array()
                .is_some_and(|t| t.iter().any(|c| c == "cdylib"));
            if msg["reason"] != "compiler-artifact"
                || !cdylib
                || msg["target"]["name"] != self.package.replace('-', "_")
            {
                continue;
            }
            for f in msg["filenames"].as_array().into_iter().flatten() {
                if let Some(f) = f.as_str().filter(|f| f.ends_with(&format!(".{wanted}"))) {
                    found = Some(PathBuf::from(f));
                }
            }
        }
        found.with_context(|| {
            format!(
                "cargo built no {kind} library for {}: is `crate-type = [\"cdylib\", \"rlib\"]` in its [lib]?",
                self.package
            )
        })
    }
}

/// One artifact added to a folder registry.
#[derive(Debug, Serialize)]
pub struct Published {
    pub name: String,
    pub version: String,
    pub kind: Kind,
    pub target: String,
    pub artifact: Artifact,
}

/// Load `artifact` through the real loader, read its manifest, and add it to the folder
/// registry `into` (created when missing). `datum registry publish`, `plugin test` and
/// `plugin pack` all publish through here.
pub fn publish(
    into: &Path,
    artifact: &Path,
    target: Option<String>,
    readme: Option<&str>,
) -> anyhow::Result<Published> {
    let kind = if artifact.extension().is_some_and(|e| e == "wasm") {
        Kind::Wasm
    } else {
        Kind::Native
    };
    let options = LoadOptions {
        limits: datum_plugin_api::Limits::default(),
        wasm_cache: None,
        digest: None,
    };
    let mut instance = loader::load(kind, artifact, &options, loader::no_services())
        .with_context(|| format!("cannot load {}", artifact.display()))?;
    let described = loader::describe(instance.as_mut())
        .with_context(|| format!("{} did not describe itself", artifact.display()))?;
    let target = target.unwrap_or_else(|| kind.target().to_owned());
    let entry = registry::publish(into, &described.manifest, kind, &target, artifact, readme)?;
    Ok(Published {
        name: described.manifest.name.clone(),
        version: described.manifest.version.to_string(),
        kind,
        target,
        artifact: entry,
    })
}

/// One check of `plugin test`.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct TestReport {
    pub plugin: String,
    pub version: String,
    pub checks: Vec<Check>,
    pub passed: usize,
    pub failed: usize,
    /// Examples that only illustrate (`golden = false`, no output, shell syntax).
    pub skipped: usize,
    pub build_ms: u128,
    pub run_ms: u128,
}

impl TestReport {
    fn check(&mut self, name: impl Into<String>, result: Result<(), String>) -> bool {
        let passed = result.is_ok();
        self.checks.push(Check {
            name: name.into(),
            passed,
            detail: result.err(),
        });
        if passed {
            self.passed += 1;
        } else {
            self.failed += 1;
        }
        passed
    }
}

/// A throwaway workshop holding the plugin from `registry`, installed as a user would
/// (`deny`: grants to withhold). Native builds are trusted: the author is testing their
/// own code.
fn scratch(
    home: &Home,
    registry: &Registry,
    name: &str,
    kind: Kind,
    deny: Vec<Grant>,
) -> anyhow::Result<(tempfile::TempDir, std::sync::Arc<Runtime>)> {
    let dir = tempfile::Builder::new()
        .prefix("datum-plugin-test-")
        .tempdir()?;
    let (workshop, _) = Workshop::create(dir.path(), crate::prove::SCRATCH_AGENT, "generalist")?;
    Installer {
        home,
        workshop: &workshop,
        registry,
    }
    .install(
        &PluginSpec {
            name: name.to_owned(),
            req: semver::VersionReq::STAR,
        },
        &InstallOptions {
            kind,
            native_fallback: false,
            trust_native: true,
            // The author's own build, published a moment ago into a scratch registry.
            allow_unsigned: true,
            deny,
            ..InstallOptions::default()
        },
    )?;
    let runtime = Runtime::open(home.clone(), workshop)?;
    Ok((dir, runtime))
}

/// `datum plugin test`: every check, in order; stops early only when nothing further
/// can run (an invalid manifest, a failed build).
pub fn test(
    home: &Home,
    krate: &Crate,
    kinds: &[Kind],
    say: &dyn Fn(&str),
) -> anyhow::Result<TestReport> {
    let mut report = TestReport {
        plugin: krate.package.clone(),
        version: krate.version.clone(),
        checks: Vec::new(),
        passed: 0,
        failed: 0,
        skipped: 0,
        build_ms: 0,
        run_ms: 0,
    };
    let manifest = match krate.manifest() {
        Ok(m) => {
            report.check("manifest is valid", Ok(()));
            m
        }
        Err(e) => {
            report.check("manifest is valid", Err(format!("{e:#}")));
            return Ok(report);
        }
    };
    report.plugin = manifest.name.clone();
    let registry_dir = tempfile::Builder::new()
        .prefix("datum-plugin-test-registry-")
        .tempdir()?;
    let started = Instant::now();
    let mut built = Vec::new();
    for &kind in kinds {
        say(&format!("building the {kind} plugin…"));
        let result = krate
            .build(kind, false)
            .and_then(|artifact| publish(registry_dir.path(), &artifact, None, None));
        let ok = report.check(
            format!("{kind}: builds and loads"),
            result.as_ref().map(|_| ()).map_err(|e| format!("{e:#}")),
        );
        if ok {
            built.push(kind);
        }
    }
    report.build_ms = started.elapsed().as_millis();
    let started = Instant::now();
    let registry = Registry::open(&registry_dir.path().display().to_string(), home)?;
    for kind in built {
        let (_dir, runtime) = match scratch(home, &registry, &manifest.name, kind, Vec::new()) {
            Ok(s) => {
                report.check(format!("{kind}: installs with its grants"), Ok(()));
                s
            }
            Err(e) => {
                report.check(
                    format!("{kind}: installs with its grants"),
                    Err(format!("{e:#}")),
                );
                continue;
            }
        };
        let Some(installed) = runtime
            .installed()
            .into_iter()
            .find(|p| p.locked.name == manifest.name)
        else {
            report.check(
                format!("{kind}: installs with its grants"),
                Err("not in the lock after installing".into()),
            );
            continue;
        };
        // Every golden example, in a scratch workshop of its own (prove's rule).
        let lock = runtime.workshop.lock()?;
        let proof = crate::prove::prove(home, &lock, &installed)?;
        report.skipped += proof.skipped;
        for ex in &proof.examples {
            let detail = format!(
                "expected:\n{}\ngot:\n{}",
                indent(&ex.expected),
                indent(&ex.got)
            );
            report.check(
                format!("{kind}: example `{}`", ex.run),
                if ex.passed { Ok(()) } else { Err(detail) },
            );
        }
        // Probes: what every plugin must survive.
        let probe = format!("{} --datum-probe", manifest.name);
        let unknown = runtime.invoke(&manifest.name, runtime.request(&probe));
        report.check(
            format!("{kind}: an unknown command is refused cleanly"),
            match unknown {
                Err(RuntimeError::Plugin { error, .. })
                    if matches!(
                        error.kind,
                        ErrorKind::UnknownCommand | ErrorKind::InvalidArgs
                    ) =>
                {
                    Ok(())
                }
                Err(e) => Err(format!(
                    "refused, but not as an unknown command: {e} (return PluginError::unknown_command)"
                )),
                Ok(_) => Err(
                    "it answered a command its manifest does not have (return PluginError::unknown_command)"
                        .into(),
                ),
            },
        );
        let (name, within) = output_probe(&runtime, &installed);
        report.check(name, within);
        let grants: Vec<Grant> = manifest
            .permissions
            .iter()
            .filter_map(|p| p.as_grant().ok())
            .collect();
        if grants.is_empty() {
            continue;
        }
        let (_dir, bare) = scratch(home, &registry, &manifest.name, kind, grants)?;
        let mut problems = Vec::new();
        for command in &manifest.commands {
            for example in &command.examples {
                let Some(words) = crate::prove::golden_words(example) else {
                    continue;
                };
                let cwd = bare.workshop.root().to_path_buf();
                match crate::prove::run_example(&bare, &installed, &words, &cwd) {
                    Ok(_) => {}
                    Err(e) => match e.downcast_ref::<RuntimeError>() {
                        Some(RuntimeError::Plugin { error, .. })
                            if error.kind == ErrorKind::PermissionDenied =>
                        {
                            if !error
                                .hint
                                .as_deref()
                                .unwrap_or("")
                                .contains("datum plugin grant")
                            {
                                problems.push(format!(
                                    "`{}`: denied without a `datum plugin grant` hint",
                                    example.run
                                ));
                            }
                        }
                        _ => problems.push(format!("`{}`: {e:#}", example.run)),
                    },
                }
            }
        }
        report.check(
            format!("{kind}: without grants, calls are denied cleanly"),
            if problems.is_empty() {
                Ok(())
            } else {
                Err(problems.join("\n"))
            },
        );
    }
    report.run_ms = started.elapsed().as_millis();
    Ok(report)
}

/// Probe: every golden example's reply, in JSON (the larger form), stays within the
/// plugin's `limits.max_output_kb`. The check's name carries the largest reply seen,
/// so an author sees how close to the limit the plugin runs.
fn output_probe(
    runtime: &Runtime,
    installed: &crate::runtime::Installed,
) -> (String, Result<(), String>) {
    let limit = installed.manifest.limits.max_output_kb.saturating_mul(1024);
    let kind = installed.locked.kind;
    let cwd = runtime.workshop.root().to_path_buf();
    let mut largest = 0usize;
    let mut problems = Vec::new();
    for example in installed.manifest.commands.iter().flat_map(|c| &c.examples) {
        let Some(words) = crate::prove::golden_words(example) else {
            continue;
        };
        match crate::prove::invoke_example(
            runtime,
            installed,
            &words,
            &cwd,
            datum_plugin_api::Format::Json,
        ) {
            Ok(crate::cli::dynamic::Parsed::Args(out)) => {
                let size = serde_json::to_vec(&out).map_or(0, |v| v.len());
                largest = largest.max(size);
            }
            Ok(crate::cli::dynamic::Parsed::Help(_)) => {}
            Err(e) => {
                if let Some(RuntimeError::Call {
                    failure: crate::loader::CallFailure::OutputTooLarge { size, .. },
                    ..
                }) = e.downcast_ref::<RuntimeError>()
                {
                    largest = largest.max(*size);
                    problems.push(format!(
                        "`{}` replied {size} bytes in JSON, over limits.max_output_kb ({limit} bytes): print less, or raise the limit",
                        example.run
                    ));
                }
                // Other failures are the example checks' to report.
            }
        }
    }
    let name = format!(
        "{kind}: output within limits (largest reply {} of {} KiB)",
        largest.div_ceil(1024),
        installed.manifest.limits.max_output_kb
    );
    (
        name,
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("\n"))
        },
    )
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// What `plugin pack` made.
#[derive(Debug, Serialize)]
pub struct Packed {
    pub registry: PathBuf,
    pub published: Vec<Published>,
}

/// `datum plugin pack`: release builds of every declared kind, published with the README
/// into the folder registry `out`.
pub fn pack(krate: &Crate, kinds: &[Kind], out: &Path) -> anyhow::Result<Packed> {
    krate.manifest()?;
    let readme = std::fs::read_to_string(krate.dir.join("README.md")).ok();
    let mut published = Vec::new();
    for &kind in kinds {
        let artifact = krate.build(kind, true)?;
        published.push(publish(out, &artifact, None, readme.as_deref())?);
    }
    Ok(Packed {
        registry: out.to_path_buf(),
        published,
    })
}
