//! The sources of settings and their layering: one [`Layer`] each for the flags, the
//! `VIP_*` environment and the YAML file; [`Sources`] looks a key up through them in
//! precedence order and reads its value as text, number, boolean, secret or file.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::PathBuf;

use super::options::{CONFIG_ENV, DEBIAN_ENV, Kind, OPTIONS, Opt, Rank, env_name, lookup};
use super::values::{parse_bool, parse_number};
use super::yaml::{self, Value};
use super::{ConfigError, Secret};

const MAX_CONFIG_BYTES: u64 = 1 << 20;
const MAX_SECRET_BYTES: u64 = 64 << 10;

/// One value as a source gave it.
#[derive(Debug, Clone)]
pub(super) struct Setting {
    pub(super) value: Value,
    /// Where it came from, as the user wrote it: `--netmask`, `VIP_MASK`,
    /// `/etc/vipd.yml:3: mask`. Every message about the value starts with it.
    pub(super) origin: String,
    rank: Rank,
    /// The name as written (`mask`, `VIP_MASK`, `--mask`).
    name: String,
    /// The file line, for duplicate-key warnings.
    line: Option<usize>,
}

impl Setting {
    /// A value from the command line or the environment, where the name as written
    /// is also its origin.
    pub(super) fn named(name: &str, value: String, rank: Rank) -> Setting {
        Setting {
            value: Value::Scalar(value),
            origin: name.to_string(),
            rank,
            name: name.to_string(),
            line: None,
        }
    }
}

/// The settings of one source (the flags, the environment or the file).
#[derive(Debug, Default)]
pub(super) struct Layer {
    map: HashMap<&'static str, Setting>,
}

impl Layer {
    /// Record `s` for `opt`: a newer name beats an older one; between equals the
    /// later wins (as repeated flags do in Go, and duplicate keys in viper).
    pub(super) fn set(&mut self, opt: &'static Opt, s: Setting, warnings: &mut Vec<String>) {
        let Some(prev) = self.map.get(opt.key) else {
            self.map.insert(opt.key, s);
            return;
        };
        let wins = s.rank >= prev.rank;
        if let (Some(prev_line), Some(_), true) = (prev.line, s.line, s.name == prev.name) {
            warnings.push(format!(
                "{}: duplicate key (also on line {prev_line}); the last one wins",
                s.origin
            ));
        } else if prev.origin != s.origin && prev.value != s.value {
            let (winner, loser) = if wins { (&s, prev) } else { (prev, &s) };
            // The value used, unless it is a password or token.
            let using = match (&winner.value, opt.kind) {
                (_, Kind::Secret) => String::new(),
                (Value::Scalar(v), _) => format!(" (using {v:?})"),
                (Value::List(items), _) => format!(" (using {items:?})"),
            };
            warnings.push(format!(
                "{} is ignored: {} is also set and wins{using}",
                loser.origin, winner.origin
            ));
        }
        if wins {
            self.map.insert(opt.key, s);
        }
    }
}

/// A value as the user gave it, `None` when empty (empty means unset).
pub(super) fn given(kind: Kind, raw: &str) -> Option<String> {
    let v = if kind == Kind::Secret {
        raw
    } else {
        raw.trim()
    };
    (!v.is_empty()).then(|| v.to_string())
}

pub(super) fn deprecated(old: &str, new: &str) -> String {
    format!("{old} is deprecated; use {new}")
}

/// The `VIP_*` variables of every option, new names first.
pub(super) fn env_layer(env: &dyn Fn(&str) -> Option<String>, warnings: &mut Vec<String>) -> Layer {
    let mut layer = Layer::default();
    for opt in OPTIONS {
        let new_var = env_name(opt.key);
        let names = std::iter::once((opt.key, Rank::New))
            .chain(opt.also.iter().map(|n| (*n, Rank::Also)))
            .chain(opt.old.iter().map(|n| (*n, Rank::Old)));
        let mut seen: Vec<String> = Vec::new();
        for (name, rank) in names {
            let var = env_name(name);
            if seen.contains(&var) {
                continue;
            }
            let rank = if var == new_var { Rank::New } else { rank };
            if let Some(value) = env(&var).and_then(|v| given(opt.kind, &v)) {
                if rank == Rank::Old && !DEBIAN_ENV.contains(&var.as_str()) {
                    warnings.push(deprecated(&var, &new_var));
                }
                layer.set(opt, Setting::named(&var, value, rank), warnings);
            }
            seen.push(var);
        }
    }
    layer
}

