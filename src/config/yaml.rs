//! A reader for the flat YAML subset that vip-manager's configuration files use.
//!
//! Accepted: `key: value` lines at the left margin; plain, `'single'`- and
//! `"double"`-quoted scalars (with YAML's escapes in double quotes); `#` comments,
//! whole-line and trailing (not inside quotes); blank lines; one `---` document start
//! before the first key; block lists (`key:` followed by `- item` lines, indented or
//! not, all alike) and one-line inline lists (`key: [a, "b"]`). `key:` with nothing
//! after it and no list, and the plain scalars `~` and `null`, give an empty scalar,
//! which the configuration treats as unset.
//!
//! Everything else is rejected with the line number and what was found: nested
//! mappings, multi-line values, anchors, aliases, tags, block scalars, directives,
//! several documents, tabs in indentation. Duplicate keys are returned in order (the
//! configuration decides: the last one wins, with a warning, as with viper).
//!
//! [`parse`] is a pure function of the text and never panics.

use std::fmt;

/// The value of one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// One scalar, unquoted and unescaped; empty for `key:`, `key: ""`, `~`, `null`.
    Scalar(String),
    /// A block list or an inline list.
    List(Vec<String>),
}

/// One `key: value` of the file, with the line (1-based) the key is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: Value,
    pub line: usize,
}

/// Why the text is not in the accepted subset, and where (1-based line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for YamlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.line, self.message)
    }
}

impl std::error::Error for YamlError {}

fn err<T>(line: usize, message: impl Into<String>) -> Result<T, YamlError> {
    Err(YamlError {
        line,
        message: message.into(),
    })
}

/// A key whose value is on the following lines (a block list), or empty.
struct Pending {
    key: String,
    line: usize,
    items: Vec<String>,
    /// The indentation of the first item; the others must match it.
    indent: Option<usize>,
}

impl Pending {
    fn finish(self) -> Entry {
        let value = if self.items.is_empty() {
            Value::Scalar(String::new())
        } else {
            Value::List(self.items)
        };
        Entry {
            key: self.key,
            value,
            line: self.line,
        }
    }
}

/// Parse a configuration file's text into its entries, in file order.
pub fn parse(text: &str) -> Result<Vec<Entry>, YamlError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut entries = Vec::new();
    let mut pending: Option<Pending> = None;
    let mut seen_content = false;

    for (index, raw) in text.split('\n').enumerate() {
        let n = index + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let rest = line.trim_start_matches([' ', '\t']);
        if rest.is_empty() || rest.starts_with('#') {
            continue;
        }
        let indentation = &line[..line.len() - rest.len()];
        if indentation.contains('\t') {
            return err(n, "tab in indentation (YAML allows only spaces there)");
        }
        let indent = indentation.len();

        if indent == 0 {
            if let Some(after) = marker(rest, "---") {
                if seen_content {
                    return err(n, "a second document ('---') is not supported");
                }
                if !is_blank_or_comment(after) {
                    return err(n, "content after '---' is not supported");
                }
                continue;
            }
            if marker(rest, "...").is_some() {
                return err(n, "the document end marker '...' is not supported");
            }
            if rest.starts_with('%') {
                return err(n, "directives ('%...') are not supported");
            }
        }
        seen_content = true;

        if let Some(item) = list_item(rest) {
            let Some(p) = pending.as_mut() else {
                return err(
                    n,
                    "list item without a key (write 'key:' and the '- item' lines below it)",
                );
            };
            match p.indent {
                None => p.indent = Some(indent),
                Some(first) if first != indent => {
                    return err(
                        n,
                        format!(
                            "list item indented by {indent}, the first one by {first} \
                             (nested lists are not supported)"
                        ),
                    );
                }
                Some(_) => {}
            }
            if item.is_empty() || item.starts_with('#') {
                return err(n, "empty list item");
            }
            let value = scalar(item, n)?;
            p.items.push(value);
            continue;
        }

        if indent > 0 {
            return match &pending {
                Some(p) if p.items.is_empty() => err(
                    n,
                    "nested mappings are not supported (only flat 'key: value')",
                ),
                _ => err(
                    n,
                    "unexpected indentation (nested mappings and multi-line values \
                     are not supported)",
                ),
            };
        }

        if let Some(p) = pending.take() {
            entries.push(p.finish());
        }
        let (key, after) = split_key(rest, n)?;
        let after = after.trim_start_matches([' ', '\t']);
        if is_blank_or_comment(after) {
            pending = Some(Pending {
                key,
                line: n,
                items: Vec::new(),
                indent: None,
            });
            continue;
        }
        let value = if after.starts_with('[') {
            Value::List(inline_list(after, n)?)
        } else if after.starts_with('{') {
            return err(n, "inline mappings ('{...}') are not supported");
        } else {
            Value::Scalar(scalar(after, n)?)
        };
        entries.push(Entry {
            key,
            value,
            line: n,
        });
    }
    if let Some(p) = pending.take() {
        entries.push(p.finish());
    }
    Ok(entries)
}

