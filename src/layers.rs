//! Tests that keep the crate's layering (see the crate docs): a module uses only modules listed
//! before it in [`LAYERS`], so lower layers take plain settings and never import `config`; a
//! module never reaches the modules [`NEVER`] forbids it, not even through another one; the
//! files of the modules [`IN_A_LINE`] depend on each other without a circle; and only `secrets`
//! and `tripletex` see a token's text.
//!
//! The check reads the source: `//` comments are dropped, then every `crate::…` and `super::…` path
//! (including `use crate::{a, b::c}` groups) is resolved to the top-level module it names.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

/// Every library module, lowest layer first. A new module goes where its imports put it.
const LAYERS: &[&str] = &[
    "logging",
    "files",
    "checks",
    "secrets",
    "store",
    "tripletex",
    // Above tripletex: the registry is the client's `Observer`.
    "metrics",
    "sync",
    "config",
    // Takes a NotifyConfig; the outbox that will use it belongs to the daemon, above.
    "notify",
    "pass",
    "webhooks",
    "status",
    // Renders `status`'s shapes; the daemon owns its board and serves it on the metrics
    // endpoint, which takes the pages as a plain function.
    "page",
    "daemon",
];

/// (module, forbidden): pairs LAYERS allows (the forbidden module is lower, or unrelated) that
/// must still never be: the module may not use the forbidden one, directly or through any module
/// it uses. One line per rule, with why.
const NEVER: &[(&str, &str)] = &[
    // The HTTP client knows HTTP, not sled: it reports through `tripletex::Observer`, and callers
    // persist what it returns. (It once reached the store through the concrete metrics registry.)
    ("tripletex", "store"),
];

/// The "never" rule for crates: no library module (the daemon) may name these. The simulator
/// plays Tripletex for the binary's `demo` and `sim` and for the tests; a daemon that could reach
/// it might one day talk to it in production. (Cargo keeps it out of the library's dependencies
/// too; this says why, and catches a path written before someone adds the dependency back.)
const NEVER_CRATES: &[&str] = &["tripletex_sim"];

/// Directory modules whose files depend on each other in a line: a file names its siblings
/// (`super::sibling`) but no item of `mod.rs`, which only declares, re-exports and runs, and no
/// two files need each other, even through others.
const IN_A_LINE: &[&str] = &["tripletex", "daemon"];

/// Where `ExposeSecret` may be used: the token's owner and the HTTP layer that sends it.
const MAY_EXPOSE: &[&str] = &["secrets", "tripletex"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The `mod NAME;` lines of lib.rs (whatever attributes precede them), but this one.
fn lib_modules() -> Vec<String> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    code(&lib)
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let l = l.strip_prefix("pub ").unwrap_or(l);
            l.strip_prefix("mod ")?.strip_suffix(';').map(str::to_owned)
        })
        .filter(|m| m != "layers")
        .collect()
}

/// The module's files, each with its module path (`tripletex/client.rs` → tripletex, client).
fn module_files(module: &str) -> Vec<(PathBuf, Vec<String>)> {
    let file = src().join(format!("{module}.rs"));
    let mut files = Vec::new();
    if file.exists() {
        files.push((file, vec![module.to_owned()]));
    }
    let mut dirs = vec![(src().join(module), vec![module.to_owned()])];
    while let Some((dir, path)) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let p = entry.unwrap().path();
            let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
            let mut child = path.clone();
            if p.is_dir() {
                child.push(stem);
                dirs.push((p, child));
            } else if p.extension().is_some_and(|e| e == "rs") {
                if stem != "mod" {
                    child.push(stem);
                }
                files.push((p, child));
            }
        }
    }
    files
}

/// Whether the file is a module its parent declares `#[cfg(test)]` (tests may use any layer).
fn test_only(file: &Path) -> bool {
    let (Some(dir), Some(stem)) = (file.parent(), file.file_stem()) else {
        return false;
    };
    let parent = [dir.join("mod.rs"), dir.with_extension("rs")]
        .into_iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default();
    let parent: String = code(&parent).split_whitespace().collect();
    parent.contains(&format!("#[cfg(test)]mod{};", stem.to_string_lossy()))
}

