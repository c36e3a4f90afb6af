//! The main crate's modules depend downward only.
//!
//! Every module of `src/` has a layer; a module may use modules of lower
//! layers (and itself), never one of its own layer or above. The layers are
//! the pipeline of one reconcile, as `docs/architecture.md` draws it. The
//! test reads the sources, so a new `use crate::…` that points upward fails
//! here with the file that has it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module → layer. Lower layers know nothing of higher ones.
const LAYERS: &[(&str, u32)] = &[
    ("exit", 0),
    ("clock", 0),
    ("model", 1),
    ("desired", 2),
    ("import", 2),
    ("source", 2),
    ("audit", 2),
    ("traffic", 2),
    ("providers", 3),
    ("policy", 3),
    ("observe", 4),
    ("plan", 5),
    ("apply", 6),
    ("whatif", 6),
    ("rollout", 7),
    ("failover", 7),
    ("preview", 7),
    ("reconcile", 8),
    ("daemon", 9),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules a file names through `crate::x` or `crate::{x, y}`.
fn references(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (index, _) in text.match_indices("crate::") {
        // `meridian_provider::…` or `some_crate::…` are other crates.
        let before = text[..index].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &text[index + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = &group[..group.find('}').unwrap_or(group.len())];
            for item in inner.split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

#[test]
fn modules_depend_downward_only_and_form_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let layers: BTreeMap<&str, u32> = LAYERS.iter().copied().collect();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut wrong = Vec::new();
    let mut seen_modules = BTreeSet::new();
    for file in &files {
        let relative = file.strip_prefix(&src).expect("under src");
        let first = relative
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .expect("name");
        let module = first.trim_end_matches(".rs");
        // The binary (main.rs and cli/) sits above everything and reaches
        // the library as `meridian::…`; lib.rs only declares modules.
        if matches!(module, "main" | "lib" | "cli") {
            continue;
        }
        seen_modules.insert(module.to_owned());
        let Some(&layer) = layers.get(module) else {
            wrong.push(format!(
                "{}: module `{module}` has no layer in tests/architecture.rs",
                relative.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).expect("read");
        for target in references(&text) {
            if target == module {
                continue;
            }
            edges
                .entry(module.to_owned())
                .or_default()
                .insert(target.clone());
            match layers.get(target.as_str()) {
                Some(&other) if other < layer => {}
                Some(&other) => wrong.push(format!(
                    "{}: `{module}` (layer {layer}) uses `crate::{target}` (layer {other}); modules may only use lower layers",
                    relative.display()
                )),
                None => wrong.push(format!(
                    "{}: `crate::{target}` is not a module with a layer",
                    relative.display()
                )),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    for (module, _) in LAYERS {
        assert!(
            seen_modules.contains(*module),
            "tests/architecture.rs names `{module}`, which src/ does not have"
        );
    }
    // Layers make cycles impossible; check anyway, so a change to the table
    // cannot hide one.
    let mut state: BTreeMap<&str, u8> = BTreeMap::new();
    fn visit<'a>(
        node: &'a str,
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<&'a str, u8>,
        path: &mut Vec<&'a str>,
    ) {
        match state.get(node) {
            Some(2) => return,
            Some(1) => panic!("module cycle: {} → {node}", path.join(" → ")),
            _ => {}
        }
        state.insert(node, 1);
        path.push(node);
        for next in edges.get(node).into_iter().flatten() {
            visit(next, edges, state, path);
        }
        path.pop();
        state.insert(node, 2);
    }
    for module in edges.keys() {
        visit(module, &edges, &mut state, &mut Vec::new());
    }
}

#[test]
fn references_are_read_from_paths_and_groups() {
    let refs = references(
        "use crate::plan::Plan;\nuse crate::{apply, observe::Gap};\nuse meridian_provider::x;\nlet a = crate::clock::now();",
    );
    assert_eq!(
        refs.into_iter().collect::<Vec<_>>(),
        vec!["apply", "clock", "observe", "plan"]
    );
}
