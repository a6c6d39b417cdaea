//! # revtun-core
//!
//! The sans-IO core of revtun: pure state machines and codecs for Envoy's reverse-tunnel wire protocol.
//! Nothing in this crate opens a socket, reads a clock, spawns a thread or draws from a global random
//! number generator: time comes in as `now: Instant` (and, where the wire needs a wall clock, unix
//! milliseconds), randomness from a seeded [`rand_chacha::ChaCha8Rng`]. `core/clippy.toml` enforces it.
//!
//! Modules follow the protocol (see `DESIGN.md`):
//! - [`address`]: the `rc://node:cluster:tenant@target:count` listener address grammar;
//! - [`handshake`]: the HTTP/1.1 handshake codec (request encoder, incremental request and response
//!   parsers, the responder's check table and its exact response bytes);
//! - [`keepalive`]: `RPING` keepalive and the `RDATA` claim marker, for both sides;
//! - [`backoff`]: per-host reconnect backoff with seeded jitter;
//! - [`initiator`]: the initiator state machine (dials, handshakes, keepalive echoes, claims, backoff, stats);
//! - [`responder`]: the responder state machine (handshake checks, idle pool with keepalive, claims);
//! - [`policy`]: token sets, id allow-list patterns, certificate identity binding and source CIDR
//!   allow-lists, and [`policy::Policy`], an authorizer built from them;
//! - [`command`]: connection ids, transmits and the lifecycle orders the state machines give their driver;
//! - [`stats`]: statistics snapshots with the dotted names of `DESIGN.md`;
//! - `config` (feature `config`): the Envoy-style bootstrap YAML model, parsed into a typed plan.

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod address;
pub use address::{AddressError, RcAddress};
pub mod backoff;
pub mod command;
#[cfg(feature = "config")]
pub mod config;
pub mod handshake;
mod headers;
pub mod initiator;
pub mod keepalive;
pub mod policy;
pub mod responder;
pub mod stats;
mod timer;

#[cfg(feature = "fuzzing")]
pub mod fuzzing;
