//! The datum FLUX assembly syntax (FLUX.md §13.2), stack profile.
//!
//! ```
//! let code = flux_core::asm::assemble("push 5\npush 7\nadd\nhalt").unwrap();
//! assert_eq!(flux_core::hex::encode(&code), "550500000055070000001000");
//! ```
//!
//! Two passes: every instruction's size depends only on its mnemonic, so the first pass
//! places labels and the second encodes operands. Errors give line and column and say
//! what was expected.

use std::collections::HashMap;

use crate::opcode::Op;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct AsmError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// How an instruction's operands are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// Fixed prefix bytes, then operands of these widths (1, 2 or 4 bytes).
    Fixed(&'static [u8], &'static [Width]),
    /// `.byte` / `.word`: any number of operands.
    Data(Width),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Width {
    U8,
    U16,
    /// pc-relative: a label becomes `label − next_pc`, a number is a raw displacement.
    Rel16,
    /// An absolute code address (labels allowed), 16 bits.
    Abs16,
    I32,
}

impl Width {
    fn bytes(self) -> usize {
        match self {
            Width::U8 => 1,
            Width::U16 | Width::Rel16 | Width::Abs16 => 2,
            Width::I32 => 4,
        }
    }
}

fn escape_shape(m: &str) -> Option<Shape> {
    use Width::*;
    Some(match m {
        "ext.nop" => Shape::Fixed(&[0xFF, 0x00, 0x00], &[]),
        "probe" => Shape::Fixed(&[0xFF, 0x00], &[U8]),
        "fuel.check" => Shape::Fixed(&[0xFF, 0x01, 0x00], &[]),
        "deadline" => Shape::Fixed(&[0xFF, 0x01, 0x01], &[I32, Abs16]),
        "yield" => Shape::Fixed(&[0xFF, 0x01, 0x02], &[U8]),
        "persist" => Shape::Fixed(&[0xFF, 0x01, 0x03], &[U16, U16]),
        "time.now" => Shape::Fixed(&[0xFF, 0x01, 0x04], &[]),
        "sleep.until" => Shape::Fixed(&[0xFF, 0x01, 0x05], &[I32]),
        "cap.invoke" => Shape::Fixed(&[0xFF, 0x02, 0x00], &[U16, U8]),
        "mem.tag" => Shape::Fixed(&[0xFF, 0x02, 0x01], &[U16, U16, U8]),
        "sandbox.enter" => Shape::Fixed(&[0xFF, 0x02, 0x02], &[U16, U16, U8]),
        "sandbox.exit" => Shape::Fixed(&[0xFF, 0x02, 0x03], &[]),
        "fuel.set" => Shape::Fixed(&[0xFF, 0x02, 0x04], &[I32]),
        "identity" => Shape::Fixed(&[0xFF, 0x02, 0x05], &[]),
        "suspend" => Shape::Fixed(&[0xFF, 0x03, 0x00], &[U8]),
        "resume" => Shape::Fixed(&[0xFF, 0x03, 0x01], &[]),
        "fork" => Shape::Fixed(&[0xFF, 0x03, 0x02], &[Abs16]),
        "join" => Shape::Fixed(&[0xFF, 0x03, 0x03], &[]),
        "cancel" => Shape::Fixed(&[0xFF, 0x03, 0x04], &[]),
        "await" => Shape::Fixed(&[0xFF, 0x03, 0x05], &[U8, U16]),
        ".byte" => Shape::Data(U8),
        ".word" => Shape::Data(I32),
        _ => return None,
    })
}

fn shape_of(mnemonic: &str) -> Option<Shape> {
    if let Some(s) = escape_shape(mnemonic) {
        return Some(s);
    }
    let op = Op::ALL
        .into_iter()
        .find(|o| *o != Op::Escape && o.mnemonic() == mnemonic)?;
    let prefix: &'static [u8] = &OPCODE_BYTES[op as usize..op as usize + 1];
    Some(match op {
        Op::Load | Op::Store => Shape::Fixed(prefix, &[Width::Abs16]),
        Op::Jmp | Op::Jz | Op::Jnz | Op::Call => Shape::Fixed(prefix, &[Width::Rel16]),
        Op::Push => Shape::Fixed(prefix, &[Width::I32]),
        Op::Signal | Op::Broadcast | Op::Listen => Shape::Fixed(prefix, &[Width::U8]),
        _ => Shape::Fixed(prefix, &[]),
    })
}

