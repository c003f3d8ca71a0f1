//! No import circles: within each crate, and within each directory of a crate, the modules
//! depend on one another one way only (a module's own files count as one module from
//! outside). Read from the sources (`use crate::…`, `crate::…` paths, `super::…`), test code
//! left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Module = Vec<String>;

/// Every `.rs` file under `src`, by its module path.
fn modules(src: &Path) -> BTreeMap<Module, String> {
    let mut found = BTreeMap::new();
    let mut pending = vec![src.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(src).unwrap().with_extension("");
            let mut module: Module = relative
                .iter()
                .map(|part| part.to_string_lossy().into_owned())
                .collect();
            if matches!(
                module.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                module.pop();
            }
            let text = std::fs::read_to_string(&path).unwrap();
            // Unit tests may reach anywhere.
            let text = match text.find("#[cfg(test)]") {
                Some(at) => text[..at].to_owned(),
                None => text,
            };
            found.insert(module, text);
        }
    }
    found
}

/// The paths `text` names through `crate::` and `super::`, from `module`.
fn named_paths(module: &Module, text: &str) -> Vec<Module> {
    let mut paths = Vec::new();
    let words = |rest: &str| -> Vec<String> {
        rest.split("::")
            .map(|part| {
                part.chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect::<String>()
            })
            .take_while(|part| !part.is_empty())
            .collect()
    };
    for (at, _) in text.match_indices("crate::") {
        paths.push(words(&text[at + 7..]));
    }
    for (at, _) in text.match_indices("super::") {
        // Only the first of a chain of `super::`s.
        if text[..at].ends_with("super::") {
            continue;
        }
        let mut rest = &text[at..];
        let mut base = module.clone();
        while let Some(after) = rest.strip_prefix("super::") {
            base.pop();
            rest = after;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for item in group.split(',') {
                let mut path = base.clone();
                path.extend(words(item.trim()));
                paths.push(path);
            }
        } else {
            let mut path = base;
            path.extend(words(rest));
            paths.push(path);
        }
    }
    paths
}

/// The strongly connected groups of more than one module in `edges`.
fn circles(edges: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    // Two modules are in one circle when each reaches the other.
    let reach = |from: &Module| {
        let mut seen = BTreeSet::new();
        let mut pending = vec![from.clone()];
        while let Some(at) = pending.pop() {
            for next in edges.get(&at).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    pending.push(next.clone());
                }
            }
        }
        seen
    };
    let reached: BTreeMap<&Module, BTreeSet<Module>> =
        edges.keys().map(|module| (module, reach(module))).collect();
    let mut groups: Vec<Vec<Module>> = Vec::new();
    for (module, reaches) in &reached {
        if !reaches.contains(*module) || groups.iter().any(|g| g.contains(module)) {
            continue;
        }
        let group: Vec<Module> = reached
            .iter()
            .filter(|(other, back)| reaches.contains(**other) && back.contains(*module))
            .map(|(other, _)| (*other).clone())
            .collect();
        groups.push(group);
    }
    groups
}

/// The import circles of the crate at `src`: among the modules of each directory.
fn import_circles(src: &Path) -> Vec<String> {
    let modules = modules(src);
    let resolve = |path: &Module| -> Option<Module> {
        (0..=path.len())
            .rev()
            .map(|n| path[..n].to_vec())
            .find(|prefix| modules.contains_key(prefix))
    };
    let mut found = Vec::new();
    let directories: BTreeSet<Module> = modules
        .keys()
        .flat_map(|m| (0..m.len()).map(|n| m[..n].to_vec()))
        .collect();
    for directory in directories {
        let depth = directory.len();
        let unit = |m: &Module| -> Option<Module> {
            (m.len() > depth && m[..depth] == directory[..]).then(|| m[..=depth].to_vec())
        };
        let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
        for (module, text) in &modules {
            let Some(from) = unit(module) else { continue };
            for path in named_paths(module, text) {
                let Some(to) = resolve(&path).and_then(|target| unit(&target)) else {
                    continue;
                };
                if to != from {
                    edges.entry(from.clone()).or_default().insert(to);
                }
            }
        }
        for group in circles(&edges) {
            let names: Vec<String> = group.iter().map(|m| m.join("/")).collect();
            found.push(names.join(" ↔ "));
        }
    }
    found
}

#[test]
fn no_crate_has_an_import_circle() {
    let crates = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut found = Vec::new();
    for name in ["keyward-core", "keyward-store", "keyward-server", "keyward"] {
        for circle in import_circles(&crates.join(name).join("src")) {
            found.push(format!("{name}: {circle}"));
        }
    }
    assert!(found.is_empty(), "import circles:\n{}", found.join("\n"));
}

#[test]
fn a_circle_is_found_where_there_is_one() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::write(src.join("lib.rs"), "mod a;\nmod b;\nmod c;\n").unwrap();
    std::fs::write(src.join("a.rs"), "use crate::b::Thing;\n").unwrap();
    std::fs::write(src.join("b.rs"), "pub struct Thing;\nuse super::a;\n").unwrap();
    std::fs::write(src.join("c.rs"), "use crate::a;\n").unwrap();
    assert_eq!(import_circles(src), ["a ↔ b"]);
}
