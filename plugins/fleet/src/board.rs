//! TASKBOARD.md: a fleet's shared tasks, one markdown list item a task.
//!
//! ```markdown
//! - [ ] TASK-042 [HIGH] Cross-runtime audit — open
//! - [~] TASK-043 [MED] Update conformance vectors — claimed by ada 2026-11-27
//! - [x] TASK-044 [LOW] Fix the README — done by bob 2026-11-28 (reports/TASK-044.md)
//! ```
//!
//! A task line is a list item (`-` or `*`) with a checkbox, an id (`WORD-NUMBER`), an
//! optional `[PRIORITY]`, a title, and after ` — ` (or ` -- `) its state. Boards are
//! edited by hand too, so reading is lenient: a missing state is `open`, `[x]` is done
//! whatever follows, any priority word is kept as written. Lines that are not tasks
//! (headings, notes, items without an id) are never touched: an edit replaces exactly
//! the one line of the task it changes.

use serde::Serialize;

/// The most lines a board may have before it is refused (a hostile board).
pub const MAX_LINES: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum State {
    Open,
    Claimed {
        by: String,
        since: Option<String>,
    },
    Done {
        by: Option<String>,
        on: Option<String>,
        report: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Task {
    pub id: String,
    pub priority: Option<String>,
    pub title: String,
    #[serde(flatten)]
    pub state: State,
    /// 0-based line number in the board.
    #[serde(skip)]
    pub line: usize,
    #[serde(skip)]
    indent: String,
    #[serde(skip)]
    bullet: char,
}

/// A task id: letters, a dash, digits (`TASK-042`, `FLUX-7`). Case-insensitive on input.
pub fn valid_id(id: &str) -> bool {
    let Some((word, number)) = id.split_once('-') else {
        return false;
    };
    !word.is_empty()
        && word.len() <= 16
        && word.chars().all(|c| c.is_ascii_alphabetic())
        && !number.is_empty()
        && number.len() <= 9
        && number.chars().all(|c| c.is_ascii_digit())
}

/// Parse one line; `None` if it is not a task.
pub fn parse_line(line: &str, number: usize) -> Option<Task> {
    let indent: String = line
        .chars()
        .take_while(|c| *c == ' ' || *c == '\t')
        .collect();
    let rest = &line[indent.len()..];
    let mut chars = rest.chars();
    let bullet = chars.next().filter(|c| *c == '-' || *c == '*')?;
    let rest = chars.as_str().strip_prefix(' ')?.trim_start();
    let rest = rest.strip_prefix('[')?;
    let mut chars = rest.chars();
    let mark = chars.next()?;
    let rest = chars.as_str().strip_prefix(']')?.trim_start();
    let (id, rest) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let id = id.trim_end_matches(':');
    if !valid_id(id) {
        return None;
    }
    let mut rest = rest.trim();
    let mut priority = None;
    if let Some(inner) = rest.strip_prefix('[') {
        if let Some((p, after)) = inner.split_once(']') {
            if !p.is_empty() && p.len() <= 12 && p.chars().all(|c| c.is_ascii_alphanumeric()) {
                priority = Some(p.to_ascii_uppercase());
                rest = after.trim();
            }
        }
    }
    let (title, state_text) = match rest.rsplit_once(" — ").or_else(|| rest.rsplit_once(" -- ")) {
        Some((t, s)) => (t.trim(), s.trim()),
        None => (rest, ""),
    };
    let words: Vec<&str> = state_text.split_whitespace().collect();
    let state = if matches!(mark, 'x' | 'X')
        || words
            .first()
            .is_some_and(|w| w.eq_ignore_ascii_case("done"))
    {
        let (by, on) = match words.as_slice() {
            [_, "by", who, rest @ ..] => (
                Some((*who).to_owned()),
                rest.first()
                    .filter(|w| !w.starts_with('('))
                    .map(|w| (*w).to_owned()),
            ),
            _ => (None, None),
        };
        let report = state_text
            .rsplit_once('(')
            .and_then(|(_, r)| r.strip_suffix(')'))
            .map(str::to_owned);
        State::Done { by, on, report }
    } else {
        match words.as_slice() {
            [c, "by", who, rest @ ..] if c.eq_ignore_ascii_case("claimed") => State::Claimed {
                by: (*who).to_owned(),
                since: rest.first().map(|s| (*s).to_owned()),
            },
            _ => State::Open,
        }
    };
    Some(Task {
        id: id.to_ascii_uppercase(),
        priority,
        title: title.to_owned(),
        state,
        line: number,
        indent,
        bullet,
    })
}

impl Task {
    /// The task's line as datum writes it.
    pub fn render(&self) -> String {
        let mark = match self.state {
            State::Open => ' ',
            State::Claimed { .. } => '~',
            State::Done { .. } => 'x',
        };
        let priority = self
            .priority
            .as_ref()
            .map(|p| format!(" [{p}]"))
            .unwrap_or_default();
        let state = match &self.state {
            State::Open => "open".to_owned(),
            State::Claimed { by, since } => match since {
                Some(s) => format!("claimed by {by} {s}"),
                None => format!("claimed by {by}"),
            },
            State::Done { by, on, report } => {
                let mut s = "done".to_owned();
                if let Some(b) = by {
                    s.push_str(&format!(" by {b}"));
                    if let Some(on) = on {
                        s.push_str(&format!(" {on}"));
                    }
                }
                if let Some(r) = report {
                    s.push_str(&format!(" ({r})"));
                }
                s
            }
        };
        format!(
            "{}{} [{mark}] {}{priority} {} — {state}",
            self.indent, self.bullet, self.id, self.title
        )
    }

    /// How `tasks mine`/`list` describe the state (for a terminal: other agents' text
    /// escaped).
    pub fn state_words(&self) -> String {
        match &self.state {
            State::Open => "open".into(),
            State::Claimed { by, .. } => format!("in progress ({})", capability::shown(by)),
            State::Done { .. } => "done".into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Board {
    lines: Vec<String>,
    /// Whether the text ended with a newline (kept on write).
    trailing_newline: bool,
    pub tasks: Vec<Task>,
}

impl Board {
    pub fn parse(text: &str) -> Result<Board, String> {
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        if lines.len() > MAX_LINES {
            return Err(format!(
                "the board has {} lines, over the {MAX_LINES}-line limit",
                lines.len()
            ));
        }
        let tasks = lines
            .iter()
            .enumerate()
            .filter_map(|(i, l)| parse_line(l, i))
            .collect();
        Ok(Board {
            lines,
            trailing_newline: text.ends_with('\n') || text.is_empty(),
            tasks,
        })
    }

    /// A board with no lines (a repository that has none yet).
    pub fn empty() -> Board {
        Board {
            lines: Vec::new(),
            trailing_newline: true,
            tasks: Vec::new(),
        }
    }

    pub fn task(&self, id: &str) -> Option<&Task> {
        let id = id.to_ascii_uppercase();
        self.tasks.iter().find(|t| t.id == id)
    }

    /// Replace one task's line (and only it).
    pub fn set(&mut self, task: &Task) {
        if let Some(line) = self.lines.get_mut(task.line) {
            *line = task.render();
        }
        if let Some(t) = self.tasks.iter_mut().find(|t| t.line == task.line) {
            *t = task.clone();
        }
    }

    pub fn text(&self) -> String {
        let mut s = self.lines.join("\n");
        if self.trailing_newline && !s.is_empty() {
            s.push('\n');
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_three_states_and_hand_edits() {
        let board = Board::parse(
            "# Tasks\n\n- [ ] TASK-042 [HIGH] Cross-runtime audit — open\n* [~] task-43 Update vectors -- claimed by ada 2026-11-27\n  - [x] TASK-044 [low] Fix it — done by bob 2026-11-28 (reports/TASK-044.md)\n- [ ] Read the manual\n- [ ] BUG-7 no state at all\n",
        )
        .unwrap();
        let ids: Vec<&str> = board.tasks.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["TASK-042", "TASK-43", "TASK-044", "BUG-7"]);
        assert_eq!(board.tasks[0].priority.as_deref(), Some("HIGH"));
        assert_eq!(board.tasks[0].title, "Cross-runtime audit");
        assert_eq!(
            board.tasks[1].state,
            State::Claimed {
                by: "ada".into(),
                since: Some("2026-11-27".into())
            }
        );
        assert_eq!(
            board.tasks[2].state,
            State::Done {
                by: Some("bob".into()),
                on: Some("2026-11-28".into()),
                report: Some("reports/TASK-044.md".into())
            }
        );
        assert_eq!(board.tasks[3].state, State::Open);
        assert_eq!(board.tasks[3].title, "no state at all");
    }

    #[test]
    fn an_edit_touches_one_line_only() {
        let text =
            "# Tasks\n- [ ] TASK-1 [HIGH] One — open\n<!-- keep me -->\n  * [ ] TASK-2 Two\n";
        let mut board = Board::parse(text).unwrap();
        let mut t = board.task("task-2").unwrap().clone();
        t.state = State::Claimed {
            by: "ada".into(),
            since: Some("2026-11-27".into()),
        };
        board.set(&t);
        assert_eq!(
            board.text(),
            "# Tasks\n- [ ] TASK-1 [HIGH] One — open\n<!-- keep me -->\n  * [~] TASK-2 Two — claimed by ada 2026-11-27\n"
        );
        // What datum writes, it reads back the same.
        let again = Board::parse(&board.text()).unwrap();
        assert_eq!(again.task("TASK-2").unwrap().state, t.state);
        assert_eq!(
            again.task("TASK-1").unwrap().render(),
            "- [ ] TASK-1 [HIGH] One — open"
        );
    }

    // The hostile-input fuzz target for boards (tests/all/hostile.rs cannot link a second
    // plugin crate beside mib: both export the same root-module symbol).
    use proptest::prelude::*;
    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        /// Task boards from other agents: any line parses to a task or nothing, never a
        /// panic; a task datum rewrites stays one line and reads back the same.
        #[test]
        fn task_board_lines_never_panic_and_rewrite_to_one_line(
            line in r"[ \t]{0,2}[-*] \[[ x~]\] [A-Za-z]{1,4}-[0-9]{1,3}( \[[A-Z]{1,5}\])? .{0,30}( — .{0,20})?",
            raw in proptest::collection::vec(any::<u8>(), 0..120),
        ) {
            for candidate in [line, String::from_utf8_lossy(&raw).into_owned()] {
                if let Some(task) = parse_line(&candidate, 0) {
                    let written = task.render();
                    prop_assert!(!written.contains('\n'));
                    let again = parse_line(&written, 0);
                    prop_assert_eq!(again.map(|t| (t.id, t.state)), Some((task.id.clone(), task.state.clone())));
                }
            }
        }

    }

    #[test]
    fn ids_are_checked() {
        for bad in ["TASK", "-1", "TASK-", "TA SK-1", "TASK-1a", "../x-1"] {
            assert!(!valid_id(bad), "{bad}");
        }
        assert!(parse_line("- [ ] ../etc-1 x", 0).is_none());
    }
}
