//! The Robot webservice credentials in vip-manager's file (`/etc/hetzner`): a
//! `user="…"` line and a `pass="…"` line, written for a shell to source. vip-manager
//! cut the value out at fixed character offsets, so a quote in a password or a blank
//! before `=` broke it; here each value is read the way a shell reads a simple
//! assignment: double quotes (with `\"`, `\\`, `\$` and `` \` `` escapes), single quotes
//! (literal), or a bare word; `export ` in front, blank lines and `#` comments are
//! allowed. Other variables are ignored. No value ever appears in an error.

use crate::dcs::Secret;

/// The longest credentials file read (a few lines).
pub const MAX_FILE: usize = 64 * 1024;

/// Read `user` and `pass` from the file's text; an error names the line, never a value.
pub fn parse(text: &str) -> Result<(String, Secret), String> {
    let (mut user, mut pass) = (None, None);
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").map_or(line, str::trim_start);
        let Some((name, value)) = line.split_once('=') else {
            return Err(format!("line {}: not a name=value line", n + 1));
        };
        let slot = match name {
            "user" => &mut user,
            "pass" => &mut pass,
            _ => continue,
        };
        let value = word(value).map_err(|e| format!("line {}: {name}: {e}", n + 1))?;
        *slot = Some(value);
    }
    let user = user.filter(|u| !u.is_empty());
    let pass = pass.filter(|p| !p.is_empty());
    let user = user.ok_or("no user=\"…\" line, or an empty one")?;
    let pass = pass.ok_or("no pass=\"…\" line, or an empty one")?;
    Ok((user, Secret(pass)))
}

/// One shell word: quoted parts and bare parts run together, up to a blank or a `#`
/// that starts a comment.
fn word(text: &str) -> Result<String, &'static str> {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => loop {
                match chars.next() {
                    None => return Err("a double quote is not closed"),
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        None => return Err("a double quote is not closed"),
                        Some(e @ ('"' | '\\' | '$' | '`')) => out.push(e),
                        // A line continuation inside quotes: nothing.
                        Some('\n') => {}
                        Some(other) => {
                            out.push('\\');
                            out.push(other);
                        }
                    },
                    Some(other) => out.push(other),
                }
            },
            '\'' => loop {
                match chars.next() {
                    None => return Err("a single quote is not closed"),
                    Some('\'') => break,
                    Some(other) => out.push(other),
                }
            },
            '\\' => match chars.next() {
                Some(e) => out.push(e),
                None => return Err("ends with a backslash"),
            },
            c if c.is_whitespace() => {
                let rest = chars.as_str().trim_start();
                if rest.is_empty() || rest.starts_with('#') {
                    break;
                }
                return Err("more than one word (quote a value with blanks)");
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> (String, String) {
        let (u, p) = parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        (u, p.0)
    }

    #[test]
    fn vip_managers_file_and_shell_quoting() {
        let pair = |u: &str, p: &str| (u.to_string(), p.to_string());
        let cases = [
            (
                "user=\"robot1\"\npass=\"s3cret\"\n",
                pair("robot1", "s3cret"),
            ),
            // vip-manager's offsets broke on each of these.
            ("user = x", pair("", "")),
            (
                "# Robot webservice\nexport user='#ws+ab'\npass=\"a\\\"b\\\\c$d\"\n",
                pair("#ws+ab", "a\"b\\c$d"),
            ),
            ("user=bare\npass='it''s'  # comment\n", pair("bare", "its")),
            ("pass=\"p w\"\r\nuser=u\r\n", pair("u", "p w")),
            (
                "user=u\npass='\\n$x'\nother=\"ignored\n",
                pair("u", "\\n$x"),
            ),
            ("user=u\npass=\"x\\qy\"", pair("u", "x\\qy")),
            // The last assignment wins, as in a shell.
            ("user=a\nuser=b\npass=c", pair("b", "c")),
        ];
        for (text, want) in cases {
            if want.0.is_empty() {
                assert!(parse(text).is_err(), "{text:?}");
            } else {
                assert_eq!(ok(text), want, "{text:?}");
            }
        }
    }

    #[test]
    fn errors_name_the_line_and_never_the_value() {
        let cases = [
            (
                "user=u\npass=\"open-secret",
                "line 2: pass: a double quote is not closed",
            ),
            (
                "user=u\npass='open-secret",
                "line 2: pass: a single quote is not closed",
            ),
            (
                "user=u\npass=two words-secret",
                "line 2: pass: more than one word",
            ),
            ("pass=only-secret", "no user"),
            ("user=u", "no pass"),
            ("user=u\npass=", "no pass"),
            (
                "user=u\njunk-secret\npass=p",
                "line 2: not a name=value line",
            ),
        ];
        for (text, want) in cases {
            let err = parse(text).unwrap_err();
            assert!(err.starts_with(want), "{text:?}: {err}");
            assert!(!err.contains("secret"), "{err}");
        }
    }
}
