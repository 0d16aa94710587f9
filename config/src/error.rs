//! Errors: the crate's one error enum, [`ConfigError`], and the [`Diagnostic`] lines it
//! carries.
//!
//! A config that does not load yields every problem found, each as one `Diagnostic`
//! rendered `FILE:LINE:COL: message` (or `FILE: message` when no position is known).
//! `Display` on the error prints one diagnostic per line, ready for `--check-config`.

use std::fmt;

/// A 1-based line and column in the config text (columns count characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// Line number, starting at 1.
    pub line: usize,
    /// Column number in characters, starting at 1.
    pub col: usize,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// One problem found in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Where in the file, when it could be found.
    pub position: Option<Position>,
    /// What is wrong, e.g. ``Unexpected field named `max_conections` ...``.
    pub message: String,
}

impl Diagnostic {
    /// Renders the diagnostic as `FILE:LINE:COL: message` or `FILE: message`.
    pub fn render(&self, file: &str) -> String {
        match self.position {
            Some(p) => format!("{file}:{p}: {}", self.message),
            None => format!("{file}: {}", self.message),
        }
    }
}

/// Everything that can go wrong while loading or checking a config.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        /// The path as given.
        file: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file was read but is not a valid config: a RON or type error (exactly one, as
    /// the parser stops there) or every semantic problem found by validation.
    #[error("{}", Listing(.file, .diagnostics))]
    Invalid {
        /// The file name used as the prefix of each line.
        file: String,
        /// The problems, in file order where known.
        diagnostics: Vec<Diagnostic>,
    },
    /// A single value (duration, rate, CIDR, host:port) that does not parse.
    #[error("{0}")]
    Value(String),
}

impl ConfigError {
    /// The diagnostics of an [`ConfigError::Invalid`] error (empty for the other kinds).
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            ConfigError::Invalid { diagnostics, .. } => diagnostics,
            _ => &[],
        }
    }
}

/// Renders diagnostics one per line.
struct Listing<'a>(&'a String, &'a Vec<Diagnostic>);

impl fmt::Display for Listing<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.1.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            f.write_str(&d.render(self.0))?;
        }
        Ok(())
    }
}
