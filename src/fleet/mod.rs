//! A fleet of daemons sharing revocations through a Redis stream (issue 16, in progress; docs/FLEET.md).
//! This step holds the wire format only (`wire`): pure, tested, not wired to the daemon yet.

pub mod wire;
