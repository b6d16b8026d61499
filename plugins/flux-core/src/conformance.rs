//! Conformance vectors (FLUX.md §14): the JSON format shared by the upstream suites
//! and this project's own `vectors/`, and the pass/fail rules.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::machine::{Config, Continuation, RunResult, Status};
use crate::profile::Profile;

/// The project's own vectors (`vectors/` at the repository root), by file name.
pub static PROJECT_VECTORS: &[(&str, &str)] = &[
    ("stack.json", include_str!("../../../vectors/stack.json")),
    ("reg.json", include_str!("../../../vectors/reg.json")),
    (
        "examples.json",
        include_str!("../../../vectors/examples.json"),
    ),
];

/// A vector file: `{version, vectors: [...]}` plus any metadata.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VectorFile {
    /// `2.x` means the stack profile, `3.x` the register profile.
    pub version: String,
    #[serde(default)]
    pub description: String,
    pub vectors: Vec<Vector>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Vector {
    pub name: String,
    /// Hex text (spaces ignored). Anything else makes the vector malformed.
    pub bytecode_hex: Value,
    #[serde(default)]
    pub initial_stack: Vec<Value>,
    #[serde(default)]
    pub expected_stack: Vec<Value>,
    /// An integer (−1 = don't care), or (v2.1 quirk) description text.
    #[serde(default = "minus_one")]
    pub expected_flags: Value,
    #[serde(default)]
    pub allow_float_epsilon: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_error: Option<String>,
    /// Project extension (never in upstream files): the run must not trap, even when
    /// `expected_stack` is `[]` — which §14 rule 3 otherwise lets a trap satisfy.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub expect_no_trap: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(default)]
    pub description: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub installed_capabilities: Vec<CapabilitySpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contention_resources: Vec<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_from: Option<Continuation>,
}

fn minus_one() -> Value {
    Value::from(-1)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CapabilitySpec {
    pub id: u16,
    #[serde(default)]
    pub perms: u8,
}

impl VectorFile {
    pub fn parse(text: &str) -> Result<VectorFile, String> {
        serde_json::from_str(text).map_err(|e| format!("not a FLUX vector file: {e}"))
    }

    /// The profile the file's version implies (§14 rule 2).
    pub fn profile(&self) -> Result<Profile, String> {
        match self.version.split('.').next() {
            Some("2") => Ok(Profile::Stack),
            Some("3") => Ok(Profile::Reg),
            _ => Err(format!(
                "vector file version `{}` names no profile (2.x = stack, 3.x = reg)",
                self.version
            )),
        }
    }
}

/// The verdict on one vector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub name: String,
    pub pass: bool,
    /// Why it failed (empty when it passed).
    pub reason: String,
    /// The run's result, when the vector could be run.
    pub result: Option<RunResult>,
}

/// A word from a JSON number: integers modulo 2³², floats as their binary32 bits.
pub fn word_of(v: &Value) -> Option<u32> {
    if let Some(i) = v.as_i64() {
        return Some(i as u32);
    }
    if let Some(u) = v.as_u64() {
        return Some(u as u32);
    }
    v.as_f64().map(|f| (f as f32).to_bits())
}

impl Vector {
    /// The program bytes, or why the vector is malformed.
    pub fn code(&self) -> Result<Vec<u8>, String> {
        let text = self
            .bytecode_hex
            .as_str()
            .ok_or_else(|| format!("bytecode_hex is {}, not a hex string", self.bytecode_hex))?;
        crate::hex::decode(text).map_err(|e| format!("bytecode_hex: {e}"))
    }

    pub fn config(&self, profile: Profile, max_steps: u64) -> Result<Config, String> {
        let initial_stack = self
            .initial_stack
            .iter()
            .map(|v| word_of(v).ok_or_else(|| format!("initial_stack entry {v} is not a number")))
            .collect::<Result<_, _>>()?;
        Ok(Config {
            profile,
            initial_stack,
            max_steps,
            capabilities: self.installed_capabilities.iter().map(|c| c.id).collect(),
            contended: self.contention_resources.clone(),
            resume_from: self.resume_from.clone(),
            ..Config::default()
        })
    }

