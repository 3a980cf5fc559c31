//! Crate-wide tests. The layer rule, checked: every `crate::` and `super::`
//! path in `src/` (use trees included) is read; no module may use one from a
//! layer above it, and the modules inside a layer (a folder module and its
//! files) may not depend on each other in a cycle. Runs with `cargo test`.

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
    ("mail", 2),
    ("errors", 1),
    ("layout", 0),
    ("config", 0),
    ("telemetry", 0),
    ("threads", 0),
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

/// Code without `//` comments (doc comments name modules freely) and without
/// an inline `#[cfg(test)] mod tests` (tests may reach anything, and their
/// `super::` means the file itself).
fn code_of(text: &str) -> String {
    let code = text
        .lines()
        .map(|line| line.split_once("//").map_or(line, |(code, _)| code))
        .collect::<Vec<_>>()
        .join("\n");
    match code.find("#[cfg(test)]\nmod tests {") {
        Some(at) => code[..at].to_owned(),
        None => code,
    }
}

/// The paths a file's code names: `crate::a::b`, `crate::{a, b::c}` and
/// `super::…` (resolved against the file's own module), as module paths.
/// Expands a use tree (`a::b`, `a::{b, c::{d}}`) written after a root into paths.
fn expand_tree(text: &str, prefix: &[String], out: &mut Vec<Vec<String>>) {
    let mut path = prefix.to_vec();
    let mut rest = text.trim_start();
    loop {
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut end = group.len();
            let mut start = 0;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 1 => {
                        expand_tree(&group[start..i], &path, out);
                        start = i + 1;
                    }
                    _ => {}
                }
                if depth == 0 {
                    end = i;
                    break;
                }
            }
            expand_tree(&group[start..end], &path, out);
            return;
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if name.is_empty() {
            break;
        }
        if name != "self" {
            path.push(name.clone());
        }
        match rest[name.len()..].strip_prefix("::") {
            Some(next) => rest = next.trim_start(),
            None => break,
        }
    }
    if path.len() > prefix.len() || prefix.is_empty() {
        out.push(path);
    }
}

/// The paths a file's code names: `crate::…` (`gatehouse::…` in the binary),
/// `super::…` resolved against the file's module, and in a folder module its
/// own children (`child::…`), as module paths.
fn references(
    module: &[String],
    code: &str,
    crate_name: &str,
    children: &BTreeSet<String>,
) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let mut roots = vec![
        (format!("{crate_name}::"), Vec::new()),
        (
            "super::".to_owned(),
            module[..module.len().saturating_sub(1)].to_vec(),
        ),
    ];
    for child in children {
        roots.push((
            format!("{child}::"),
            [module, std::slice::from_ref(child)].concat(),
        ));
    }
    for (root, base) in roots {
        let mut at = 0;
        while let Some(pos) = code[at..].find(&root) {
            let start = at + pos;
            at = start + root.len();
            let before = code[..start].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let mut paths = Vec::new();
            expand_tree(&code[at..], &base, &mut paths);
            if paths.is_empty() {
                paths.push(base.clone());
            }
            found.extend(paths);
        }
    }
    found
}

/// `pub use child::…` items of a folder module: item name → child.
fn reexports(code: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for stmt in code.split(';') {
        let Some(rest) = stmt.trim().strip_prefix("pub use ") else {
            continue;
        };
        let mut paths = Vec::new();
        expand_tree(rest, &[], &mut paths);
        for path in paths {
            if let (Some(child), Some(item)) = (path.first(), path.last())
                && path.len() >= 2
                && child != "crate"
                && child != "super"
            {
                map.insert(item.clone(), child.clone());
            }
        }
    }
    map
}

/// The first cycle found in `edges`, if any.
fn find_cycle(edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Option<Vec<Vec<String>>> {
    fn visit(
        node: &Vec<String>,
        edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        stack: &mut Vec<Vec<String>>,
        done: &mut BTreeSet<Vec<String>>,
    ) -> Option<Vec<Vec<String>>> {
        if let Some(i) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[i..].to_vec();
            cycle.push(node.clone());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.clone());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.clone());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|start| visit(start, edges, &mut Vec::new(), &mut done))
}

#[test]
fn modules_only_use_layers_below_them_and_form_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut folders: BTreeMap<Vec<String>, BTreeSet<String>> = BTreeMap::new();
    let mut exported: BTreeMap<Vec<String>, BTreeMap<String, String>> = BTreeMap::new();
    let mut sources = Vec::new();
    for file in files.iter().filter(|f| !f.ends_with("src/tests.rs")) {
        let code = code_of(&std::fs::read_to_string(file).unwrap());
        let module = if file.ends_with("src/main.rs") {
            vec!["main".to_owned()]
        } else {
            module_of(&src, file)
        };
        if file.file_name().is_some_and(|n| n == "mod.rs") {
            exported.insert(module.clone(), reexports(&code));
        }
        if module.len() >= 2 {
            folders
                .entry(module[..module.len() - 1].to_vec())
                .or_default()
                .insert(module[module.len() - 1].clone());
        }
        sources.push((file.clone(), module, code));
    }
    // A path, reduced to its top-level module and, when it names one (or an
    // item its folder module re-exports from one), the file inside it.
    let node = |path: &[String]| -> Vec<String> {
        let Some(top) = path.first() else {
            return Vec::new();
        };
        let mut node = vec![top.clone()];
        if let Some(second) = path.get(1) {
            if folders.get(&node).is_some_and(|c| c.contains(second)) {
                node.push(second.clone());
            } else if let Some(child) = exported.get(&node).and_then(|e| e.get(second)) {
                node.push(child.clone());
            }
        }
        node
    };

    let no_children = BTreeSet::new();
    let mut upward = Vec::new();
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (file, module, code) in &sources {
        let Some(top) = module.first() else { continue };
        let crate_name = if top == "main" { "gatehouse" } else { "crate" };
        let from = node(module);
        let from_rank = rank(top).unwrap_or_else(|| panic!("module `{top}` is not in LAYERS"));
        let children = if file.file_name().is_some_and(|n| n == "mod.rs") {
            folders.get(module).unwrap_or(&no_children)
        } else {
            &no_children
        };
        for path in references(module, code, crate_name, children) {
            let to = node(&path);
            let Some(to_top) = to.first() else { continue };
            if to_top == top {
                if to != from {
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
    if let Some(cycle) = find_cycle(&edges) {
        let names: Vec<String> = cycle.iter().map(|n| n.join("::")).collect();
        panic!("module cycle: {}", names.join(" → "));
    }
}

#[test]
fn the_checker_reads_use_trees_and_finds_cycles() {
    let module = vec!["db".to_owned(), "users".to_owned()];
    let code =
        "use crate::{accounts::{Requester, service::Accounts}, config};\nuse super::schema::users;";
    let found = references(&module, code, "crate", &BTreeSet::new());
    let path = |p: &[&str]| p.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    assert!(found.contains(&path(&["accounts", "Requester"])));
    assert!(found.contains(&path(&["accounts", "service", "Accounts"])));
    assert!(found.contains(&path(&["config"])));
    assert!(found.contains(&path(&["db", "schema", "users"])));
    assert!(rank("db") < rank("accounts"));

    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    edges
        .entry(path(&["http"]))
        .or_default()
        .insert(path(&["http", "site"]));
    assert!(find_cycle(&edges).is_none());
    edges
        .entry(path(&["http", "site"]))
        .or_default()
        .insert(path(&["http"]));
    assert!(find_cycle(&edges).is_some());
}
