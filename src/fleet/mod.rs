//! A fleet of daemons sharing revocations through a Redis stream (issue 16, in progress; docs/FLEET.md).
//! This step holds the pure parts, not wired to the daemon yet: the wire format (`wire`) and the instance
//! identity kept in the state directory (`instance`).

pub mod wire;
