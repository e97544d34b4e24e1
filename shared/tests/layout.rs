//! The library's layout, held to what `doc/DEVELOPMENT.md` draws: each stage of
//! `shared/src` uses only the stages below it, no two files use each other (a module
//! and its own submodules aside: an impl split by operation), and no file holds more
//! than ~500 lines of code before its tests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The stages, lowest first. A module may use its own stage and those before it.
const STAGES: &[&[&str]] = &[
    &["errors", "metrics", "telemetry"],
    &["config"],
    &["events"],
    &["queues"],
    &["copy"],
    &["ingest"],
    &["listing"],
    &["replicate"],
    &["retry"],
    &["worker"],
    &["operator"],
    &["bootstrap"],
];

const MAX_LINES: usize = 500;

type Module = Vec<String>;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/a/b.rs` and `src/a/b/mod.rs` are `a::b`; `src/lib.rs` is the root.
fn module_of(file: &Path) -> Module {
    let rel = file.strip_prefix(src()).unwrap().with_extension("");
    let mut parts: Module = rel.iter().map(|p| p.to_string_lossy().into()).collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

fn exists(module: &[String]) -> bool {
    let path = module.iter().fold(src(), |p, s| p.join(s));
    path.with_extension("rs").is_file() || path.join("mod.rs").is_file()
}

/// The code before the file's tests, without comments.
fn code(text: &str) -> String {
    let code = text.split("\n#[cfg(test)]").next().unwrap_or("");
    code.lines()
        .map(|l| match l.find("//") {
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `a::{b, c::{d, e}}` as `a::b`, `a::c::d`, `a::c::e`.
fn expand(tree: &str) -> Vec<String> {
    let Some(open) = tree.find('{') else {
        return vec![tree.to_string()];
    };
    let (prefix, inner) = (&tree[..open], &tree[open + 1..tree.rfind('}').unwrap()]);
    let (mut parts, mut current, mut depth) = (Vec::new(), String::new(), 0);
    for c in inner.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    parts.push(current);
    parts
        .iter()
        .filter(|p| !p.trim().is_empty())
        .flat_map(|p| expand(p.trim()))
        .map(|p| format!("{prefix}{p}"))
        .collect()
}

/// Every path starting `crate::`, `super::` or `self::` a file names: in its `use`
/// declarations and inline.
fn paths(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = String::new();
    let mut remaining = code;
    while let Some(at) = remaining.find("use ") {
        let word_start = at == 0 || !remaining.as_bytes()[at - 1].is_ascii_alphanumeric();
        rest.push_str(&remaining[..at]);
        let after = &remaining[at + 4..];
        match (word_start, after.find(';')) {
            (true, Some(end)) => {
                let tree: String = after[..end].split_whitespace().collect();
                found.extend(expand(&tree));
                remaining = &after[end + 1..];
            }
            _ => {
                rest.push_str("use ");
                remaining = after;
            }
        }
    }
    rest.push_str(remaining);
    let bytes = rest.as_bytes();
    for start in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(i) = rest[from..].find(start) {
            let at = from + i;
            from = at + start.len();
            if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
                continue;
            }
            let end = rest[at..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .map_or(rest.len(), |e| at + e);
            found.push(rest[at..end].to_string());
        }
    }
    found
}

/// The file a path leads into: its longest prefix that is a module of the crate.
fn target(of: &Module, path: &str) -> Option<Module> {
    let mut segments = path.split("::").filter(|s| !s.is_empty()).peekable();
    let mut base: Module = match segments.peek().copied() {
        Some("crate") => {
            segments.next();
            Vec::new()
        }
        Some("super" | "self") => of.clone(),
        _ => return None,
    };
    while let Some(s) = segments.peek().copied() {
        match s {
            "super" => drop(base.pop()),
            "self" => {}
            _ => break,
        }
        segments.next();
    }
    let mut best = (!base.is_empty()).then(|| base.clone());
    for s in segments {
        let s = s.split(" as ").next().unwrap_or(s);
        if s.is_empty() || s == "*" || !s.starts_with(|c: char| c.is_ascii_lowercase()) {
            break;
        }
        base.push(s.to_string());
        if !exists(&base) {
            break;
        }
        best = Some(base.clone());
    }
    best
}

fn stage(module: &Module) -> usize {
    let top = module.first().expect("not the crate root");
    STAGES
        .iter()
        .position(|s| s.contains(&top.as_str()))
        .unwrap_or_else(|| panic!("{top} is in no stage: add it to STAGES and doc/DEVELOPMENT.md"))
}

struct Layout {
    uses: BTreeMap<Module, BTreeSet<Module>>,
    lines: BTreeMap<Module, usize>,
}

fn layout() -> Layout {
    let mut all = Vec::new();
    files(&src(), &mut all);
    let (mut uses, mut lines) = (BTreeMap::new(), BTreeMap::new());
    for file in all {
        let module = module_of(&file);
        let text = std::fs::read_to_string(&file).unwrap();
        let code = code(&text);
        lines.insert(module.clone(), code.lines().count());
        let targets: BTreeSet<Module> = paths(&code)
            .iter()
            .filter_map(|p| target(&module, p))
            .filter(|t| *t != module)
            .collect();
        uses.insert(module, targets);
    }
    Layout { uses, lines }
}

fn name(m: &Module) -> String {
    m.join("/")
}

#[test]
fn stages_use_only_the_stages_below_them() {
    let layout = layout();
    let mut upward = Vec::new();
    for (from, targets) in &layout.uses {
        for to in targets {
            if !from.is_empty() && !to.is_empty() && stage(from) < stage(to) {
                upward.push(format!("{} uses {}", name(from), name(to)));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "a stage uses one above it:\n{}",
        upward.join("\n")
    );
    // The check sees what it should: these are known uses.
    let uses = |a: &str, b: &str| {
        let m = |s: &str| s.split('/').map(String::from).collect::<Module>();
        layout.uses[&m(a)].contains(&m(b))
    };
    assert!(uses("replicate/settle", "listing/record"));
    assert!(uses("copy/multipart/upload", "copy/multipart/parts"));
    assert!(uses("bootstrap", "retry"));
}

#[test]
fn no_two_files_use_each_other() {
    let layout = layout();
    let within = |inner: &Module, outer: &Module| inner.starts_with(outer);
    let mut circles = Vec::new();
    for (a, targets) in &layout.uses {
        for b in targets {
            let back = layout.uses.get(b).is_some_and(|t| t.contains(a));
            // A module and its own submodules split one type's impl by operation.
            if back && a < b && !within(a, b) && !within(b, a) {
                circles.push(format!("{} <-> {}", name(a), name(b)));
            }
        }
    }
    assert!(
        circles.is_empty(),
        "files that use each other:\n{}",
        circles.join("\n")
    );
}

#[test]
fn no_file_outgrows_a_sitting() {
    let long: Vec<String> = layout()
        .lines
        .iter()
        .filter(|(_, n)| **n > MAX_LINES)
        .map(|(m, n)| format!("{}: {n} lines before its tests", name(m)))
        .collect();
    assert!(
        long.is_empty(),
        "split by operation (at most {MAX_LINES}):\n{}",
        long.join("\n")
    );
}

#[test]
fn use_trees_and_paths_are_read_whole() {
    assert_eq!(
        expand("crate::{a::B,c::{d,e::F}}"),
        ["crate::a::B", "crate::c::d", "crate::c::e::F"]
    );
    let found = paths("use crate::x::{Y, z};\nfn f() { crate::q::r(); let reuse = 1; }");
    assert_eq!(found, ["crate::x::Y", "crate::x::z", "crate::q::r"]);
    let of: Module = vec!["replicate".into(), "copying".into()];
    assert_eq!(
        target(&of, "super::Replicator"),
        Some(vec!["replicate".into()])
    );
    assert_eq!(
        target(&of, "crate::copy::multipart::start"),
        Some(vec!["copy".into(), "multipart".into()])
    );
    assert_eq!(target(&of, "std::fmt"), None);
}
