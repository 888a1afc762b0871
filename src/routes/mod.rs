//! Authorization at the gate (issue 15, in progress): per-route rules on the original request's path and
//! method and on the token's scopes and claims. This step holds the parts with no I/O: path normalisation
//! and segment-aware prefixes (`path`), scopes (`scope`), claim rules (`claims`) and the route table with its
//! decisions (`table`), and the original request as proxies report it (`target`). Not wired to the daemon
//! yet: no configuration accepts routes until they are enforced.

pub mod claims;
pub mod path;
pub mod scope;
pub mod table;
pub mod target;
