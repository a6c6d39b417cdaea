//! The driver's errors.

use std::io;

use revtun_core::initiator::InitiatorConfigError;
use revtun_core::responder::ResponderConfigError;

/// A [`ReverseListener`](crate::ReverseListener) or [`ResponderHandle`](crate::ResponderHandle) could not
/// start.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum StartError {
    /// The initiator configuration is invalid (the message names the field).
    #[error("initiator config: {0}")]
    Initiator(#[from] InitiatorConfigError),
    /// The responder configuration is invalid.
    #[error("responder config: {0}")]
    Responder(#[from] ResponderConfigError),
    /// A host source names a cluster that is not a target of the configuration.
    #[error("host source for {0:?}, which is not a target cluster of the configuration")]
    UnknownCluster(String),
    /// A target cluster of the configuration has no host source (or two).
    #[error("target cluster {0:?} needs exactly one host source")]
    HostSource(String),
    /// Binding the listening socket failed.
    #[error("bind: {0}")]
    Io(#[from] io::Error),
}

impl From<StartError> for io::Error {
    fn from(e: StartError) -> Self {
        match e {
            StartError::Io(e) => e,
            other => io::Error::new(io::ErrorKind::InvalidInput, other),
        }
    }
}

/// A [`ResponderHandle::connect`](crate::ResponderHandle::connect) that got no tunnel.
#[derive(thiserror::Error, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClaimError {
    /// No idle tunnel of that node or cluster within `claim_timeout` (or, under tenant isolation, no
    /// tenant was given).
    #[error("no tunnel to that node or cluster within claim_timeout")]
    Timeout,
    /// The claimed tunnel closed while it was being handed over; trying again may succeed.
    #[error("the claimed tunnel closed during the hand-over")]
    HandOverFailed,
    /// The responder has shut down.
    #[error("the responder has shut down")]
    Shutdown,
}

impl From<ClaimError> for io::Error {
    fn from(e: ClaimError) -> Self {
        let kind = match e {
            ClaimError::Timeout => io::ErrorKind::TimedOut,
            ClaimError::HandOverFailed => io::ErrorKind::ConnectionAborted,
            ClaimError::Shutdown => io::ErrorKind::NotConnected,
        };
        io::Error::new(kind, e)
    }
}

/// [`ReverseListener::set_extra_headers`](crate::ReverseListener::set_extra_headers) did not replace the
/// headers.
#[derive(thiserror::Error, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeadersError {
    /// A header cannot go into the handshake request (the message names the field `extra_headers`).
    #[error("initiator config: {0}")]
    Invalid(#[from] InitiatorConfigError),
    /// The listener has shut down.
    #[error(transparent)]
    ShutDown(#[from] ShutDown),
}

/// The machine behind a handle has shut down: there is nothing left to ask.
#[derive(thiserror::Error, Clone, Copy, Debug, PartialEq, Eq)]
#[error("the reverse-tunnel machine has shut down")]
pub struct ShutDown;

impl From<ShutDown> for io::Error {
    fn from(e: ShutDown) -> Self {
        io::Error::new(io::ErrorKind::NotConnected, e)
    }
}
