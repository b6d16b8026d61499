//! The plugin's key-value store and the workshop files its grants cover. Every file
//! service opens the granted folder as a capability and works inside it: nothing
//! resolves out of it, not even through a symbolic link the workshop holds.

use std::path::{Path, PathBuf};

use datum_plugin_api::PluginError;
use serde_json::{Map, Value};

use super::{host_err, Caller};
use crate::confined::{EntryKind, Folder, MAX_FILE};

/// A plugin's key-value store may not grow past this.
const MAX_KV_BYTES: u64 = 4 * 1024 * 1024;
/// One append: an entry, not a file.
const MAX_APPEND: usize = 64 * 1024;

/// `.superagent/kv/<plugin>.json` (the name was validated when the lock was read).
fn kv_file(caller: &Caller) -> PathBuf {
    Path::new(crate::workshop::KV_DIR).join(format!("{}.json", caller.plugin))
}

fn kv_load(caller: &Caller) -> Result<Map<String, Value>, PluginError> {
    match caller
        .workshop_folder()?
        .read(&kv_file(caller), MAX_KV_BYTES)
    {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            host_err(format!("{} is corrupt: {e}", kv_file(caller).display()))
                .with_hint("restore it from the workshop's history (`git log -- .superagent/kv`)")
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Map::new()),
        Err(e) => Err(host_err(format!("cannot read the key-value store: {e}"))),
    }
}

/// `kv.get`.
pub fn kv_get(caller: &Caller, key: &str) -> Result<Value, PluginError> {
    Ok(kv_load(caller)?.remove(key).unwrap_or(Value::Null))
}

/// `kv.set` (`null` deletes).
pub fn kv_set(caller: &Caller, key: &str, value: Value) -> Result<Value, PluginError> {
    let mut map = kv_load(caller)?;
    match value {
        Value::Null => map.remove(key),
        v => map.insert(key.to_owned(), v),
    };
    let text = serde_json::to_vec_pretty(&map).map_err(host_err)?;
    if text.len() as u64 > MAX_KV_BYTES {
        return Err(host_err(format!(
            "{}'s key-value store would grow past {MAX_KV_BYTES} bytes",
            caller.plugin
        ))
        .with_hint("store less, or remove keys (set them to null)"));
    }
    caller
        .workshop_folder()?
        .write(&kv_file(caller), &text)
        .map_err(|e| host_err(format!("cannot write the key-value store: {e}")))?;
    Ok(Value::Null)
}

/// The granted folder (`scope`, `""` for the whole workshop) that holds `raw`, opened
/// as a capability (created first for writes), and the path inside it.
fn open(
    caller: &Caller,
    scope: &str,
    raw: &str,
    create: bool,
) -> Result<(Option<Folder>, PathBuf, String), PluginError> {
    let rel = caller.confined(raw)?;
    let mut scope = Path::new(scope);
    let mut inside = Path::new(&rel)
        .strip_prefix(scope)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| PathBuf::from(&rel));
    // A grant naming one file (`fs-write:.superagent/bus.toml`): its folder is opened,
    // and only that name is used inside it.
    if inside.as_os_str().is_empty() {
        if let (Some(parent), Some(name)) = (scope.parent(), scope.file_name()) {
            inside = PathBuf::from(name);
            scope = parent;
        }
    }
    let folder = match caller.workshop_folder()?.sub(scope, create) {
        Ok(f) => Some(f),
        // A granted folder that does not exist yet: nothing in it to read or list.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(host_err(format!("cannot open {rel}: {e}"))),
    };
    Ok((folder, inside, rel))
}

/// `fs.read`: UTF-8 text, at most [`MAX_FILE`] bytes.
pub fn read(caller: &Caller, scope: &str, path: &str) -> Result<Value, PluginError> {
    let (folder, rel, shown) = open(caller, scope, path, false)?;
    let bytes = folder
        .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
        .and_then(|f| f.read(&rel, MAX_FILE))
        .map_err(|e| host_err(format!("cannot read {shown}: {e}")))?;
    String::from_utf8(bytes)
        .map(Value::String)
        .map_err(|_| host_err(format!("{shown} is not UTF-8 text")))
}

/// `fs.write`: replaces the file atomically.
pub fn write(
    caller: &Caller,
    scope: &str,
    path: &str,
    contents: &str,
) -> Result<Value, PluginError> {
    let (folder, rel, shown) = open(caller, scope, path, true)?;
    folder
        .ok_or_else(|| host_err(format!("cannot write {shown}: no folder")))?
        .write(&rel, contents.as_bytes())
        .map_err(|e| host_err(format!("cannot write {shown}: {e}")))?;
    Ok(Value::Null)
}

