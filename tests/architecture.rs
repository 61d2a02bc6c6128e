//! The layers of `src/`: no top-level module may reach, directly or through others, a
//! module that reaches back to it. The test reads every `crate::…` and `super::…` path
//! in the sources (test code included, comments and string literals left out) and
//! fails on the first cycle between top-level modules, naming the files that close it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One reference from a source file to a top-level module.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Edge {
    from: String,
    to: String,
    file: String,
}

/// The source with comments, string and character literals blanked out (newlines kept),
/// so that only code is searched.
fn code_only(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let blank = |out: &mut Vec<u8>, bytes: &[u8]| {
        out.extend(bytes.iter().map(|&c| if c == b'\n' { b'\n' } else { b' ' }));
    };
    while i < b.len() {
        let rest = &b[i..];
        let end = if rest.starts_with(b"//") {
            rest.iter().position(|&c| c == b'\n').unwrap_or(rest.len())
        } else if rest.starts_with(b"/*") {
            block_comment_len(rest)
        } else if rest[0] == b'"' {
            quoted_len(rest, b'"')
        } else if rest[0] == b'r' && raw_string_start(rest).is_some() {
            raw_string_len(rest)
        } else if rest[0] == b'\'' && char_literal_len(rest).is_some() {
            char_literal_len(rest).unwrap_or(1)
        } else {
            out.push(rest[0]);
            i += 1;
            continue;
        };
        blank(&mut out, &rest[..end]);
        i += end;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn block_comment_len(s: &[u8]) -> usize {
    let (mut depth, mut i) = (0usize, 0usize);
    while i + 1 < s.len() {
        if s[i..].starts_with(b"/*") {
            depth += 1;
            i += 2;
        } else if s[i..].starts_with(b"*/") {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    s.len()
}

fn quoted_len(s: &[u8], quote: u8) -> usize {
    let mut i = 1;
    while i < s.len() {
        match s[i] {
            b'\\' => i += 2,
            c if c == quote => return i + 1,
            _ => i += 1,
        }
    }
    s.len()
}

/// The number of `#` of a raw string starting here (`r"`, `r#"`, …).
fn raw_string_start(s: &[u8]) -> Option<usize> {
    let hashes = s[1..].iter().take_while(|&&c| c == b'#').count();
    (s.get(1 + hashes) == Some(&b'"')).then_some(hashes)
}

fn raw_string_len(s: &[u8]) -> usize {
    let hashes = raw_string_start(s).unwrap_or(0);
    let mut close = vec![b'"'];
    close.extend(std::iter::repeat_n(b'#', hashes));
    let body = 2 + hashes;
    s[body..]
        .windows(close.len())
        .position(|w| w == close.as_slice())
        .map_or(s.len(), |p| body + p + close.len())
}

/// A character literal (`'a'`, `'\n'`, `'\u{1F600}'`), not a lifetime.
fn char_literal_len(s: &[u8]) -> Option<usize> {
    if s.get(1) == Some(&b'\\') {
        return s[2..].iter().position(|&c| c == b'\'').map(|p| p + 3);
    }
    let width = std::str::from_utf8(&s[1..s.len().min(5)])
        .ok()
        .or_else(|| std::str::from_utf8(&s[1..2]).ok())?
        .chars()
        .next()?
        .len_utf8();
    (s.get(1 + width) == Some(&b'\'')).then_some(width + 2)
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Path, // ::
    Open,
    Close,
    Comma,
    Other,
}

fn tokens(code: &str) -> Vec<Token> {
    let c: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        if ch.is_alphanumeric() || ch == '_' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            out.push(Token::Ident(c[start..i].iter().collect()));
            continue;
        }
        out.push(match ch {
            ':' if c.get(i + 1) == Some(&':') => {
                i += 1;
                Token::Path
            }
            '{' => Token::Open,
            '}' => Token::Close,
            ',' => Token::Comma,
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            _ => Token::Other,
        });
        i += 1;
    }
    out
}

/// The module path a file defines: `src/dcs/etcd.rs` → `[dcs, etcd]`, `src/net/mod.rs` →
/// `[net]`, `src/lib.rs` → `[]`.
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

/// The top-level modules every `crate::` and `super::` path in `code` names, seen from
/// a file whose module path is `module` (inline `mod name { … }` blocks deepen it).
fn referenced_tops(module: &[String], code: &str) -> BTreeSet<String> {
    let t = tokens(code);
    let mut found = BTreeSet::new();
    // The inline modules open at each brace depth.
    let mut inline: Vec<(usize, String)> = Vec::new();
    let mut depth = 0usize;
    let mut pending_mod: Option<String> = None;
    for i in 0..t.len() {
        match &t[i] {
            Token::Ident(k) if k == "mod" => {
                if let Some(Token::Ident(name)) = t.get(i + 1) {
                    pending_mod = Some(name.clone());
                }
            }
            Token::Open => {
                depth += 1;
                if let Some(name) = pending_mod.take() {
                    inline.push((depth, name));
                }
            }
            Token::Close => {
                if inline.last().is_some_and(|(d, _)| *d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
            }
            Token::Other | Token::Comma => pending_mod = None,
            _ => {}
        }
        let Token::Ident(head) = &t[i] else { continue };
        if i > 0 && t[i - 1] == Token::Path {
            continue; // inside a longer path: its head was handled
        }
        let mut here: Vec<String> = module.to_vec();
        here.extend(inline.iter().map(|(_, n)| n.clone()));
        let mut j = i;
        let base: Vec<String> = if head == "crate" {
            Vec::new()
        } else if head == "super" {
            let mut base = here;
            while let (Some(Token::Ident(s)), Some(Token::Path)) = (t.get(j), t.get(j + 1)) {
                if s != "super" {
                    break;
                }
                base.pop();
                j += 2;
            }
            j -= 2;
            base
        } else {
            continue;
        };
        if t.get(j + 1) != Some(&Token::Path) {
            continue;
        }
        if let Some(top) = base.first() {
            found.insert(top.clone());
            continue;
        }
        // From the crate root: the next segment, or each head of a `{a, b::c}` group.
        match t.get(j + 2) {
            Some(Token::Ident(name)) => {
                found.insert(name.clone());
            }
            Some(Token::Open) => {
                let mut level = 0;
                let mut expect_head = true;
                for tok in &t[j + 2..] {
                    match tok {
                        Token::Open => {
                            level += 1;
                            expect_head = level == 1;
                        }
                        Token::Close => {
                            level -= 1;
                            if level == 0 {
                                break;
                            }
                        }
                        Token::Comma => expect_head = level == 1,
                        Token::Ident(name) if expect_head => {
                            found.insert(name.clone());
                            expect_head = false;
                        }
                        _ => expect_head = false,
                    }
                }
            }
            _ => {}
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// Every reference between two different top-level modules of the library.
fn edges(src: &Path) -> Vec<Edge> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let tops: BTreeSet<String> = files
        .iter()
        .filter_map(|f| module_of(f.strip_prefix(src).ok()?).first().cloned())
        .collect();
    let mut out = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(src).expect("under src");
        // The binary is the top of the house: it may use everything.
        if rel == Path::new("main.rs") {
            continue;
        }
        let module = module_of(rel);
        let text = std::fs::read_to_string(file).expect("readable source");
        for to in referenced_tops(&module, &code_only(&text)) {
            let from = module.first().cloned().unwrap_or_default();
            if tops.contains(&to) && to != from && !from.is_empty() {
                let file = format!("src/{}", rel.display());
                out.push(Edge { from, to, file });
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// A cycle between modules, as the list of modules it passes (first = last), or none.
fn find_cycle(edges: &[Edge]) -> Option<Vec<String>> {
    let mut graph: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for e in edges {
        graph.entry(&e.from).or_default().insert(&e.to);
    }
    fn visit<'a>(
        node: &'a str,
        graph: &BTreeMap<&'a str, BTreeSet<&'a str>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(pos) = path.iter().position(|&n| n == node) {
            let mut cycle: Vec<String> = path[pos..].iter().map(|s| s.to_string()).collect();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if !done.insert(node) {
            return None;
        }
        path.push(node);
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    let nodes: Vec<&str> = graph.keys().copied().collect();
    nodes
        .into_iter()
        .find_map(|n| visit(n, &graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_cycle_between_the_top_level_modules_of_src() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let edges = edges(&src);
    // The reader sees the house's known lower layers being used.
    for (from, to) in [("daemon", "dcs"), ("daemon", "config"), ("decide", "dcs")] {
        assert!(
            edges.iter().any(|e| e.from == from && e.to == to),
            "no reference {from} -> {to} found: the reader is broken"
        );
    }
    if let Some(cycle) = find_cycle(&edges) {
        let files: Vec<String> = cycle
            .windows(2)
            .flat_map(|w| {
                edges
                    .iter()
                    .filter(|e| e.from == w[0] && e.to == w[1])
                    .map(|e| format!("{} -> {} in {}", e.from, e.to, e.file))
                    .collect::<Vec<_>>()
            })
            .collect();
        panic!(
            "import cycle {}:\n  {}",
            cycle.join(" -> "),
            files.join("\n  ")
        );
    }
}

#[test]
fn the_reader_finds_paths_and_cycles() {
    let code = code_only(
        r##"
        use crate::{net::Vip, dcs};
        use crate::decide::Grace; // crate::logger in a comment
        fn f() { let s = "crate::caps"; let r = r#"crate::signals"#; let c = '"'; }
        mod tests { use super::*; use super::super::base64; }
        "##,
    );
    let module = vec!["config".to_string()];
    let tops = referenced_tops(&module, &code);
    let want: BTreeSet<String> = ["base64", "config", "dcs", "decide", "net"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(tops, want);
    // From a nested file, `super::super` leaves the top-level module.
    let nested = vec!["dcs".to_string(), "etcd".to_string()];
    let tops = referenced_tops(&nested, &code_only("use super::super::config::X;"));
    assert_eq!(tops, BTreeSet::from(["config".to_string()]));
    let tops = referenced_tops(&nested, &code_only("use super::http;"));
    assert_eq!(tops, BTreeSet::from(["dcs".to_string()]));

    let edge = |from: &str, to: &str| Edge {
        from: from.into(),
        to: to.into(),
        file: String::new(),
    };
    let acyclic = [edge("a", "b"), edge("b", "c"), edge("a", "c")];
    assert_eq!(find_cycle(&acyclic), None);
    let cyclic = [edge("a", "b"), edge("b", "c"), edge("c", "a")];
    assert_eq!(
        find_cycle(&cyclic),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
}
