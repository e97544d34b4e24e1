//! The documents against the code (README.md and doc/*.md): every relative link
//! resolves — to a file that exists and, for `#anchor`, to a heading in it (GitHub's
//! slugs) — and every `s3-replicator …` command in a fenced shell block parses: each
//! word names a subcommand its parent's `--help` lists, or an argument its usage admits,
//! and each flag appears in the `--help` of the command it follows. Runs the binary with
//! `--help` only: nothing here needs the local stack or an AWS account.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_s3-replicator");

/// The repository's root: the documents are README.md and doc/*.md there.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("cli/ has a parent")
        .to_path_buf()
}

fn documents(root: &Path) -> Vec<PathBuf> {
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("doc"))
        .expect("doc/ exists")
        .map(|e| e.expect("a doc/ entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

#[test]
fn every_link_resolves_and_every_command_parses() {
    let root = root();
    let files = documents(&root);
    assert!(
        files.len() > 1,
        "no documents found under {}",
        root.display()
    );
    let problems = check(&root, &files, &mut Helps::default());
    assert!(
        problems.is_empty(),
        "{} problem(s) in the documents:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// The check itself fails on what it is for: a link to a file that is not there, an
/// anchor no heading makes, a misspelled flag and a misspelled subcommand.
#[test]
fn the_check_catches_broken_links_and_commands() {
    let dir = std::env::temp_dir().join(format!("s3r-docs-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let doc = dir.join("bad.md");
    std::fs::write(
        &doc,
        "# A title: `here`\n\n\
         [fine](#a-title-here) [gone](nowhere.md) [no heading](#no-such-heading)\n\n\
         ```sh\n\
         s3-replicator verify --repiar        # misspelled\n\
         s3-replicator dlq lst\n\
         s3-replicator backfill status --wait \\\n    --output json\n\
         aws s3api get-bucket-replication --bucket b | s3-replicator config check - --bucket b\n\
         s3-replicator verify extra-argument\n\
         ```\n",
    )
    .unwrap();
    let problems = check(&dir, &[doc], &mut Helps::default());
    std::fs::remove_dir_all(&dir).unwrap();
    let expect = [
        "bad.md:3: link nowhere.md",
        "bad.md:3: link #no-such-heading",
        "bad.md:6: `s3-replicator verify --repiar`",
        "bad.md:7: `s3-replicator dlq lst`",
        "bad.md:11: `s3-replicator verify extra-argument`",
    ];
    for e in expect {
        assert!(
            problems.iter().any(|p| p.starts_with(e)),
            "expected a problem starting with {e:?}; found:\n{}",
            problems.join("\n")
        );
    }
    assert_eq!(problems.len(), expect.len(), "{}", problems.join("\n"));
}

#[test]
fn anchors_follow_githubs_slugs() {
    assert_eq!(slug("What \"replicated\" means"), "what-replicated-means");
    assert_eq!(slug("Drift report: `verify`"), "drift-report-verify");
    assert_eq!(
        slug("Our additions: `Destination.Replicator`"),
        "our-additions-destinationreplicator"
    );
    assert_eq!(slug("5a. Deploy with SAM"), "5a-deploy-with-sam");
    assert_eq!(slug("Rules (as in S3)"), "rules-as-in-s3");
    assert_eq!(
        slug("The worker: `s3-replicator run`"),
        "the-worker-s3-replicator-run"
    );
}

/// Every problem of the documents, as `FILE:LINE: what`.
fn check(root: &Path, files: &[PathBuf], helps: &mut Helps) -> Vec<String> {
    let mut problems = Vec::new();
    let mut anchors: HashMap<PathBuf, HashSet<String>> = HashMap::new();
    for file in files {
        let name = file
            .strip_prefix(root)
            .unwrap_or(file)
            .display()
            .to_string();
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) => {
                problems.push(format!("{name}: cannot read: {e}"));
                continue;
            }
        };
        let doc = Document::parse(&text);
        for (line, target) in &doc.links {
            if let Some(problem) = link_problem(file, target, &mut anchors) {
                problems.push(format!("{name}:{line}: link {target}: {problem}"));
            }
        }
        for (line, command) in &doc.commands {
            for segment in segments(command) {
                let Some(args) = invocation(&segment) else {
                    continue;
                };
                if let Err(problem) = helps.parses(&args) {
                    let typed = shown(&args);
                    problems.push(format!("{name}:{line}: `{typed}`: {problem}"));
                }
            }
        }
    }
    problems
}

/// What one Markdown document links to and shows as commands, with line numbers.
#[derive(Default)]
struct Document {
    /// Relative link targets, outside code.
    links: Vec<(usize, String)>,
    /// Logical lines (continuations joined) of fenced shell blocks.
    commands: Vec<(usize, String)>,
    headings: Vec<String>,
}

impl Document {
    fn parse(text: &str) -> Document {
        let mut doc = Document::default();
        // Some(language) inside a fenced block.
        let mut fence: Option<String> = None;
        let mut pending: Option<(usize, String)> = None;
        for (i, raw) in text.lines().enumerate() {
            let number = i + 1;
            let trimmed = raw.trim_start();
            if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
                match fence {
                    None => {
                        let info = trimmed.trim_start_matches(['`', '~']).trim();
                        fence = Some(info.split_whitespace().next().unwrap_or("").to_string());
                    }
                    Some(_) => {
                        if let Some(p) = pending.take() {
                            doc.commands.push(p);
                        }
                        fence = None;
                    }
                }
                continue;
            }
            match &fence {
                Some(language) => {
                    if !matches!(language.as_str(), "" | "sh" | "bash" | "shell" | "console") {
                        continue;
                    }
                    let (start, mut line) = match pending.take() {
                        Some((start, before)) => (start, before + " " + trimmed),
                        None => (number, trimmed.to_string()),
                    };
                    if line.trim_end().ends_with('\\') {
                        let keep = line.trim_end().len() - 1;
                        line.truncate(keep);
                        pending = Some((start, line));
                    } else {
                        doc.commands.push((start, line));
                    }
                }
                None => {
                    if let Some(heading) = heading(raw) {
                        doc.headings.push(heading);
                    }
                    for target in links(&without_code_spans(raw)) {
                        doc.links.push((number, target));
                    }
                }
            }
        }
        if let Some(p) = pending {
            doc.commands.push(p);
        }
        doc
    }

    /// The anchors GitHub gives the headings: their slugs, a repeated one with -1, -2…
    fn anchors(&self) -> HashSet<String> {
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut anchors = HashSet::new();
        for h in &self.headings {
            let base = slug(h);
            let n = seen.entry(base.clone()).or_insert(0);
            anchors.insert(match *n {
                0 => base.clone(),
                k => format!("{base}-{k}"),
            });
            *n += 1;
        }
        anchors
    }
}

/// An ATX heading's text (`## Text ##`), if the line is one.
fn heading(line: &str) -> Option<String> {
    let hashes = line.chars().take_while(|c| *c == '#').count();
    if !(1..=6).contains(&hashes) {
        return None;
    }
    let rest = &line[hashes..];
    if !(rest.is_empty() || rest.starts_with(' ')) {
        return None;
    }
    Some(rest.trim().trim_end_matches('#').trim().to_string())
}

/// GitHub's anchor for a heading: lower case, spaces to `-`, punctuation dropped
/// (letters, digits, `-` and `_` stay).
fn slug(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            c if c.is_alphanumeric() => Some(c),
            _ => None,
        })
        .collect()
}

/// The line with its inline code spans removed (a `[x](y)` there is not a link).
fn without_code_spans(line: &str) -> String {
    let mut out = String::new();
    let mut in_code = false;
    for c in line.chars() {
        if c == '`' {
            in_code = !in_code;
        } else if !in_code {
            out.push(c);
        }
    }
    out
}

/// The relative targets of `[text](target)` links on a line.
fn links(line: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        let mut depth = 0usize;
        let mut end = None;
        for (i, c) in after.char_indices() {
            match c {
                '(' => depth += 1,
                ')' if depth == 0 => {
                    end = Some(i);
                    break;
                }
                ')' => depth -= 1,
                _ => {}
            }
        }
        let Some(end) = end else { break };
        let target = after[..end]
            .split_whitespace()
            .next()
            .unwrap_or("")
            .trim_matches(['<', '>']);
        let external = target.contains("://") || target.starts_with("mailto:");
        if !external {
            found.push(target.to_string());
        }
        rest = &after[end..];
    }
    found
}

