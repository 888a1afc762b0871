//! The cache's synchronisation primitives, swapped for loom's when built with `--cfg jwtd_loom` so that the
//! model checker can explore every interleaving of the cache's own protocol (see `loom_tests`).
//!
//! A [`Slot`] holds one published entry. Normally it is an `arc_swap::ArcSwapOption`: readers load it without
//! a lock and without touching the entry's reference count. Under loom it is a loom mutex around the `Arc`
//! (loom cannot see inside arc-swap); what loom then checks is everything the cache does around the slots —
//! tags, visited bits, byte and entry accounting, and the writers' lock.

pub use crate::sync::{Arc, AtomicBool, AtomicU64, AtomicUsize, Mutex, Ordering};

/// One published value: load without a lock, replace under the set's writer lock.
#[cfg(not(jwtd_loom))]
pub struct Slot<T>(arc_swap::ArcSwapOption<T>);

#[cfg(not(jwtd_loom))]
impl<T> Default for Slot<T> {
    fn default() -> Self {
        Slot(arc_swap::ArcSwapOption::empty())
    }
}

#[cfg(not(jwtd_loom))]
impl<T> Slot<T> {
    /// Calls `f` with the current value (if any) without taking a lock.
    #[inline]
    pub fn with<R>(&self, f: impl FnOnce(Option<&T>) -> R) -> R {
        let g = self.0.load();
        f(g.as_deref())
    }

    pub fn store(&self, v: Option<Arc<T>>) {
        self.0.store(v);
    }
}

#[cfg(jwtd_loom)]
pub struct Slot<T>(loom::sync::Mutex<Option<Arc<T>>>);

#[cfg(jwtd_loom)]
impl<T> Default for Slot<T> {
    fn default() -> Self {
        Slot(loom::sync::Mutex::new(None))
    }
}

#[cfg(jwtd_loom)]
impl<T> Slot<T> {
    pub fn with<R>(&self, f: impl FnOnce(Option<&T>) -> R) -> R {
        let v = self.0.lock().unwrap().clone();
        f(v.as_deref())
    }

    pub fn store(&self, v: Option<Arc<T>>) {
        *self.0.lock().unwrap() = v;
    }
}
