//! The command line: the options of the table as flags, plus the commands and
//! `--config`.
//!
//! A small loop rather than pico-args: the option table already knows every name,
//! alias and which options are booleans (bare `--verbose`, or `--verbose=false`), and
//! Go's conventions (`-name`, `--name`, `=value` or the next argument, which may start
//! with `-`; the last repeat wins) and the old names map directly onto it; pico-args
//! would need the single-dash names rewritten first, cannot tell an unknown flag from
//! a value, and would report errors without the table's names.

use std::ffi::OsString;

use super::ConfigError;
use super::options::{Kind, Rank, lookup};
use super::sources::{Layer, Setting, deprecated, given};

/// What the command line said: the options' layer and the rest.
#[derive(Debug, Default)]
pub(super) struct Cli {
    pub(super) layer: Layer,
    /// `--config`: the YAML file's path, and the flag as written.
    pub(super) config: Option<(String, String)>,
    pub(super) once: bool,
    pub(super) dry_run: bool,
    pub(super) json: bool,
    pub(super) help: bool,
    pub(super) version: bool,
}

/// Parse argv (without argv[0]). The first error is returned, unless `--help` or
/// `--version` is among the arguments: they win over anything wrong.
pub(super) fn parse_args(
    args: Vec<OsString>,
    warnings: &mut Vec<String>,
) -> Result<Cli, ConfigError> {
    let mut cli = Cli::default();
    let mut first_error: Option<String> = None;
    let mut args = args.into_iter().enumerate();
    while let Some((index, arg)) = args.next() {
        let result = match arg.to_str() {
            None => Err(not_utf8(index)),
            Some("--") => {
                if let Some((_, extra)) = args.next() {
                    let extra = extra.to_string_lossy();
                    let e = format!("unexpected argument {extra:?} (vipd takes only options)");
                    first_error.get_or_insert(e);
                }
                break;
            }
            Some(arg) => cli.take(arg, &mut args, warnings),
        };
        if let Err(e) = result {
            first_error.get_or_insert(e);
        }
    }
    match first_error {
        Some(e) if !cli.help && !cli.version => Err(ConfigError(e)),
        _ => Ok(cli),
    }
}

fn not_utf8(index: usize) -> String {
    format!("argument {} is not valid UTF-8", index + 1)
}

impl Cli {
    /// The command switch `name` stands for, if any.
    fn switch(&mut self, name: &str) -> Option<&mut bool> {
        match name {
            "h" | "help" => Some(&mut self.help),
            "V" | "version" => Some(&mut self.version),
            "once" => Some(&mut self.once),
            "dry-run" => Some(&mut self.dry_run),
            "json" => Some(&mut self.json),
            _ => None,
        }
    }

    /// Take one argument, and its value from `rest` when it is not inline.
    fn take(
        &mut self,
        arg: &str,
        rest: &mut impl Iterator<Item = (usize, OsString)>,
        warnings: &mut Vec<String>,
    ) -> Result<(), String> {
        let body = match arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) {
            Some(body) if !body.is_empty() => body,
            _ => {
                return Err(format!(
                    "unexpected argument {arg:?} (vipd takes only options; see --help)"
                ));
            }
        };
        let (name, inline) = match body.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (body, None),
        };
        // The flag as written, without any value (which may be a secret).
        let shown = format!("{}{name}", &arg[..arg.len() - body.len()]);
        if let Some(switch) = self.switch(name) {
            *switch = true;
            return match inline {
                Some(_) => Err(format!("{shown}: takes no value")),
                None => Ok(()),
            };
        }
        let (opt, rank) = match name {
            "v" => (lookup("verbose").map(|(o, _)| o), Rank::New),
            "config" => (None, Rank::New),
            _ => match lookup(name) {
                Some((opt, rank)) => (Some(opt), rank),
                None => return Err(format!("{shown}: unknown option (see --help)")),
            },
        };
        let kind = opt.map_or(Kind::Text, |o| o.kind);
        let value = match (inline, kind) {
            (Some(v), _) => v.to_string(),
            (None, Kind::Bool) => "true".to_string(),
            (None, _) => match rest.next() {
                Some((i, v)) => v.into_string().map_err(|_| not_utf8(i))?,
                None => return Err(format!("{shown}: missing value")),
            },
        };
        let Some(value) = given(kind, &value) else {
            return Ok(());
        };
        let Some(opt) = opt else {
            self.config = Some((value, shown));
            return Ok(());
        };
        if rank == Rank::Old {
            warnings.push(deprecated(&shown, &format!("--{}", opt.key)));
        }
        self.layer
            .set(opt, Setting::named(&shown, value, rank), warnings);
        Ok(())
    }
}
