//! Helpers for end-to-end tests: run the real `datum` binary in throw-away workshops
//! with a private DATUM_HOME, against the bundled and fixture registries.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod github;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub mod web;

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// The newest modification time of the sources under `dirs` (Rust, TOML, shaders,
/// templates), so a test never runs against a binary or registry older than them.
fn newest_source(dirs: &[&str]) -> std::time::SystemTime {
    let mut newest = std::time::SystemTime::UNIX_EPOCH;
    let mut stack: Vec<PathBuf> = dirs.iter().map(|d| repo().join(d)).collect();
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let text = name.to_string_lossy();
            // What artifacts are not built from: tests, benches, docs, test-only crates.
            let skipped = ["target", "dist", "tests", "benches", "examples", "flux-gen"];
            if skipped.contains(&text.as_ref())
                || text.starts_with('.')
                || text.ends_with(".md")
                || text.ends_with(".proptest-regressions")
            {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(modified) = entry.metadata().and_then(|m| m.modified()) {
                newest = newest.max(modified);
            }
        }
    }
    newest
}

/// `built` must be newer than every source it is built from; the message names the fix.
fn require_fresh(built: &Path, sources: &[&str], script: &str) {
    let modified = std::fs::metadata(built)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| {
            panic!(
                "{} is not built: run `{script}` first (scripts/test does)",
                built.display()
            )
        });
    let newest = newest_source(sources);
    assert!(
        modified >= newest,
        "{} is older than the sources in {sources:?}: run `{script}` (scripts/test does) so the tests do not test stale code",
        built.display()
    );
}

/// The `datum` binary. In datum's own end-to-end tests (`tests/all`, the `datum`
/// package's integration test) cargo builds it first and names it in
/// `CARGO_BIN_EXE_datum`. Plugin crates' tests that drive it get the one built next to
/// them, checked to be newer than the host's sources (their `cargo test` does not
/// rebuild it).
pub fn datum_bin() -> PathBuf {
    static CHECKED: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    CHECKED
        .get_or_init(|| {
            if let Some(bin) = std::env::var_os("CARGO_BIN_EXE_datum") {
                return PathBuf::from(bin);
            }
            let exe = std::env::current_exe().unwrap();
            let dir = exe.parent().unwrap().parent().unwrap();
            let bin = dir.join(format!("datum{}", std::env::consts::EXE_SUFFIX));
            require_fresh(
                &bin,
                &[
                    "host",
                    "plugin-api",
                    "templates",
                    "plugins/keeper-core",
                    "plugins/capability",
                ],
                "cargo build -p datum",
            );
            bin
        })
        .clone()
}

fn require(path: PathBuf, sources: &[&str], script: &str) -> PathBuf {
    require_fresh(&path.join("registry.json"), sources, script);
    path
}

/// The bundled registry (`scripts/build-registry`), newer than the plugins' sources.
pub fn bundled_registry() -> PathBuf {
    static CHECKED: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    CHECKED
        .get_or_init(|| {
            require(
                repo().join("registry/dist"),
                &["plugins", "plugin-api"],
                "scripts/build-registry",
            )
        })
        .clone()
}

/// Stress fixtures and flux-vm (`scripts/build-fixtures`).
pub fn fixture_registry() -> PathBuf {
    static CHECKED: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    CHECKED
        .get_or_init(|| {
            require(
                repo().join("target/fixture-registry"),
                &[
                    "plugins/flux-vm",
                    "plugins/flux-core",
                    "plugin-api",
                    "tests/fixtures",
                ],
                "scripts/build-fixtures",
            )
        })
        .clone()
}

/// A sandbox: its own DATUM_HOME (store and caches) and a folder for workshops.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Default for Sandbox {
    fn default() -> Self {
        Sandbox::new()
    }
}

