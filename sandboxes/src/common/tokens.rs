//! Access and refresh tokens as the sandboxes issue them.
//!
//! Each sandbox has one store. Access tokens belong to one provider account
//! and expire after the provider's lifetime (configurable). Refresh tokens
//! either rotate (QuickBooks, Xero: every refresh returns a new refresh token
//! and the used one is spent) or stay (Square code flow: the same refresh
//! token comes back). A spent refresh token is refused unless it is reused
//! within the configured grace period (Xero documents 30 minutes; the
//! sandboxes default to none, the strict reading).

use http::HeaderMap;
use jiff::Timestamp;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Tokens handed out by a sandbox (by its OAuth endpoint or by a handle's
/// `grant` helper).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedTokens {
    /// The provider account the tokens act for.
    pub account: String,
    /// The bearer token.
    pub access_token: String,
    /// The refresh token, where the provider has one.
    pub refresh_token: Option<String>,
    /// The access token's lifetime as issued.
    pub expires_in: Duration,
    /// When the access token expires (wall clock).
    pub expires_at: Timestamp,
}

/// How a store issues tokens.
#[derive(Debug, Clone)]
pub(crate) struct TokenPolicy {
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub rotate_refresh: bool,
    pub reuse_grace: Duration,
    pub prefix: &'static str,
}

/// Why a bearer token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenError {
    /// No `Authorization: Bearer` header.
    Missing,
    /// Never issued by this sandbox.
    Unknown,
    /// Issued but expired (or expired on purpose).
    Expired,
}

#[derive(Debug)]
struct Access {
    account: String,
    expires: Instant,
}

#[derive(Debug)]
struct Refresh {
    account: String,
    expires: Instant,
    used_at: Option<Instant>,
}

#[derive(Debug)]
struct Inner {
    access: HashMap<String, Access>,
    refresh: HashMap<String, Refresh>,
    codes: HashMap<String, String>,
    rng: ChaCha8Rng,
}

/// The token store of one sandbox.
#[derive(Debug)]
pub(crate) struct TokenStore {
    policy: Mutex<TokenPolicy>,
    inner: Mutex<Inner>,
}

impl TokenStore {
    pub(crate) fn new(policy: TokenPolicy, seed: u64) -> Self {
        Self {
            policy: Mutex::new(policy),
            inner: Mutex::new(Inner {
                access: HashMap::new(),
                refresh: HashMap::new(),
                codes: HashMap::new(),
                rng: ChaCha8Rng::seed_from_u64(seed ^ 0x70c3_4e25),
            }),
        }
    }

    pub(crate) fn set_access_ttl(&self, ttl: Duration) {
        self.policy.lock().unwrap().access_ttl = ttl;
    }

    pub(crate) fn access_ttl(&self) -> Duration {
        self.policy.lock().unwrap().access_ttl
    }

    fn random(inner: &mut Inner, prefix: &str, kind: &str) -> String {
        let a: u128 = inner.rng.random();
        format!("{prefix}{kind}{a:032x}")
    }

    /// Issues a new access token (and, with `with_refresh`, a new refresh
    /// token) for `account`.
    pub(crate) fn issue(&self, account: &str, with_refresh: bool) -> IssuedTokens {
        let policy = self.policy.lock().unwrap().clone();
        let mut inner = self.inner.lock().unwrap();
        let now = Instant::now();
        let access_token = Self::random(&mut inner, policy.prefix, "at_");
        inner.access.insert(
            access_token.clone(),
            Access {
                account: account.to_string(),
                expires: now + policy.access_ttl,
            },
        );
        let refresh_token = with_refresh.then(|| {
            let token = Self::random(&mut inner, policy.prefix, "rt_");
            inner.refresh.insert(
                token.clone(),
                Refresh {
                    account: account.to_string(),
                    expires: now + policy.refresh_ttl,
                    used_at: None,
                },
            );
            token
        });
        IssuedTokens {
            account: account.to_string(),
            access_token,
            refresh_token,
            expires_in: policy.access_ttl,
            expires_at: wall_after(policy.access_ttl),
        }
    }

    /// Issues an authorization code for `account` (for the code grant).
    pub(crate) fn issue_code(&self, account: &str) -> String {
        let prefix = self.policy.lock().unwrap().prefix;
        let mut inner = self.inner.lock().unwrap();
        let code = Self::random(&mut inner, prefix, "code_");
        inner.codes.insert(code.clone(), account.to_string());
        code
    }

    /// Trades a code (once) for tokens.
    pub(crate) fn redeem_code(&self, code: &str) -> Option<IssuedTokens> {
        let account = self.inner.lock().unwrap().codes.remove(code)?;
        Some(self.issue(&account, true))
    }

