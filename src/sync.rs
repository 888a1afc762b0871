//! Synchronisation primitives, swapped for loom's when built with `--cfg jwtd_loom` so that the model
//! checker can explore every interleaving of the cache's and the revocation set's own protocols (see
//! `cache::loom_tests` and `revocation::loom_tests`).

#[cfg(not(jwtd_loom))]
pub use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
#[cfg(not(jwtd_loom))]
pub use std::sync::{Arc, Mutex, RwLock};

#[cfg(jwtd_loom)]
pub use loom::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
#[cfg(jwtd_loom)]
pub use loom::sync::{Arc, Mutex, RwLock};
