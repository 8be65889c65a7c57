//! Tidy: the rules of docs/ARCHITECTURE.md that a test can check, run by `cargo test`
//! like any other test (after rust-analyzer's `xtask/src/tidy.rs`).
//!
//! * No path in a tracked text file leaves the repository (`../` that climbs above
//!   the root).
//! * The architecture and the API are cited where they live: `docs/ARCHITECTURE.md`
//!   and `docs/API.md`, both present.
//! * Every Rust file starts with a `//!` line that says what it is for.
//! * The engine's modules import only downward, in the order of the code map.
//! * No `match` over `Command`, `Event` or `Rejection` has a wildcard arm, so a new
//!   variant is a compile error wherever it must be decided about.
//! * The engine has no HTTP and no SQL, and only `state` changes a shard's tables.

use std::fs;
use std::path::{Component, Path, PathBuf};

/// Directories that hold no source of ours.
const SKIPPED_DIRS: &[&str] = &["target", ".git", "reports", "data", "node_modules"];

/// Files whose text the path and citation rules read.
const TEXT_EXTENSIONS: &[&str] = &["rs", "md", "toml", "sh", "yml", "yaml", "sql", "json"];

/// The engine's top-level modules, lowest first: a module may import only those
/// before it (and itself). Modules on one line are peers that do not import each
/// other. The same order as docs/ARCHITECTURE.md's code map.
const ENGINE_LAYERS: &[&[&str]] = &[
    &["admission", "domain", "rejection", "router"],
    &["model"],
    &["order"],
    &["archive"],
    &["command", "event"],
    &["notice"],
    &["table"],
    &["filter"],
    &["state"],
    &["decide"],
    &["shard"],
    &["journal"],
    &["recovery"],
    &["status"],
    &["actor"],
    &["engine"],
    &["sim"],
];

/// Enums every variant of which must be decided about where they are matched.
const EXHAUSTIVE_ENUMS: &[&str] = &["Command", "Event", "Rejection"];

/// The state's tables: only `actors/src/state/` may change them.
const STATE_TABLES: &[&str] = &[
    "accounts",
    "payments",
    "items",
    "reservations",
    "orders",
    "ops",
    "steps",
    "timers",
    "finished",
    "archived_keys",
    "finished_queue",
    "step_floors",
    "step_stamps",
];

/// Methods that change a table (`UndoMap`, `UndoSet`).
const MUTATING_METHODS: &[&str] = &["insert(", "remove(", "get_mut(", "rehash("];

/// What the engine re-exports at its root, by the module that defines it, so that
/// `crate::Engine` counts as an import of `engine`.
const ROOT_REEXPORTS: &[(&str, &str)] = &[
    ("Command", "command"),
    ("Query", "command"),
    ("Reply", "command"),
    ("Engine", "engine"),
    ("EngineConfig", "engine"),
    ("EngineError", "engine"),
    ("ShardStatus", "engine"),
    ("Journal", "journal"),
    ("JournalError", "journal"),
    ("MemoryJournal", "journal"),
    ("Rejection", "rejection"),
    ("Router", "router"),
    ("ShardId", "router"),
];

