//! Tests of the shared HTTP helpers.

use super::*;

#[test]
fn paths_are_percent_encoded() {
    assert_eq!(encode_path("/service/pg-1/leader"), "/service/pg-1/leader");
    assert_eq!(encode_path("/a b/c?d#e%f"), "/a%20b/c%3Fd%23e%25f");
    assert_eq!(encode_path("/é"), "/%C3%A9");
    assert_eq!(encode_path("x_y.z~"), "x_y.z~");
}

#[test]
fn server_text_is_one_bounded_line() {
    assert_eq!(server_text(b"No cluster leader"), "No cluster leader");
    assert_eq!(server_text(b"  ACL not found\n"), "ACL not found");
    assert_eq!(server_text(b"first\nsecond"), "first");
    assert_eq!(server_text(b""), "(empty reply)");
    assert_eq!(server_text(b"a\x1b[31mb"), "a[31mb");
    assert_eq!(server_text(b"\xff\xfeok"), "\u{fffd}\u{fffd}ok");
    let long = "y".repeat(1000);
    let text = server_text(long.as_bytes());
    assert_eq!(text.chars().count(), 201);
    assert!(text.ends_with('…'));
}
