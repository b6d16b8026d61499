//! `.superagent/fleet.toml`: the workshop's fleet sources and task boards.
//!
//! ```toml
//! default = "acme"              # the source used when a command names none
//!
//! [[sources]]
//! name = "acme"
//! kind = "github"
//! org = "acme"
//! api_url = "https://github.example.com/api/v3"   # optional: GitHub Enterprise
//!
//! [[sources]]
//! name = "lab"
//! kind = "git"
//! path = "/srv/fleet"           # a folder of repositories …
//! urls = ["file:///srv/x.git"]  # … and/or a list of git URLs
//!
//! [[boards]]
//! name = "fleet"
//! remote = "/srv/fleet/tasks.git"
//! ```
//!
//! Edits go through `toml_edit`, so comments and keys a user added survive.

use serde::{Deserialize, Serialize};
use toml_edit::{ArrayOfTables, DocumentMut, Item, Table};

use crate::error::FleetError;

pub const FILE: &str = ".superagent/fleet.toml";

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Config {
    #[serde(default)]
    pub default: Option<String>,
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
    #[serde(default)]
    pub boards: Vec<BoardConfig>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct SourceConfig {
    pub name: String,
    pub kind: SourceKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Github,
    Git,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct BoardConfig {
    pub name: String,
    pub remote: String,
}

/// A source or board name: it becomes part of cache paths and keys.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && name.len() <= 64
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '-'))
}

impl Config {
    pub fn parse(text: &str) -> Result<Config, FleetError> {
        let config: Config = toml::from_str(text).map_err(|e| {
            FleetError::invalid(
                format!("{FILE} does not read: {}", e.message()),
                format!("fix or remove {FILE}; `datum fleet add-source` writes it"),
            )
        })?;
        for name in config
            .sources
            .iter()
            .map(|s| &s.name)
            .chain(config.boards.iter().map(|b| &b.name))
        {
            if !valid_name(name) {
                return Err(FleetError::invalid(
                    format!("{FILE}: `{}` is not a valid name", capability::shown(name)),
                    "names are a-z, 0-9 and '-', starting with a letter",
                ));
            }
        }
        Ok(config)
    }

    pub fn source(&self, name: &str) -> Option<&SourceConfig> {
        self.sources.iter().find(|s| s.name == name)
    }

    pub fn board(&self, name: &str) -> Option<&BoardConfig> {
        self.boards.iter().find(|b| b.name == name)
    }
}

/// Add (or replace) one entry of `[[sources]]` or `[[boards]]` in the file's text,
/// keeping everything else as it was.
pub fn upsert(
    text: &str,
    list: &str,
    entry: &impl Serialize,
    name: &str,
) -> Result<String, FleetError> {
    let mut doc: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
        FleetError::invalid(
            format!("{FILE} does not read: {}", e.message()),
            format!("fix or remove {FILE}"),
        )
    })?;
    let value = toml::to_string(entry).map_err(|e| {
        FleetError::failed(
            format!("cannot write the entry: {e}"),
            "report this as a datum bug",
        )
    })?;
    let table: DocumentMut = value.parse().map_err(|e| {
        FleetError::failed(
            format!("cannot write the entry: {e}"),
            "report this as a datum bug",
        )
    })?;
    let new = table.as_table().clone();
    let item = doc
        .entry(list)
        .or_insert(Item::ArrayOfTables(ArrayOfTables::new()));
    let Some(array) = item.as_array_of_tables_mut() else {
        return Err(FleetError::invalid(
            format!("{FILE}: `{list}` is not a list of tables"),
            format!("fix {FILE}"),
        ));
    };
    let existing = array
        .iter_mut()
        .find(|t| t.get("name").and_then(|n| n.as_str()) == Some(name));
    match existing {
        Some(existing) => {
            existing.clear();
            for (k, v) in new.iter() {
                existing.insert(k, v.clone());
            }
        }
        None => array.push(Table::from_iter(
            new.iter().map(|(k, v)| (k.to_owned(), v.clone())),
        )),
    }
    Ok(doc.to_string())
}

/// Remove one entry; `None` when there was none by that name.
pub fn remove(text: &str, list: &str, name: &str) -> Result<Option<String>, FleetError> {
    let mut doc: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
        FleetError::invalid(
            format!("{FILE} does not read: {}", e.message()),
            format!("fix or remove {FILE}"),
        )
    })?;
    let Some(array) = doc.get_mut(list).and_then(Item::as_array_of_tables_mut) else {
        return Ok(None);
    };
    let before = array.len();
    array.retain(|t| t.get("name").and_then(|n| n.as_str()) != Some(name));
    if array.len() == before {
        return Ok(None);
    }
    if doc.get("default").and_then(|d| d.as_str()) == Some(name) {
        doc.remove("default");
    }
    Ok(Some(doc.to_string()))
}

/// Set `default = NAME`.
pub fn set_default(text: &str, name: &str) -> Result<String, FleetError> {
    let mut doc: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
        FleetError::invalid(
            format!("{FILE} does not read: {}", e.message()),
            format!("fix or remove {FILE}"),
        )
    })?;
    doc["default"] = toml_edit::value(name);
    Ok(doc.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_keep_comments_and_other_entries() {
        let text =
            "# my fleet\n[[sources]]\nname = \"lab\" # the lab\nkind = \"git\"\npath = \"/srv\"\n";
        let s = SourceConfig {
            name: "acme".into(),
            kind: SourceKind::Github,
            org: Some("acme".into()),
            api_url: None,
            path: None,
            urls: vec![],
        };
        let out = upsert(text, "sources", &s, "acme").unwrap();
        assert!(
            out.contains("# my fleet") && out.contains("# the lab"),
            "{out}"
        );
        let c = Config::parse(&out).unwrap();
        assert_eq!(c.sources.len(), 2);
        assert_eq!(c.source("acme").unwrap().org.as_deref(), Some("acme"));
        // Replacing keeps one entry by that name.
        let s2 = SourceConfig {
            org: Some("other".into()),
            ..s
        };
        let out = upsert(&out, "sources", &s2, "acme").unwrap();
        let c = Config::parse(&out).unwrap();
        assert_eq!(c.sources.len(), 2);
        assert_eq!(c.source("acme").unwrap().org.as_deref(), Some("other"));
        let out = remove(&out, "sources", "lab").unwrap().unwrap();
        assert!(Config::parse(&out).unwrap().source("lab").is_none());
        assert!(remove(&out, "sources", "lab").unwrap().is_none());
    }

    #[test]
    fn hostile_names_are_refused() {
        let bad = "[[sources]]\nname = \"../x\"\nkind = \"git\"\n";
        assert!(Config::parse(bad).is_err());
    }
}
