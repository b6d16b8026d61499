//! Static checks without running (the validator): truncated instructions, invalid
//! opcodes, branch targets outside the program or inside an instruction, unreachable
//! code, and stack-depth underflow wherever the depth can be decided.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::decode::{decode_at, stack_branch, sweep, Insn};
use crate::machine::STACK_CAPACITY;
use crate::opcode::Op;
use crate::profile::Profile;
use crate::reg::{reg_defined, reg_operands};
use crate::trap::Trap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub offset: usize,
    pub severity: Severity,
    /// A stable identifier, e.g. `stack-underflow`.
    pub check: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub profile: Profile,
    pub bytes: usize,
    pub instructions: usize,
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn errors(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count()
    }

    pub fn warnings(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Warning)
            .count()
    }

    /// No errors (warnings allowed).
    pub fn ok(&self) -> bool {
        self.errors() == 0
    }
}

/// Possible data-stack depths at an instruction: `None` when it cannot be decided.
type Depth = Option<(usize, usize)>;

/// Widen a loop-grown maximum after this many revisits so the analysis terminates.
const WIDEN_AFTER: u32 = 8;

/// (pops, pushes) of a stack-profile instruction; `None` = leaves the depth unknown.
fn stack_effect(insn: &Insn<'_>) -> Option<(usize, usize)> {
    let b = insn.bytes;
    if b[0] == 0xFF {
        return Some(match (b[1], b[2]) {
            (0x00, 0x00) => (0, 0),
            (0x00, _) => (0, 1),
            (0x01, 0x00 | 0x03 | 0x04) => (0, 1),
            (0x01, _) => (0, 0),
            (0x02, 0x00) => (b[5] as usize, 1),
            (0x02, 0x05) => (0, 1),
            (0x02, _) => (0, 0),
            (0x03, 0x00) => (0, 0),
            (0x03, 0x01) => return None, // RESUME restores a saved stack
            (0x03, 0x02 | 0x05) => (0, 1),
            (0x03, 0x03 | 0x04) => (1, 1),
            _ => (0, 0),
        });
    }
    let op = Op::from_byte(b[0])?;
    Some(match op {
        Op::Halt | Op::Nop | Op::Break | Op::Jmp | Op::Call | Op::Ret | Op::Escape => (0, 0),
        Op::Add
        | Op::Sub
        | Op::Mul
        | Op::Div
        | Op::Mod
        | Op::Eq
        | Op::Ne
        | Op::Lt
        | Op::Le
        | Op::Gt
        | Op::Ge
        | Op::And
        | Op::Or
        | Op::Xor
        | Op::Shl
        | Op::Shr
        | Op::Fadd
        | Op::Fsub
        | Op::Fmul
        | Op::Fdiv => (2, 1),
        Op::Neg | Op::Inc | Op::Dec | Op::Not | Op::Peek => (1, 1),
        Op::Load | Op::Push | Op::ConfGet | Op::Listen => (0, 1),
        Op::Store
        | Op::Jz
        | Op::Jnz
        | Op::Pop
        | Op::ConfSet
        | Op::ConfMul
        | Op::Signal
        | Op::Broadcast => (1, 0),
        Op::Poke => (2, 0),
        Op::Dup => (1, 2),
        Op::Swap => (2, 2),
        Op::Over => (2, 3),
        Op::Rot => (3, 3),
    })
}

/// Where control can go after an instruction (stack profile).
fn successors(insn: &Insn<'_>) -> (Vec<i64>, bool) {
    let b = insn.bytes;
    let next = insn.next() as i64;
    if b[0] == 0xFF {
        return match (b[1], b[2]) {
            (0x03, 0x02) => (vec![next, u16::from_le_bytes([b[3], b[4]]) as i64], false),
            _ => (vec![next], false),
        };
    }
    match Op::from_byte(b[0]) {
        Some(Op::Halt | Op::Break | Op::Ret) => (vec![], false),
        Some(Op::Jmp) => (
            stack_branch(insn).map(|(t, _)| vec![t]).unwrap_or_default(),
            false,
        ),
        Some(Op::Jz | Op::Jnz) => (
            vec![next, stack_branch(insn).map(|(t, _)| t).unwrap_or(next)],
            false,
        ),
        // After a CALL the subroutine's effect on the stack is not known here.
        Some(Op::Call) => (
            vec![stack_branch(insn).map(|(t, _)| t).unwrap_or(next), next],
            true,
        ),
        _ => (vec![next], false),
    }
}

