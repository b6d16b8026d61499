//! A small builder for register-profile programs (FLUX.md §12). datum's text assembler
//! speaks the stack profile only (§13.2), so register programs are built here, one
//! instruction per call, with labels resolved at the end and a listing that reads like
//! assembly. Written by hand rather than borrowed: no crate knows FLUX.

use std::collections::BTreeMap;

/// A register, R0 … R15.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct R(pub u8);

#[derive(Debug)]
enum Fix {
    /// `JZ/JNZ/JLT/JGT rd, off8`: the offset byte at `at`, relative to `next`.
    Short {
        at: usize,
        next: usize,
        label: String,
    },
    /// `JMP imm16`: two bytes at `at`, relative to `next`.
    Long {
        at: usize,
        next: usize,
        label: String,
    },
}

#[derive(Debug, Default)]
pub struct RegAsm {
    code: Vec<u8>,
    labels: BTreeMap<String, usize>,
    fixes: Vec<Fix>,
    listing: Vec<(usize, String)>,
}

impl RegAsm {
    pub fn new() -> Self {
        RegAsm::default()
    }

    fn emit(&mut self, bytes: &[u8], text: String) {
        self.listing.push((self.code.len(), text));
        self.code.extend_from_slice(bytes);
    }

    /// A comment line in the listing.
    pub fn note(&mut self, text: &str) {
        self.listing.push((usize::MAX, format!("; {text}")));
    }

    pub fn label(&mut self, name: &str) {
        self.labels.insert(name.to_owned(), self.code.len());
        self.listing.push((usize::MAX - 1, format!("{name}:")));
    }

    /// rd := value (MOVI for 16-bit values, else PUSH imm32 + POP).
    pub fn set(&mut self, rd: R, value: i32) {
        if let Ok(v) = i16::try_from(value) {
            let b = v.to_le_bytes();
            self.emit(
                &[0x18, rd.0, b[0], b[1]],
                format!("movi r{}, {value}", rd.0),
            );
        } else {
            let b = value.to_le_bytes();
            self.emit(&[0x55, b[0], b[1], b[2], b[3]], format!("push {value}"));
            self.emit(&[0x0D, rd.0], format!("pop r{}", rd.0));
        }
    }

    fn three(&mut self, op: u8, name: &str, rd: R, a: R, b: R) {
        self.emit(
            &[op, rd.0, a.0, b.0],
            format!("{name} r{}, r{}, r{}", rd.0, a.0, b.0),
        );
    }

    pub fn add(&mut self, rd: R, a: R, b: R) {
        self.three(0x20, "add", rd, a, b);
    }
    pub fn sub(&mut self, rd: R, a: R, b: R) {
        self.three(0x21, "sub", rd, a, b);
    }
    pub fn mul(&mut self, rd: R, a: R, b: R) {
        self.three(0x22, "mul", rd, a, b);
    }
    pub fn div(&mut self, rd: R, a: R, b: R) {
        self.three(0x23, "div", rd, a, b);
    }
    pub fn rem(&mut self, rd: R, a: R, b: R) {
        self.three(0x24, "mod", rd, a, b);
    }
    pub fn min(&mut self, rd: R, a: R, b: R) {
        self.three(0x2A, "min", rd, a, b);
    }
    pub fn max(&mut self, rd: R, a: R, b: R) {
        self.three(0x2B, "max", rd, a, b);
    }
    pub fn cmp_lt(&mut self, rd: R, a: R, b: R) {
        self.three(0x2D, "cmp_lt", rd, a, b);
    }
    pub fn cmp_gt(&mut self, rd: R, a: R, b: R) {
        self.three(0x2E, "cmp_gt", rd, a, b);
    }
    pub fn cmp_eq(&mut self, rd: R, a: R, b: R) {
        self.three(0x2C, "cmp_eq", rd, a, b);
    }

    pub fn mov(&mut self, rd: R, a: R) {
        self.emit(&[0x3A, rd.0, a.0, 0], format!("mov r{}, r{}", rd.0, a.0));
    }
    pub fn inc(&mut self, rd: R) {
        self.emit(&[0x08, rd.0], format!("inc r{}", rd.0));
    }
    pub fn dec(&mut self, rd: R) {
        self.emit(&[0x09, rd.0], format!("dec r{}", rd.0));
    }
    pub fn push(&mut self, r: R) {
        self.emit(&[0x0C, r.0], format!("push r{}", r.0));
    }
    pub fn halt(&mut self) {
        self.emit(&[0x00], "halt".into());
    }

    fn branch(&mut self, op: u8, name: &str, r: R, label: &str) {
        let at = self.code.len() + 2;
        self.emit(&[op, r.0, 0, 0], format!("{name} r{}, {label}", r.0));
        self.fixes.push(Fix::Short {
            at,
            next: self.code.len(),
            label: label.to_owned(),
        });
    }
    /// Jump to `label` when `r` is zero.
    pub fn jz(&mut self, r: R, label: &str) {
        self.branch(0x3C, "jz", r, label);
    }
    /// Jump to `label` when `r` is not zero.
    pub fn jnz(&mut self, r: R, label: &str) {
        self.branch(0x3D, "jnz", r, label);
    }
    pub fn jmp(&mut self, label: &str) {
        let at = self.code.len() + 2;
        self.emit(&[0x43, 0, 0, 0], format!("jmp {label}"));
        self.fixes.push(Fix::Long {
            at,
            next: self.code.len(),
            label: label.to_owned(),
        });
    }

    /// The bytes (labels resolved) and the listing, or what could not be resolved.
    pub fn finish(mut self) -> Result<(Vec<u8>, String), String> {
        for fix in &self.fixes {
            match fix {
                Fix::Short { at, next, label } => {
                    let target = *self
                        .labels
                        .get(label)
                        .ok_or_else(|| format!("no label `{label}`"))?;
                    let disp = i8::try_from(target as i64 - *next as i64)
                        .map_err(|_| format!("branch to `{label}` is further than 127 bytes"))?;
                    self.code[*at] = disp as u8;
                }
                Fix::Long { at, next, label } => {
                    let target = *self
                        .labels
                        .get(label)
                        .ok_or_else(|| format!("no label `{label}`"))?;
                    let disp = i16::try_from(target as i64 - *next as i64)
                        .map_err(|_| format!("jump to `{label}` is too far"))?;
                    let b = disp.to_le_bytes();
                    self.code[*at] = b[0];
                    self.code[*at + 1] = b[1];
                }
            }
        }
        let mut text = String::new();
        for (at, line) in &self.listing {
            match *at {
                usize::MAX => text.push_str(&format!("{line}\n")),
                x if x == usize::MAX - 1 => text.push_str(&format!("{line}\n")),
                at => text.push_str(&format!("        {line:<24} ; @{at}\n")),
            }
        }
        Ok((self.code, text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flux_core::{Config, Status};

    #[test]
    fn a_countdown_runs_on_the_register_vm() {
        let mut a = RegAsm::new();
        let (n, acc) = (R(1), R(2));
        a.set(n, 5);
        a.set(acc, 100_000);
        a.label("loop");
        a.jz(n, "done");
        a.inc(acc);
        a.dec(n);
        a.jmp("loop");
        a.label("done");
        a.push(acc);
        a.halt();
        let (code, listing) = a.finish().unwrap();
        let r = flux_core::run(&code, &Config::reg());
        assert_eq!(r.status, Status::Halted, "{r:?}\n{listing}");
        assert_eq!(r.stack, vec![100_005]);
        assert!(listing.contains("jz r1, done"), "{listing}");
    }
}
