//! Dependency graph of a compose project: start levels, reverse deps, cycles.
//! It lives in `compose/` because it is a view of the model only (no I/O, no
//! state), and `up`, the healer, rollouts and `muster config --graph` all use
//! this one graph rather than walking `depends_on` themselves.
//!
//! A service's level is the length of the longest dependency chain below it:
//! level 0 needs nothing, level 1 needs only level-0 services, and so on. The
//! services of one level can start in parallel once the levels before them are
//! up; `down` walks the levels in reverse.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;

use super::{Condition, Project};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    /// The cycle as `a -> b -> c -> a` (each service depends on the next).
    #[error("dependency cycle: {0}")]
    Cycle(String),
    #[error("service {service:?} depends on undefined service {dependency:?}")]
    UnknownDependency { service: String, dependency: String },
    #[error("no such service {0:?}")]
    UnknownService(String),
}

/// One `depends_on` edge: `from` needs `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Edge {
    pub from: String,
    pub to: String,
    pub condition: Condition,
    pub required: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub implicit: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Graph {
    levels: Vec<Vec<String>>,
    edges: Vec<Edge>,
    #[serde(skip)]
    needs: BTreeMap<String, BTreeSet<String>>,
    #[serde(skip)]
    needed_by: BTreeMap<String, BTreeSet<String>>,
    #[serde(skip)]
    level_of: BTreeMap<String, usize>,
}

impl Graph {
    /// Builds the graph of the project's enabled services. An edge with
    /// `required: false` to an absent service is skipped with a warning.
    pub fn new(project: &Project) -> Result<Graph, GraphError> {
        Graph::build(project, true)
    }

    /// As [`Graph::new`], without the warning (the loader has reported it already).
    pub(crate) fn new_quiet(project: &Project) -> Result<Graph, GraphError> {
        Graph::build(project, false)
    }

    fn build(project: &Project, warn: bool) -> Result<Graph, GraphError> {
        let mut needs: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut needed_by: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut edges = Vec::new();
        for name in project.services.keys() {
            needs.entry(name.clone()).or_default();
            needed_by.entry(name.clone()).or_default();
        }
        for (name, svc) in &project.services {
            for (dep, edge) in &svc.depends_on {
                if !project.services.contains_key(dep) {
                    if edge.required {
                        return Err(GraphError::UnknownDependency {
                            service: name.clone(),
                            dependency: dep.clone(),
                        });
                    }
                    if warn {
                        tracing::warn!(service = %name, dependency = %dep, "optional dependency is not part of the project; edge skipped");
                    }
                    continue;
                }
                needs.entry(name.clone()).or_default().insert(dep.clone());
                needed_by
                    .entry(dep.clone())
                    .or_default()
                    .insert(name.clone());
                edges.push(Edge {
                    from: name.clone(),
                    to: dep.clone(),
                    condition: edge.condition,
                    required: edge.required,
                    implicit: edge.implicit,
                });
            }
        }
        if let Some(cycle) = find_cycle(&needs) {
            return Err(GraphError::Cycle(cycle.join(" -> ")));
        }
        let mut level_of: BTreeMap<String, usize> = BTreeMap::new();
        for name in needs.keys() {
            compute_level(name, &needs, &mut level_of);
        }
        let depth = level_of.values().copied().max().map_or(0, |m| m + 1);
        let mut levels: Vec<Vec<String>> = vec![Vec::new(); depth];
        for (name, level) in &level_of {
            levels[*level].push(name.clone());
        }
        Ok(Graph {
            levels,
            edges,
            needs,
            needed_by,
            level_of,
        })
    }

    /// Start levels: every service of a level can start in parallel.
    pub fn levels(&self) -> &[Vec<String>] {
        &self.levels
    }

    pub fn edges(&self) -> &[Edge] {
        &self.edges
    }

    pub fn level_of(&self, service: &str) -> Option<usize> {
        self.level_of.get(service).copied()
    }

    pub fn contains(&self, service: &str) -> bool {
        self.needs.contains_key(service)
    }