/// Every byte value, so a one-byte prefix slice can be borrowed for `'static`.
static OPCODE_BYTES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = i as u8;
        i += 1;
    }
    t
};

/// One operand as written.
#[derive(Debug, Clone, PartialEq)]
enum Operand {
    Number(i64),
    /// `+6` / `-5`: an explicitly signed number (a raw displacement for jumps).
    Signed(i64),
    Label(String),
}

struct Line<'a> {
    number: usize,
    labels: Vec<(String, usize)>,
    mnemonic: Option<(String, usize)>,
    operands: Vec<(&'a str, usize)>,
}

fn err(line: usize, column: usize, message: impl Into<String>) -> AsmError {
    AsmError {
        line,
        column,
        message: message.into(),
    }
}

/// Cut a trailing `;` or `#` comment, ignoring those inside character literals.
fn strip_comment(text: &str) -> &str {
    let mut in_char = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_char => escaped = true,
            '\'' => in_char = !in_char,
            ';' | '#' if !in_char => return &text[..i],
            _ => {}
        }
    }
    text
}

fn is_label_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == '.'
}

fn is_label_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.'
}

fn split_line(number: usize, raw: &str) -> Result<Line<'_>, AsmError> {
    let text = strip_comment(raw);
    let mut line = Line {
        number,
        labels: Vec::new(),
        mnemonic: None,
        operands: Vec::new(),
    };
    let mut pos = 0;
    loop {
        let rest = &text[pos..];
        let trimmed = rest.trim_start();
        pos += rest.len() - trimmed.len();
        if trimmed.is_empty() {
            return Ok(line);
        }
        let word_len = trimmed
            .find(|c: char| !is_label_char(c))
            .unwrap_or(trimmed.len());
        let word = &trimmed[..word_len];
        if word.is_empty() || !word.starts_with(is_label_start) {
            return Err(err(
                number,
                pos + 1,
                format!(
                    "expected a label or a mnemonic, found `{}`",
                    trimmed.chars().next().unwrap_or(' ')
                ),
            ));
        }
        let after = &trimmed[word_len..];
        if after.trim_start().starts_with(':') {
            line.labels.push((word.to_owned(), pos + 1));
            pos += word_len + (after.len() - after.trim_start().len()) + 1;
            continue;
        }
        line.mnemonic = Some((word.to_ascii_lowercase(), pos + 1));
        pos += word_len;
        break;
    }
    // Operands: comma-separated, commas inside character literals kept.
    let rest = &text[pos..];
    if rest.trim().is_empty() {
        return Ok(line);
    }
    let mut start = 0;
    let mut in_char = false;
    let mut escaped = false;
    let mut pieces = Vec::new();
    for (i, c) in rest.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_char => escaped = true,
            '\'' => in_char = !in_char,
            ',' if !in_char => {
                pieces.push((start, &rest[start..i]));
                start = i + 1;
            }
            _ => {}
        }
    }
    pieces.push((start, &rest[start..]));
    for (offset, piece) in pieces {
        let lead = piece.len() - piece.trim_start().len();
        let column = pos + offset + lead + 1;
        let piece = piece.trim();
        if piece.is_empty() {
            return Err(err(
                number,
                column,
                "expected an operand (a number or a label) here",
            ));
        }
        line.operands.push((piece, column));
    }
    Ok(line)
}