/// Open `path` for reading, refusing a directory; errors name `origin` and the file.
fn open(path: &str, origin: &str) -> Result<File, ConfigError> {
    let cannot = |e: std::io::Error| ConfigError(format!("{origin}: cannot read {path:?}: {e}"));
    let file = File::open(path).map_err(cannot)?;
    if file.metadata().map_err(cannot)?.is_dir() {
        return Err(ConfigError(format!("{origin}: {path:?} is a directory")));
    }
    Ok(file)
}

/// The text of `path`, at most `limit` bytes of UTF-8.
pub(super) fn read_text(path: &str, origin: &str, limit: u64) -> Result<String, ConfigError> {
    let mut bytes = Vec::new();
    open(path, origin)?
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ConfigError(format!("{origin}: cannot read {path:?}: {e}")))?;
    if bytes.len() as u64 > limit {
        return Err(ConfigError(format!(
            "{origin}: {path:?} is larger than {} KiB",
            limit >> 10
        )));
    }
    String::from_utf8(bytes)
        .map_err(|_| ConfigError(format!("{origin}: {path:?} is not UTF-8 text")))
}

/// Read and parse the YAML file named by `--config` / `VIP_CONFIG`.
pub(super) fn file_layer(
    path: &str,
    origin: &str,
    warnings: &mut Vec<String>,
) -> Result<Layer, ConfigError> {
    let text = read_text(path, origin, MAX_CONFIG_BYTES)?;
    let entries =
        yaml::parse(&text).map_err(|e| ConfigError(format!("{path}:{}: {}", e.line, e.message)))?;
    let mut layer = Layer::default();
    for entry in entries {
        let origin = format!("{path}:{}: {}", entry.line, entry.key);
        let Some((opt, rank)) = lookup(&entry.key.to_ascii_lowercase()) else {
            warnings.push(format!("{origin}: unknown key (ignored)"));
            continue;
        };
        let value = match entry.value {
            Value::Scalar(v) => given(opt.kind, &v).map(Value::Scalar),
            Value::List(items) => {
                let items: Vec<String> = items
                    .iter()
                    .filter_map(|item| given(opt.kind, item))
                    .collect();
                (!items.is_empty()).then_some(Value::List(items))
            }
        };
        let Some(value) = value else {
            continue;
        };
        if rank == Rank::Old {
            let deprecated = deprecated(&entry.key, opt.key);
            warnings.push(format!("{path}:{}: {deprecated}", entry.line));
        }
        let setting = Setting {
            value,
            origin,
            rank,
            name: entry.key.to_ascii_lowercase(),
            line: Some(entry.line),
        };
        layer.set(opt, setting, warnings);
    }
    Ok(layer)
}

/// The three sources, highest precedence first.
pub(super) struct Sources<'a> {
    pub(super) layers: [&'a Layer; 3],
}

