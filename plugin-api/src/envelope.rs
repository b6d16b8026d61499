//! The request/response envelope exchanged with the host, as JSON.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// How the host will render the reply: `text` for humans, `json` for agents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Text,
    Json,
}

/// Who is asking: the agent whose workshop the call runs in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentInfo {
    pub name: String,
    #[serde(default)]
    pub role: String,
}

/// One call into a plugin.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// The command path from the manifest, words separated by one space (`"flux run"`).
    pub command: String,
    /// Parsed arguments by name; absent optional arguments are omitted.
    #[serde(default)]
    pub args: Map<String, Value>,
    #[serde(default)]
    pub format: Format,
    #[serde(default)]
    pub agent: AgentInfo,
    /// The workshop root, as the host sees it (informational: files go through [`crate::Host`]).
    #[serde(default)]
    pub workshop: Option<String>,
}

impl Request {
    pub fn new(command: impl Into<String>) -> Self {
        Request {
            command: command.into(),
            ..Request::default()
        }
    }

    /// Builder used by tests and by plugins calling each other.
    pub fn with_arg(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.args.insert(name.to_owned(), value.into());
        self
    }

    pub fn arg(&self, name: &str) -> Option<&Value> {
        self.args.get(name).filter(|v| !v.is_null())
    }

    pub fn arg_str(&self, name: &str) -> Option<&str> {
        self.arg(name).and_then(Value::as_str)
    }

    pub fn arg_i64(&self, name: &str) -> Option<i64> {
        self.arg(name).and_then(Value::as_i64)
    }

    /// A `multiple = true` string argument's values (one value reads as one item).
    /// Since API 1.4.
    pub fn arg_strs(&self, name: &str) -> Vec<String> {
        match self.arg(name) {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            Some(Value::String(s)) => vec![s.clone()],
            _ => Vec::new(),
        }
    }

    pub fn arg_bool(&self, name: &str) -> bool {
        self.arg(name).and_then(Value::as_bool).unwrap_or(false)
    }

    /// A `type = "file"` argument: the file's path and bytes, as the host read them.
    pub fn arg_file(&self, name: &str) -> Result<Option<FileArg>, PluginError> {
        self.arg(name).map(FileArg::from_value).transpose()
    }

    /// A `type = "file"`, `multiple = true` argument.
    pub fn arg_files(&self, name: &str) -> Result<Vec<FileArg>, PluginError> {
        match self.arg(name) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items.iter().map(FileArg::from_value).collect(),
            Some(v) => Ok(vec![FileArg::from_value(v)?]),
        }
    }

    /// A required string argument, or an `invalid-args` error naming it.
    pub fn require_str(&self, name: &str) -> Result<&str, PluginError> {
        self.arg_str(name).ok_or_else(|| {
            PluginError::new(
                ErrorKind::InvalidArgs,
                format!("missing argument `{name}` for `{}`", self.command),
            )
            .with_hint(format!("pass --{name} VALUE"))
        })
    }
}

/// A file the host read for the plugin (see [`crate::ArgType::File`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileArg {
    /// Absolute when the file exists; as typed otherwise.
    pub path: String,
    pub bytes: Vec<u8>,
    /// False when no such file exists: the plugin may read the word as a name instead
    /// (e.g. a built-in example) or report it.
    pub exists: bool,
}

impl FileArg {
    /// The wire form: `{path, encoding: "utf8" | "hex", contents}`.
    pub fn to_value(path: &str, bytes: &[u8]) -> Value {
        match std::str::from_utf8(bytes) {
            Ok(text) => serde_json::json!({"path": path, "encoding": "utf8", "contents": text}),
            Err(_) => {
                let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                serde_json::json!({"path": path, "encoding": "hex", "contents": hex})
            }
        }
    }

    /// The wire form of a name that is not an existing file.
    pub fn missing(path: &str) -> Value {
        serde_json::json!({"path": path, "missing": true})
    }

    fn from_value(v: &Value) -> Result<FileArg, PluginError> {
        let bad = || {
            PluginError::new(
                ErrorKind::Internal,
                "the host passed a file argument in an unknown form",
            )
        };
        let path = v["path"].as_str().ok_or_else(bad)?.to_owned();
        if v["missing"] == true {
            return Ok(FileArg {
                path,
                bytes: Vec::new(),
                exists: false,
            });
        }
        let contents = v["contents"].as_str().ok_or_else(bad)?;
        let bytes = match v["encoding"].as_str() {
            Some("utf8") => contents.as_bytes().to_vec(),
            Some("hex") => (0..contents.len() / 2)
                .map(|i| u8::from_str_radix(contents.get(2 * i..2 * i + 2).unwrap_or("zz"), 16))
                .collect::<Result<_, _>>()
                .map_err(|_| bad())?,
            _ => return Err(bad()),
        };
        Ok(FileArg {
            path,
            bytes,
            exists: true,
        })
    }

