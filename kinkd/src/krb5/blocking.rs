//! [`Shared`]: one Kerberos backend used from an async daemon without
//! blocking its event loop.

use std::sync::{Arc, Mutex, PoisonError};

use super::Kerberos;
use super::error::{Error, Result};

/// A Kerberos backend behind a mutex, called on tokio's blocking pool.
///
/// KDC calls block for as long as the network takes, and a `krb5_context`
/// must not be used by two threads at once: [`Shared::run`] moves the call
/// onto `tokio::task::spawn_blocking` and takes the lock there, so the
/// event loop neither waits for the KDC nor for another call holding the
/// lock. Clones share the backend.
#[derive(Debug)]
pub struct Shared<K>(Arc<Mutex<K>>);

impl<K> Clone for Shared<K> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<K: Kerberos + 'static> Shared<K> {
    /// Shares `backend`.
    pub fn new(backend: K) -> Self {
        Self(Arc::new(Mutex::new(backend)))
    }

    /// Runs `f` with exclusive access to the backend on a blocking thread.
    ///
    /// A panic inside `f` is re-raised here (it is a bug, not an input
    /// error). A poisoned lock is taken over: the backend holds no
    /// invariant a panicking caller could have half-updated that the next
    /// call cannot live with (at worst a stale ticket, refetched).
    ///
    /// # Errors
    /// The runtime is shutting down and cancelled the task.
    ///
    /// # Panics
    /// Outside a tokio runtime, or if `f` panicked.
    pub async fn run<R, F>(&self, f: F) -> Result<R>
    where
        F: FnOnce(&mut K) -> R + Send + 'static,
        R: Send + 'static,
    {
        let inner = Arc::clone(&self.0);
        let task = tokio::task::spawn_blocking(move || {
            let mut guard = inner.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut guard)
        });
        match task.await {
            Ok(r) => Ok(r),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(Error::local("spawn_blocking", "Kerberos task cancelled")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::krb5::{KEY_USAGE_KINK_CKSUM, Krb5Config, MitKerberos, SessionKey};

    #[tokio::test]
    async fn runs_calls_on_the_blocking_pool() {
        let dir = std::env::temp_dir().join(format!("kinkd-krb5-shared-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let conf = dir.join("krb5.conf");
        std::fs::write(&conf, "[libdefaults]\n default_realm = UNIT.TEST\n").expect("conf");
        let backend = MitKerberos::new(&Krb5Config {
            principal: "kink/a.unit.test".into(),
            config_file: Some(conf),
            keytab: Some("FILE:/nonexistent/kinkd.keytab".into()),
            ccache: Some("MEMORY:shared-test".into()),
        })
        .expect("backend");
        let shared = Shared::new(backend);
        let key = SessionKey::new(18, vec![1; 32]);
        let loop_thread = std::thread::current().id();
        let (cksum, thread) = shared
            .clone()
            .run(move |k| {
                (
                    k.checksum(&key, KEY_USAGE_KINK_CKSUM, b"m"),
                    std::thread::current().id(),
                )
            })
            .await
            .expect("not cancelled");
        assert_eq!(cksum.expect("checksum").len(), 12);
        assert_ne!(thread, loop_thread, "ran on the event loop thread");
        let name = shared.run(|k| k.principal().to_owned()).await.expect("run");
        assert_eq!(name, "kink/a.unit.test@UNIT.TEST");
        std::fs::remove_dir_all(dir).ok();
    }
}
