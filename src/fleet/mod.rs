//! A fleet of daemons sharing revocations through a Redis stream (docs/FLEET.md): the wire format of a
//! stream entry (`wire`), the settings (`config`), the figures (`stats`) and the link that publishes this
//! daemon's operations and applies everyone else's (`link`). The bookkeeping that makes it exactly-once and
//! durable lives with the revocation log (`revocation::book`).

pub mod config;
pub mod link;
pub mod stats;
pub mod wire;

pub use link::Fleet;
