//! Crate-wide tests. The layer rule, checked: every `crate::` (and `super::`) path in `src/` is
//! read, and no module may use one from a layer above it, nor may sibling
//! modules of one layer depend on each other in a cycle. Runs with `cargo test`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level modules and their rank: a module may only use lower ranks (or
/// its own top-level module). `main` is the binary.
const LAYERS: &[(&str, u8)] = &[
    ("main", 8),
    ("cli", 7),
    ("startup", 6),
    ("routes", 5),
    ("http", 4),
    ("accounts", 3),
    ("auth", 2),
    ("db", 2),
    ("errors", 1),
    ("layout", 0),
    ("config", 0),
    ("telemetry", 0),
];

fn rank(top: &str) -> Option<u8> {
    LAYERS
        .iter()
        .find(|(name, _)| *name == top)
        .map(|(_, r)| *r)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/accounts/sessions.rs` → `["accounts", "sessions"]`; `mod.rs` names its folder.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

/// Code without `//` comments (doc comments name modules freely).
fn code_of(text: &str) -> String {
    text.lines()
        .map(|line| line.split_once("//").map_or(line, |(code, _)| code))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The paths a file's code names: `crate::a::b`, `crate::{a, b::c}` and
/// `super::…` (resolved against the file's own module), as module paths.
fn references(module: &[String], code: &str, crate_name: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let bytes = code.as_bytes();
    // `a::b::C` up to the first character that ends a path.
    let ident = |s: &str| -> Vec<String> {
        let mut path = Vec::new();
        for seg in s.trim_start().split("::") {
            let name: String = seg
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let ended = name.len() != seg.len();
            if !name.is_empty() {
                path.push(name);
            }
            if ended || path.is_empty() {
                break;
            }
        }
        path
    };
    for (root, base) in [
        (format!("{crate_name}::"), Vec::new()),
        (
            "super::".to_owned(),
            module[..module.len().saturating_sub(1)].to_vec(),
        ),
    ] {
        let mut at = 0;
        while let Some(pos) = code[at..].find(&root) {
            let start = at + pos;
            at = start + root.len();
            let before = start.checked_sub(1).map(|i| bytes[i] as char);
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let rest = &code[at..];
            if let Some(group) = rest.strip_prefix('{') {
                let inner = &group[..group.find('}').unwrap_or(group.len())];
                for item in inner.split(',') {
                    let mut path = base.clone();
                    path.extend(ident(item));
                    found.push(path);
                }
            } else {
                let mut path = base.clone();
                path.extend(ident(rest));
                found.push(path);
            }
        }
    }
    found
}

/// `pub use child::{A, B}` lines of a folder module: item name → child.
fn reexports(code: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for stmt in code.split(';') {
        let stmt = stmt.trim();
        let Some(rest) = stmt.strip_prefix("pub use ") else {
            continue;
        };
        let Some((child, items)) = rest.split_once("::") else {
            continue;
        };
        if child == "crate" || child == "super" {
            continue;
        }
        for item in items.trim_matches(|c| c == '{' || c == '}').split(',') {
            let name = item.trim().split("::").next().unwrap_or("").trim();
            if !name.is_empty() {
                map.insert(name.to_owned(), child.to_owned());
            }
        }
    }
    map
}

#[test]
fn modules_only_use_layers_below_them_and_siblings_form_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut folders: BTreeMap<Vec<String>, BTreeSet<String>> = BTreeMap::new();
    let mut exported: BTreeMap<Vec<String>, BTreeMap<String, String>> = BTreeMap::new();
    let mut sources = Vec::new();
    for file in files.iter().filter(|f| !f.ends_with("src/tests.rs")) {
        let mut module = module_of(&src, file);
        let code = code_of(&std::fs::read_to_string(file).unwrap());
        if file.ends_with("main.rs") {
            module = vec!["main".to_owned()];
        }
        if file.file_name().is_some_and(|n| n == "mod.rs") {
            exported.insert(module.clone(), reexports(&code));
        }
        if module.len() >= 2 {
            folders
                .entry(module[..module.len() - 1].to_vec())
                .or_default()
                .insert(module[module.len() - 1].clone());
        }
        sources.push((module, code));
    }
    // A referenced path, reduced to its top-level module and (when it names
    // one) the sibling file inside it.
    let node = |path: &[String]| -> Vec<String> {
        let Some(top) = path.first() else {
            return Vec::new();
        };
        let mut node = vec![top.clone()];
        if let Some(second) = path.get(1) {
            let children = folders.get(&node);
            if children.is_some_and(|c| c.contains(second)) {
                node.push(second.clone());
            } else if let Some(child) = exported.get(&node).and_then(|e| e.get(second)) {
                node.push(child.clone());
            }
        }
        node
    };

    let mut upward = Vec::new();
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (module, code) in &sources {
        let Some(top) = module.first() else { continue };
        let crate_name = if top == "main" { "gatehouse" } else { "crate" };
        let from = node(module);
        let from_rank = rank(top).unwrap_or_else(|| panic!("module `{top}` is not in LAYERS"));
        for path in references(module, code, crate_name) {
            let to = node(&path);
            let Some(to_top) = to.first() else { continue };
            if to_top == top {
                if to != from && from.len() == 2 && to.len() == 2 {
                    edges.entry(from.clone()).or_default().insert(to);
                }
                continue;
            }
            match rank(to_top) {
                Some(r) if r < from_rank => {}
                _ => upward.push(format!("{} uses {}", module.join("::"), path.join("::"))),
            }
        }
    }
    upward.sort();
    upward.dedup();
    assert!(
        upward.is_empty(),
        "imports against the layers:\n{}",
        upward.join("\n")
    );

    fn visit(
        node: &Vec<String>,
        edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        path: &mut Vec<Vec<String>>,
        done: &mut BTreeSet<Vec<String>>,
    ) -> Option<Vec<Vec<String>>> {
        if let Some(i) = path.iter().position(|n| n == node) {
            return Some(path[i..].to_vec());
        }
        if !done.insert(node.clone()) {
            return None;
        }
        path.push(node.clone());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, path, &mut BTreeSet::new()) {
                return Some(cycle);
            }
        }
        path.pop();
        None
    }
    for start in edges.keys() {
        let cycle = visit(start, &edges, &mut Vec::new(), &mut BTreeSet::new());
        assert!(
            cycle.is_none(),
            "module cycle: {}",
            cycle
                .unwrap_or_default()
                .iter()
                .map(|n| n.join("::"))
                .collect::<Vec<_>>()
                .join(" → ")
        );
    }
}

#[test]
fn the_checker_sees_upward_and_grouped_imports() {
    let module = vec!["db".to_owned(), "users".to_owned()];
    let code = "use crate::{accounts::Requester, config};\nuse super::schema::users;";
    let found = references(&module, code, "crate");
    assert!(found.contains(&vec!["accounts".to_owned(), "Requester".to_owned()]));
    assert!(found.contains(&vec!["config".to_owned()]));
    assert!(found.contains(&vec![
        "db".to_owned(),
        "schema".to_owned(),
        "users".to_owned()
    ]));
    assert!(rank("db") < rank("accounts"));
}
