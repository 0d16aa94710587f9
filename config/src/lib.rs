//! # Layout
//!
//! - `schema`: the typed config — [`Config`] and one struct per section.
//! - `domain`: per-destination-domain limits ([`DomainCfg`], [`TlsMode`]) and how a
//!   partial entry inherits from `"*"`.
//! - [`defaults`]: one named function per default; every `impl Default` calls them.
//! - [`units`]: validated newtypes for values with units — [`Duration`], [`Rate`],
//!   [`Cidr`], [`HostPort`].
//! - `lookup`: what the daemon asks of a config — `route`, `domain`, `relay_allowed`,
//!   paths under `data_dir`.
//! - `load`: reading and parsing RON, the embedded default, writing RON back.
//! - `validate`: the semantic checks after parsing, reporting every problem.
//! - `locate`: finding a key's line and column in the text for validation errors.
//! - `error`: [`ConfigError`], the crate's one error type, and [`Diagnostic`].
//! - `default.ron`: the embedded default, [`DEFAULT_CONFIG`].
//!
//! Impulse configuration: the RON schema with its defaults, validation that reports every
//! error as `FILE:LINE:COL: message`, and the embedded default config.
//!
//! ```
//! let cfg = impulse_config::Config::from_ron(r#"(routes: {"*": "127.0.0.1:2526"})"#, "x.ron")?;
//! assert_eq!(cfg.route("example.com"), Some("127.0.0.1:2526"));
//! assert!(cfg.relay_allowed("127.0.0.1".parse().unwrap()));
//! # Ok::<(), impulse_config::ConfigError>(())
//! ```

pub mod defaults;
mod domain;
mod error;
mod load;
mod locate;
mod lookup;
mod schema;
pub mod units;
mod validate;

pub use domain::{resolve_domains, DomainCfg, PartialDomainCfg, TlsMode};
pub use error::{ConfigError, Diagnostic, Position};
pub use schema::{
    AuthCfg, BindingCfg, Config, DeliveryCfg, DkimCfg, DnsCfg, HttpCfg, ListenerCfg, ListenerTls,
    MemoryCfg, PoolsCfg, RelayCfg, SmtpCfg, SpoolCfg,
};
pub use units::{ByteSize, Cidr, Duration, HostPort, Rate};

/// The embedded default config (`impulsed --print-default-config`): valid, commented RON.
pub const DEFAULT_CONFIG: &str = include_str!("default.ron");