    /// Does the vector expect a trap (§14 rule 3)?
    pub fn expects_trap(&self) -> bool {
        self.expected_error.is_some()
            || self
                .expected_flags
                .as_str()
                .is_some_and(|s| s.to_lowercase().contains("error"))
    }

    /// Judge a result against this vector under the rules of §14.
    pub fn judge(&self, profile: Profile, result: &RunResult) -> Result<(), String> {
        let trapped = result.status == Status::Trap;
        let trap_name = result.error.map(|t| t.name()).unwrap_or("none");
        if self.expects_trap() {
            if !trapped {
                return Err(format!(
                    "expected a trap, but it ended {:?} with {:?}",
                    result.status, result.stack
                ));
            }
            if let Some(code) = &self.expected_error {
                if code != trap_name {
                    return Err(format!("expected trap {code}, got {trap_name}"));
                }
            }
        } else if trapped {
            let accepted =
                profile == Profile::Stack && self.expected_stack.is_empty() && !self.expect_no_trap;
            if !accepted {
                return Err(format!("unexpected trap {trap_name}"));
            }
        }
        self.compare_stack(&result.stack)?;
        if let Some(flags) = self.expected_flags.as_i64().filter(|f| *f != -1) {
            if flags != result.flags.0 as i64 {
                return Err(format!(
                    "expected flags {flags:#06b}, got {:#06b}",
                    result.flags.0
                ));
            }
        }
        Ok(())
    }

    fn compare_stack(&self, actual: &[i32]) -> Result<(), String> {
        let mismatch = || {
            // As JSON (`[5]`), the way the vector file writes it.
            let want = serde_json::to_string(&self.expected_stack).unwrap_or_default();
            format!("expected stack {want}, got {actual:?}")
        };
        if actual.len() != self.expected_stack.len() {
            return Err(mismatch());
        }
        for (want, &got) in self.expected_stack.iter().zip(actual) {
            let ok = match (
                want.as_i64().or_else(|| want.as_u64().map(|u| u as i64)),
                want.as_f64(),
            ) {
                (Some(i), _) => i as u32 == got as u32,
                (None, Some(f)) if self.allow_float_epsilon => {
                    let g = f32::from_bits(got as u32) as f64;
                    (g - f).abs() <= 1e-5
                        || (g.is_infinite() && f.is_infinite() && g.signum() == f.signum())
                }
                (None, Some(f)) => {
                    (f as f32).to_bits() == got as u32
                        || (f.fract() == 0.0 && f as i64 as u32 == got as u32)
                }
                _ => false,
            };
            if !ok {
                return Err(mismatch());
            }
        }
        Ok(())
    }

    /// The code and initial stack, when running this vector needs nothing else (no
    /// capabilities, contention or stored continuation): what a batch backend such as
    /// the GPU can run by itself.
    pub fn plain_run(&self, profile: Profile) -> Option<(Vec<u8>, Vec<u32>)> {
        if !self.installed_capabilities.is_empty()
            || !self.contention_resources.is_empty()
            || self.resume_from.is_some()
        {
            return None;
        }
        let code = self.code().ok()?;
        let config = self
            .config(profile, crate::machine::DEFAULT_MAX_STEPS)
            .ok()?;
        Some((code, config.initial_stack))
    }

    /// Run and judge in one go.
    pub fn check(&self, profile: Profile, max_steps: u64) -> Verdict {
        let verdict = |pass, reason: String, result| Verdict {
            name: self.name.clone(),
            pass,
            reason,
            result,
        };
        let code = match self.code() {
            Ok(c) => c,
            Err(e) => return verdict(false, format!("malformed: {e}"), None),
        };
        let config = match self.config(profile, max_steps) {
            Ok(c) => c,
            Err(e) => return verdict(false, format!("malformed: {e}"), None),
        };
        let result = crate::run(&code, &config);
        match self.judge(profile, &result) {
            Ok(()) => verdict(true, String::new(), Some(result)),
            Err(reason) => verdict(false, reason, Some(result)),
        }
    }
}

/// Run every vector of a file.
pub fn run_file(file: &VectorFile, max_steps: u64) -> Result<Vec<Verdict>, String> {
    let profile = file.profile()?;
    Ok(file
        .vectors
        .iter()
        .map(|v| v.check(profile, max_steps))
        .collect())
}
