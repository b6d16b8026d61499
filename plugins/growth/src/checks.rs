//! The bootcamp's machine checks. Each judges an exercise from the workshop's evidence
//! — files, the journal, bottles, and programs run again now — so progress can never
//! be typed in: remove the evidence and the exercise is open again.

use datum_plugin_api::{FileArg, Host, PluginError};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::curriculum::{folder, Exercise};
use crate::tool;
use crate::util::{args, call_opt, journal_entries, read_opt};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Done,
    Started,
    Todo,
}

impl State {
    pub fn mark(&self) -> &'static str {
        match self {
            State::Done => "[✓]",
            State::Started => "[○]",
            State::Todo => "[ ]",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub state: State,
    /// What is missing or wrong (empty when done).
    pub detail: String,
}

fn done() -> Verdict {
    Verdict {
        state: State::Done,
        detail: String::new(),
    }
}

fn todo(detail: impl Into<String>) -> Verdict {
    Verdict {
        state: State::Todo,
        detail: detail.into(),
    }
}

fn started(detail: impl Into<String>) -> Verdict {
    Verdict {
        state: State::Started,
        detail: detail.into(),
    }
}

/// The evidence, gathered once per progress run (several checks share a program run
/// or the journal).
pub struct Evidence<'h> {
    host: &'h Host<'h>,
    journal: Option<Vec<Value>>,
    runs: Vec<(String, Result<String, String>)>,
    tools: Option<Vec<(String, tool::Report)>>,
}