/// The source without `//` comments (the crate has no block comments). A `//` after an odd
/// number of quotes on its line is inside a string and stays.
fn code(source: &str) -> String {
    source
        .lines()
        .map(|line| {
            let mut quotes = 0;
            let mut prev = ' ';
            for (i, c) in line.char_indices() {
                match c {
                    '"' if prev != '\\' => quotes += 1,
                    '/' if prev == '/' && quotes % 2 == 0 => return &line[..i - 1],
                    _ => {}
                }
                prev = c;
            }
            line
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules a file at `module_path` names through `crate::` or `super::` paths.
fn uses(source: &str, module_path: &[String]) -> BTreeSet<String> {
    let code = code(source);
    let compact = |s: &str| s.split_whitespace().collect::<String>();
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        // Skip e.g. `my_crate::`.
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        heads(&compact(&code[at + "crate::".len()..]), &mut found);
    }
    let code = compact(&code);
    let mut rest = code.as_str();
    while let Some(at) = rest.find("super::") {
        let mut after = &rest[at..];
        let mut climbs = 0;
        while let Some(r) = after.strip_prefix("super::") {
            climbs += 1;
            after = r;
        }
        if climbs >= module_path.len() {
            heads(after, &mut found);
        }
        rest = after;
    }
    found
}

/// The first segment of a path, or of each item of a `{…}` group.
fn heads(path: &str, found: &mut BTreeSet<String>) {
    let mut add = |s: &str| {
        let ident: String = s
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        // An empty item is a trailing comma or a glob.
        if !ident.is_empty() {
            found.insert(ident);
        }
    };
    let Some(group) = path.strip_prefix('{') else {
        add(path);
        return;
    };
    let (mut depth, mut start) = (0usize, 0);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                add(&group[start..i]);
                return;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                add(&group[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
}

#[test]
fn every_library_module_has_a_layer() {
    let mut modules = lib_modules();
    modules.sort();
    let mut layered: Vec<String> = LAYERS.iter().map(|m| m.to_string()).collect();
    layered.sort();
    assert_eq!(
        modules, layered,
        "lib.rs's modules and LAYERS in src/layers.rs differ: add a new module to LAYERS where its imports put it"
    );
}

#[test]
fn modules_use_only_lower_layers() {
    let mut wrong = Vec::new();
    for (rank, module) in LAYERS.iter().enumerate() {
        for (file, module_path) in module_files(module) {
            if test_only(&file) {
                continue;
            }
            let source = std::fs::read_to_string(&file).unwrap();
            for used in uses(&source, &module_path) {
                let Some(used_rank) = LAYERS.iter().position(|m| *m == used) else {
                    continue;
                };
                if used_rank > rank {
                    wrong.push(format!("{} uses {used}", file.display()));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "a lower layer imports a higher one (pass it plain settings instead): {wrong:#?}"
    );
}

/// What each library module's files use (test-only files left out, as in the layering test).
fn module_uses() -> BTreeMap<String, BTreeSet<String>> {
    LAYERS
        .iter()
        .map(|module| {
            let used = module_files(module)
                .into_iter()
                .filter(|(file, _)| !test_only(file))
                .flat_map(|(file, path)| uses(&std::fs::read_to_string(file).unwrap(), &path))
                .filter(|used| used != module)
                .collect();
            (module.to_string(), used)
        })
        .collect()
}

/// How `from` reaches `to` through `graph` (`from`, the modules between, `to`), if it does.
fn reach(graph: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> Option<Vec<String>> {
    let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([from]);
    while let Some(at) = queue.pop_front() {
        for next in graph.get(at).into_iter().flatten() {
            if next == from || came_from.contains_key(next.as_str()) {
                continue;
            }
            came_from.insert(next, at);
            if next == to {
                let mut chain = vec![to.to_owned()];
                let mut step = to;
                while step != from {
                    step = came_from[step];
                    chain.push(step.to_owned());
                }
                chain.reverse();
                return Some(chain);
            }
            queue.push_back(next);
        }
    }
    None
}

#[test]
fn no_module_reaches_what_never_forbids() {
    let graph = module_uses();
    let mut wrong = Vec::new();
    for (module, forbidden) in NEVER {
        assert!(
            LAYERS.contains(module),
            "NEVER names {module}, which is not in LAYERS"
        );
        if let Some(chain) = reach(&graph, module, forbidden) {
            wrong.push(chain.join(" → "));
        }
    }
    assert!(
        wrong.is_empty(),
        "a module reaches one NEVER forbids it (see src/layers.rs for why): {wrong:#?}"
    );
}

#[test]
fn reach_follows_uses_through_other_modules() {
    let set = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    let graph = BTreeMap::from([
        ("tripletex".to_owned(), set(&["checks", "metrics"])),
        ("metrics".to_owned(), set(&["store"])),
        ("store".to_owned(), set(&["checks"])),
    ]);
    assert_eq!(
        reach(&graph, "tripletex", "store"),
        Some(vec!["tripletex".into(), "metrics".into(), "store".into()])
    );
    assert_eq!(reach(&graph, "store", "tripletex"), None);
}

/// The source up to its `#[cfg(test)]` module (a file's tests come last; they may use anything).
fn without_tests(source: &str) -> String {
    let code = code(source);
    let compact: String = code.split_whitespace().collect();
    match compact.find("#[cfg(test)]mod") {
        Some(at) => compact[..at].to_owned(),
        None => compact,
    }
}

/// What a child file of a directory module names through exactly one `super::`: its sibling
/// files, or items of the parent's `mod.rs`.
fn through_parent(source: &str) -> BTreeSet<String> {
    let code = without_tests(source);
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("super::") {
        let after = &code[at + "super::".len()..];
        if !after.starts_with("super::") && !code[..at].ends_with("super::") {
            heads(after, &mut found);
        }
    }
    found
}

#[test]
fn the_files_of_line_modules_depend_in_a_line() {
    let mut wrong = Vec::new();
    for module in IN_A_LINE {
        let mut files = BTreeMap::new();
        for (file, path) in module_files(module) {
            if path.len() != 2 || test_only(&file) {
                continue;
            }
            let named = through_parent(&std::fs::read_to_string(&file).unwrap());
            files.insert(path[1].clone(), named);
        }
        assert!(!files.is_empty(), "{module} has no child files");
        for (file, named) in &files {
            for item in named.iter().filter(|n| !files.contains_key(*n)) {
                wrong.push(format!(
                    "{module}/{file}.rs takes {item} from {module}/mod.rs"
                ));
            }
            for sibling in named.iter().filter(|n| files.contains_key(*n)) {
                if let Some(back) = reach(&files, sibling, file) {
                    wrong.push(format!("{module}: {file} → {}", back.join(" → ")));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "move what siblings share into a file of its own (see IN_A_LINE): {wrong:#?}"
    );
}

#[test]
fn through_parent_sees_siblings_and_parent_items_but_not_tests() {
    let source = r#"
        use super::{world::World, Environment};
        use super::super::config::Config;
        fn f() { super::report::notify(); }
        #[cfg(test)]
        mod tests { use super::*; use super::scheduler::X; }
    "#;
    let set = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(
        through_parent(source),
        set(&["Environment", "report", "world"])
    );
}

#[test]
fn only_secrets_and_the_http_layer_expose_tokens() {
    let mut wrong = Vec::new();
    let mut dirs = vec![src()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let p = entry.unwrap().path();
            let top = p.strip_prefix(src()).unwrap().components().next().unwrap();
            let top = Path::new(top.as_os_str()).file_stem().unwrap();
            // This file names the trait in its checks.
            if MAY_EXPOSE.iter().any(|m| top == *m) || top == "layers" {
                continue;
            }
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|e| e == "rs") {
                let source = code(&std::fs::read_to_string(&p).unwrap());
                if source.contains("expose_secret") || source.contains("ExposeSecret") {
                    wrong.push(p.display().to_string());
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "token text is read outside secrets/tripletex (compare with secrets::same): {wrong:?}"
    );
}

#[test]
fn the_library_never_names_the_simulator() {
    let mut wrong = Vec::new();
    for module in LAYERS {
        for (file, _) in module_files(module) {
            let source = code(&std::fs::read_to_string(&file).unwrap());
            for name in NEVER_CRATES {
                if source.contains(name) {
                    wrong.push(format!("{} names {name}", file.display()));
                }
            }
        }
    }
    let lib = code(&std::fs::read_to_string(src().join("lib.rs")).unwrap());
    for name in NEVER_CRATES {
        if lib.contains(name) {
            wrong.push(format!("lib.rs names {name}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "the daemon's library uses a crate it must never use (tests, benches and the binary may): {wrong:#?}"
    );
}

#[test]
fn the_scanner_finds_paths_in_groups_and_through_super() {
    let source = r#"
        use crate::{
            clock::Clock, // crate::daemon in a comment does not count
            store::{self, Store},
        };
        let url = "https://x"; // crate::pass after a string is still a comment
        fn f() { let _ = crate::config::Config::load; }
        use super::super::status::X;
        use super::sibling;
        let s = "not_a_crate::sim";
    "#;
    let at = |path: &[&str]| {
        uses(
            source,
            &path.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
    };
    let set = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(
        at(&["sync"]),
        set(&["clock", "config", "sibling", "status", "store"])
    );
    assert_eq!(
        at(&["tripletex", "client"]),
        set(&["clock", "config", "status", "store"])
    );
    let daemon = module_files("daemon")
        .into_iter()
        .flat_map(|(f, p)| uses(&std::fs::read_to_string(f).unwrap(), &p))
        .collect::<BTreeSet<_>>();
    assert!(
        daemon.contains("config") && daemon.contains("secrets"),
        "{daemon:?}"
    );
}
