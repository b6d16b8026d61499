//! Decoding profiles (FLUX.md §1) and the 8-byte image header (§16).

use serde::{Deserialize, Serialize};

/// Which instruction set the bytes are in. Never guessed from the bytes themselves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// The stack ISA (v2.1 vectors, all example programs).
    #[default]
    Stack,
    /// The register ISA of the v3 vectors, plus escapes and compressed shorts.
    Reg,
}

impl Profile {
    pub fn header_byte(self) -> u8 {
        match self {
            Profile::Stack => 0x02,
            Profile::Reg => 0x03,
        }
    }
}

impl std::str::FromStr for Profile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "stack" => Ok(Profile::Stack),
            "reg" => Ok(Profile::Reg),
            other => Err(format!("unknown profile `{other}`; use `stack` or `reg`")),
        }
    }
}

impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Profile::Stack => "stack",
            Profile::Reg => "reg",
        })
    }
}

/// `46 4C 55 58` ("FLUX"), then format version, profile, two zero bytes.
pub const MAGIC: [u8; 4] = *b"FLUX";
pub const HEADER_LEN: usize = 8;
pub const FORMAT_VERSION: u8 = 3;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    #[error("the image has no FLUX header, so its profile is unknown; pass the profile explicitly (stack or reg)")]
    NoProfile,
    #[error("the FLUX header names profile byte {0:#04x}; expected 0x02 (stack) or 0x03 (reg)")]
    BadProfile(u8),
    #[error("the FLUX header says profile {header} but {explicit} was asked for; drop the option or fix the header")]
    Conflict { header: Profile, explicit: Profile },
    #[error("the FLUX header is malformed: bytes 6 and 7 must be zero")]
    BadHeader,
}

/// Split an image into its profile and code. A header wins; without one the caller
/// must say which profile the bytes are in.
pub fn parse_image(
    bytes: &[u8],
    explicit: Option<Profile>,
) -> Result<(Profile, &[u8]), ImageError> {
    if bytes.len() >= HEADER_LEN && bytes[..4] == MAGIC {
        if bytes[6] != 0 || bytes[7] != 0 {
            return Err(ImageError::BadHeader);
        }
        let header = match bytes[5] {
            0x02 => Profile::Stack,
            0x03 => Profile::Reg,
            other => return Err(ImageError::BadProfile(other)),
        };
        if let Some(explicit) = explicit.filter(|e| *e != header) {
            return Err(ImageError::Conflict { header, explicit });
        }
        return Ok((header, &bytes[HEADER_LEN..]));
    }
    explicit.map(|p| (p, bytes)).ok_or(ImageError::NoProfile)
}

/// Prefix code with a header naming its profile.
pub fn with_header(profile: Profile, code: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + code.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&[FORMAT_VERSION, profile.header_byte(), 0, 0]);
    out.extend_from_slice(code);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_names_the_profile_and_is_stripped() {
        let image = with_header(Profile::Reg, &[0x00]);
        assert_eq!(
            parse_image(&image, None).unwrap(),
            (Profile::Reg, &[0x00][..])
        );
        assert_eq!(
            parse_image(&image, Some(Profile::Reg)).unwrap().0,
            Profile::Reg
        );
        assert!(matches!(
            parse_image(&image, Some(Profile::Stack)),
            Err(ImageError::Conflict { .. })
        ));
    }

    #[test]
    fn bare_code_needs_an_explicit_profile() {
        assert_eq!(parse_image(&[0x00], None), Err(ImageError::NoProfile));
        assert_eq!(
            parse_image(&[0x00], Some(Profile::Stack)).unwrap().0,
            Profile::Stack
        );
    }
}
