//! The bootcamp's data: exercises and role curricula, shipped with the plugin
//! (`curricula.toml`, one page per exercise in `bootcamp/`). Checked by the tests, so
//! a typo in the data fails the build's tests, not an agent's onboarding.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exercise {
    pub id: String,
    pub title: String,
    /// Which machine check judges it (see `checks.rs`).
    pub check: String,
    /// For tool checks: how many `; case:` lines the tool must declare.
    #[serde(default)]
    pub min_cases: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Role {
    pub name: String,
    pub summary: String,
    pub abilities: Vec<String>,
    pub exercises: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Curricula {
    #[serde(rename = "exercise")]
    pub exercises: Vec<Exercise>,
    #[serde(rename = "role")]
    pub roles: Vec<Role>,
}

/// The checks `checks.rs` knows.
pub const CHECKS: &[&str] = &[
    "hello",
    "manifest",
    "recipe",
    "tool",
    "conformance",
    "bottle",
    "analysis",
    "task-done",
];

macro_rules! pages {
    ($($id:literal),* $(,)?) => {
        &[$(($id, include_str!(concat!("../bootcamp/", $id, ".md")))),*]
    };
}

static PAGES: &[(&str, &str)] = pages![
    "hello-world",
    "tool-manifest",
    "run-a-recipe",
    "first-tool",
    "conformance",
    "first-bottle",
    "analysis",
    "close-a-task",
    "tested-tool",
];

/// The recipe the run-a-recipe exercise follows (written to `recipes/`).
pub const FIRST_RECIPE: &str = include_str!("../bootcamp/first-recipe.md");

impl Curricula {
    pub fn shipped() -> Curricula {
        // The shipped data is checked by `shipped_data_is_consistent`; an empty set is
        // what a broken build would show rather than a panic.
        toml::from_str(include_str!("../curricula.toml")).unwrap_or(Curricula {
            exercises: Vec::new(),
            roles: Vec::new(),
        })
    }

    pub fn role(&self, name: &str) -> Option<&Role> {
        self.roles.iter().find(|r| r.name == name)
    }

    pub fn exercise(&self, id: &str) -> Option<&Exercise> {
        self.exercises.iter().find(|e| e.id == id)
    }

    pub fn role_names(&self) -> Vec<&str> {
        self.roles.iter().map(|r| r.name.as_str()).collect()
    }

    /// A role's exercises in order, numbered from 1.
    pub fn plan(&self, role: &Role) -> Vec<(usize, &Exercise)> {
        role.exercises
            .iter()
            .filter_map(|id| self.exercise(id))
            .enumerate()
            .map(|(i, e)| (i + 1, e))
            .collect()
    }
}

/// `bootcamp/NN-ID`: where an exercise's TASK.md and RESULT.md live.
pub fn folder(n: usize, exercise: &Exercise) -> String {
    format!("bootcamp/{n:02}-{}", exercise.id)
}

/// An exercise's page for an agent.
pub fn page(n: usize, exercise: &Exercise, agent: &str) -> String {
    let text = PAGES
        .iter()
        .find(|(id, _)| *id == exercise.id)
        .map_or("", |(_, t)| t);
    text.replace("{{n}}", &n.to_string())
        .replace("{{folder}}", &folder(n, exercise))
        .replace("{{name}}", agent)
        .replace("{{min_cases}}", &exercise.min_cases.max(1).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_data_is_consistent() {
        let c: Curricula = toml::from_str(include_str!("../curricula.toml")).unwrap();
        for role in ["generalist", "researcher", "quartermaster", "engineer"] {
            let r = c
                .role(role)
                .unwrap_or_else(|| panic!("no {role} curriculum"));
            // The original plan's six come first, in order, for every role.
            assert_eq!(
                &r.exercises[..6],
                [
                    "hello-world",
                    "tool-manifest",
                    "run-a-recipe",
                    "first-tool",
                    "conformance",
                    "first-bottle"
                ]
            );
            assert!(!r.abilities.is_empty());
        }
        for r in &c.roles {
            for id in &r.exercises {
                assert!(
                    c.exercise(id).is_some(),
                    "{} names unknown exercise {id}",
                    r.name
                );
            }
        }
        for e in &c.exercises {
            assert!(
                CHECKS.contains(&e.check.as_str()),
                "{} has unknown check {}",
                e.id,
                e.check
            );
            assert!(
                PAGES.iter().any(|(id, _)| *id == e.id),
                "{} has no page",
                e.id
            );
            let p = page(4, e, "ada");
            assert!(p.starts_with("# Exercise 4: "), "{p}");
            assert!(!p.contains("{{"), "{} leaves a placeholder: {p}", e.id);
        }
    }
}