impl Sandbox {
    pub fn new() -> Self {
        Sandbox {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The command `datum ARGS` in `cwd` with this sandbox's home and no inherited
    /// workshop, not yet run (for tests that start several at once).
    pub fn command(&self, cwd: &Path, args: &[&str]) -> Command {
        std::fs::create_dir_all(cwd).unwrap();
        let mut command = Command::new(datum_bin());
        command
            .args(args)
            .current_dir(cwd)
            .env("DATUM_HOME", self.home())
            .env_remove("DATUM_WORKSHOP")
            .env_remove("DATUM_REGISTRY")
            .env("GIT_CONFIG_NOSYSTEM", "1");
        command
    }

    /// `datum ARGS` run in `cwd` with this sandbox's home and no inherited workshop.
    pub fn datum_in(&self, cwd: &Path, args: &[&str]) -> Run {
        Run {
            args: args.join(" "),
            output: self.command(cwd, args).output().unwrap(),
        }
    }

    /// `datum ARGS` with extra environment variables.
    pub fn datum_env(&self, cwd: &Path, args: &[&str], env: &[(&str, &Path)]) -> Run {
        let mut command = Command::new(datum_bin());
        command
            .args(args)
            .current_dir(cwd)
            .env("DATUM_HOME", self.home())
            .env_remove("DATUM_WORKSHOP");
        for (k, v) in env {
            command.env(k, v);
        }
        Run {
            args: args.join(" "),
            output: command.output().unwrap(),
        }
    }

    /// `datum ARGS` with `input` on stdin.
    pub fn datum_stdin(&self, cwd: &Path, args: &[&str], input: &str) -> Run {
        use std::io::Write;
        let mut child = Command::new(datum_bin())
            .args(args)
            .current_dir(cwd)
            .env("DATUM_HOME", self.home())
            .env_remove("DATUM_WORKSHOP")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        Run {
            args: args.join(" "),
            output,
        }
    }

    pub fn datum(&self, args: &[&str]) -> Run {
        self.datum_in(self.dir.path(), args)
    }

    /// Boot a workshop for agent `name` with the default plugins (flux-vm, mib, life, growth) from
    /// the bundled registry.
    pub fn agent(&self, name: &str) -> PathBuf {
        let registry = bundled_registry();
        self.boot(name, &["--registry", registry.to_str().unwrap()])
    }

    /// `datum boot` of a workshop named after its agent, with `extra` arguments.
    fn boot(&self, name: &str, extra: &[&str]) -> PathBuf {
        let ws = self.path(name);
        let mut args = vec!["boot", "--workshop", ws.to_str().unwrap(), "--name", name];
        args.extend_from_slice(extra);
        self.datum(&args).success();
        ws
    }

    /// Install `plugin` from the bundled registry into `ws`; returns what install said.
    pub fn install(&self, ws: &Path, plugin: &str) -> Value {
        let registry = bundled_registry();
        let args = [
            "plugin",
            "install",
            plugin,
            "--registry",
            registry.to_str().unwrap(),
            "--format",
            "json",
        ];
        self.datum_in(ws, &args).success().json()
    }

    /// Boot a workshop with no plugins, for tests that install their own.
    pub fn empty_workshop(&self, name: &str) -> PathBuf {
        self.boot(name, &["--no-plugins"])
    }
}

/// The outcome of one `datum` run.
pub struct Run {
    pub args: String,
    pub output: Output,
}

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    #[track_caller]
    pub fn success(self) -> Self {
        assert!(
            self.output.status.success(),
            "`datum {}` failed:\nstdout: {}\nstderr: {}",
            self.args,
            self.stdout(),
            self.stderr()
        );
        self
    }

    #[track_caller]
    pub fn failure(self) -> Self {
        assert!(
            !self.output.status.success(),
            "`datum {}` should have failed but printed:\n{}",
            self.args,
            self.stdout()
        );
        self
    }

    /// stdout as one JSON document.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout()).unwrap_or_else(|e| {
            panic!(
                "`datum {}` did not print JSON ({e}):\n{}\n{}",
                self.args,
                self.stdout(),
                self.stderr()
            )
        })
    }
}