/// Crates that speak HTTP or SQL, which the engine must not depend on or use.
const IO_CRATES: &[&str] = &[
    "actix-web",
    "actix-http",
    "actix-ws",
    "awc",
    "axum",
    "hyper",
    "reqwest",
    "sqlx",
    "rusqlite",
    "postgres",
    "tokio-postgres",
    "redis",
    "lapin",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files_under(dir: &Path, extensions: &[&str]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {dir:?}: {e}"));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if path.is_dir() {
                if !SKIPPED_DIRS.contains(&name) && !name.starts_with('.') || name == ".ci" {
                    pending.push(path);
                }
            } else if extensions
                .iter()
                .any(|ext| path.extension().is_some_and(|e| e == *ext))
                || (extensions.contains(&"toml") && name == "Dockerfile")
                || (path.extension().is_none() && path.starts_with(root().join(".ci")))
            {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

fn relative(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", relative(path)))
}

/// Whether `target`, relative to `dir`, stays inside the repository.
fn stays_inside(dir: &Path, target: &str) -> bool {
    let root = root();
    let mut depth: i64 = dir
        .strip_prefix(&root)
        .map(|d| d.components().count() as i64)
        .unwrap_or(0);
    for component in Path::new(target).components() {
        match component {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
        if depth < 0 {
            return false;
        }
    }
    true
}

/// Every `../…` path in `text`: the run of path characters starting at each `../`
/// that is not itself inside a longer path.
fn parent_paths(text: &str) -> Vec<&str> {
    let path_char = |c: char| c.is_ascii_alphanumeric() || "._/-".contains(c);
    let mut paths = Vec::new();
    let mut from = 0;
    while let Some(offset) = text[from..].find("../") {
        let start = from + offset;
        let begins_path = text[..start]
            .chars()
            .next_back()
            .is_none_or(|c| !path_char(c));
        let end = text[start..]
            .find(|c: char| !path_char(c))
            .map_or(text.len(), |n| start + n);
        if begins_path {
            paths.push(&text[start..end]);
        }
        from = end.max(start + 3);
    }
    paths
}

#[test]
fn no_path_in_a_tracked_file_leaves_the_repository() {
    let mut leaving = Vec::new();
    for path in files_under(&root(), TEXT_EXTENSIONS) {
        let text = read(&path);
        let dir = path.parent().expect("a file has a directory");
        for (number, line) in text.lines().enumerate() {
            for target in parent_paths(line) {
                if !stays_inside(dir, target) {
                    leaving.push(format!("{}:{}: {target}", relative(&path), number + 1));
                }
            }
        }
    }
    assert!(
        leaving.is_empty(),
        "paths that leave the repository (cite docs/ instead):\n{}",
        leaving.join("\n")
    );
}

#[test]
fn the_architecture_and_the_api_are_cited_where_they_live() {
    for doc in ["docs/ARCHITECTURE.md", "docs/API.md", "CHANGELOG.md"] {
        assert!(root().join(doc).is_file(), "{doc} is missing");
    }
    let mut wrong = Vec::new();
    for path in files_under(&root(), TEXT_EXTENSIONS) {
        if path.ends_with("tests/tidy.rs") {
            continue;
        }
        for (number, line) in read(&path).lines().enumerate() {
            let cites = |name: &str| {
                line.match_indices(name).any(|(at, _)| {
                    let before = &line[..at];
                    let cited_in_docs =
                        before.ends_with("docs/") || path.starts_with(root().join("docs"));
                    let longer_name =
                        before.ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
                    !cited_in_docs && !longer_name
                })
            };
            if cites("DESIGN.md") || cites("API.md") || cites("ARCHITECTURE.md") {
                wrong.push(format!(
                    "{}:{}: {}",
                    relative(&path),
                    number + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "cite docs/ARCHITECTURE.md and docs/API.md by their path in the repository:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn every_cited_page_of_docs_exists() {
    let mut missing = Vec::new();
    for path in files_under(&root(), TEXT_EXTENSIONS) {
        for (number, line) in read(&path).lines().enumerate() {
            for (at, _) in line.match_indices("docs/") {
                let name: String = line[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || "._/-".contains(*c))
                    .collect();
                let name = name.trim_end_matches('.');
                let after_root = line[..at].ends_with(|c: char| c.is_ascii_alphanumeric());
                if name.ends_with(".md") && !after_root && !root().join(name).is_file() {
                    missing.push(format!("{}:{}: {name}", relative(&path), number + 1));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "citations of pages that docs/ does not have:\n{}",
        missing.join("\n")
    );
}

#[test]
fn every_rust_file_starts_with_a_line_that_says_what_it_is_for() {
    let missing: Vec<String> = files_under(&root(), &["rs"])
        .into_iter()
        .filter(|path| path.extension().is_some_and(|e| e == "rs"))
        .filter(|path| {
            let text = read(path);
            let first = text.lines().next().unwrap_or("");
            !(first.starts_with("//! ") && first.len() > "//! ".len() + 10)
        })
        .map(|path| relative(&path))
        .collect();
    assert!(
        missing.is_empty(),
        "files whose first line is not a `//!` sentence:\n{}",
        missing.join("\n")
    );
}

/// The engine module a file of `actors/src` belongs to (`shard/batch.rs` is
/// `shard`), or none for the crate root.
fn engine_module(path: &Path) -> Option<String> {
    let relative = path.strip_prefix(root().join("actors/src")).ok()?;
    let first = relative.components().next()?.as_os_str().to_str()?;
    let module = first.strip_suffix(".rs").unwrap_or(first);
    (module != "lib").then(|| module.to_owned())
}

fn layer_of(module: &str) -> Option<usize> {
    ENGINE_LAYERS
        .iter()
        .position(|layer| layer.contains(&module))
}

/// Lines of code, with `//` comments (and so doc comments) left out.
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(number, line)| (number + 1, line.split("//").next().unwrap_or("")))
}

/// The first segment of every `crate::` path in `line`, with grouped imports
/// (`use crate::{a, b::C}`) taken apart.
fn crate_paths(line: &str) -> Vec<String> {
    let segment = |text: &str| -> String {
        text.trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut found = Vec::new();
    for (at, _) in line.match_indices("crate::") {
        let rest = &line[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut start = 0;
            for (index, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        found.push(segment(&group[start..index]));
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.push(segment(&group[start..index]));
                        start = index + 1;
                    }
                    _ => {}
                }
            }
        } else {
            found.push(segment(rest));
        }
    }
    found.retain(|used| !used.is_empty() && used != "self");
    found
}

#[test]
fn crate_paths_are_read_plain_grouped_and_nested() {
    assert_eq!(crate_paths("use crate::state::State;"), ["state"]);
    assert_eq!(
        crate_paths("use crate::{decide, model::{A, B}, Engine};"),
        ["decide", "model", "Engine"]
    );
    assert_eq!(
        crate_paths("let x = crate::order::ORDER_LINES_MAX;"),
        ["order"]
    );
}

#[test]
fn the_engine_modules_import_only_downward() {
    let mut upward = Vec::new();
    for path in files_under(&root().join("actors/src"), &["rs"]) {
        let Some(module) = engine_module(&path) else {
            continue;
        };
        let own = layer_of(&module)
            .unwrap_or_else(|| panic!("module `{module}` is not in ENGINE_LAYERS: place it"));
        let text = read(&path);
        for (number, line) in code_lines(&text) {
            for used in crate_paths(line) {
                let used = ROOT_REEXPORTS
                    .iter()
                    .find(|(item, _)| *item == used)
                    .map_or(used.as_str(), |(_, module)| module);
                if used == module {
                    continue;
                }
                let layer = layer_of(used)
                    .unwrap_or_else(|| panic!("{}:{number}: `crate::{used}` is not a module in ENGINE_LAYERS nor a root re-export in ROOT_REEXPORTS", relative(&path)));
                if layer >= own {
                    upward.push(format!(
                        "{}:{number}: `{module}` imports `{used}`",
                        relative(&path)
                    ));
                }
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports against the direction of the code map (types never import behaviour):\n{}",
        upward.join("\n")
    );
}

/// Wildcard arms (`_ =>`, `_ if`) of matches whose other arms name one of
/// `EXHAUSTIVE_ENUMS`. The code is formatted by rustfmt, so a match's arms start
/// at one indentation, deeper than the `match` line.
fn wildcard_arms(text: &str) -> Vec<(usize, &'static str)> {
    let lines: Vec<&str> = text.lines().collect();
    let indent = |line: &str| line.len() - line.trim_start().len();
    let mut found = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let arm = line.trim_start();
        if !(arm.starts_with("_ =>") || arm.starts_with("_ if ")) {
            continue;
        }
        let depth = indent(line);
        let siblings = lines[..index]
            .iter()
            .rev()
            .take_while(|l| l.trim().is_empty() || indent(l) >= depth)
            .filter(|l| indent(l) == depth);
        for sibling in siblings {
            let pattern = sibling.trim_start().trim_start_matches("| ");
            if let Some(name) = EXHAUSTIVE_ENUMS
                .iter()
                .find(|name| pattern.starts_with(&format!("{name}::")))
            {
                found.push((index + 1, *name));
                break;
            }
        }
    }
    found
}

#[test]
fn no_match_over_commands_events_or_rejections_has_a_wildcard_arm() {
    let mut wildcards = Vec::new();
    for dir in ["actors/src", "src"] {
        for path in files_under(&root().join(dir), &["rs"]) {
            for (number, name) in wildcard_arms(&read(&path)) {
                wildcards.push(format!("{}:{number}: over {name}", relative(&path)));
            }
        }
    }
    assert!(
        wildcards.is_empty(),
        "name every variant instead of `_`, so that a new one is a compile error here:\n{}",
        wildcards.join("\n")
    );
}

#[test]
fn the_wildcard_rule_finds_a_wildcard_arm() {
    let text = "match command {\n    Command::Deposit { .. } => 1,\n    _ => 0,\n}\n";
    assert_eq!(wildcard_arms(text), vec![(3, "Command")]);
    let nested = "match kind {\n    Kind::A => match event {\n        Event::X => 1,\n        Event::Y => 2,\n    },\n    _ => 0,\n}\n";
    assert!(wildcard_arms(nested).is_empty());
}

/// The dependency names of a manifest's `[dependencies]` tables (`name = ...`,
/// `name.workspace = true`, `[dependencies.name]`), with `package = ` renames.
fn dependencies(manifest: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut in_dependencies = false;
    for line in manifest.lines().map(str::trim) {
        if let Some(table) = line.strip_prefix('[') {
            let table = table.trim_end_matches(']');
            in_dependencies = table == "dependencies";
            if let Some(name) = table.strip_prefix("dependencies.") {
                names.push(name.to_owned());
            }
            continue;
        }
        if in_dependencies {
            let key: String = line
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || "-_".contains(*c))
                .collect();
            if !key.is_empty() {
                names.push(key);
            }
        }
        if let Some((_, renamed)) = line.split_once("package = \"") {
            names.extend(renamed.split('"').next().map(str::to_owned));
        }
    }
    names
}

#[test]
fn the_engine_has_no_http_and_no_sql() {
    let manifest = read(&root().join("actors/Cargo.toml"));
    let names = dependencies(&manifest);
    assert!(
        names.iter().any(|n| n == "actix"),
        "dependencies() read none of {names:?}"
    );
    for name in &names {
        assert!(
            !IO_CRATES.contains(&name.as_str()),
            "actors/Cargo.toml depends on {name}: the engine has no HTTP and no SQL"
        );
    }
    for path in files_under(&root().join("actors/src"), &["rs"]) {
        let text = read(&path);
        for (number, line) in code_lines(&text) {
            for name in IO_CRATES {
                let name = name.replace('-', "_");
                if line.contains(&format!("{name}::")) && !line.contains(&format!("_{name}::")) {
                    panic!("{}:{number}: the engine uses {name}", relative(&path));
                }
            }
        }
    }
}

#[test]
fn dependencies_are_read_in_every_form() {
    let manifest = "[package]\nname = \"x\"\n[dependencies]\nactix.workspace = true\nsqlx = \"0.8\"\nweb = { package = \"actix-web\", version = \"4\" }\n[dependencies.redis]\nversion = \"0.32\"\n[dev-dependencies]\nreqwest = \"0.12\"\n";
    let names = dependencies(manifest);
    for name in ["actix", "sqlx", "web", "actix-web", "redis"] {
        assert!(
            names.iter().any(|n| n == name),
            "{name} not read: {names:?}"
        );
    }
    assert!(
        !names.iter().any(|n| n == "reqwest"),
        "dev-dependencies are not the engine's"
    );
}

#[test]
fn only_state_changes_a_shards_tables() {
    let mut changes = Vec::new();
    for path in files_under(&root().join("actors/src"), &["rs"]) {
        if path.starts_with(root().join("actors/src/state")) {
            continue;
        }
        let text = read(&path);
        for (number, line) in code_lines(&text) {
            for table in STATE_TABLES {
                for method in MUTATING_METHODS {
                    if line.contains(&format!("state.{table}.{method}")) {
                        changes.push(format!("{}:{number}: {}", relative(&path), line.trim()));
                    }
                }
            }
        }
    }
    assert!(
        changes.is_empty(),
        "only actors/src/state changes the state's tables (through events):\n{}",
        changes.join("\n")
    );
}
