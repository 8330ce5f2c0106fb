//! A `Store` that delegates to another and records every call, in order, so a test or a
//! benchmark can tell which calls happened before the first byte (or the first token) reached the
//! client (the round-trip counts of `docs/performance.md` and `tests/api/limits.rs`).

use std::sync::{Arc, Mutex, PoisonError};

use crate::store::Store;

/// The instrumented store.
pub struct CountingStore {
    inner: Arc<dyn Store>,
    calls: Mutex<Vec<&'static str>>,
}

impl CountingStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Store>) -> Self {
        Self {
            inner,
            calls: Mutex::new(Vec::new()),
        }
    }

    fn record(&self, name: &'static str) {
        self.calls.lock().unwrap_or_else(PoisonError::into_inner).push(name);
    }

    /// How many calls so far.
    pub fn count(&self) -> usize {
        self.calls.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// The recorded calls so far, leaving the log as it is.
    pub fn snapshot(&self) -> Vec<&'static str> {
        self.calls.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The wrapped store (reads through it are not recorded).
    pub fn inner(&self) -> &Arc<dyn Store> {
        &self.inner
    }

    /// Takes the recorded calls, leaving the log empty.
    pub fn take(&self) -> Vec<&'static str> {
        std::mem::take(&mut *self.calls.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// The port methods of [`CountingStore`]: each records its name, then passes the call on.
macro_rules! recorded {
    ($( [$part:ident] $port:ident { $( $method:ident ( $($arg:ident : $ty:ty),* ) -> $ok:ty ; )* } )*) => {
        $(
            #[async_trait::async_trait]
            impl $port for CountingStore {
                $(
                    async fn $method(&self, $($arg: $ty),*) -> Result<$ok, StoreError> {
                        self.record(stringify!($method));
                        self.inner.$method($($arg),*).await
                    }
                )*
            }
        )*
    };
}

super::methods::for_each_port!(recorded);