/// Parse a number literal: decimal, `0x`, `0b`, `_` separators, `'c'`, or `1.5f`.
pub fn parse_number(text: &str) -> Result<i64, String> {
    let t = text.trim();
    if let Some(body) = t.strip_prefix('\'') {
        return parse_char(body).map(|c| c as i64);
    }
    let (negative, body) = match t.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    if body.is_empty() {
        return Err(format!("`{text}` is not a number"));
    }
    let lower = body.to_ascii_lowercase();
    let digits = |s: &str| s.replace('_', "");
    let magnitude = if let Some(h) = lower.strip_prefix("0x") {
        i64::from_str_radix(&digits(h), 16).map_err(|_| format!("`{text}` is not a hex number"))?
    } else if let Some(b) = lower.strip_prefix("0b") {
        i64::from_str_radix(&digits(b), 2)
            .map_err(|_| format!("`{text}` is not a binary number"))?
    } else if let Some(f) = lower.strip_suffix('f') {
        let value: f32 = digits(f)
            .parse()
            .map_err(|_| format!("`{text}` is not a float literal (e.g. 1.5f)"))?;
        let value = if negative { -value } else { value };
        return Ok(value.to_bits() as i64);
    } else {
        digits(&lower)
            .parse::<i64>()
            .map_err(|_| format!("`{text}` is not a number"))?
    };
    Ok(if negative { -magnitude } else { magnitude })
}

fn parse_char(body: &str) -> Result<u32, String> {
    let inner = body
        .strip_suffix('\'')
        .ok_or_else(|| format!("unterminated character literal `'{body}`"))?;
    let mut chars = inner.chars();
    let c = match chars.next() {
        Some('\\') => match chars.next() {
            Some('n') => '\n',
            Some('t') => '\t',
            Some('r') => '\r',
            Some('0') => '\0',
            Some('\\') => '\\',
            Some('\'') => '\'',
            Some('"') => '"',
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                let v = u8::from_str_radix(&hex, 16)
                    .map_err(|_| format!("`\\x{hex}` needs two hex digits"))?;
                return if chars.next().is_none() {
                    Ok(v as u32)
                } else {
                    Err("a character literal holds one character".into())
                };
            }
            other => return Err(format!("unknown escape `\\{}`", other.unwrap_or(' '))),
        },
        Some(c) => c,
        None => return Err("empty character literal".into()),
    };
    if chars.next().is_some() {
        return Err("a character literal holds one character".into());
    }
    Ok(c as u32)
}

fn parse_operand(text: &str) -> Result<Operand, String> {
    if text.starts_with(is_label_start) && text.chars().all(is_label_char) {
        return Ok(Operand::Label(text.to_owned()));
    }
    let n = parse_number(text)?;
    Ok(if text.starts_with(['+', '-']) {
        Operand::Signed(n)
    } else {
        Operand::Number(n)
    })
}

fn size_of(shape: Shape, operands: usize) -> usize {
    match shape {
        Shape::Fixed(prefix, widths) => {
            prefix.len() + widths.iter().map(|w| w.bytes()).sum::<usize>()
        }
        Shape::Data(w) => w.bytes() * operands,
    }
}