/// `rest` without the marker when it is the marker alone or followed by blank space.
fn marker<'a>(rest: &'a str, marker: &str) -> Option<&'a str> {
    let after = rest.strip_prefix(marker)?;
    if after.is_empty() || after.starts_with([' ', '\t']) {
        Some(after)
    } else {
        None
    }
}

fn is_blank_or_comment(s: &str) -> bool {
    let s = s.trim_start_matches([' ', '\t']);
    s.is_empty() || s.starts_with('#')
}

/// The text after `- ` when the line is a block list item.
fn list_item(rest: &str) -> Option<&str> {
    let after = rest.strip_prefix('-')?;
    if after.is_empty() || after.starts_with([' ', '\t']) {
        Some(after.trim_start_matches([' ', '\t']))
    } else {
        None
    }
}

/// Split `key: value` at the first `:` followed by blank space or the end of line.
fn split_key(rest: &str, n: usize) -> Result<(String, &str), YamlError> {
    match rest.chars().next() {
        Some('"' | '\'') => return err(n, "quoted keys are not supported"),
        Some('?') => return err(n, "complex keys ('?') are not supported"),
        Some('[' | '{') => return err(n, "a flow collection cannot be a key"),
        Some(c @ ('&' | '*' | '!' | '|' | '>' | '@' | '`' | ',' | ']' | '}' | ':')) => {
            return err(n, format!("a key cannot start with '{c}'"));
        }
        _ => {}
    }
    let bytes = rest.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'#' && i > 0 && matches!(bytes[i - 1], b' ' | b'\t') {
            break;
        }
        if b == b':' && matches!(bytes.get(i + 1), None | Some(b' ' | b'\t')) {
            let key = rest[..i].trim_end_matches([' ', '\t']);
            if key.is_empty() {
                return err(n, "empty key");
            }
            return Ok((key.to_string(), &rest[i + 1..]));
        }
    }
    err(n, "expected 'key: value'")
}

/// One scalar that takes the rest of the line (a value or a block list item),
/// followed by nothing but an optional comment.
fn scalar(s: &str, n: usize) -> Result<String, YamlError> {
    match s.chars().next() {
        Some('"') => {
            let (value, after) = double_quoted(s, n)?;
            trailing(after, n)?;
            Ok(value)
        }
        Some('\'') => {
            let (value, after) = single_quoted(s, n)?;
            trailing(after, n)?;
            Ok(value)
        }
        Some('[' | '{') => err(n, "nested lists and mappings are not supported"),
        _ => {
            check_plain_start(s, n)?;
            let end = comment_start(s).unwrap_or(s.len());
            let value = s[..end].trim_end_matches([' ', '\t']);
            if has_mapping_colon(value) {
                return err(
                    n,
                    "nested mappings are not supported (quote a value that contains ': ')",
                );
            }
            if matches!(value, "~" | "null" | "Null" | "NULL") {
                return Ok(String::new());
            }
            Ok(value.to_string())
        }
    }
}

/// Whether a plain scalar contains `: ` or ends in `:` (YAML reads a mapping there).
fn has_mapping_colon(value: &str) -> bool {
    let bytes = value.as_bytes();
    bytes
        .iter()
        .enumerate()
        .any(|(i, &b)| b == b':' && matches!(bytes.get(i + 1), None | Some(b' ' | b'\t')))
}

