//! The responder's deadlines in one ordered index ([`crate::timer::Deadlines`]): one slot per connection and
//! one per claim; its `first` is the min that `poll_timeout` reports.

use super::claim::ClaimId;
use crate::command::ConnId;

/// Whose deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum TimerKey {
    /// A connection's timer (its purpose follows from its state).
    Conn(ConnId),
    /// A claim's expiry.
    Claim(ClaimId),
}

/// The responder's deadlines.
pub(super) type Timers = crate::timer::Deadlines<TimerKey>;
