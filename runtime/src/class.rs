//! Actor classes: the kinds of actor Impulse runs.
//!
//! A class names a row in `impulsectl tree` and a bucket in `impulsectl memory`: the
//! counting allocator attributes every allocation to the class of the actor running on
//! the current thread, and the registry records each actor's class.

use serde::{Deserialize, Serialize};

/// The kind of an actor. `Other` collects what runs outside any actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum ActorClass {
    Other = 0,
    Root = 1,
    Io = 2,
    Pool = 3,
    Spool = 4,
    Control = 5,
    Logger = 6,
    Listener = 7,
    Inbound = 8,
    Domain = 9,
    Outbound = 10,
    Message = 11,
    /// The DNS resolver (MX and address lookups, on its own arbiter).
    Resolver = 12,
    /// The bounce generator (delivery status notifications).
    Bouncer = 13,
    /// The HTTP endpoint (`/metrics`, `/health`, `/api/`).
    Http = 14,
}

impl ActorClass {
    /// Number of classes; class values are `0..COUNT`.
    pub const COUNT: usize = 15;

    /// Every class, in numeric order.
    pub const ALL: [ActorClass; Self::COUNT] = [
        ActorClass::Other,
        ActorClass::Root,
        ActorClass::Io,
        ActorClass::Pool,
        ActorClass::Spool,
        ActorClass::Control,
        ActorClass::Logger,
        ActorClass::Listener,
        ActorClass::Inbound,
        ActorClass::Domain,
        ActorClass::Outbound,
        ActorClass::Message,
        ActorClass::Resolver,
        ActorClass::Bouncer,
        ActorClass::Http,
    ];

    /// The class with numeric value `v`; `Other` for anything out of range.
    pub const fn from_u8(v: u8) -> ActorClass {
        if (v as usize) < Self::COUNT {
            Self::ALL[v as usize]
        } else {
            ActorClass::Other
        }
    }

    /// Lower-case name as printed by `impulsectl` and accepted by `--class`.
    pub const fn name(self) -> &'static str {
        match self {
            ActorClass::Other => "other",
            ActorClass::Root => "root",
            ActorClass::Io => "io",
            ActorClass::Pool => "pool",
            ActorClass::Spool => "spool",
            ActorClass::Control => "control",
            ActorClass::Logger => "logger",
            ActorClass::Listener => "listener",
            ActorClass::Inbound => "inbound",
            ActorClass::Domain => "domain",
            ActorClass::Outbound => "outbound",
            ActorClass::Message => "message",
            ActorClass::Resolver => "resolver",
            ActorClass::Bouncer => "bouncer",
            ActorClass::Http => "http",
        }
    }

    /// Parse a lower-case class name.
    pub fn parse(name: &str) -> Option<ActorClass> {
        Self::ALL.iter().copied().find(|c| c.name() == name)
    }
}

impl std::fmt::Display for ActorClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_values_match_positions() {
        for (i, c) in ActorClass::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i);
            assert_eq!(ActorClass::from_u8(i as u8), *c);
            assert_eq!(ActorClass::parse(c.name()), Some(*c));
        }
        assert_eq!(ActorClass::from_u8(200), ActorClass::Other);
    }
}