/// Reject what YAML would read as something other than a plain scalar.
fn check_plain_start(s: &str, n: usize) -> Result<(), YamlError> {
    let mut chars = s.chars();
    let first = chars.next();
    let second = chars.next();
    let blank_after = matches!(second, None | Some(' ' | '\t'));
    match first {
        Some('&') => err(n, "anchors ('&') are not supported"),
        Some('*') => err(n, "aliases ('*') are not supported"),
        Some('!') => err(n, "tags ('!') are not supported"),
        Some('|' | '>') => err(n, "block scalars ('|', '>') are not supported"),
        Some(c @ ('@' | '`' | '%' | ',' | ']' | '}')) => err(
            n,
            format!("a plain value cannot start with '{c}' (quote the value)"),
        ),
        Some('-') if blank_after => err(n, "a list cannot follow 'key:' on the same line"),
        Some('?') if blank_after => err(n, "complex keys ('?') are not supported"),
        Some(':') if blank_after => err(n, "unexpected ':'"),
        _ => Ok(()),
    }
}

/// The byte offset of a comment (`#` after blank space) in a plain scalar.
fn comment_start(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    (1..bytes.len()).find(|&i| bytes[i] == b'#' && matches!(bytes[i - 1], b' ' | b'\t'))
}

/// After a closing quote or bracket: only blank space and an optional comment.
fn trailing(after: &str, n: usize) -> Result<(), YamlError> {
    let rest = after.trim_start_matches([' ', '\t']);
    if rest.is_empty() || (rest.starts_with('#') && rest.len() < after.len()) {
        Ok(())
    } else {
        err(n, "unexpected text after the quoted value")
    }
}

/// Parse `"..."` at the start of `s`; returns the value and the text after it.
fn double_quoted(s: &str, n: usize) -> Result<(String, &str), YamlError> {
    let unterminated = || {
        err(
            n,
            "unterminated double-quoted string (multi-line values are not supported)",
        )
    };
    let mut out = String::new();
    let mut chars = s.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &s[i + 1..])),
            '\\' => {
                let Some((_, e)) = chars.next() else {
                    return unterminated();
                };
                let digits = match e {
                    '0' => {
                        out.push('\0');
                        continue;
                    }
                    'a' => {
                        out.push('\u{7}');
                        continue;
                    }
                    'b' => {
                        out.push('\u{8}');
                        continue;
                    }
                    't' | '\t' => {
                        out.push('\t');
                        continue;
                    }
                    'n' => {
                        out.push('\n');
                        continue;
                    }
                    'v' => {
                        out.push('\u{b}');
                        continue;
                    }
                    'f' => {
                        out.push('\u{c}');
                        continue;
                    }
                    'r' => {
                        out.push('\r');
                        continue;
                    }
                    'e' => {
                        out.push('\u{1b}');
                        continue;
                    }
                    ' ' | '"' | '/' | '\\' => {
                        out.push(e);
                        continue;
                    }
                    'N' => {
                        out.push('\u{85}');
                        continue;
                    }
                    '_' => {
                        out.push('\u{a0}');
                        continue;
                    }
                    'L' => {
                        out.push('\u{2028}');
                        continue;
                    }
                    'P' => {
                        out.push('\u{2029}');
                        continue;
                    }
                    'x' => 2,
                    'u' => 4,
                    'U' => 8,
                    other => {
                        return err(
                            n,
                            format!(
                                "invalid escape '\\{}' in a double-quoted string",
                                other.escape_debug()
                            ),
                        );
                    }
                };
                let mut code: u32 = 0;
                for _ in 0..digits {
                    let Some(d) = chars.next().and_then(|(_, h)| h.to_digit(16)) else {
                        return err(n, format!("'\\{e}' needs {digits} hexadecimal digits"));
                    };
                    code = code * 16 + d;
                }
                let Some(ch) = char::from_u32(code) else {
                    return err(n, format!("'\\{e}{code:X}' is not a Unicode character"));
                };
                out.push(ch);
            }
            _ => out.push(c),
        }
    }
    unterminated()
}

/// Parse `'...'` at the start of `s` (`''` is one quote); returns the value and the
/// text after it.
fn single_quoted(s: &str, n: usize) -> Result<(String, &str), YamlError> {
    let mut out = String::new();
    let mut chars = s.char_indices().skip(1).peekable();
    while let Some((i, c)) = chars.next() {
        if c == '\'' {
            if matches!(chars.peek(), Some((_, '\''))) {
                chars.next();
                out.push('\'');
                continue;
            }
            return Ok((out, &s[i + 1..]));
        }
        out.push(c);
    }
    err(
        n,
        "unterminated single-quoted string (multi-line values are not supported)",
    )
}