/// Why a link from `from` to `target` does not resolve, if it does not.
fn link_problem(
    from: &Path,
    target: &str,
    anchors: &mut HashMap<PathBuf, HashSet<String>>,
) -> Option<String> {
    if target.is_empty() {
        return Some("empty target".into());
    }
    let (path, anchor) = match target.split_once('#') {
        Some((p, a)) => (p, Some(a)),
        None => (target, None),
    };
    let file = match path {
        "" => from.to_path_buf(),
        p => from.parent().expect("a document's folder").join(p),
    };
    if !file.exists() {
        return Some(format!("{} does not exist", file.display()));
    }
    let anchor = anchor?;
    if file.extension().is_none_or(|e| e != "md") {
        return None;
    }
    let known = anchors.entry(file.clone()).or_insert_with(|| {
        std::fs::read_to_string(&file)
            .map(|t| Document::parse(&t).anchors())
            .unwrap_or_default()
    });
    if known.contains(anchor) {
        None
    } else {
        let mut nearby: Vec<&String> = known.iter().collect();
        nearby.sort();
        Some(format!(
            "no heading of {} has the anchor #{anchor} (it has: {})",
            file.display(),
            nearby
                .iter()
                .map(|a| format!("#{a}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}

/// A shell line split into its simple commands (at `|`, `&&`, `;`, `$(`, `)` and
/// backquotes), each as its words with quotes removed; a `#` comment ends the line.
fn segments(line: &str) -> Vec<Vec<String>> {
    let line = line.trim_start();
    let line = line.strip_prefix("$ ").unwrap_or(line);
    let mut segments = vec![Vec::new()];
    let mut word: Option<String> = None;
    let (mut single, mut double) = (false, false);
    // The double-quote state outside each `$(` opened.
    let mut outer: Vec<bool> = Vec::new();
    let mut chars = line.chars().peekable();
    fn end_word(word: &mut Option<String>, segments: &mut [Vec<String>]) {
        if let Some(w) = word.take() {
            segments.last_mut().expect("a segment").push(w);
        }
    }
    while let Some(c) = chars.next() {
        match c {
            '\'' if !double => {
                single = !single;
                word.get_or_insert_with(String::new);
            }
            '"' if !single => {
                double = !double;
                word.get_or_insert_with(String::new);
            }
            '$' if !single && chars.peek() == Some(&'(') => {
                chars.next();
                end_word(&mut word, &mut segments);
                segments.push(Vec::new());
                outer.push(double);
                double = false;
            }
            ')' if !single && !double => {
                end_word(&mut word, &mut segments);
                segments.push(Vec::new());
                if let Some(d) = outer.pop() {
                    double = d;
                }
            }
            '|' | ';' | '&' | '`' | '(' if !single && !double => {
                end_word(&mut word, &mut segments);
                segments.push(Vec::new());
            }
            '#' if !single && !double && word.is_none() => break,
            c if c.is_whitespace() && !single && !double => end_word(&mut word, &mut segments),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    end_word(&mut word, &mut segments);
    segments.retain(|s| !s.is_empty());
    segments
}

/// The arguments of an `s3-replicator` invocation, if the simple command is one
/// (after any `VAR=value` assignments, `eval`, `exec` or `time`).
fn invocation(words: &[String]) -> Option<Vec<String>> {
    let mut words = words.iter().peekable();
    while let Some(w) = words.peek() {
        let assignment = w.split_once('=').is_some_and(|(name, _)| {
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
        if assignment || matches!(w.as_str(), "eval" | "exec" | "time") {
            words.next();
        } else {
            break;
        }
    }
    match words.next() {
        Some(w) if w == "s3-replicator" => Some(words.cloned().collect()),
        _ => None,
    }
}

/// What one command's `--help` says, as far as parsing its arguments needs.
struct Help {
    subcommands: Vec<String>,
    /// `<COMMAND>` is the only usage.
    subcommand_required: bool,
    /// Positional arguments: how many are required, and at most (None: any number).
    required: usize,
    most: Option<usize>,
    /// Every flag listed (`--name`, `-x`), and whether it takes a value: Some(true)
    /// required, Some(false) optional, None none.
    flags: HashMap<String, Option<bool>>,
}

impl Help {
    fn parse(path: &[String], text: &str) -> Help {
        let lines: Vec<&str> = text.lines().collect();
        let command = shown(path);
        // Usage: one line per alternative, until a blank line.
        let mut usages = Vec::new();
        if let Some(start) = lines.iter().position(|l| l.starts_with("Usage:")) {
            for l in &lines[start..] {
                if l.trim().is_empty() {
                    break;
                }
                let l = l.trim().trim_start_matches("Usage:").trim();
                usages.push(
                    l.strip_prefix(command.as_str())
                        .unwrap_or(l)
                        .trim()
                        .to_string(),
                );
            }
        }
        let subcommand_required = !usages.is_empty()
            && usages
                .iter()
                .all(|u| u.split_whitespace().any(|w| w == "<COMMAND>"));
        let (mut required, mut most) = (0, Some(0));
        for usage in &usages {
            let (mut r, mut m) = (0, Some(0usize));
            // Required options show in the usage too (`--bucket <BUCKET>`): a flag's
            // value is not a positional argument.
            let mut after_flag = false;
            for w in usage.split_whitespace() {
                let flag = w.starts_with('-') || w.contains("--");
                let value = after_flag && (w.starts_with('<') || w.starts_with('['));
                after_flag = flag;
                if flag || value || matches!(w, "[OPTIONS]" | "<COMMAND>" | "[COMMAND]") {
                    continue;
                }
                if w.starts_with('<') {
                    r += 1;
                }
                m = match (m, w.ends_with("...")) {
                    (_, true) | (None, _) => None,
                    (Some(n), false) => Some(n + 1),
                };
            }
            required = required.max(r);
            most = match (most, m) {
                (None, _) | (_, None) => None,
                (Some(a), Some(b)) => Some(a.max(b)),
            };
        }
        let mut subcommands = Vec::new();
        if let Some(start) = lines.iter().position(|l| *l == "Commands:") {
            for l in &lines[start + 1..] {
                if l.trim().is_empty() || !l.starts_with(' ') {
                    break;
                }
                if let Some(name) = l.split_whitespace().next().filter(|n| *n != "help") {
                    subcommands.push(name.to_string());
                }
            }
        }
        let mut flags = HashMap::new();
        for l in &lines {
            let indent = l.len() - l.trim_start().len();
            if !(2..=6).contains(&indent) || !l.trim_start().starts_with('-') {
                continue;
            }
            let words: Vec<&str> = l.split_whitespace().collect();
            let mut named = Vec::new();
            let mut value = None;
            for (i, w) in words.iter().enumerate() {
                let w = w.trim_end_matches(',');
                if w.starts_with('-') && w.len() > 1 {
                    named.push(w.split('=').next().unwrap_or(w).to_string());
                    value = match words.get(i + 1) {
                        Some(v) if v.starts_with('<') => Some(true),
                        Some(v) if v.starts_with("[<") => Some(false),
                        _ => None,
                    };
                } else {
                    break;
                }
            }
            for n in named {
                flags.insert(n, value);
            }
        }
        Help {
            subcommands,
            subcommand_required,
            required,
            most,
            flags,
        }
    }
}

/// A command as typed: `s3-replicator` and its subcommands.
fn shown(path: &[String]) -> String {
    std::iter::once("s3-replicator")
        .chain(path.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `s3-replicator PATH --help`, run once per path.
#[derive(Default)]
struct Helps {
    by_path: HashMap<Vec<String>, Result<Help, String>>,
}

impl Helps {
    fn help(&mut self, path: &[String]) -> Result<&Help, String> {
        self.by_path
            .entry(path.to_vec())
            .or_insert_with(|| {
                let out = Command::new(BIN)
                    .args(path)
                    .arg("--help")
                    .output()
                    .map_err(|e| format!("cannot run {BIN}: {e}"))?;
                if !out.status.success() {
                    return Err(format!(
                        "`{} --help` exits with {}: {}",
                        shown(path),
                        out.status,
                        String::from_utf8_lossy(&out.stderr).trim()
                    ));
                }
                Ok(Help::parse(path, &String::from_utf8_lossy(&out.stdout)))
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Whether `s3-replicator ARGS` parses: each flag listed by the `--help` of the
    /// command it follows, subcommands that exist, as many arguments as the usage
    /// admits.
    fn parses(&mut self, args: &[String]) -> Result<(), String> {
        let mut path: Vec<String> = Vec::new();
        let mut positionals = 0usize;
        let mut asks_help = false;
        let mut words = args.iter().peekable();
        while let Some(word) = words.next() {
            let help = self.help(&path)?;
            if word.starts_with('-') && word.len() > 1 {
                let name = word.split('=').next().unwrap_or(word);
                let Some(value) = help.flags.get(name) else {
                    return Err(format!("`{} --help` lists no {name}", shown(&path)));
                };
                asks_help |= matches!(name, "--help" | "-h" | "--version" | "-V");
                let takes_next = !word.contains('=')
                    && match value {
                        Some(true) => true,
                        Some(false) => words.peek().is_some_and(|v| !v.starts_with('-')),
                        None => false,
                    };
                if takes_next && words.next().is_none() {
                    return Err(format!("{name} needs a value"));
                }
                continue;
            }
            if positionals == 0 && help.subcommands.iter().any(|s| s == word) {
                path.push(word.clone());
                continue;
            }
            if help.subcommand_required {
                return Err(format!(
                    "{word:?} is not a subcommand of `{}` (it has: {})",
                    shown(&path),
                    help.subcommands.join(", ")
                ));
            }
            positionals += 1;
            if help.most.is_some_and(|most| positionals > most) {
                return Err(format!(
                    "{word:?}: `{}` takes at most {} argument(s)",
                    shown(&path),
                    help.most.unwrap_or(0)
                ));
            }
        }
        let help = self.help(&path)?;
        if !asks_help {
            if help.subcommand_required {
                return Err(format!(
                    "`{}` needs a subcommand ({})",
                    shown(&path),
                    help.subcommands.join(", ")
                ));
            }
            if positionals < help.required {
                return Err(format!(
                    "`{}` needs {} argument(s)",
                    shown(&path),
                    help.required
                ));
            }
        }
        Ok(())
    }
}
