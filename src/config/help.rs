//! The `--help` text, made from the option table.

use super::options::{DEBIAN_ENV, Kind, OPTIONS, Opt, env_name};

/// `text` wrapped at 80 columns, each line indented by `indent` spaces.
fn wrap(text: &str, indent: usize) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && indent + line.len() + 1 + word.len() > 80 {
            out.push_str(&format!("{:indent$}{line}\n", ""));
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        out.push_str(&format!("{:indent$}{line}\n", ""));
    }
    out
}

/// The `--help` text: every option with its flag, variable, YAML key and default.
pub fn help_text() -> String {
    let mut out = format!(
        "vipd {} - keeps a virtual IP address on the node Patroni's leader key names

Usage: vipd [OPTIONS]                     run the daemon
       vipd --once [--dry-run] [--json] [OPTIONS]  check and reconcile once

Each option is a flag (--name=VALUE or --name VALUE; one dash works too), an
environment variable VIP_NAME (upper case, '-' becomes '_') and a key in the
YAML file named by --config. Precedence: flag > environment > file > default.
An empty value means unset. Durations are whole milliseconds.

  --config FILE
      YAML file with the keys below: flat 'key: value' lines; dcs-endpoints may
      be a list.
      env VIP_CONFIG; no default
",
        env!("CARGO_PKG_VERSION")
    );
    for opt in OPTIONS {
        out.push_str(&option_entry(opt));
    }
    out.push_str(
        "
  --once
      One observe-and-reconcile, then exit: 0 done, 1 DCS or kernel failure,
      2 configuration error. Never releases the VIP because the DCS is
      unreachable.
  --dry-run
      With --once: change nothing, say what would be done; exit 3 when a change
      is needed.
  --json
      With --once: print the result as one JSON object instead of the line.
  -h, --help
      This text.
  -V, --version
      The version.

",
    );
    out.push_str(&wrap(
        &format!(
            "Older vip-manager names are accepted, with a deprecation warning, as YAML \
             keys, flags and VIP_ variables; so are keys spelled with '_' for '-' \
             (etcd_user). The variables Debian's /etc/patroni/*.vip files set ({}) \
             carry no warning. Where an old and a new name are both set, the new one \
             wins.",
            DEBIAN_ENV.join(", ")
        ),
        0,
    ));
    out.push_str(&other_names(|opt| opt.old));
    out.push_str("Accepted without a warning:\n");
    out.push_str(&other_names(|opt| opt.also));
    out
}

/// An option's entry: its flag, what it does, its variable, key and default.
fn option_entry(opt: &Opt) -> String {
    let flag = match opt.kind {
        Kind::Bool => format!("  --{}[=BOOL]\n", opt.key),
        _ => format!("  --{} {}\n", opt.key, opt.metavar),
    };
    let (env, key, default) = (env_name(opt.key), opt.key, opt.default);
    let names = wrap(&format!("env {env}, key {key}; default: {default}"), 6);
    flag + &wrap(opt.help, 6) + &names
}

/// One line for each of the options' other names that `names` picks.
fn other_names(names: impl Fn(&Opt) -> &'static [&'static str]) -> String {
    let mut out = String::new();
    for opt in OPTIONS {
        for name in names(opt) {
            out.push_str(&format!(
                "  {name:<14} {:<18} -> {} / {}\n",
                env_name(name),
                opt.key,
                env_name(opt.key)
            ));
        }
    }
    out
}