/// Parse `[a, "b", 'c']` (one line) at the start of `s`.
fn inline_list(s: &str, n: usize) -> Result<Vec<String>, YamlError> {
    let unterminated = || {
        err(
            n,
            "unterminated inline list (an inline list must be on one line)",
        )
    };
    let mut items = Vec::new();
    let mut rest = &s[1..];
    loop {
        rest = rest.trim_start_matches([' ', '\t']);
        if let Some(after) = rest.strip_prefix(']') {
            trailing(after, n)?;
            return Ok(items);
        }
        let (item, after) = match rest.chars().next() {
            None | Some('#') => return unterminated(),
            Some('"') => double_quoted(rest, n)?,
            Some('\'') => single_quoted(rest, n)?,
            Some('[' | '{') => return err(n, "nested lists and mappings are not supported"),
            Some(',') => return err(n, "empty item in an inline list"),
            Some(_) => {
                check_plain_start(rest, n)?;
                let bytes = rest.as_bytes();
                let mut end = bytes.len();
                for (i, &b) in bytes.iter().enumerate() {
                    let comment = b == b'#' && i > 0 && matches!(bytes[i - 1], b' ' | b'\t');
                    if matches!(b, b',' | b']' | b'[' | b'{' | b'}') || comment {
                        end = i;
                        break;
                    }
                }
                let item = rest[..end].trim_end_matches([' ', '\t']);
                if has_mapping_colon(item) {
                    return err(n, "mappings inside an inline list are not supported");
                }
                match bytes.get(end) {
                    Some(b'[' | b'{' | b'}') => {
                        return err(n, "nested lists and mappings are not supported");
                    }
                    Some(b'#') | None => return unterminated(),
                    _ => {}
                }
                (item.to_string(), &rest[end..])
            }
        };
        items.push(item);
        rest = after.trim_start_matches([' ', '\t']);
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if !rest.starts_with(']') {
            return match rest.chars().next() {
                None | Some('#') => unterminated(),
                _ => err(n, "expected ',' or ']' in an inline list"),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar_entry(key: &str, value: &str, line: usize) -> Entry {
        Entry {
            key: key.into(),
            value: Value::Scalar(value.into()),
            line,
        }
    }

    fn list_entry(key: &str, items: &[&str], line: usize) -> Entry {
        Entry {
            key: key.into(),
            value: Value::List(items.iter().map(|s| s.to_string()).collect()),
            line,
        }
    }

    fn one(text: &str) -> Value {
        let entries = parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert_eq!(entries.len(), 1, "{text:?}: {entries:?}");
        entries[0].value.clone()
    }

    fn rejected(text: &str) -> YamlError {
        match parse(text) {
            Ok(entries) => panic!("{text:?} was accepted: {entries:?}"),
            Err(e) => e,
        }
    }

    fn assert_rejected(text: &str, line: usize, needle: &str) {
        let e = rejected(text);
        assert_eq!(e.line, line, "{text:?}: {e}");
        assert!(e.message.contains(needle), "{text:?}: {e} lacks {needle:?}");
    }

    #[test]
    fn vip_manager_sample_file() {
        let text = "\
# config for vip-manager
---
interval: 1000

trigger-key: \"/service/pgcluster/leader\"
trigger-value: 'pgcluster_member1'  # this node
ip: 192.168.0.123 # the virtual ip address to manage
netmask: 24
interface: enp0s3
dcs-endpoints:
  - http://127.0.0.1:2379
  # a comment between items
  - http://192.168.0.42:2379
etcd-user:
retry-num: 2
";
        let entries = parse(text).unwrap();
        assert_eq!(
            entries,
            vec![
                scalar_entry("interval", "1000", 3),
                scalar_entry("trigger-key", "/service/pgcluster/leader", 5),
                scalar_entry("trigger-value", "pgcluster_member1", 6),
                scalar_entry("ip", "192.168.0.123", 7),
                scalar_entry("netmask", "24", 8),
                scalar_entry("interface", "enp0s3", 9),
                list_entry(
                    "dcs-endpoints",
                    &["http://127.0.0.1:2379", "http://192.168.0.42:2379"],
                    10
                ),
                scalar_entry("etcd-user", "", 14),
                scalar_entry("retry-num", "2", 15),
            ]
        );
    }

    #[test]
    fn plain_scalars_keep_inner_colons_and_hashes() {
        assert_eq!(
            one("e: http://a:2379/x"),
            Value::Scalar("http://a:2379/x".into())
        );
        assert_eq!(one("k: a#b"), Value::Scalar("a#b".into()));
        assert_eq!(one("k: a b  c   "), Value::Scalar("a b  c".into()));
        assert_eq!(one("k:\tv"), Value::Scalar("v".into()));
        assert_eq!(one("k: -1"), Value::Scalar("-1".into()));
        assert_eq!(one("k : v"), Value::Scalar("v".into()));
        assert_eq!(one("my key: v"), Value::Scalar("v".into()));
    }

    #[test]
    fn empty_values() {
        for text in [
            "k:",
            "k:   ",
            "k: # nothing",
            "k: \"\"",
            "k: ''",
            "k: ~",
            "k: null",
        ] {
            assert_eq!(one(text), Value::Scalar(String::new()), "{text:?}");
        }
        // A quoted "null" is the string.
        assert_eq!(one("k: \"null\""), Value::Scalar("null".into()));
        assert_eq!(one("k: []"), Value::List(vec![]));
    }

    #[test]
    fn double_quoted_escapes() {
        assert_eq!(
            one(r#"k: "a\"b\\c\/d\te\nf\x41\u00e9\U0001F600\ \0""#),
            Value::Scalar("a\"b\\c/d\te\nfA\u{e9}\u{1F600} \0".into())
        );
        assert_eq!(
            one(r#"k: "a # not a comment" # comment"#),
            Value::Scalar("a # not a comment".into())
        );
        assert_eq!(one(r#"k: "it's""#), Value::Scalar("it's".into()));
    }

    #[test]
    fn single_quoted() {
        assert_eq!(
            one("k: 'it''s # here'  # c"),
            Value::Scalar("it's # here".into())
        );
        assert_eq!(one(r"k: 'a\nb'"), Value::Scalar(r"a\nb".into()));
    }

    #[test]
    fn block_lists() {
        // Indented or at the key's own level (both valid YAML), quoted items,
        // trailing comments, blank lines between items.
        let text = "a:\n  - x\n\n  - \"y z\"  # c\nb:\n- 'p'\n- q\n";
        assert_eq!(
            parse(text).unwrap(),
            vec![
                list_entry("a", &["x", "y z"], 1),
                list_entry("b", &["p", "q"], 5)
            ]
        );
    }

    #[test]
    fn inline_lists() {
        assert_eq!(
            one("k: [http://a:1, \"b, c\", 'd' ,e]  # c"),
            Value::List(vec![
                "http://a:1".into(),
                "b, c".into(),
                "d".into(),
                "e".into()
            ])
        );
        assert_eq!(one("k: [a, b,]"), Value::List(vec!["a".into(), "b".into()]));
        assert_eq!(one("k: [ ]"), Value::List(vec![]));
    }

    #[test]
    fn document_start_bom_crlf_and_duplicates() {
        let text = "\u{feff}--- # start\r\nip: 192.0.2.1\r\nip: 192.0.2.2\r\n";
        assert_eq!(
            parse(text).unwrap(),
            vec![
                scalar_entry("ip", "192.0.2.1", 2),
                scalar_entry("ip", "192.0.2.2", 3)
            ]
        );
        assert_eq!(parse("").unwrap(), vec![]);
        assert_eq!(parse("# only\n\n---\n").unwrap(), vec![]);
    }

    #[test]
    fn rejections_name_the_line() {
        assert_rejected("a: 1\nb:\n  c: 2\n", 3, "nested mappings");
        assert_rejected("a: 1\n  b: 2\n", 2, "unexpected indentation");
        assert_rejected("a: one\n  two\n", 2, "multi-line");
        assert_rejected("a: &x 1\n", 1, "anchors");
        assert_rejected("a: *x\n", 1, "aliases");
        assert_rejected("a: !!str 1\n", 1, "tags");
        assert_rejected("a: |\n  text\n", 1, "block scalars");
        assert_rejected("a: >\n", 1, "block scalars");
        assert_rejected("a: 1\n\tb: 2\n", 2, "tab");
        assert_rejected("a:\n\t- x\n", 2, "tab");
        assert_rejected("a: 1\n---\nb: 2\n", 2, "second document");
        assert_rejected("--- a\n", 1, "after '---'");
        assert_rejected("a: 1\n...\n", 2, "'...'");
        assert_rejected("%YAML 1.2\n", 1, "directives");
        assert_rejected("- x\n", 1, "without a key");
        assert_rejected("a: 1\n- x\n", 2, "without a key");
        assert_rejected("a:\n  - x\n    - y\n", 3, "indented");
        assert_rejected("a:\n  -\n", 2, "empty list item");
        assert_rejected("a:\n  - b: c\n", 2, "nested mappings");
        assert_rejected("a:\n  - [x]\n", 2, "nested");
        assert_rejected("a: {b: c}\n", 1, "inline mappings");
        assert_rejected("a: [x, [y]]\n", 1, "nested");
        assert_rejected("a: [x, {y: 1}]\n", 1, "nested");
        assert_rejected("a: [x, y\n", 1, "unterminated inline list");
        assert_rejected("a: [x, y # c]\n", 1, "unterminated inline list");
        assert_rejected("a: [x,, y]\n", 1, "empty item");
        assert_rejected("a: [x: 1]\n", 1, "mappings inside");
        assert_rejected("a: [\"x\" y]\n", 1, "expected ','");
        assert_rejected("a: [x] y\n", 1, "unexpected text");
        assert_rejected("a: \"x\n", 1, "unterminated double-quoted");
        assert_rejected("a: \"x\\\n", 1, "unterminated double-quoted");
        assert_rejected("a: 'x\n", 1, "unterminated single-quoted");
        assert_rejected("a: \"x\" y\n", 1, "unexpected text");
        assert_rejected("a: \"x\"# c\n", 1, "unexpected text");
        assert_rejected("a: \"\\q\"\n", 1, "invalid escape");
        assert_rejected("a: \"\\x4\"\n", 1, "hexadecimal");
        assert_rejected("a: \"\\uD800\"\n", 1, "not a Unicode character");
        assert_rejected("a: b: c\n", 1, "nested mappings");
        assert_rejected("a: b:\n", 1, "nested mappings");
        assert_rejected("a: - x\n", 1, "same line");
        assert_rejected("a: @x\n", 1, "cannot start with '@'");
        assert_rejected("a: %x\n", 1, "cannot start with '%'");
        assert_rejected("just text\n", 1, "expected 'key: value'");
        assert_rejected("a #: b\n", 1, "expected 'key: value'");
        assert_rejected("a: x:y: z\n", 1, "nested mappings");
        assert_rejected("\"a\": b\n", 1, "quoted keys");
        assert_rejected("? a\n", 1, "complex keys");
        assert_rejected(": a\n", 1, "cannot start with ':'");
        assert_rejected("[a]: b\n", 1, "flow collection");
        assert_rejected("x: 1\n\n\nbad\n", 4, "expected");
    }

    #[test]
    fn error_display_is_line_then_message() {
        let e = rejected("a: 1\nb: &x\n");
        assert_eq!(e.to_string(), format!("2: {}", e.message));
    }

    /// Every prefix of every sample, and some byte soup, parse or fail without a
    /// panic (the configuration file is outside input).
    #[test]
    fn never_panics() {
        let samples = [
            "a: \"\\u00e9\\U0001F600\" # é\n- x\nb: [c, 'd''e', \"f\\\"\"]\n",
            "k:\n  - 'x\n  - \"y\\",
            "é: ü\n\u{feff}---\n\t\n...\n%\n",
            "a: [\"\\x",
            "a: '''",
        ];
        for sample in samples {
            for (i, _) in sample.char_indices() {
                let _ = parse(&sample[..i]);
            }
        }
        let alphabet = [
            'a', ':', ' ', '\t', '\n', '-', '#', '"', '\'', '\\', '[', ']', ',', '{', 'é', 'u',
        ];
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            let mut s = String::new();
            for _ in 0..(state % 24) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                s.push(alphabet[(state % alphabet.len() as u64) as usize]);
            }
            let _ = parse(&s);
        }
    }
}