impl Sources<'_> {
    /// The winning setting of `key` and the index of its source (0 = flags).
    pub(super) fn setting(&self, key: &str) -> Option<(usize, &Setting)> {
        self.layers
            .iter()
            .enumerate()
            .find_map(|(i, layer)| layer.map.get(key).map(|s| (i, s)))
    }

    /// The single value of `key` and its origin; a list is an error.
    pub(super) fn text(&self, key: &str) -> Result<Option<(&str, &str)>, ConfigError> {
        match self.setting(key) {
            None => Ok(None),
            Some((_, s)) => match &s.value {
                Value::Scalar(v) => Ok(Some((v.as_str(), s.origin.as_str()))),
                Value::List(_) => Err(ConfigError(format!(
                    "{}: expects a single value, not a list",
                    s.origin
                ))),
            },
        }
    }

    pub(super) fn required(&self, key: &str) -> Result<(&str, &str), ConfigError> {
        self.text(key)?
            .ok_or_else(|| ConfigError(format!("{key}: not set (required)")))
    }

    pub(super) fn bool(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.text(key)? {
            None => Ok(default),
            Some((v, origin)) => parse_bool(v).ok_or_else(|| {
                ConfigError(format!(
                    "{origin}: {v:?} is not a boolean (expected true or false)"
                ))
            }),
        }
    }

    pub(super) fn number(
        &self,
        key: &str,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<u64, ConfigError> {
        match self.text(key)? {
            None => Ok(default),
            Some((v, origin)) => parse_number(v, origin, min, max),
        }
    }

    /// A secret given directly (`key`) or in a file (`file_key`); the source with the
    /// higher precedence wins, both in one source is an error.
    pub(super) fn secret(&self, key: &str, file_key: &str) -> Result<Option<Secret>, ConfigError> {
        let use_file = match (self.setting(key), self.setting(file_key)) {
            (None, None) => return Ok(None),
            (Some((a, sa)), Some((b, sb))) if a == b => {
                return Err(ConfigError(format!(
                    "{} and {} are both set; set only one",
                    sa.origin, sb.origin
                )));
            }
            (Some((a, _)), Some((b, _))) => b < a,
            (None, Some(_)) => true,
            (Some(_), None) => false,
        };
        if !use_file {
            return Ok(self.text(key)?.map(|(v, _)| Secret(v.to_string())));
        }
        match self.text(file_key)? {
            Some((path, origin)) => read_secret(path, origin).map(Some),
            None => Ok(None),
        }
    }

    /// A file that must exist and be readable.
    pub(super) fn readable_file(&self, key: &str) -> Result<Option<PathBuf>, ConfigError> {
        let Some((path, origin)) = self.text(key)? else {
            return Ok(None);
        };
        open(path, origin)?;
        Ok(Some(PathBuf::from(path)))
    }

    pub(super) fn origin(&self, key: &str) -> Option<&str> {
        self.setting(key).map(|(_, s)| s.origin.as_str())
    }

    /// The origin of the first of `keys` that is set, else the first key's name.
    pub(super) fn origin_of_any<'k>(&'k self, keys: &[&'k str]) -> &'k str {
        keys.iter().find_map(|k| self.origin(k)).unwrap_or(keys[0])
    }
}

/// Read a secret file: one trailing newline (`\n` or `\r\n`) is stripped. Errors name
/// the file, never its content.
pub(super) fn read_secret(path: &str, origin: &str) -> Result<Secret, ConfigError> {
    let mut text = read_text(path, origin, MAX_SECRET_BYTES)?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    if text.is_empty() {
        return Err(ConfigError(format!("{origin}: {path:?} is empty")));
    }
    Ok(Secret(text))
}

/// Warnings for `VIP_*` variables that vipd does not know, given the names of all
/// variables in the environment (e.g. `std::env::vars_os().map(|(k, _)| k)`). Other
/// variables are not looked at: only the `VIP_` prefix is vipd's (and vip-manager's).
pub fn unknown_env_warnings<I, S>(names: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut known: Vec<String> = vec![CONFIG_ENV.to_string()];
    for opt in OPTIONS {
        known.push(env_name(opt.key));
        known.extend(opt.also.iter().chain(opt.old).map(|n| env_name(n)));
    }
    let mut out = Vec::new();
    for name in names {
        let name = name.as_ref().to_string_lossy();
        if name.starts_with("VIP_") && !known.iter().any(|k| *k == name) {
            out.push(format!("{name}: unknown environment variable (ignored)"));
        }
    }
    out
}
