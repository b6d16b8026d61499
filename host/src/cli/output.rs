//! Rendering: text for humans, one JSON document for programs, errors on both.

use serde::Serialize;

use crate::error::Problem;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

pub struct Reporter {
    pub format: Format,
}

impl Reporter {
    pub fn new(format: Format) -> Self {
        Reporter { format }
    }

    pub fn is_json(&self) -> bool {
        self.format == Format::Json
    }

    /// Print a result: `text` for humans, `data` as JSON for programs.
    pub fn emit<T: Serialize>(
        &self,
        data: &T,
        text: impl FnOnce() -> String,
    ) -> anyhow::Result<()> {
        match self.format {
            Format::Json => print_line(&serde_json::to_string_pretty(data)?)?,
            Format::Text => {
                let text = text();
                if !text.is_empty() {
                    print_line(text.trim_end())?;
                }
            }
        }
        Ok(())
    }

    /// A progress note for humans (stderr; silent in JSON mode).
    pub fn note(&self, message: &str) {
        if !self.is_json() {
            eprintln!("{message}");
        }
    }

    /// A progress bar over `len` steps; hidden in JSON mode and when stderr is not a terminal.
    pub fn progress(&self, len: u64, what: &str) -> indicatif::ProgressBar {
        use std::io::IsTerminal;
        if self.is_json() || !std::io::stderr().is_terminal() {
            return indicatif::ProgressBar::hidden();
        }
        let bar = indicatif::ProgressBar::new(len);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{spinner} {msg} [{bar:20}] {pos}/{len}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(what.to_owned());
        bar
    }

    /// A spinner that appears only if the work takes a while (terminal, text mode).
    pub fn spinner(&self, what: &str) -> indicatif::ProgressBar {
        use std::io::IsTerminal;
        if self.is_json() || !std::io::stderr().is_terminal() {
            return indicatif::ProgressBar::hidden();
        }
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_message(what.to_owned());
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        bar
    }

    /// Report a failure in the one error shape (see [`crate::error`]) and return the
    /// process exit code for it.
    pub fn error(&self, e: &anyhow::Error) -> std::process::ExitCode {
        let problem = Problem::of(e);
        match self.format {
            Format::Json => {
                let _ = print_line(&problem.to_json().to_string());
            }
            Format::Text => eprintln!("{}", problem.to_text()),
        }
        std::process::ExitCode::from(problem.exit_code())
    }
}

/// Print one line on stdout. A reader that went away (`datum status | head`) is not
/// an error and no reason to panic: the rest is simply not printed.
pub fn print_line(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|_| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(anyhow::Error::new(e).context("cannot write to standard output")),
    }
}

/// A simple table for human output.
pub fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::NOTHING);
    t.set_header(header.iter().map(|h| h.to_uppercase()));
    for r in rows {
        t.add_row(r);
    }
    t.to_string()
}