/// Validate a program. `initial_depth` is the data-stack depth it starts with.
pub fn validate(code: &[u8], profile: Profile, initial_depth: usize) -> Report {
    let insns = sweep(code, profile);
    let mut findings = Vec::new();
    let boundaries: BTreeSet<usize> = insns.iter().map(|i| i.offset).collect();
    let mut add = |offset, severity, check: &str, message: String| {
        findings.push(Finding {
            offset,
            severity,
            check: check.to_owned(),
            message,
        });
    };
    if code.is_empty() {
        add(
            0,
            Severity::Info,
            "empty",
            "the program is empty; running it ends at once".into(),
        );
    }

    // Structural checks on the linear sweep.
    for insn in &insns {
        match insn.decode {
            Err(Trap::InvalidOpcode) => add(insn.offset, Severity::Error, "invalid-opcode", format!("0x{:02x} is not an opcode of the {profile} profile", insn.bytes[0])),
            Err(Trap::TruncatedInstruction) => add(insn.offset, Severity::Error, "truncated", format!("the instruction at {} runs past the end of the program ({} of its bytes are missing)", insn.offset, missing_bytes(code, insn, profile))),
            Err(Trap::ExtUnknown) => add(insn.offset, Severity::Error, "unknown-escape", format!("escape FF {:02x} is not assigned (traps EXT_UNKNOWN)", insn.bytes.get(1).copied().unwrap_or(0))),
            Err(other) => add(insn.offset, Severity::Error, "decode", format!("cannot decode: {other}")),
            Ok(()) => {}
        }
        if insn.decode.is_ok() && profile == Profile::Reg {
            reg_checks(insn, code.len(), &boundaries, &mut add);
        }
        if insn.decode.is_ok() && profile == Profile::Stack {
            let targets: Vec<(i64, &str)> = match stack_branch(insn) {
                Some((t, op)) => vec![(t, op.mnemonic())],
                None if insn.bytes[0] == 0xFF && insn.bytes[1] == 0x03 && insn.bytes[2] == 0x02 => {
                    vec![(
                        u16::from_le_bytes([insn.bytes[3], insn.bytes[4]]) as i64,
                        "fork",
                    )]
                }
                None => vec![],
            };
            for (t, what) in targets {
                check_target(insn.offset, t, what, code.len(), &boundaries, &mut add);
            }
        }
    }

    if profile == Profile::Stack {
        flow_checks(code, initial_depth, &mut add);
    }
    findings.sort_by(|a, b| a.offset.cmp(&b.offset).then(b.severity.cmp(&a.severity)));
    Report {
        profile,
        bytes: code.len(),
        instructions: insns.iter().filter(|i| i.decode.is_ok()).count(),
        findings,
    }
}

fn missing_bytes(code: &[u8], insn: &Insn<'_>, profile: Profile) -> String {
    let want = match profile {
        Profile::Stack => Op::from_byte(insn.bytes[0]).map(|o| o.encoded_len()),
        Profile::Reg => Some(crate::reg::reg_len(insn.bytes[0])),
    };
    match want {
        Some(w) if insn.bytes[0] != 0xFF => (w - (code.len() - insn.offset)).to_string(),
        _ => "some".into(),
    }
}

fn check_target(
    at: usize,
    target: i64,
    what: &str,
    len: usize,
    boundaries: &BTreeSet<usize>,
    add: &mut impl FnMut(usize, Severity, &str, String),
) {
    if target < 0 || target > len as i64 {
        add(
            at,
            Severity::Error,
            "bad-jump",
            format!(
                "`{what}` targets {target}, outside the program (0 ..= {len}); it traps BAD_JUMP"
            ),
        );
    } else if target as usize != len && !boundaries.contains(&(target as usize)) {
        add(at, Severity::Warning, "mid-instruction", format!("`{what}` targets {target}, inside an instruction; execution would decode from there"));
    }
}