/// `fs.create`: `false` when the name is taken (nothing is overwritten).
pub fn create(
    caller: &Caller,
    scope: &str,
    path: &str,
    contents: &str,
) -> Result<Value, PluginError> {
    let (folder, rel, shown) = open(caller, scope, path, true)?;
    folder
        .ok_or_else(|| host_err(format!("cannot create {shown}: no folder")))?
        .create(&rel, contents.as_bytes())
        .map(Value::Bool)
        .map_err(|e| host_err(format!("cannot create {shown}: {e}")))
}

/// `fs.append` (API 1.4): a log that is only ever added to (JOURNAL.md, TRAIL.md).
pub fn append(
    caller: &Caller,
    scope: &str,
    path: &str,
    contents: &str,
) -> Result<Value, PluginError> {
    let (folder, rel, shown) = open(caller, scope, path, true)?;
    if contents.len() > MAX_APPEND {
        return Err(host_err(format!(
            "an append to {shown} is {} bytes, over the {MAX_APPEND}-byte limit",
            contents.len()
        ))
        .with_hint("append one entry at a time; write whole files with fs.write"));
    }
    let folder = folder.ok_or_else(|| host_err(format!("cannot append to {shown}: no folder")))?;
    // Under the workshop's write lock: a commit never stages a half-written entry.
    crate::workshop::with_write_lock(&caller.workshop, || {
        folder
            .append_line(&rel, contents)
            .map_err(anyhow::Error::from)
    })
    .map(|()| Value::Null)
    .map_err(|e| host_err(format!("cannot append to {shown}: {e:#}")))
}

/// `fs.list`: sorted names, folders ending in `/`; links and special files are left
/// out (nothing may follow them). A missing folder is empty.
pub fn list(caller: &Caller, scope: &str, path: &str) -> Result<Value, PluginError> {
    let (folder, rel, shown) = open(caller, scope, path, false)?;
    let Some(folder) = folder else {
        return Ok(Value::Array(Vec::new()));
    };
    let entries = match folder.list(&rel) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(host_err(format!("cannot list {shown}: {e}"))),
    };
    Ok(entries
        .into_iter()
        .filter_map(|e| match e.kind {
            EntryKind::Dir => Some(format!("{}/", e.name)),
            EntryKind::File => Some(e.name),
            EntryKind::Other => None,
        })
        .map(Value::String)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::super::tests::caller;
    use super::*;
    use serde_json::json;

    #[test]
    fn kv_values_round_trip_and_null_deletes() {
        let (_dir, c) = caller(&["kv"]);
        assert_eq!(kv_get(&c, "runs").unwrap(), Value::Null);
        kv_set(&c, "runs", json!(3)).unwrap();
        assert_eq!(kv_get(&c, "runs").unwrap(), json!(3));
        kv_set(&c, "runs", Value::Null).unwrap();
        assert_eq!(kv_get(&c, "runs").unwrap(), Value::Null);
    }

    #[test]
    fn a_file_grant_opens_only_that_file() {
        let (dir, c) = caller(&[]);
        write(&c, ".superagent/bus.toml", ".superagent/bus.toml", "x = 1").unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join(".superagent/bus.toml")).unwrap(),
            "x = 1"
        );
        assert_eq!(
            read(&c, ".superagent/bus.toml", ".superagent/bus.toml").unwrap(),
            "x = 1"
        );
    }

    #[test]
    fn create_never_overwrites_and_append_adds_a_line() {
        let (dir, c) = caller(&[]);
        assert_eq!(create(&c, "notes", "notes/a.md", "one\n").unwrap(), true);
        assert_eq!(create(&c, "notes", "notes/a.md", "two").unwrap(), false);
        append(&c, "notes", "notes/a.md", "three").unwrap();
        let text = std::fs::read_to_string(dir.path().join("notes/a.md")).unwrap();
        assert_eq!(text, "one\nthree\n");
        assert!(append(&c, "notes", "notes/a.md", &"x".repeat(MAX_APPEND + 1)).is_err());
    }

    #[test]
    fn listing_marks_folders_and_a_missing_folder_is_empty() {
        let (dir, c) = caller(&[]);
        assert_eq!(list(&c, "", "tools").unwrap(), json!([]));
        std::fs::create_dir_all(dir.path().join("tools/sub")).unwrap();
        std::fs::write(dir.path().join("tools/a.flux"), "halt").unwrap();
        assert_eq!(list(&c, "", "tools").unwrap(), json!(["a.flux", "sub/"]));
    }
}
