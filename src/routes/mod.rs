//! Authorization at the gate: per-route rules on the original request's path and method and on the token's
//! scopes and claims (docs/CONFIG.md, "Routes"). Path normalisation and segment-aware prefixes (`path`),
//! scopes (`scope`), claim rules (`claims`), the route table and its decisions (`table`), the original
//! request as proxies report it (`target`), the table as the daemon applies it, with per-token bits kept in
//! the cache (`gate`), and the `[[route]]` configuration (`config`).

pub mod claims;
pub mod config;
pub mod gate;
pub mod path;
pub mod scope;
pub mod table;
pub mod target;

pub use gate::{Assessment, Check, Gate};
pub use table::{Route, Routes, Target};
