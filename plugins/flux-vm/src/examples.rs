//! The example programs shipped with the plugin (`programs/*.flux`).

/// A shipped example: its source and the result it must give.
#[derive(Debug, Clone, Copy)]
pub struct Example {
    pub name: &'static str,
    pub source: &'static str,
}

impl Example {
    /// What the example's `; expect:` / `; expect-error:` line promises.
    pub fn expectation(&self) -> Expectation {
        for line in self.source.lines() {
            if let Some(rest) = line.trim().strip_prefix("; expect-error:") {
                return Expectation::Trap(rest.trim().to_owned());
            }
            if let Some(rest) = line.trim().strip_prefix("; expect:") {
                let words = rest.trim().trim_start_matches('[').trim_end_matches(']');
                let stack = words
                    .split(',')
                    .filter_map(|w| w.trim().parse().ok())
                    .collect();
                return Expectation::Stack(stack);
            }
        }
        Expectation::Stack(Vec::new())
    }

    /// The first comment line, minus the name.
    pub fn summary(&self) -> &'static str {
        let first = self.source.lines().next().unwrap_or_default();
        first
            .split_once('—')
            .map(|(_, s)| s.trim())
            .unwrap_or(first)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expectation {
    Stack(Vec<i32>),
    Trap(String),
}

macro_rules! examples {
    ($($name:literal),* $(,)?) => {
        &[$(Example { name: $name, source: include_str!(concat!("../programs/", $name, ".flux")) }),*]
    };
}

pub static EXAMPLES: &[Example] = examples![
    "hello",
    "fibonacci",
    "factorial",
    "gcd",
    "sum",
    "sieve",
    "a2a-signal",
    "confidence",
    "subroutine",
    "fuel-loop",
    "countdown",
];

pub fn find(name: &str) -> Option<&'static Example> {
    let name = name.strip_suffix(".flux").unwrap_or(name);
    EXAMPLES.iter().find(|e| e.name == name)
}