/// Assemble source text into stack-profile bytecode.
pub fn assemble(source: &str) -> Result<Vec<u8>, AsmError> {
    let lines: Vec<Line<'_>> = source
        .lines()
        .enumerate()
        .map(|(i, raw)| split_line(i + 1, raw))
        .collect::<Result<_, _>>()?;

    // Pass 1: place labels.
    let mut labels: HashMap<String, usize> = HashMap::new();
    let mut pc = 0usize;
    for line in &lines {
        for (name, column) in &line.labels {
            if labels.insert(name.clone(), pc).is_some() {
                return Err(err(
                    line.number,
                    *column,
                    format!("label `{name}` is defined twice"),
                ));
            }
        }
        if let Some((m, column)) = &line.mnemonic {
            let shape =
                shape_of(m).ok_or_else(|| err(line.number, *column, unknown_mnemonic(m)))?;
            pc += size_of(shape, line.operands.len());
        }
    }

    // Pass 2: encode.
    let mut out = Vec::with_capacity(pc);
    for line in &lines {
        let Some((m, column)) = &line.mnemonic else {
            continue;
        };
        let shape = shape_of(m).ok_or_else(|| err(line.number, *column, unknown_mnemonic(m)))?;
        let next_pc = out.len() + size_of(shape, line.operands.len());
        let (prefix, widths): (&[u8], Vec<Width>) = match shape {
            Shape::Fixed(prefix, widths) => {
                if line.operands.len() != widths.len() {
                    let col = line
                        .operands
                        .get(widths.len())
                        .map(|o| o.1)
                        .unwrap_or(column + m.len());
                    return Err(err(
                        line.number,
                        col,
                        format!(
                            "`{m}` takes {} operand{}, found {}",
                            widths.len(),
                            if widths.len() == 1 { "" } else { "s" },
                            line.operands.len()
                        ),
                    ));
                }
                (prefix, widths.to_vec())
            }
            Shape::Data(w) => {
                if line.operands.is_empty() {
                    return Err(err(
                        line.number,
                        column + m.len(),
                        format!("`{m}` needs at least one value"),
                    ));
                }
                (&[], vec![w; line.operands.len()])
            }
        };
        out.extend_from_slice(prefix);
        for ((text, col), width) in line.operands.iter().zip(widths) {
            let operand = parse_operand(text).map_err(|e| err(line.number, *col, e))?;
            let value = match (&operand, width) {
                (Operand::Label(name), _) => {
                    let target = *labels
                        .get(name)
                        .ok_or_else(|| err(line.number, *col, format!("unknown label `{name}`")))?
                        as i64;
                    if width == Width::Rel16 {
                        target - next_pc as i64
                    } else {
                        target
                    }
                }
                (Operand::Number(n) | Operand::Signed(n), _) => *n,
            };
            let (lo, hi) = match width {
                Width::U8 => (-128, 255),
                Width::U16 | Width::Abs16 => (0, 65535),
                Width::Rel16 => (-32768, 32767),
                Width::I32 => (i32::MIN as i64, u32::MAX as i64),
            };
            if !(lo..=hi).contains(&value) {
                return Err(err(
                    line.number,
                    *col,
                    format!("{value} does not fit this operand (expected {lo} ..= {hi})"),
                ));
            }
            let bytes = (value as u32).to_le_bytes();
            out.extend_from_slice(&bytes[..width.bytes()]);
        }
    }
    Ok(out)
}

fn unknown_mnemonic(m: &str) -> String {
    format!("unknown mnemonic `{m}`; expected an instruction such as push, add, jnz, halt, an escape such as fuel.check, or .byte/.word")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(src: &str) -> String {
        crate::hex::encode(&assemble(src).unwrap())
    }

    #[test]
    fn the_spec_example_assembles() {
        assert_eq!(hex("push 5\npush 7\nadd\nhalt"), "550500000055070000001000");
    }

    #[test]
    fn labels_become_relative_displacements() {
        // loop: dec ; dup ; jnz loop  — the jnz at 2 targets 0 from next pc 5.
        assert_eq!(hex("loop: dec\n dup\n jnz loop"), "176052fbff");
        assert_eq!(hex("jmp +6\njz -5"), "500600".to_owned() + "51fbff");
    }

    #[test]
    fn number_forms() {
        assert_eq!(parse_number("0x2A"), Ok(42));
        assert_eq!(parse_number("0b1010"), Ok(10));
        assert_eq!(parse_number("1_000"), Ok(1000));
        assert_eq!(parse_number("'A'"), Ok(65));
        assert_eq!(parse_number("'\\n'"), Ok(10));
        assert_eq!(parse_number("1.5f"), Ok(0x3FC0_0000));
        assert_eq!(hex("push 1.5f"), hex("push 0x3FC00000"));
        assert_eq!(hex("push ';' ; comment"), "553b000000");
    }

    #[test]
    fn escapes_and_data() {
        assert_eq!(hex("fuel.set 100\nfuel.check"), "ff020464000000ff0100");
        assert_eq!(hex("start: fork start"), "ff03020000");
        assert_eq!(hex(".byte 1, 2\n.word -1"), "0102ffffffff");
    }

    #[test]
    fn errors_name_line_column_and_what_was_expected() {
        let e = assemble("push 1\n  frob 3").unwrap_err();
        assert_eq!((e.line, e.column), (2, 3));
        assert!(e.message.contains("unknown mnemonic `frob`"));
        let e = assemble("jmp nowhere").unwrap_err();
        assert_eq!((e.line, e.column), (1, 5));
        assert!(e.message.contains("unknown label"));
        let e = assemble("push").unwrap_err();
        assert!(e.message.contains("takes 1 operand"), "{e}");
        let e = assemble("signal 300").unwrap_err();
        assert!(e.message.contains("does not fit"), "{e}");
    }
}
