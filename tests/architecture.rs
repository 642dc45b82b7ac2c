//! The layering of `api/` (docs/ARCHITECTURE.md) as a test: no import circles between its
//! top-level modules, and the lower layers never reach up into routes, services or routing.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

/// Top-level module → the top-level modules its code names with `crate::…`.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read api/src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().and_then(|e| e.to_str()) != Some("rs") {
                continue;
            }
            let rel = path.strip_prefix(src).expect("under src");
            let first = rel
                .components()
                .next()
                .and_then(|c| c.as_os_str().to_str())
                .unwrap_or_default();
            let module = first.trim_end_matches(".rs").to_owned();
            let text = std::fs::read_to_string(&path).expect("read source");
            let deps = graph.entry(module.clone()).or_default();
            for name in crate_paths(&text) {
                if name != module {
                    deps.insert(name);
                }
            }
        }
    }
    graph
}

/// The first segment of every `crate::` path, including each name of `use crate::{a, b::c}`.
fn crate_paths(text: &str) -> BTreeSet<String> {
    let code: String = text
        .lines()
        .map(|l| l.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    let mut names = BTreeSet::new();
    let ident = |s: &str| {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect::<String>()
    };
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        names.insert(ident(item.trim()));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 {
                    item.push(c);
                }
            }
            names.insert(ident(item.trim()));
        } else {
            names.insert(ident(rest));
        }
    }
    names.remove("");
    names
}

/// Modules that lie on a cycle, found by walking from each module.
fn modules_on_cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> BTreeSet<String> {
    let mut on_cycle = BTreeSet::new();
    for start in graph.keys() {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<&String> = graph[start].iter().collect();
        while let Some(m) = todo.pop() {
            if m == start {
                on_cycle.insert(start.clone());
                break;
            }
            if seen.insert(m.clone())
                && let Some(next) = graph.get(m)
            {
                todo.extend(next.iter());
            }
        }
    }
    on_cycle
}

fn api_graph() -> BTreeMap<String, BTreeSet<String>> {
    module_graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("api/src"))
}

#[test]
fn api_modules_have_no_import_circles() {
    let graph = api_graph();
    assert!(graph.contains_key("routes") && graph.contains_key("service"));
    let cycles = modules_on_cycles(&graph);
    assert!(
        cycles.is_empty(),
        "modules of api/ on an import circle: {cycles:?}\n{graph:#?}"
    );
}

#[test]
fn lower_layers_never_reach_up() {
    let graph = api_graph();
    let upper = ["routes", "service", "routing", "app", "serve", "background"];
    let lower = [
        "auth",
        "permissions",
        "store",
        "identity",
        "audit",
        "usage",
        "tiers",
        "error",
        "config",
        "secrets",
        "mail",
        "state",
    ];
    for module in lower {
        let deps = graph.get(module).cloned().unwrap_or_default();
        for up in upper {
            assert!(
                !deps.contains(up),
                "`{module}` uses `{up}`, a layer above it"
            );
        }
    }
}

#[test]
fn the_circle_check_can_fail() {
    let mut graph = BTreeMap::new();
    graph.insert("a".to_owned(), BTreeSet::from(["b".to_owned()]));
    graph.insert("b".to_owned(), BTreeSet::from(["a".to_owned()]));
    graph.insert("c".to_owned(), BTreeSet::from(["a".to_owned()]));
    let found = modules_on_cycles(&graph);
    assert_eq!(found, BTreeSet::from(["a".to_owned(), "b".to_owned()]));
    let paths =
        crate_paths("use crate::{x::Y, z, w::{p, q}};\nlet _ = crate::v::f(); // crate::no");
    assert_eq!(
        paths,
        BTreeSet::from(["v", "w", "x", "z"].map(str::to_owned))
    );
}
