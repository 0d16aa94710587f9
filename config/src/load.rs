//! Loading: reading a file, parsing RON (with `implicit_some`), running validation, and
//! turning every failure into [`Diagnostic`]s with `FILE:LINE:COL` positions. Also the
//! embedded default config and writing a config back out as RON.

use std::path::Path;

use ron::extensions::Extensions;

use crate::{locate::locate, validate, Config, ConfigError, Diagnostic, Position, DEFAULT_CONFIG};

/// The RON options every config is read with.
fn options() -> ron::Options {
    ron::Options::default().with_default_extension(Extensions::IMPLICIT_SOME)
}

/// True when `text` holds nothing but whitespace and comments.
fn is_blank(text: &str) -> bool {
    let mut rest = text.trim_start();
    loop {
        if let Some(r) = rest.strip_prefix("//") {
            rest = r.find('\n').map_or("", |n| &r[n..]).trim_start();
        } else if let Some(r) = rest.strip_prefix("/*") {
            // Nested block comments, as RON allows.
            let mut depth = 1;
            let mut i = 0;
            let b = r.as_bytes();
            while depth > 0 && i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                } else {
                    i += 1;
                }
            }
            if depth > 0 {
                return false; // unclosed: let the parser report it
            }
            rest = r[i..].trim_start();
        } else {
            return rest.is_empty();
        }
    }
}

impl Config {
    /// Parses and validates a config. `file_name` prefixes every diagnostic. A blank file
    /// (only whitespace and comments) is the default config. Keys of features that are
    /// not built yet are refused ("is not supported yet"), with their positions.
    pub fn from_ron(text: &str, file_name: &str) -> Result<Config, ConfigError> {
        Config::parse(text, file_name, true)
    }

    /// Like [`Config::from_ron`], but accepting every key of the schema, built or not
    /// (for tests of the schema itself; the daemon never loads a config this way).
    #[doc(hidden)]
    pub fn from_ron_all_keys(text: &str, file_name: &str) -> Result<Config, ConfigError> {
        Config::parse(text, file_name, false)
    }

    fn parse(text: &str, file_name: &str, built_only: bool) -> Result<Config, ConfigError> {
        let invalid = |diagnostics| ConfigError::Invalid {
            file: file_name.to_owned(),
            diagnostics,
        };
        let cfg = if is_blank(text) {
            Config::default()
        } else {
            options().from_str::<Config>(text).map_err(|e| {
                // An unexpected end is reported where the text ends, the rest where the
                // offending token starts.
                let at = match e.code {
                    ron::Error::Eof => &e.span.end,
                    _ => &e.span.start,
                };
                invalid(vec![Diagnostic {
                    position: Some(Position {
                        line: at.line,
                        col: at.col,
                    }),
                    message: e.code.to_string(),
                }])
            })?
        };
        let mut problems = validate::problems(&cfg);
        if built_only {
            problems.extend(validate::unsupported(&cfg));
        }
        let mut diagnostics: Vec<Diagnostic> = problems
            .into_iter()
            .map(|p| Diagnostic {
                position: locate(text, &p.path),
                message: p.message,
            })
            .collect();
        if diagnostics.is_empty() {
            return Ok(cfg);
        }
        // File order; those without a position last (the sort is stable).
        diagnostics.sort_by_key(|d| (d.position.is_none(), d.position));
        Err(invalid(diagnostics))
    }

    /// Reads `path` and parses it with [`Config::from_ron`], naming the file as given.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        Config::from_ron(&text, &file)
    }

    /// The embedded default config, [`DEFAULT_CONFIG`], parsed.
    pub fn embedded_default() -> Config {
        // Tested to parse; falling back keeps this infallible even so.
        Config::from_ron(DEFAULT_CONFIG, "<embedded default>").unwrap_or_default()
    }

    /// Runs the semantic checks on a config built in code (no positions known).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let diagnostics: Vec<Diagnostic> = validate::problems(self)
            .into_iter()
            .map(|p| Diagnostic {
                position: None,
                message: p.message,
            })
            .collect();
        if diagnostics.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid {
                file: "<config>".to_owned(),
                diagnostics,
            })
        }
    }

    /// The config as pretty RON that [`Config::from_ron`] reads back to an equal config.
    pub fn to_ron(&self) -> Result<String, ConfigError> {
        let pretty = ron::ser::PrettyConfig::default().struct_names(false);
        options()
            .to_string_pretty(self, pretty)
            .map_err(|e| ConfigError::Value(format!("cannot write the config as RON: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_detection() {
        for blank in [
            "",
            "  \n",
            "// x\n",
            "/* a /* b */ */\n// c",
            "// no newline",
        ] {
            assert!(is_blank(blank), "{blank:?}");
        }
        for not in ["()", "// x\n()", "/* unclosed", "x"] {
            assert!(!is_blank(not), "{not:?}");
        }
    }
}
