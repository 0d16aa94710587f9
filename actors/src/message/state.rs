//! The lifecycle of a message, written down in one place.
//!
//! ```text
//!  (record in the active queue) ──dispatch──▶ Queued ──Begin──▶ InFlight
//!        ▲                                     │ Requeue           │ Outcome / Defer
//!        └─────────────────────────────────────┘                   ▼
//!  (record in the delayed queue: hibernating) ◀──some pending── Settling
//!                                                                  │ all final
//!                                                                  ▼
//!                                                    Finishing ──logged + removed──▶ (gone)
//! ```
//! A message is an actor only from dispatch to the end of its attempt; in between it is
//! a compact [`QueuedMessage`](crate::queued::QueuedMessage) in its domain's queues
//! (registry state `queued` or `hibernating`). `Settling` waits for the final records of
//! this attempt to be logged and marked durably before the record goes back to the
//! delayed queue; `Finishing` covers delivered, bounced and expired.

/// Where a message actor is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsgState {
    /// Assigned to a connection, not yet taken.
    Queued,
    /// Taken by an outbound connection.
    InFlight,
    /// Some recipients pending: logging and marking this attempt's final ones.
    Settling,
    /// Final outcome reached; logging and leaving the spool.
    Finishing,
}

impl MsgState {
    pub fn name(self) -> &'static str {
        match self {
            MsgState::Queued => "queued",
            MsgState::InFlight => "in-flight",
            MsgState::Settling => "settling",
            MsgState::Finishing => "finishing",
        }
    }

    /// Whether `self → next` is a legal transition.
    pub fn can_move_to(self, next: MsgState) -> bool {
        use MsgState::*;
        matches!(
            (self, next),
            (Queued, InFlight)
                | (Queued, Settling)
                | (Queued, Finishing)
                | (InFlight, Settling)
                | (InFlight, Finishing)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::MsgState::*;

    #[test]
    fn transitions_table() {
        assert!(Queued.can_move_to(InFlight));
        assert!(InFlight.can_move_to(Settling));
        assert!(InFlight.can_move_to(Finishing));
        assert!(!Finishing.can_move_to(Queued));
        assert!(!InFlight.can_move_to(Queued));
        assert!(!Settling.can_move_to(InFlight));
    }
}
