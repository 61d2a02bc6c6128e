//! The `--help` text.

use super::*;

#[test]
fn help_mentions_every_option() {
    let help = help_text();
    // Wrapping may break a line between "default:" and its value.
    let joined = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(help.contains("--config FILE"));
    assert!(help.contains("VIP_CONFIG"));
    for opt in OPTIONS {
        assert!(help.contains(&format!("--{}", opt.key)), "{}", opt.key);
        assert!(help.contains(&format!("key {};", opt.key)), "{}", opt.key);
        assert!(help.contains(&env_name(opt.key)), "{}", opt.key);
        assert!(
            joined.contains(&format!("default: {}", opt.default)),
            "{}",
            opt.key
        );
        for old in opt.old.iter().chain(opt.also) {
            assert!(help.contains(&format!("  {old} ")), "{old}");
            assert!(help.contains(&env_name(old)), "{old}");
        }
    }
    for flag in ["--once", "--dry-run", "-h, --help", "-V, --version", "-v"] {
        assert!(help.contains(flag), "{flag}");
    }
    assert!(help.contains(env!("CARGO_PKG_VERSION")));
    let words = help.split_whitespace().collect::<Vec<_>>().join(" ");
    let debian = format!("files set ({}) carry no warning", DEBIAN_ENV.join(", "));
    assert!(words.contains(&debian), "{words}");
}
