//! Another agent's `datum.lock`, read leniently: its exact plugin versions, so an agent
//! can learn an ability with the same plugin build (`datum workflow learn`). The file
//! comes from another repository: every entry is checked, and a bad one is skipped
//! with a warning rather than trusted or fatal.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pin {
    pub name: String,
    pub version: String,
    pub kind: String,
    pub sha256: String,
}

#[derive(Deserialize)]
struct Raw {
    #[serde(default)]
    plugin: Vec<toml::Value>,
}

fn plain_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some('a'..='z'))
        && s.len() <= 64
        && c.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '-'))
}

/// The pins, and a warning for each entry skipped.
pub fn parse(text: &str) -> Result<(Vec<Pin>, Vec<String>), String> {
    let raw: Raw = toml::from_str(text).map_err(|e| {
        format!(
            "not a datum.lock: {}",
            capability::shown(e.message().lines().next().unwrap_or_default())
        )
    })?;
    let mut pins = Vec::new();
    let mut warnings = Vec::new();
    for (i, entry) in raw.plugin.iter().enumerate().take(1000) {
        let field = |k: &str| {
            entry
                .get(k)
                .and_then(toml::Value::as_str)
                .unwrap_or_default()
        };
        let (name, version, kind, sha256) = (
            field("name"),
            field("version"),
            field("kind"),
            field("sha256"),
        );
        let ok = plain_name(name)
            && semver::Version::parse(version).is_ok()
            && matches!(kind, "wasm" | "native")
            && sha256.len() == 64
            && sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ok {
            pins.push(Pin {
                name: name.to_owned(),
                version: version.to_owned(),
                kind: kind.to_owned(),
                sha256: sha256.to_owned(),
            });
        } else {
            warnings.push(format!(
                "plugin entry {} (`{}`) is not a valid pin; skipped",
                i + 1,
                capability::shown(name)
            ));
        }
    }
    Ok((pins, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_pins_are_kept_and_bad_ones_skipped() {
        let sha = "ab".repeat(32);
        let text = format!(
            "version = 1\n[[plugin]]\nname = \"flux-vm\"\nversion = \"0.1.0\"\nkind = \"wasm\"\nsha256 = \"{sha}\"\n[[plugin]]\nname = \"../x\"\nversion = \"1.0.0\"\nkind = \"wasm\"\nsha256 = \"{sha}\"\n[[plugin]]\nname = \"mib\"\nversion = \"one\"\nkind = \"wasm\"\nsha256 = \"{sha}\"\n"
        );
        let (pins, warnings) = parse(&text).unwrap();
        assert_eq!(pins.len(), 1);
        assert_eq!(pins[0].name, "flux-vm");
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(parse("[[plugin]\n").is_err());
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_parsed_without_panicking(s in "\\PC{0,200}") {
            let _ = parse(&s);
        }
    }
}
