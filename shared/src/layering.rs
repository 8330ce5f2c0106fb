//! The crate's layering, checked: dependencies among the top-level modules point one way
//! (`domain <- store <- services <- api <- lambda, local`), with no import cycle, and no
//! source file grows past 800 lines. Read from the source files themselves.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module's layer: a module may use modules of its own layer or below, never above.
const LAYERS: &[(&str, u8)] = &[
    ("error", 0),
    ("domain", 1),
    ("catalog", 2),
    ("http", 2),
    ("stream", 2),
    ("metrics", 2),
    ("auth", 3),
    ("config", 4),
    ("telemetry", 5),
    ("store", 5),
    ("llm", 5),
    ("mcp", 5),
    ("blobs", 5),
    ("state", 6),
    ("analytics", 7),
    ("audit", 7),
    ("ratelimit", 7),
    ("search", 7),
    ("reactions", 7),
    ("files", 7),
    ("import", 7),
    ("chat", 8),
    ("api", 9),
    ("lambda", 10),
    ("local", 11),
];

/// Longest source file allowed, unit tests included.
const MAX_LINES: usize = 800;

fn source_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            source_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to, and the top-level modules its code names through
/// `crate::` (comments left out).
fn uses(root: &Path, file: &Path) -> (String, BTreeSet<String>) {
    let relative = file.strip_prefix(root).unwrap_or(file);
    let top = relative
        .components()
        .next()
        .map(|c| c.as_os_str().to_string_lossy().trim_end_matches(".rs").to_owned())
        .unwrap_or_default();
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let mut used = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or_default();
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let tail = &rest[at + "crate::".len()..];
            let name: String = tail
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if !name.is_empty() && name != top {
                used.insert(name);
            }
            rest = tail;
        }
    }
    (top, used)
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    source_files(&root, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let (top, used) = uses(&root, file);
        if top == "lib" || top == "layering" {
            continue;
        }
        graph.entry(top).or_default().extend(used);
    }
    graph
}

#[test]
fn dependencies_point_one_way_down_the_layers() {
    let layer: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
    let graph = graph();
    assert!(graph.len() >= 15, "the modules were not found: {graph:?}");
    for (module, used) in &graph {
        let Some(own) = layer.get(module.as_str()) else {
            panic!("top-level module {module} has no layer in layering::LAYERS");
        };
        for other in used {
            let Some(theirs) = layer.get(other.as_str()) else {
                panic!("{module} uses {other}, which has no layer in layering::LAYERS");
            };
            assert!(
                theirs <= own,
                "{module} (layer {own}) uses {other} (layer {theirs}), a layer above it"
            );
        }
    }
}

#[test]
fn there_is_no_import_cycle_among_the_top_level_modules() {
    fn visit<'a>(
        node: &'a str,
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        if done.contains(node) {
            return;
        }
        if let Some(at) = path.iter().position(|n| *n == node) {
            panic!("import cycle: {} -> {node}", path[at..].join(" -> "));
        }
        path.push(node);
        for next in graph.get(node).into_iter().flatten() {
            visit(next, graph, path, done);
        }
        path.pop();
        done.insert(node);
    }
    let graph = graph();
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        visit(node, &graph, &mut Vec::new(), &mut done);
    }
}

#[test]
fn no_source_file_is_over_800_lines() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    source_files(&root, &mut files);
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let lines = std::fs::read_to_string(f).unwrap_or_default().lines().count();
            (lines > MAX_LINES).then(|| format!("{} ({lines} lines)", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "over {MAX_LINES} lines: {long:?}");
}