    /// Trades a refresh token for new tokens, or `None` for `invalid_grant`.
    pub(crate) fn refresh(&self, refresh_token: &str) -> Option<IssuedTokens> {
        let policy = self.policy.lock().unwrap().clone();
        let now = Instant::now();
        let account = {
            let mut inner = self.inner.lock().unwrap();
            let entry = inner.refresh.get_mut(refresh_token)?;
            if now >= entry.expires {
                return None;
            }
            if let Some(used) = entry.used_at
                && now.saturating_duration_since(used) > policy.reuse_grace
            {
                return None;
            }
            if policy.rotate_refresh && entry.used_at.is_none() {
                entry.used_at = Some(now);
            }
            if !policy.rotate_refresh {
                // Rolling expiry, same token.
                entry.expires = now + policy.refresh_ttl;
            }
            entry.account.clone()
        };
        let mut issued = self.issue(&account, policy.rotate_refresh);
        if !policy.rotate_refresh {
            issued.refresh_token = Some(refresh_token.to_string());
        }
        Some(issued)
    }

    /// Who the bearer token in `headers` acts for.
    pub(crate) fn check(
        &self,
        headers: &HeaderMap,
        all_expired: bool,
    ) -> Result<String, TokenError> {
        let token = bearer(headers).ok_or(TokenError::Missing)?;
        self.check_token(token, all_expired)
    }

    /// Who `token` acts for.
    pub(crate) fn check_token(&self, token: &str, all_expired: bool) -> Result<String, TokenError> {
        let inner = self.inner.lock().unwrap();
        let access = inner.access.get(token).ok_or(TokenError::Unknown)?;
        if all_expired || Instant::now() >= access.expires {
            return Err(TokenError::Expired);
        }
        Ok(access.account.clone())
    }

    /// The account of a token whether or not it expired (for choosing a
    /// rate-limit account before authentication).
    pub(crate) fn account_of(&self, headers: &HeaderMap) -> Option<String> {
        let token = bearer(headers)?;
        self.account_of_token(token)
    }

    pub(crate) fn account_of_token(&self, token: &str) -> Option<String> {
        let inner = self.inner.lock().unwrap();
        inner.access.get(token).map(|a| a.account.clone())
    }

    /// Expires every access token issued so far (of `account`, or all).
    pub(crate) fn expire_access(&self, account: Option<&str>) {
        let now = Instant::now();
        let mut inner = self.inner.lock().unwrap();
        for a in inner.access.values_mut() {
            if account.is_none_or(|acc| a.account == acc) {
                a.expires = now;
            }
        }
    }

    /// Whether `refresh_token` would be accepted now.
    pub(crate) fn refresh_is_valid(&self, refresh_token: &str) -> bool {
        let grace = self.policy.lock().unwrap().reuse_grace;
        let now = Instant::now();
        let inner = self.inner.lock().unwrap();
        inner.refresh.get(refresh_token).is_some_and(|r| {
            now < r.expires
                && r.used_at
                    .is_none_or(|used| now.saturating_duration_since(used) <= grace)
        })
    }
}

/// The token of an `Authorization: Bearer <token>` header.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}

/// `(user, password)` of an `Authorization: Basic` header.
pub(crate) fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    use base64::Engine;
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((user.to_string(), pass.to_string()))
}

/// The wall-clock time `ttl` from now.
pub(crate) fn wall_after(ttl: Duration) -> Timestamp {
    let ttl = jiff::SignedDuration::try_from(ttl).unwrap_or(jiff::SignedDuration::MAX);
    Timestamp::now().checked_add(ttl).unwrap_or(Timestamp::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(rotate: bool) -> TokenStore {
        TokenStore::new(
            TokenPolicy {
                access_ttl: Duration::from_secs(60),
                refresh_ttl: Duration::from_secs(3600),
                rotate_refresh: rotate,
                reuse_grace: Duration::ZERO,
                prefix: "t_",
            },
            7,
        )
    }

    #[test]
    fn rotating_refresh_is_single_use() {
        let s = store(true);
        let first = s.issue("realm", true);
        let rt = first.refresh_token.clone().unwrap();
        let second = s.refresh(&rt).unwrap();
        assert_ne!(second.refresh_token.as_deref(), Some(rt.as_str()));
        assert!(s.refresh(&rt).is_none(), "a spent refresh token is refused");
        assert!(
            s.refresh(second.refresh_token.as_deref().unwrap())
                .is_some()
        );
    }

    #[test]
    fn non_rotating_refresh_returns_the_same_token() {
        let s = store(false);
        let rt = s.issue("m", true).refresh_token.unwrap();
        let again = s.refresh(&rt).unwrap();
        assert_eq!(again.refresh_token.as_deref(), Some(rt.as_str()));
        assert!(s.refresh(&rt).is_some());
    }

    #[test]
    fn expired_access_tokens_are_refused() {
        let s = store(true);
        let t = s.issue("a", false);
        assert_eq!(s.check_token(&t.access_token, false).unwrap(), "a");
        assert_eq!(
            s.check_token(&t.access_token, true),
            Err(TokenError::Expired)
        );
        s.expire_access(Some("a"));
        assert_eq!(
            s.check_token(&t.access_token, false),
            Err(TokenError::Expired)
        );
        assert_eq!(s.check_token("nope", false), Err(TokenError::Unknown));
    }
}
