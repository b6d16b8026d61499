//! Hex text as FLUX tools write it: pairs of hex digits, whitespace ignored.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HexError {
    #[error("`{found}` at character {position} is not a hex digit")]
    BadDigit { position: usize, found: char },
    #[error("odd number of hex digits ({0}); every byte needs two")]
    OddLength(usize),
}

/// Decode hex text, ignoring whitespace (vectors write `55 05000000 10`).
pub fn decode(text: &str) -> Result<Vec<u8>, HexError> {
    let mut digits = Vec::with_capacity(text.len());
    for (position, c) in text.char_indices() {
        if c.is_whitespace() {
            continue;
        }
        let d = c
            .to_digit(16)
            .ok_or(HexError::BadDigit { position, found: c })?;
        digits.push(d as u8);
    }
    if digits.len() % 2 != 0 {
        return Err(HexError::OddLength(digits.len()));
    }
    Ok(digits.chunks_exact(2).map(|p| p[0] << 4 | p[1]).collect())
}

/// Lower-case hex without separators.
pub fn encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spaces_are_ignored_and_case_does_not_matter() {
        assert_eq!(decode("55 0A 0b").unwrap(), vec![0x55, 0x0a, 0x0b]);
        assert_eq!(encode(&[0x55, 0x0a]), "550a");
    }

    #[test]
    fn errors_say_where() {
        assert_eq!(
            decode("5g").unwrap_err(),
            HexError::BadDigit {
                position: 1,
                found: 'g'
            }
        );
        assert_eq!(decode("555").unwrap_err(), HexError::OddLength(3));
    }
}
