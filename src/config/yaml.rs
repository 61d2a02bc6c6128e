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
        if indent == 0 && document_marker(rest, seen_content, n)? {
            continue;
        }
        seen_content = true;

        if let Some(item) = list_item(rest) {
            push_item(pending.as_mut(), indent, item, n)?;
            continue;
        }
        if indent > 0 {
            let why = match &pending {
                Some(p) if p.items.is_empty() => {
                    "nested mappings are not supported (only flat 'key: value')"
                }
                _ => {
                    "unexpected indentation (nested mappings and multi-line values are not \
                     supported)"
                }
            };
            return err(n, why);
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

/// Whether a line at the left margin is the document start, to be skipped; the
/// other document-level markers are refused.
fn document_marker(rest: &str, seen_content: bool, n: usize) -> Result<bool, YamlError> {
    if let Some(after) = marker(rest, "---") {
        if seen_content {
            return err(n, "a second document ('---') is not supported");
        }
        if !is_blank_or_comment(after) {
            return err(n, "content after '---' is not supported");
        }
        return Ok(true);
    }
    if marker(rest, "...").is_some() {
        return err(n, "the document end marker '...' is not supported");
    }
    if rest.starts_with('%') {
        return err(n, "directives ('%...') are not supported");
    }
    Ok(false)
}

/// Add a block list item to the key above it; all items are indented alike.
fn push_item(
    pending: Option<&mut Pending>,
    indent: usize,
    item: &str,
    n: usize,
) -> Result<(), YamlError> {
    let Some(p) = pending else {
        let why = "list item without a key (write 'key:' and the '- item' lines below it)";
        return err(n, why);
    };
    match p.indent {
        None => p.indent = Some(indent),
        Some(first) if first != indent => {
            let why = format!(
                "list item indented by {indent}, the first one by {first} \
                 (nested lists are not supported)"
            );
            return err(n, why);
        }
        Some(_) => {}
    }
    if item.is_empty() || item.starts_with('#') {
        return err(n, "empty list item");
    }
    p.items.push(scalar(item, n)?);
    Ok(())
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
                let why = "nested mappings are not supported (quote a value that contains ': ')";
                return err(n, why);
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
    let why = "unterminated double-quoted string (multi-line values are not supported)";
    let unterminated = || err(n, why);
    let mut out = String::new();
    let mut chars = s.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &s[i + 1..])),
            '\\' => {
                let Some((_, e)) = chars.next() else {
                    return unterminated();
                };
                if let Some(ch) = simple_escape(e) {
                    out.push(ch);
                    continue;
                }
                let digits = match e {
                    'x' => 2,
                    'u' => 4,
                    'U' => 8,
                    other => {
                        let other = other.escape_debug();
                        let why = format!("invalid escape '\\{other}' in a double-quoted string");
                        return err(n, why);
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

/// The character that YAML's one-character escape `\e` stands for.
fn simple_escape(e: char) -> Option<char> {
    Some(match e {
        '0' => '\0',
        'a' => '\u{7}',
        'b' => '\u{8}',
        't' | '\t' => '\t',
        'n' => '\n',
        'v' => '\u{b}',
        'f' => '\u{c}',
        'r' => '\r',
        'e' => '\u{1b}',
        ' ' | '"' | '/' | '\\' => e,
        'N' => '\u{85}',
        '_' => '\u{a0}',
        'L' => '\u{2028}',
        'P' => '\u{2029}',
        _ => return None,
    })
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
    let why = "unterminated single-quoted string (multi-line values are not supported)";
    err(n, why)
}

/// Parse `[a, "b", 'c']` (one line) at the start of `s`.
fn inline_list(s: &str, n: usize) -> Result<Vec<String>, YamlError> {
    let why = "unterminated inline list (an inline list must be on one line)";
    let unterminated = || err(n, why);
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
mod tests;