fn reg_checks(
    insn: &Insn<'_>,
    len: usize,
    boundaries: &BTreeSet<usize>,
    add: &mut impl FnMut(usize, Severity, &str, String),
) {
    let b = insn.bytes;
    if b[0] == 0xFF {
        return;
    }
    if !reg_defined(b[0]) {
        add(insn.offset, Severity::Error, "unimplemented", format!("opcode 0x{:02x} has a known length but no meaning in the reg profile (traps UNIMPLEMENTED)", b[0]));
        return;
    }
    // The same table the machine checks at decode (§12.1): bit k = byte k + 1.
    let mask = reg_operands(b[0]);
    for i in (1..=3).filter(|i| mask & (1 << (i - 1)) != 0) {
        if b[i] >= 16 {
            add(
                insn.offset,
                Severity::Error,
                "illegal-register",
                format!(
                    "register operand {} is r{}; only r0..r15 exist (traps ILLEGAL_REGISTER)",
                    i, b[i]
                ),
            );
        }
    }
    let next = insn.next() as i64;
    let target = match b[0] {
        0x3C..=0x3F => Some(next + b[2] as i8 as i64),
        0x43..=0x45 => Some(next + i16::from_le_bytes([b[2], b[3]]) as i64),
        0x46 => Some(next - i16::from_le_bytes([b[2], b[3]]) as i64),
        _ => None,
    };
    if let Some(t) = target {
        check_target(insn.offset, t, "branch", len, boundaries, add);
    }
}

/// Reachability and stack depth over the control-flow graph (stack profile).
fn flow_checks(
    code: &[u8],
    initial_depth: usize,
    add: &mut impl FnMut(usize, Severity, &str, String),
) {
    let mut depth_at: BTreeMap<usize, Depth> = BTreeMap::new();
    let mut visits: BTreeMap<usize, u32> = BTreeMap::new();
    let mut work = vec![(0usize, Some((initial_depth, initial_depth)))];
    while let Some((pc, incoming)) = work.pop() {
        if pc >= code.len() {
            continue;
        }
        let merged = match depth_at.get(&pc) {
            None => incoming,
            Some(old) => {
                let joined = join(*old, incoming);
                if joined == *old {
                    continue;
                }
                let n = visits.entry(pc).or_insert(0);
                *n += 1;
                // A depth still growing after several passes grows without bound (a loop that pushes).
                if *n > WIDEN_AFTER {
                    joined.map(|(lo, _)| (lo, usize::MAX))
                } else {
                    joined
                }
            }
        };
        depth_at.insert(pc, merged);
        let insn = decode_at(code, pc, Profile::Stack);
        if insn.decode.is_err() {
            continue;
        }
        let out = apply(merged, stack_effect(&insn));
        let (succ, after_call_unknown) = successors(&insn);
        for (i, t) in succ.iter().enumerate() {
            if *t < 0 || *t as usize > code.len() {
                continue;
            }
            let t = *t as usize;
            // The fall-through of a CALL (index 1) sees whatever the subroutine left.
            let d = if after_call_unknown && i == 1 {
                None
            } else {
                out
            };
            // A FORK entry starts a fresh context with an empty stack.
            let d = if insn.bytes[0] == 0xFF && i == 1 {
                Some((0, 0))
            } else {
                d
            };
            work.push((t, d));
        }
    }
    // Judge each reached instruction once the depths have settled.
    for (&pc, &depth) in &depth_at {
        let insn = decode_at(code, pc, Profile::Stack);
        if insn.decode.is_err() {
            continue;
        }
        // Where the depth is lost (after a CALL or an escape the analysis cannot
        // follow), say so rather than staying silent: nothing is promised there.
        if depth.is_none() && stack_effect(&insn).is_none_or(|(pops, _)| pops > 0) {
            add(pc, Severity::Info, "depth-unknown", "the stack depth here depends on a CALL, RESUME or escape before it; underflow is not checked".into());
        }
        let (Some((lo, hi)), Some((pops, pushes))) = (depth, stack_effect(&insn)) else {
            continue;
        };
        if hi < pops {
            add(pc, Severity::Error, "stack-underflow", format!("needs {pops} stack item(s) but at most {hi} can be there on any path; it always traps STACK_UNDERFLOW"));
        } else if lo < pops {
            add(pc, Severity::Warning, "stack-underflow", format!("needs {pops} stack item(s) but some path arrives with only {lo}; it may trap STACK_UNDERFLOW"));
        }
        let least_after = lo.saturating_sub(pops) + pushes;
        if least_after > STACK_CAPACITY {
            add(pc, Severity::Error, "stack-overflow", format!("the stack holds at least {least_after} words here, over the capacity {STACK_CAPACITY}"));
        }
    }
    // Unreachable ranges (linear-sweep instructions never reached).
    let mut start: Option<usize> = None;
    let mut pc = 0;
    while pc < code.len() {
        let insn = decode_at(code, pc, Profile::Stack);
        let reached = depth_at.contains_key(&pc);
        match (reached, start) {
            (false, None) => start = Some(pc),
            (true, Some(s)) => {
                add(
                    s,
                    Severity::Warning,
                    "unreachable",
                    format!("bytes {s}..{pc} can never run"),
                );
                start = None;
            }
            _ => {}
        }
        pc = insn.next();
    }
    if let Some(s) = start {
        add(
            s,
            Severity::Warning,
            "unreachable",
            format!("bytes {s}..{} can never run", code.len()),
        );
    }
}

