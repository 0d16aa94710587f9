//! The lifecycle of a message, written down in one place.
//!
//! ```text
//! Queued ──Begin──▶ InFlight ──all final──▶ Finishing ──logged + removed──▶ (gone)
//!   ▲                 │
//!   └──── Delayed ◀───┘ some recipient failed transiently (retry later)
//! ```
//! `Finishing` covers delivered, bounced and expired: the final records are being
//! written durably and the spool mark made; only then does the actor stop.

/// Where a message is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsgState {
    /// In its domain's active queue, waiting for a connection.
    Queued,
    /// Taken by an outbound connection.
    InFlight,
    /// Waiting for its retry time in the domain's delayed queue.
    Delayed,
    /// Final outcome reached; logging and leaving the spool.
    Finishing,
}

impl MsgState {
    pub fn name(self) -> &'static str {
        match self {
            MsgState::Queued => "queued",
            MsgState::InFlight => "in-flight",
            MsgState::Delayed => "delayed",
            MsgState::Finishing => "finishing",
        }
    }

    /// Whether `self → next` is a legal transition.
    pub fn can_move_to(self, next: MsgState) -> bool {
        use MsgState::*;
        matches!(
            (self, next),
            (Queued, InFlight)
                | (Queued, Delayed)
                | (Queued, Finishing)
                | (InFlight, Delayed)
                | (InFlight, Finishing)
                | (Delayed, Queued)
                | (Delayed, Finishing)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::MsgState::*;

    #[test]
    fn transitions_table() {
        assert!(Queued.can_move_to(InFlight));
        assert!(InFlight.can_move_to(Delayed));
        assert!(Delayed.can_move_to(Queued));
        assert!(!Finishing.can_move_to(Queued));
        assert!(!InFlight.can_move_to(Queued));
        assert!(!Delayed.can_move_to(InFlight));
    }
}