/// Number of commits on the workshop's HEAD.
/// A field of one plugin's entry in a workshop's datum.lock (e.g. its `sha256`).
pub fn lock_field(ws: &Path, plugin: &str, field: &str) -> String {
    let lock = std::fs::read_to_string(ws.join("datum.lock")).unwrap();
    let section = lock
        .split("[[plugin]]")
        .find(|p| p.contains(&format!("name = \"{plugin}\"")))
        .unwrap();
    section
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field} = \"")))
        .unwrap()
        .trim_end_matches('"')
        .to_owned()
}

pub fn commit_count(workshop: &Path) -> usize {
    let repo = git2::Repository::open(workshop).unwrap();
    let mut walk = repo.revwalk().unwrap();
    walk.push_head().unwrap();
    walk.count()
}

/// True when the workshop has no uncommitted changes.
pub fn git_clean(workshop: &Path) -> bool {
    let repo = git2::Repository::open(workshop).unwrap();
    let mut opts = git2::StatusOptions::new();
    opts.include_untracked(true);
    let clean = repo.statuses(Some(&mut opts)).unwrap().is_empty();
    clean
}

/// A path as the `&str` argument `datum` takes.
/// A workshop file as the HEAD commit has it (what was committed, not what is on disk).
pub fn committed(workshop: &Path, rel: &str) -> String {
    let repo = git2::Repository::open(workshop).unwrap();
    let tree = repo.head().unwrap().peel_to_tree().unwrap();
    let blob = repo.find_blob(tree.get_name(rel).unwrap().id()).unwrap();
    String::from_utf8(blob.content().to_vec()).unwrap()
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Copy a folder tree (registries are copied before tests tamper with them).
/// Sign a copy of the bundled registry again after a test changed it, with the key that
/// signed the original (scripts/build-registry's), so pinned keys still match: the
/// registry's owner published the change.
pub fn resign(registry: &Path) {
    let out = Command::new(datum_bin())
        .args(["registry", "sign"])
        .arg(registry)
        .arg("--key")
        .arg(repo().join("registry/keys/bundled.key"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "datum registry sign: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

/// A `datum` process running in the background (a server, a node, a watcher), its
/// output going to a file; killed when dropped.
pub struct Background {
    pub child: std::process::Child,
    pub log: PathBuf,
}

impl Background {
    /// The output so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait (bounded) until the output contains `text`; panics with the output if not.
    pub fn wait_for(&self, text: &str, timeout: std::time::Duration) -> String {
        let start = std::time::Instant::now();
        loop {
            let out = self.output();
            if out.contains(text) {
                return out;
            }
            assert!(
                start.elapsed() < timeout,
                "no `{text}` within {timeout:?}; output so far:\n{out}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Wait (bounded) for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: std::time::Duration) -> std::process::ExitStatus {
        let start = std::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < timeout,
                "still running after {timeout:?}; output:\n{}",
                self.output()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// SIGKILL: no chance to clean up, as in a crash.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Sandbox {
    /// Start `datum ARGS` in `cwd` in the background; stdout and stderr go to a log file.
    pub fn spawn_in(&self, cwd: &Path, args: &[&str]) -> Background {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = self.path(&format!("background-{n}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let child = Command::new(datum_bin())
            .args(args)
            .current_dir(cwd)
            .env("DATUM_HOME", self.home())
            .env_remove("DATUM_WORKSHOP")
            .env_remove("DATUM_BUS")
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap();
        Background { child, log }
    }
}

/// A free TCP port on 127.0.0.1 (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A private `nats-server` with JetStream on 127.0.0.1, stopped when dropped.
/// The tests need it: a machine without `nats-server` fails them with the fix
/// (`scripts/test` installs the Debian package) rather than skipping.
/// Wait (bounded) until something accepts connections on 127.0.0.1:`port`.
pub fn wait_for_port(port: u16, what: &str, seconds: u64) {
    let start = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(seconds),
            "{what} did not listen on 127.0.0.1:{port} within {seconds} s"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

pub struct NatsServer {
    child: std::process::Child,
    pub url: String,
    _store: tempfile::TempDir,
}

impl NatsServer {
    pub fn start() -> NatsServer {
        NatsServer::start_with(&[])
    }

    /// A server with extra options, e.g. `["--auth", TOKEN]`.
    pub fn start_with(extra: &[&str]) -> NatsServer {
        let binary = ["nats-server", "/usr/sbin/nats-server", "/usr/bin/nats-server"]
            .into_iter()
            .find(|b| Command::new(b).arg("--version").output().is_ok())
            .unwrap_or_else(|| {
                panic!("nats-server is not installed; run scripts/test (it installs the Debian package nats-server) or `apt-get install nats-server`")
            });
        let store = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Command::new(binary)
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(store.path())
            .args(extra)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        wait_for_port(port, "nats-server", 10);
        NatsServer {
            child,
            url: format!("nats://127.0.0.1:{port}"),
            _store: store,
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Keeper for tests: `datum keeper init` in a fresh folder for a workshop that has the
/// keeper plugin, and — after [`Keeper::serve`] — a server on a free loopback port.
pub struct Keeper {
    pub workshop: PathBuf,
    pub home: PathBuf,
    pub password_file: PathBuf,
    pub admin: String,
    url: Option<String>,
    server: Option<std::process::Child>,
}

impl Keeper {
    pub fn init(sb: &Sandbox, workshop: &Path) -> Keeper {
        let home = sb.path("keeper-home");
        let password_file = sb.path("pw");
        std::fs::write(&password_file, "correct horse battery").unwrap();
        let args = [
            "keeper",
            "init",
            "--home",
            home.to_str().unwrap(),
            "--password-file",
            password_file.to_str().unwrap(),
            "--format",
            "json",
        ];
        let admin = sb.datum_in(workshop, &args).success().json()["admin_token"]
            .as_str()
            .unwrap()
            .to_owned();
        Keeper {
            workshop: workshop.to_owned(),
            home,
            password_file,
            admin,
            url: None,
            server: None,
        }
    }

    pub fn set_policy(&self, json: &str) {
        std::fs::write(self.home.join("policy.json"), json).unwrap();
    }

    /// `datum keeper add-secret NAME` with the value read from `value_file`.
    pub fn add_secret(&self, sb: &Sandbox, name: &str, value_file: &Path) -> Run {
        sb.datum_in(
            &self.workshop,
            &[
                "keeper",
                "add-secret",
                name,
                "--home",
                self.home.to_str().unwrap(),
                "--password-file",
                self.password_file.to_str().unwrap(),
                "--value-file",
                value_file.to_str().unwrap(),
            ],
        )
    }

    /// Start `datum keeper serve` and wait (bounded) until it accepts connections.
    pub fn serve(&mut self, sb: &Sandbox) {
        self.serve_with(sb, &[]);
    }

    /// [`Keeper::serve`] with more options (`--compat`).
    pub fn serve_with(&mut self, sb: &Sandbox, extra: &[&str]) {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let server = Command::new(datum_bin())
            .args([
                "--workshop",
                self.workshop.to_str().unwrap(),
                "keeper",
                "serve",
                "--home",
                self.home.to_str().unwrap(),
                "--password-file",
                self.password_file.to_str().unwrap(),
                "--listen",
                &addr,
            ])
            .args(extra)
            .env("DATUM_HOME", sb.home())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        self.server = Some(server);
        wait_for_port(port, "the Keeper", 60);
        self.url = Some(format!("http://{addr}"));
    }

    /// The served Keeper's base URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> &str {
        self.url.as_deref().expect("call Keeper::serve first")
    }

    /// A full URL for `path` on the served Keeper.
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.url())
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        if let Some(s) = &mut self.server {
            let _ = s.kill();
            let _ = s.wait();
        }
    }
}
