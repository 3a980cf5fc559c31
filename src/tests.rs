//! The one layer rule the compiler cannot see. The domain is its own crate
//! (`gatehouse_core`, with no web types), so the compiler keeps it from
//! reaching up; inside this crate the modules are ranked top to bottom,
//! `cli` → `startup` → `routes` → `http` → the leaves, and a module may only
//! name (`crate::…`, use trees included) modules ranked below it.

use std::path::{Path, PathBuf};

/// Top-level modules of this crate and their rank; `main` is the binary.
const LAYERS: &[(&str, u8)] = &[
    ("main", 6),
    ("cli", 5),
    ("startup", 4),
    ("routes", 3),
    ("http", 2),
    ("errors", 1),
    ("mail", 1),
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

/// Code without `//` comments (doc comments name modules freely) and without
/// an inline `#[cfg(test)] mod tests` (tests may reach anything).
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

/// The top-level modules a file's code names after `root::`, reading one
/// level of use tree: `crate::a::x` and `crate::{a, b::{c, d}}` give a and b.
fn modules_named(code: &str, root: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut found = Vec::new();
    let needle = format!("{root}::");
    for (at, _) in code.match_indices(&needle) {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &code[at + needle.len()..];
        if let Some(tree) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item_start = true;
            for (i, c) in tree.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && !c.is_whitespace() => {
                        found.push(ident(&tree[i..]));
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            found.push(ident(rest));
        }
    }
    found.retain(|m| !m.is_empty() && m != "self");
    found
}

#[test]
fn modules_only_use_layers_below_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut upward = Vec::new();
    for file in files.iter().filter(|f| !f.ends_with("src/tests.rs")) {
        let rel = file.strip_prefix(&src).unwrap();
        let top = match rel.components().next() {
            Some(c) => c
                .as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_owned(),
            None => continue,
        };
        if top == "lib" {
            continue;
        }
        let (root, from) = if top == "main" {
            ("gatehouse", 6)
        } else {
            let Some(r) = rank(&top) else {
                panic!("module `{top}` is not in LAYERS")
            };
            ("crate", r)
        };
        let code = code_of(&std::fs::read_to_string(file).unwrap());
        for module in modules_named(&code, root) {
            if module == top {
                continue;
            }
            if rank(&module).is_none_or(|to| to >= from) {
                upward.push(format!("{} uses {root}::{module}", rel.display()));
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
}

#[test]
fn the_checker_reads_use_trees() {
    let code =
        "use crate::{http::{a, b::C}, errors};\nfn f() { crate::routes::x(); self_crate::y(); }";
    assert_eq!(modules_named(code, "crate"), ["http", "errors", "routes"]);
    assert!(rank("http") < rank("routes"));
}
