//! Tools: FLUX programs in `tools/` that declare their own test cases in the header
//! comment, one per line:
//!
//! ```text
//! ; double — doubles the number on the stack
//! ; case: 3 -> 6
//! ; case: 2 5 -> 2 10
//! ```
//!
//! Inputs are the initial stack, bottom first; after `->`, the whole final stack.
//! Numbers may be separated by spaces or commas. A tool is good when it assembles,
//! validates (stack profile, starting depth of its inputs) and passes every case.
//! The files are the agent's own but may come from anywhere: every failure is a
//! message, never a panic, and runs are bounded by a step limit.

use flux_core::{Config, Profile, Status};
use serde::Serialize;

/// Steps one case may take before it counts as a failure.
pub const MAX_STEPS: u64 = 1_000_000;
/// Cases read from one file.
pub const MAX_CASES: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Case {
    pub line: usize,
    pub input: Vec<i32>,
    pub expect: Vec<i32>,
}

fn numbers(text: &str) -> Result<Vec<i32>, String> {
    text.split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
        .map(|w| {
            w.trim_matches(|c| c == '[' || c == ']')
                .parse::<i32>()
                .map_err(|_| format!("`{}` is not a 32-bit integer", w.escape_debug()))
        })
        .collect()
}

/// The `; case:` lines of a source, or what is wrong with the first bad one.
pub fn cases(source: &str) -> Result<Vec<Case>, String> {
    let mut out = Vec::new();
    for (i, line) in source.lines().enumerate() {
        let Some(rest) = line.trim().strip_prefix(';').map(str::trim) else {
            continue;
        };
        let Some(case) = rest.strip_prefix("case:") else {
            continue;
        };
        let (input, expect) = case
            .split_once("->")
            .ok_or_else(|| format!("line {}: a case needs `INPUTS -> STACK`", i + 1))?;
        let input = numbers(input).map_err(|e| format!("line {}: {e}", i + 1))?;
        let expect = numbers(expect).map_err(|e| format!("line {}: {e}", i + 1))?;
        out.push(Case {
            line: i + 1,
            input,
            expect,
        });
        if out.len() > MAX_CASES {
            return Err(format!("more than {MAX_CASES} cases"));
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub cases: usize,
    pub passed: usize,
    /// What failed, one line each (empty when the tool is good).
    pub problems: Vec<String>,
}

impl Report {
    pub fn good(&self, min_cases: usize) -> bool {
        self.problems.is_empty() && self.cases >= min_cases && self.passed == self.cases
    }
}

/// Assemble, validate and run every declared case.
pub fn check(source: &str) -> Report {
    let mut report = Report {
        cases: 0,
        passed: 0,
        problems: Vec::new(),
    };
    let cases = match cases(source) {
        Ok(c) => c,
        Err(e) => {
            report.problems.push(e);
            return report;
        }
    };
    report.cases = cases.len();
    let code = match flux_core::asm::assemble(source) {
        Ok(c) => c,
        Err(e) => {
            report.problems.push(format!("does not assemble: {e}"));
            return report;
        }
    };
    let depth = cases.first().map_or(0, |c| c.input.len());
    let validated = flux_core::validate::validate(&code, Profile::Stack, depth);
    if !validated.ok() {
        for f in validated.findings.iter().take(3) {
            report.problems.push(format!(
                "validate: {} at byte {}: {}",
                f.check, f.offset, f.message
            ));
        }
        return report;
    }
    for case in &cases {
        let config = Config {
            initial_stack: case.input.iter().map(|w| *w as u32).collect(),
            max_steps: MAX_STEPS,
            ..Config::default()
        };
        let result = flux_core::run(&code, &config);
        let finished = matches!(result.status, Status::Halted | Status::End);
        if finished && result.stack == case.expect {
            report.passed += 1;
        } else if !finished {
            report.problems.push(format!(
                "line {}: {:?} trapped with {}",
                case.line,
                case.input,
                result
                    .error
                    .map_or("no result".to_owned(), |t| t.name().to_owned())
            ));
        } else {
            report.problems.push(format!(
                "line {}: {:?} gave {:?}, not {:?}",
                case.line, case.input, result.stack, case.expect
            ));
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOUBLE: &str = "; double\n; case: 3 -> 6\n; case: [10] -> [20]\n        push 2\n        mul\n        halt\n";

    #[test]
    fn a_tool_passes_the_cases_it_declares() {
        let r = check(DOUBLE);
        assert_eq!((r.cases, r.passed), (2, 2), "{r:?}");
        assert!(r.good(1) && r.good(2) && !r.good(3));
    }

    #[test]
    fn a_wrong_case_is_reported_with_its_line() {
        let r = check(&DOUBLE.replace("-> 6", "-> 7"));
        assert_eq!((r.cases, r.passed), (2, 1));
        assert_eq!(r.problems, vec!["line 2: [3] gave [6], not [7]".to_owned()]);
        assert!(!r.good(1));
    }

    #[test]
    fn broken_sources_are_messages() {
        assert!(!check("; case: 1 -> 1\n  frobnicate\n").good(0));
        assert_eq!(
            cases("; case: 1 2\n").unwrap_err(),
            "line 1: a case needs `INPUTS -> STACK`"
        );
        assert!(cases("; case: x -> 1\n").unwrap_err().contains("`x`"));
        assert!(cases("; case: 99999999999 -> 1\n").is_err());
        // A loop that never ends is stopped by the step limit.
        let r = check("; case: -> 1\nl: jmp l\n");
        assert_eq!(r.passed, 0);
        assert!(r.problems[0].contains("trapped"), "{r:?}");
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_judged_without_panicking(s in "(; case: [0-9 ,>-]{0,12}\n|[a-z0-9 ]{0,10}\n){0,6}") {
            let _ = check(&s);
        }
    }
}