    /// What `service` needs directly.
    pub fn dependencies(&self, service: &str) -> Vec<&str> {
        self.needs
            .get(service)
            .map(|s| s.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// Who needs `service` directly.
    pub fn dependents(&self, service: &str) -> Vec<&str> {
        self.needed_by
            .get(service)
            .map(|s| s.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// The edge `from -> to`, if `from` depends on `to`.
    pub fn edge(&self, from: &str, to: &str) -> Option<&Edge> {
        self.edges.iter().find(|e| e.from == from && e.to == to)
    }

    /// The services plus everything they need, transitively (`up SERVICES`).
    pub fn closure<S: AsRef<str>>(&self, services: &[S]) -> Result<BTreeSet<String>, GraphError> {
        self.walk(services, &self.needs)
    }

    /// The services plus everything that needs them, transitively (what a restart touches).
    pub fn dependents_closure<S: AsRef<str>>(
        &self,
        services: &[S],
    ) -> Result<BTreeSet<String>, GraphError> {
        self.walk(services, &self.needed_by)
    }

    fn walk<S: AsRef<str>>(
        &self,
        services: &[S],
        adjacency: &BTreeMap<String, BTreeSet<String>>,
    ) -> Result<BTreeSet<String>, GraphError> {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<String> = Vec::new();
        for s in services {
            let s = s.as_ref();
            if !self.contains(s) {
                return Err(GraphError::UnknownService(s.to_string()));
            }
            todo.push(s.to_string());
        }
        while let Some(s) = todo.pop() {
            if seen.insert(s.clone()) {
                if let Some(next) = adjacency.get(&s) {
                    todo.extend(next.iter().cloned());
                }
            }
        }
        Ok(seen)
    }

    /// Start levels restricted to `subset` (empty levels dropped).
    pub fn levels_of(&self, subset: &BTreeSet<String>) -> Vec<Vec<String>> {
        self.levels
            .iter()
            .map(|l| {
                l.iter()
                    .filter(|s| subset.contains(*s))
                    .cloned()
                    .collect::<Vec<_>>()
            })
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// Stop order for `down`: dependents before what they depend on.
    pub fn stop_levels(&self) -> Vec<Vec<String>> {
        self.levels.iter().rev().cloned().collect()
    }

    /// Graphviz: an arrow from each service to what it needs, labelled by condition.
    pub fn to_dot(&self, name: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "digraph {} {{", quote(name));
        let _ = writeln!(out, "  rankdir=BT;");
        let _ = writeln!(out, "  node [shape=box];");
        for (i, level) in self.levels.iter().enumerate() {
            let _ = write!(out, "  {{ rank=same;");
            for s in level {
                let _ = write!(out, " {};", quote(s));
            }
            let _ = writeln!(out, " }} // level {i}");
        }
        for e in &self.edges {
            let label = match e.condition {
                Condition::ServiceStarted => "started",
                Condition::ServiceHealthy => "healthy",
                Condition::ServiceCompletedSuccessfully => "completed",
            };
            let mut attrs = format!("label=\"{label}\"");
            if e.implicit || !e.required {
                attrs.push_str(", style=dashed");
            }
            let _ = writeln!(out, "  {} -> {} [{attrs}];", quote(&e.from), quote(&e.to));
        }
        out.push_str("}\n");
        out
    }
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn compute_level(
    name: &str,
    needs: &BTreeMap<String, BTreeSet<String>>,
    memo: &mut BTreeMap<String, usize>,
) -> usize {
    if let Some(l) = memo.get(name) {
        return *l;
    }
    // Iterative post-order so a long chain cannot overflow the stack.
    let mut stack: Vec<(String, bool)> = vec![(name.to_string(), false)];
    while let Some((n, expanded)) = stack.pop() {
        if memo.contains_key(&n) {
            continue;
        }
        let deps = needs.get(&n).cloned().unwrap_or_default();
        if expanded {
            let level = deps
                .iter()
                .map(|d| memo.get(d).copied().unwrap_or(0) + 1)
                .max()
                .unwrap_or(0);
            memo.insert(n, level);
        } else {
            stack.push((n.clone(), true));
            for d in deps {
                if !memo.contains_key(&d) {
                    stack.push((d, false));
                }
            }
        }
    }
    memo.get(name).copied().unwrap_or(0)
}

/// The first cycle found (in name order), closed: `[a, b, c, a]`.
fn find_cycle(needs: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut mark: BTreeMap<&str, Mark> = needs.keys().map(|k| (k.as_str(), Mark::New)).collect();
    for start in needs.keys() {
        if mark[start.as_str()] != Mark::New {
            continue;
        }
        // Explicit DFS stack of (node, iterator position); `path` mirrors the active nodes.
        let mut path: Vec<&str> = vec![start];
        let mut iters: Vec<std::collections::btree_set::Iter<'_, String>> =
            vec![needs[start].iter()];
        mark.insert(start, Mark::Active);
        while let Some(it) = iters.last_mut() {
            match it.next() {
                Some(next) => match mark.get(next.as_str()).copied().unwrap_or(Mark::Done) {
                    Mark::New => {
                        mark.insert(next, Mark::Active);
                        path.push(next);
                        iters.push(needs[next].iter());
                    }
                    Mark::Active => {
                        let from = path.iter().position(|p| *p == next).unwrap_or(0);
                        let mut cycle: Vec<String> =
                            path[from..].iter().map(|s| s.to_string()).collect();
                        cycle.push(next.clone());
                        return Some(cycle);
                    }
                    Mark::Done => {}
                },
                None => {
                    iters.pop();
                    if let Some(done) = path.pop() {
                        mark.insert(done, Mark::Done);
                    }
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::{Dependency, Service};

    fn project(edges: &[(&str, &[&str])]) -> Project {
        let mut p = Project::default();
        for (name, deps) in edges {
            let mut svc = Service {
                name: name.to_string(),
                replicas: 1,
                ..Default::default()
            };
            for d in *deps {
                svc.depends_on.insert(
                    d.to_string(),
                    Dependency {
                        condition: Condition::ServiceHealthy,
                        required: true,
                        restart: false,
                        implicit: false,
                    },
                );
            }
            p.services.insert(name.to_string(), svc);
        }
        p
    }

    #[test]
    fn levels_are_longest_chains() {
        let g = Graph::new(&project(&[
            ("redis", &[]),
            ("nats", &[]),
            ("a", &["redis"]),
            ("b", &["a", "nats"]),
            ("c", &["redis", "b"]),
        ]))
        .unwrap();
        assert_eq!(
            g.levels(),
            &[
                vec!["nats".to_string(), "redis".to_string()],
                vec!["a".to_string()],
                vec!["b".to_string()],
                vec!["c".to_string()]
            ]
        );
        assert_eq!(g.dependents("redis"), vec!["a", "c"]);
        assert_eq!(g.dependencies("b"), vec!["a", "nats"]);
        let closure = g.closure(&["b"]).unwrap();
        assert_eq!(
            closure.into_iter().collect::<Vec<_>>(),
            vec!["a", "b", "nats", "redis"]
        );
        assert_eq!(g.stop_levels()[0], vec!["c".to_string()]);
        assert!(g.to_dot("p").contains("\"c\" -> \"b\" [label=\"healthy\"]"));
    }

    #[test]
    fn cycle_is_named() {
        let err = Graph::new(&project(&[
            ("a", &["b"]),
            ("b", &["c"]),
            ("c", &["a"]),
            ("d", &[]),
        ]))
        .unwrap_err();
        assert_eq!(err, GraphError::Cycle("a -> b -> c -> a".into()));
        assert_eq!(err.to_string(), "dependency cycle: a -> b -> c -> a");
        let self_loop = Graph::new(&project(&[("a", &["a"])])).unwrap_err();
        assert_eq!(self_loop, GraphError::Cycle("a -> a".into()));
    }

    #[test]
    fn optional_absent_edge_is_skipped() {
        let mut p = project(&[("a", &["ghost"])]);
        p.services
            .get_mut("a")
            .unwrap()
            .depends_on
            .get_mut("ghost")
            .unwrap()
            .required = false;
        let g = Graph::new(&p).unwrap();
        assert!(g.dependencies("a").is_empty());
        assert_eq!(g.levels().len(), 1);
    }
}
