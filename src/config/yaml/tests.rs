//! Tests of the YAML subset reader: what it accepts, and every refusal with its line.

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

/// Each text is one key whose value is the scalar given with it.
fn assert_scalars(cases: &[(&str, &str)]) {
    for (text, want) in cases {
        assert_eq!(one(text), Value::Scalar(want.to_string()), "{text:?}");
    }
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
    assert_scalars(&[
        ("e: http://a:2379/x", "http://a:2379/x"),
        ("k: a#b", "a#b"),
        ("k: a b  c   ", "a b  c"),
        ("k:\tv", "v"),
        ("k: -1", "-1"),
        ("k : v", "v"),
        ("my key: v", "v"),
    ]);
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
    assert_scalars(&[("k: \"null\"", "null")]);
    assert_eq!(one("k: []"), Value::List(vec![]));
}

#[test]
fn double_quoted_escapes() {
    assert_scalars(&[
        (
            r#"k: "a\"b\\c\/d\te\nf\x41\u00e9\U0001F600\ \0""#,
            "a\"b\\c/d\te\nfA\u{e9}\u{1F600} \0",
        ),
        (r#"k: "a # not a comment" # comment"#, "a # not a comment"),
        (r#"k: "it's""#, "it's"),
    ]);
}

#[test]
fn single_quoted() {
    assert_scalars(&[
        ("k: 'it''s # here'  # c", "it's # here"),
        (r"k: 'a\nb'", r"a\nb"),
    ]);
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
        Value::List(["http://a:1", "b, c", "d", "e"].map(String::from).into())
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
