//! The measurement groups of issue #7, each side by side with a direct connection where one applies.

pub mod delay;
pub mod handshakes;
pub mod latency;
pub mod memory;
pub mod procs;
pub mod restore;
pub mod smol;
pub mod throughput;
pub mod tls;