/// `[1, 2]` without spaces, for comparing what an agent wrote with what ran.
fn squash(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

impl<'h> Evidence<'h> {
    pub fn new(host: &'h Host<'h>) -> Self {
        Evidence {
            host,
            journal: None,
            runs: Vec::new(),
            tools: None,
        }
    }

    fn journal(&mut self) -> Result<&[Value], PluginError> {
        if self.journal.is_none() {
            self.journal = Some(journal_entries(self.host)?);
        }
        Ok(self.journal.as_deref().unwrap_or_default())
    }

    /// The final stack of a program flux-vm ships, run now (`[55]`).
    fn run(&mut self, program: &str) -> Result<String, String> {
        if let Some((_, r)) = self.runs.iter().find(|(p, _)| p == program) {
            return r.clone();
        }
        let a = args(&[("program", FileArg::missing(program))]);
        let r = match call_opt(self.host, "flux-vm", "flux run", a) {
            Ok(Some(v)) => match v["stack"].as_array() {
                Some(words) => Ok(format!(
                    "[{}]",
                    words
                        .iter()
                        .map(|w| w.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
                None => Err(format!("{program} did not finish")),
            },
            Ok(None) => Err("flux-vm is not installed: datum plugin install flux-vm".into()),
            Err(e) => Err(e.message),
        };
        self.runs.push((program.to_owned(), r.clone()));
        r
    }

    /// An exercise's RESULT.md. One that cannot be read (a link out of the workshop,
    /// a file too large, not text) counts as not written: the agent's evidence never
    /// stops the other checks.
    fn result_md(&self, dir: &str) -> Result<Option<String>, PluginError> {
        Ok(read_opt(self.host, &format!("{dir}/RESULT.md")).unwrap_or(None))
    }

    fn tools(&mut self) -> Result<&[(String, tool::Report)], PluginError> {
        if self.tools.is_none() {
            let mut found = Vec::new();
            for name in self.host.list_dir("tools")?.into_iter().take(64) {
                if !name.ends_with(".flux") {
                    continue;
                }
                let path = format!("tools/{name}");
                match read_opt(self.host, &path) {
                    Ok(Some(text)) => found.push((path, tool::check(&text))),
                    Ok(None) => {}
                    // Unreadable (a link leaving the workshop, too large): judged, not fatal.
                    Err(e) => found.push((
                        path,
                        tool::Report {
                            cases: 0,
                            passed: 0,
                            problems: vec![format!("cannot be read: {}", e.message)],
                        },
                    )),
                }
            }
            self.tools = Some(found);
        }
        Ok(self.tools.as_deref().unwrap_or_default())
    }

    /// Judge exercise `n` of a curriculum.
    pub fn judge(&mut self, n: usize, exercise: &Exercise) -> Result<Verdict, PluginError> {
        let dir = folder(n, exercise);
        match exercise.check.as_str() {
            "hello" => {
                let Some(result) = self.result_md(&dir)? else {
                    return Ok(todo(format!(
                        "run `datum flux run hello`; write its stack into {dir}/RESULT.md"
                    )));
                };
                match self.run("hello") {
                    Ok(stack) if squash(&result).contains(&squash(&stack)) => Ok(done()),
                    Ok(_) => Ok(started(format!(
                        "{dir}/RESULT.md does not hold the stack `hello` ends with"
                    ))),
                    Err(e) => Ok(started(format!("cannot run hello: {e}"))),
                }
            }
            "manifest" => {
                let Some(result) = self.result_md(&dir)? else {
                    return Ok(todo(format!(
                        "write three installed commands into {dir}/RESULT.md"
                    )));
                };
                let commands: Vec<String> = self
                    .host
                    .plugins()?
                    .iter()
                    .flat_map(|p| p["commands"].as_array().cloned().unwrap_or_default())
                    .filter_map(|c| c.as_str().map(str::to_owned))
                    .collect();
                let mut named = std::collections::BTreeSet::new();
                for line in result.lines() {
                    let line = line
                        .trim()
                        .trim_start_matches(['-', '*', ' '])
                        .trim_matches('`');
                    let Some(rest) = line.strip_prefix("datum ") else {
                        continue;
                    };
                    let words: Vec<&str> = rest.split_whitespace().collect();
                    // The longest command path the line starts with.
                    if let Some(c) = commands
                        .iter()
                        .filter(|c| {
                            let cw: Vec<&str> = c.split_whitespace().collect();
                            words.len() >= cw.len() && words[..cw.len()] == cw[..]
                        })
                        .max_by_key(|c| c.len())
                    {
                        named.insert(c.clone());
                    }
                }
                if named.len() >= 3 {
                    Ok(done())
                } else {
                    Ok(started(format!(
                        "{dir}/RESULT.md names {} installed command(s); three are needed",
                        named.len()
                    )))
                }
            }
            "recipe" => {
                let result = self.result_md(&dir)?;
                let tagged = self.journal()?.iter().any(|e| {
                    e["tags"]
                        .as_array()
                        .is_some_and(|t| t.iter().any(|t| t == "recipe"))
                });
                let Some(result) = result else {
                    return Ok(if tagged {
                        started(format!("write both results into {dir}/RESULT.md"))
                    } else {
                        todo("follow recipes/bootcamp-first-recipe.md")
                    });
                };
                let mut wrong = Vec::new();
                for program in ["fibonacci", "factorial"] {
                    let expected = match self.run(program) {
                        Ok(s) => s,
                        Err(e) => return Ok(started(format!("cannot run {program}: {e}"))),
                    };
                    let written = result
                        .lines()
                        .find_map(|l| l.trim().strip_prefix(&format!("{program}:")).map(squash));
                    if written.as_deref() != Some(squash(&expected).as_str()) {
                        wrong.push(program);
                    }
                }
                if !wrong.is_empty() {
                    Ok(started(format!(
                        "{dir}/RESULT.md: wrong or missing {}",
                        wrong.join(", ")
                    )))
                } else if !tagged {
                    Ok(started(
                        "record it: datum journal add NOTE \"ran my first recipe\" --tag recipe",
                    ))
                } else {
                    Ok(done())
                }
            }
            "tool" => {
                let min = exercise.min_cases.max(1);
                let tools = self.tools()?;
                if tools.iter().any(|(_, r)| r.good(min)) {
                    return Ok(done());
                }
                match tools.first() {
                    None => Ok(todo("write a tool: tools/NAME.flux with `; case:` lines")),
                    Some((path, r)) if r.problems.is_empty() => Ok(started(format!(
                        "{path} declares {} case(s); at least {min} needed",
                        r.cases
                    ))),
                    Some((path, r)) => Ok(started(format!("{path}: {}", r.problems[0]))),
                }
            }
            "conformance" => {
                let Some(result) = self.result_md(&dir)? else {
                    return Ok(todo(format!("run `datum flux conformance`; write `conformance: PASSED/TOTAL` into {dir}/RESULT.md")));
                };
                let run = match call_opt(self.host, "flux-vm", "flux conformance", Map::new())? {
                    Some(v) => v,
                    None => {
                        return Ok(started(
                            "flux-vm is not installed: datum plugin install flux-vm",
                        ))
                    }
                };
                let sum = |k: &str| -> u64 {
                    run["suites"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|s| s[k].as_u64().unwrap_or(0))
                        .sum()
                };
                let want = format!("{}/{}", sum("passed"), sum("total"));
                if run["ok"] != true {
                    Ok(started(
                        "the runtime fails its conformance vectors: see `datum flux conformance`",
                    ))
                } else if squash(&result).contains(&want) {
                    Ok(done())
                } else {
                    Ok(started(format!(
                        "{dir}/RESULT.md does not hold the totals of a conformance run now"
                    )))
                }
            }
            "bottle" => match call_opt(self.host, "mib", "bottle history", Map::new())? {
                Some(h) if h["sent"].as_u64().unwrap_or(0) > 0 => Ok(done()),
                Some(_) => Ok(todo("drop a bottle: datum bottle drop AGENT SUBJECT BODY")),
                None => Ok(todo("install mib first: datum plugin install mib")),
            },
            "analysis" => {
                let entries: Vec<&Value> = self
                    .journal()?
                    .iter()
                    .filter(|e| e["kind"] == "ANALYSIS")
                    .collect();
                let good = entries.iter().any(|e| {
                    e["tags"]
                        .as_array()
                        .is_some_and(|t| t.iter().any(|t| t == "research"))
                        && e["text"]
                            .as_str()
                            .unwrap_or_default()
                            .split_whitespace()
                            .count()
                            >= 30
                });
                if good {
                    Ok(done())
                } else if entries.is_empty() {
                    Ok(todo(
                        "datum journal add ANALYSIS \"…\" --tag research (30 words or more)",
                    ))
                } else {
                    Ok(started(
                        "an ANALYSIS entry needs the tag `research` and 30 words or more",
                    ))
                }
            }
            "task-done" => {
                let board = read_opt(self.host, "TASKBOARD.md")?.unwrap_or_default();
                let ticked = board.lines().any(|l| {
                    let l = l.trim_start();
                    l.starts_with("- [x]") || l.starts_with("- [X]")
                });
                if ticked {
                    Ok(done())
                } else {
                    Ok(todo("tick a task in TASKBOARD.md: `- [ ]` → `- [x]`"))
                }
            }
            other => Ok(todo(format!(
                "this datum does not know the check `{other}`; update growth"
            ))),
        }
    }
}
