//! Who is linked to whom: `[[links]]` from every CAPABILITY.toml, plus the bottle
//! traffic this workshop has seen. Drawn as an ASCII tree (the `reports-to` hierarchy,
//! then every other link), Graphviz DOT or Mermaid.

use std::collections::{BTreeMap, BTreeSet};

use capability::shown;
use serde::Serialize;

use crate::fleet::{headline, Agent};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Edge {
    pub from: String,
    pub to: String,
    pub kind: String,
    /// Bottles carried along this edge (0 for declared links).
    pub bottles: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Topology {
    pub agents: Vec<Node>,
    pub edges: Vec<Edge>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Node {
    pub name: String,
    pub label: String,
    /// Named by a link but not found in the fleet.
    pub missing: bool,
}

/// Build the graph. `traffic` is `(from, to) → bottles` seen in this workshop.
pub fn build(agents: &[Agent], traffic: &BTreeMap<(String, String), usize>) -> Topology {
    let mut nodes: BTreeMap<String, Node> = agents
        .iter()
        .map(|a| {
            (
                a.name.clone(),
                Node {
                    name: a.name.clone(),
                    label: headline(a),
                    missing: false,
                },
            )
        })
        .collect();
    let mut edges = BTreeSet::new();
    for a in agents {
        for l in &a.links {
            edges.insert(Edge {
                from: a.name.clone(),
                to: shown(&l.to),
                kind: shown(&l.kind),
                bottles: 0,
            });
        }
    }
    for ((from, to), n) in traffic {
        edges.insert(Edge {
            from: shown(from),
            to: shown(to),
            kind: "bottles".into(),
            bottles: *n,
        });
    }
    for e in &edges {
        for end in [&e.from, &e.to] {
            nodes.entry(end.clone()).or_insert_with(|| Node {
                name: end.clone(),
                label: format!("{end} (not in the fleet)"),
                missing: true,
            });
        }
    }
    Topology {
        agents: nodes.into_values().collect(),
        edges: edges.into_iter().collect(),
    }
}

impl Topology {
    fn label(&self, name: &str) -> String {
        self.agents
            .iter()
            .find(|n| n.name == name)
            .map_or_else(|| name.to_owned(), |n| n.label.clone())
    }

    /// The `reports-to` hierarchy as a tree, then every other link, one a line.
    pub fn text(&self) -> String {
        let mut reports: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        let mut has_boss = BTreeSet::new();
        for e in self.edges.iter().filter(|e| e.kind == "reports-to") {
            reports
                .entry(e.to.as_str())
                .or_default()
                .push(e.from.as_str());
            has_boss.insert(e.from.as_str());
        }
        let mut out = format!(
            "Fleet topology: {} agents, {} links\n\n",
            self.agents.iter().filter(|n| !n.missing).count(),
            self.edges.len()
        );
        let mut drawn = BTreeSet::new();
        let roots: Vec<&str> = self
            .agents
            .iter()
            .map(|n| n.name.as_str())
            .filter(|n| !has_boss.contains(n))
            .collect();
        for root in &roots {
            self.draw(root, "", "", &reports, &mut drawn, &mut out);
        }
        // Agents caught in a reports-to cycle have no root: draw them too.
        for n in &self.agents {
            if !drawn.contains(n.name.as_str()) {
                self.draw(&n.name, "", "", &reports, &mut drawn, &mut out);
            }
        }
        let others: Vec<&Edge> = self
            .edges
            .iter()
            .filter(|e| e.kind != "reports-to")
            .collect();
        if !others.is_empty() {
            out.push_str("\nOther links:\n");
            for e in others {
                let kind = if e.bottles > 0 {
                    format!("bottles ×{}", e.bottles)
                } else {
                    e.kind.clone()
                };
                out.push_str(&format!("  {} ──{kind}──▶ {}\n", e.from, e.to));
            }
        }
        out
    }

    fn draw<'a>(
        &'a self,
        name: &'a str,
        prefix: &str,
        branch: &str,
        reports: &BTreeMap<&'a str, Vec<&'a str>>,
        drawn: &mut BTreeSet<&'a str>,
        out: &mut String,
    ) {
        if !drawn.insert(name) {
            out.push_str(&format!("{prefix}{branch}{name} (see above)\n"));
            return;
        }
        out.push_str(&format!("{prefix}{branch}{}\n", self.label(name)));
        let children = reports.get(name).cloned().unwrap_or_default();
        let next_prefix = format!(
            "{prefix}{}",
            match branch {
                "" => "",
                "└── " => "    ",
                _ => "│   ",
            }
        );
        for (i, child) in children.iter().enumerate() {
            let last = i + 1 == children.len();
            self.draw(
                child,
                &next_prefix,
                if last { "└── " } else { "├── " },
                reports,
                drawn,
                out,
            );
        }
    }

    /// Graphviz: `datum fleet topology --as dot | dot -Tsvg > fleet.svg`.
    pub fn dot(&self) -> String {
        let q = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
        let mut out =
            String::from("digraph fleet {\n  rankdir=BT;\n  node [shape=box, style=rounded];\n");
        for n in &self.agents {
            let style = if n.missing { ", style=dashed" } else { "" };
            out.push_str(&format!(
                "  \"{}\" [label=\"{}\"{style}];\n",
                q(&n.name),
                q(&n.label)
            ));
        }
        for e in &self.edges {
            let label = if e.bottles > 0 {
                format!("bottles ×{}", e.bottles)
            } else {
                e.kind.clone()
            };
            let style = if e.kind == "reports-to" {
                ""
            } else {
                ", style=dashed"
            };
            out.push_str(&format!(
                "  \"{}\" -> \"{}\" [label=\"{}\"{style}];\n",
                q(&e.from),
                q(&e.to),
                q(&label)
            ));
        }
        out.push_str("}\n");
        out
    }

    /// Mermaid: paste into any markdown that renders it.
    pub fn mermaid(&self) -> String {
        // Mermaid ids must be plain; labels are quoted with its own entity escapes.
        let id: BTreeMap<&str, String> = self
            .agents
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.as_str(), format!("a{i}")))
            .collect();
        let q = |s: &str| {
            s.replace('&', "#amp;")
                .replace('"', "#quot;")
                .replace('<', "#lt;")
                .replace('>', "#gt;")
                .replace('|', "#124;")
        };
        let mut out = String::from("graph BT\n");
        for n in &self.agents {
            out.push_str(&format!("  {}[\"{}\"]\n", id[n.name.as_str()], q(&n.label)));
        }
        for e in &self.edges {
            let label = if e.bottles > 0 {
                format!("bottles ×{}", e.bottles)
            } else {
                e.kind.clone()
            };
            let arrow = if e.kind == "reports-to" {
                "-->"
            } else {
                "-.->"
            };
            out.push_str(&format!(
                "  {} {arrow}|\"{}\"| {}\n",
                id[e.from.as_str()],
                q(&label),
                id[e.to.as_str()]
            ));
        }
        out
    }
}