/// The depth after an instruction with effect (pops, pushes).
fn apply(depth: Depth, effect: Option<(usize, usize)>) -> Depth {
    let ((lo, hi), (pops, pushes)) = (depth?, effect?);
    let lo2 = lo.saturating_sub(pops) + pushes;
    let hi2 = if hi == usize::MAX {
        hi
    } else {
        hi.saturating_sub(pops) + pushes
    };
    Some((lo2.min(hi2), hi2))
}

fn join(a: Depth, b: Depth) -> Depth {
    match (a, b) {
        (Some((l1, h1)), Some((l2, h2))) => Some((l1.min(l2), h1.max(h2))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asm::assemble;

    fn checks(src: &str) -> Vec<(String, Severity)> {
        let code = assemble(src).unwrap();
        validate(&code, Profile::Stack, 0)
            .findings
            .into_iter()
            .map(|f| (f.check, f.severity))
            .collect()
    }

    #[test]
    fn a_clean_program_has_no_findings() {
        assert!(checks("push 10\nloop: dec\n dup\n jnz loop\n pop\n halt").is_empty());
    }

    #[test]
    fn definite_and_possible_underflow_are_told_apart() {
        assert_eq!(
            checks("add\nhalt"),
            vec![("stack-underflow".into(), Severity::Error)]
        );
        // One path pushes, the other does not: ADD may underflow.
        let found = checks("push 1\n push 0\n jz skip\n push 2\nskip: add\n halt");
        assert!(
            found.contains(&("stack-underflow".into(), Severity::Warning)),
            "{found:?}"
        );
    }

    #[test]
    fn unreachable_code_and_bad_targets() {
        let found = checks("jmp end\n push 1\nend: halt\n");
        assert_eq!(found, vec![("unreachable".into(), Severity::Warning)]);
        let code = crate::hex::decode("501000").unwrap();
        let r = validate(&code, Profile::Stack, 0);
        assert_eq!(r.findings[0].check, "bad-jump");
        let code = crate::hex::decode("500100 5501000000 00").unwrap();
        assert!(validate(&code, Profile::Stack, 0)
            .findings
            .iter()
            .any(|f| f.check == "mid-instruction"));
    }

    #[test]
    fn truncation_and_invalid_opcodes() {
        let r = validate(&[0x42, 0x55, 0x01], Profile::Stack, 0);
        let names: Vec<&str> = r.findings.iter().map(|f| f.check.as_str()).collect();
        assert!(
            names.contains(&"invalid-opcode") && names.contains(&"truncated"),
            "{names:?}"
        );
        assert!(!r.ok());
    }

    #[test]
    fn reg_profile_checks_registers_and_meaning() {
        let r = validate(
            &[0x18, 0x20, 0x00, 0x00, 0x47, 0x00, 0x00, 0x00],
            Profile::Reg,
            0,
        );
        let names: Vec<&str> = r.findings.iter().map(|f| f.check.as_str()).collect();
        assert_eq!(names, vec!["illegal-register", "unimplemented"]);
    }
}
