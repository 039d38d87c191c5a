//! Secrets: read with a TTL cache, written as new versions (rotated OAuth
//! tokens land here). Values are `SecretString`: redacted in `Debug` and logs.

use super::{Clock, StoreError, StoreResult, system_clock};
use crate::ids::SecretName;
use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use secrecy::SecretString;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// The version id a write created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretVersion(pub String);

/// Reads and writes secrets.
#[async_trait]
pub trait SecretStore: Send + Sync + std::fmt::Debug {
    /// The current value. `NotFound` if the secret does not exist.
    async fn get(&self, name: &SecretName) -> StoreResult<SecretString>;

    /// The value before the current one, if there was one (accepted during
    /// rotation of webhook signing keys). `None` also for a missing secret.
    async fn get_previous(&self, name: &SecretName) -> StoreResult<Option<SecretString>>;

    /// Writes a new current version, creating the secret if needed. The old
    /// current becomes the previous.
    async fn put(&self, name: &SecretName, value: &SecretString) -> StoreResult<SecretVersion>;

    /// Forgets any cached copy, so the next read goes to the store (after a
    /// provider refused the cached value, say). Uncached stores do nothing.
    async fn invalidate(&self, _name: &SecretName) {}
}

/// A TTL cache in front of any [`SecretStore`]. Reads within the TTL are served
/// from memory; a write through this cache replaces its cached value at once.
pub struct CachedSecrets<S> {
    inner: S,
    ttl: SignedDuration,
    clock: Arc<dyn Clock>,
    cache: Mutex<HashMap<SecretName, Cached>>,
}

struct Cached {
    at: Timestamp,
    current: SecretString,
    /// `None` until asked for; then the previous version, if any.
    previous: Option<Option<SecretString>>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for CachedSecrets<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedSecrets")
            .field("inner", &self.inner)
            .field("ttl", &self.ttl)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl<S> CachedSecrets<S> {
    /// Wraps `inner` with a cache of `ttl`, timed by the system clock.
    pub fn new(inner: S, ttl: Duration) -> Self {
        CachedSecrets {
            inner,
            ttl: SignedDuration::try_from(ttl).unwrap_or(SignedDuration::MAX),
            clock: system_clock(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The same cache, timed by `clock` instead.
    pub fn with_clock(self, clock: impl Clock + 'static) -> Self {
        CachedSecrets {
            clock: Arc::new(clock),
            ..self
        }
    }

    /// Whether a copy cached at `at` is still served. A clock set back
    /// before `at` counts as expired: re-reading is always safe.
    fn fresh(&self, at: Timestamp) -> bool {
        let age = self.clock.now().duration_since(at);
        !age.is_negative() && age < self.ttl
    }
}

#[async_trait]
impl<S: SecretStore> SecretStore for CachedSecrets<S> {
    async fn get(&self, name: &SecretName) -> StoreResult<SecretString> {
        if let Some(c) = self.cache.lock().await.get(name)
            && self.fresh(c.at)
        {
            return Ok(c.current.clone());
        }
        let value = self.inner.get(name).await?;
        self.cache.lock().await.insert(
            name.clone(),
            Cached {
                at: self.clock.now(),
                current: value.clone(),
                previous: None,
            },
        );
        Ok(value)
    }

    async fn get_previous(&self, name: &SecretName) -> StoreResult<Option<SecretString>> {
        if let Some(c) = self.cache.lock().await.get(name)
            && self.fresh(c.at)
            && let Some(previous) = &c.previous
        {
            return Ok(previous.clone());
        }
        let previous = self.inner.get_previous(name).await?;
        if let Some(c) = self.cache.lock().await.get_mut(name)
            && self.fresh(c.at)
        {
            c.previous = Some(previous.clone());
        }
        Ok(previous)
    }

    async fn put(&self, name: &SecretName, value: &SecretString) -> StoreResult<SecretVersion> {
        let version = self.inner.put(name, value).await?;
        self.cache.lock().await.insert(
            name.clone(),
            Cached {
                at: self.clock.now(),
                current: value.clone(),
                previous: None,
            },
        );
        Ok(version)
    }

    async fn invalidate(&self, name: &SecretName) {
        self.cache.lock().await.remove(name);
        self.inner.invalidate(name).await;
    }
}

/// The error for a secret that does not exist; names it, never its value.
pub(crate) fn secrets_not_found(name: &SecretName) -> StoreError {
    StoreError::NotFound(format!("secret {name}"))
}

#[async_trait]
impl<T: SecretStore + ?Sized> SecretStore for Box<T> {
    async fn get(&self, name: &SecretName) -> StoreResult<SecretString> {
        (**self).get(name).await
    }

    async fn get_previous(&self, name: &SecretName) -> StoreResult<Option<SecretString>> {
        (**self).get_previous(name).await
    }

    async fn put(&self, name: &SecretName, value: &SecretString) -> StoreResult<SecretVersion> {
        (**self).put(name, value).await
    }

    async fn invalidate(&self, name: &SecretName) {
        (**self).invalidate(name).await
    }
}