    /// The contents as text (lossy for binary files).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// What a successful command produced: `data` for `--format json`, `text` for humans.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Output {
    pub data: Value,
    /// Human rendering; when absent the host pretty-prints `data`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl Output {
    pub fn new(data: Value) -> Self {
        Output { data, text: None }
    }

    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(text.into());
        self
    }
}

/// The category of a failure; the host maps each to an exit code and a rendering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// The caller passed arguments the command cannot use.
    InvalidArgs,
    /// The command path is not one this plugin provides.
    UnknownCommand,
    /// The plugin asked for a host service it was not granted.
    PermissionDenied,
    /// A host service failed (file missing, store unavailable…).
    HostService,
    /// The plugin panicked; the message is the panic payload.
    Panic,
    /// The plugin ran, and the operation it performs failed.
    Failed,
    /// Anything the plugin could not classify.
    Internal,
}

/// A failure reported by a plugin (or by the host on a plugin's behalf).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct PluginError {
    pub kind: ErrorKind,
    pub message: String,
    /// What the user should do next, when the plugin knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl PluginError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        PluginError {
            kind,
            message: message.into(),
            hint: None,
        }
    }

    pub fn invalid_args(message: impl Into<String>) -> Self {
        PluginError::new(ErrorKind::InvalidArgs, message)
    }

    pub fn failed(message: impl Into<String>) -> Self {
        PluginError::new(ErrorKind::Failed, message)
    }

    /// The answer to a command path this plugin does not have. Since API 1.3.
    pub fn unknown_command(plugin: &str, command: &str) -> Self {
        PluginError::new(
            ErrorKind::UnknownCommand,
            format!("{plugin} has no command `{command}`"),
        )
        .with_hint(format!(
            "run `datum plugin info {plugin}` to list the commands"
        ))
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// The reply envelope: `{ok: true, data, text}` or `{ok: false, error: {kind, message, hint}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Response {
    Ok {
        ok: True,
        data: Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
    },
    Err {
        ok: False,
        error: PluginError,
    },
}

impl Response {
    pub fn into_result(self) -> Result<Output, PluginError> {
        match self {
            Response::Ok { data, text, .. } => Ok(Output { data, text }),
            Response::Err { error, .. } => Err(error),
        }
    }

    pub fn to_json(&self) -> String {
        // Serialising these types cannot fail: every map key is a string.
        serde_json::to_string(self).unwrap_or_else(|e| {
            format!(r#"{{"ok":false,"error":{{"kind":"internal","message":"cannot encode response: {e}"}}}}"#)
        })
    }
}

impl From<Result<Output, PluginError>> for Response {
    fn from(result: Result<Output, PluginError>) -> Self {
        match result {
            Ok(Output { data, text }) => Response::Ok {
                ok: True,
                data,
                text,
            },
            Err(error) => Response::Err { ok: False, error },
        }
    }
}

/// `true` as a type, so the untagged envelope only matches the right variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct True;
/// `false` as a type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct False;

macro_rules! bool_literal {
    ($ty:ident, $value:literal) => {
        impl Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bool($value)
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                if bool::deserialize(d)? == $value {
                    Ok($ty)
                } else {
                    Err(serde::de::Error::custom(concat!("expected ", $value)))
                }
            }
        }
    };
}
bool_literal!(True, true);
bool_literal!(False, false);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn success_envelope_round_trips() {
        let reply: Response = Ok(Output::new(json!({"stack": [12]})).with_text("[12]")).into();
        let wire = reply.to_json();
        assert_eq!(wire, r#"{"ok":true,"data":{"stack":[12]},"text":"[12]"}"#);
        let back: Response = serde_json::from_str(&wire).unwrap();
        assert_eq!(back.into_result().unwrap().text.as_deref(), Some("[12]"));
    }

    #[test]
    fn error_envelope_keeps_kind_and_hint() {
        let err = PluginError::invalid_args("bad hex").with_hint("use pairs of hex digits");
        let wire = Response::from(Err(err.clone())).to_json();
        assert!(wire.starts_with(r#"{"ok":false"#), "{wire}");
        let back: Response = serde_json::from_str(&wire).unwrap();
        assert_eq!(back.into_result().unwrap_err(), err);
    }

    #[test]
    fn an_ok_flag_that_lies_is_rejected() {
        let wire = r#"{"ok":false,"data":1}"#;
        assert!(serde_json::from_str::<Response>(wire).is_err());
    }

    #[test]
    fn file_arguments_round_trip_text_and_binary() {
        for bytes in [b"push 5\nhalt\n".to_vec(), vec![0x55, 0xff, 0x00]] {
            let req = Request::new("x").with_arg("f", FileArg::to_value("/p", &bytes));
            assert_eq!(req.arg_file("f").unwrap().unwrap().bytes, bytes);
        }
    }

    #[test]
    fn missing_required_arg_names_the_flag() {
        let err = Request::new("flux run")
            .require_str("bytecode")
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidArgs);
        assert!(err.hint.unwrap().contains("--bytecode"));
    }
}
