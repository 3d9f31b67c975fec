//! Request guards: API keys, load limits, and the origins browsers may
//! call from.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tower::BoxError;

use super::error::ApiError;
use super::AppState;

/// API keys. Never printed: `Debug` shows only how many there are.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ApiKeys(Vec<String>);

impl ApiKeys {
    pub fn new(keys: Vec<String>) -> Self {
        Self(keys)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn keys(&self) -> &[String] {
        &self.0
    }
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} redacted)", self.0.len())
    }
}

/// Who must present an API key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthPolicy {
    /// Empty: no authentication at all.
    pub keys: ApiKeys,
    /// Reads need a key too, not only writes.
    pub protect_reads: bool,
}

/// Which origins browsers may call the API from (CORS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsPolicy {
    /// Any origin, without credentials.
    AllowAll,
    /// Exactly these origins, with credentials.
    Origins(Vec<String>),
}

/// Bounds that keep one client from exhausting the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub request_timeout: std::time::Duration,
    pub max_concurrency: usize,
    pub max_bulk: usize,
    pub max_bulk_bytes: usize,
    /// Bulk body bytes held at once across all requests.
    pub bulk_memory_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bulk: DEFAULT_MAX_BULK,
            max_bulk_bytes: DEFAULT_MAX_BULK_BYTES,
            bulk_memory_bytes: DEFAULT_BULK_MEMORY_BYTES,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            request_timeout: std::time::Duration::from_secs(DEFAULT_REQUEST_TIMEOUT_S),
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
        }
    }
}

pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
pub const DEFAULT_REQUEST_TIMEOUT_S: u64 = 30;
pub const DEFAULT_MAX_CONCURRENCY: usize = 512;
pub const DEFAULT_MAX_BULK: usize = 10_000;
pub const DEFAULT_MAX_BULK_BYTES: usize = 64 << 20;
/// Room for one bulk body of the largest default size, or many smaller.
pub const DEFAULT_BULK_MEMORY_BYTES: usize = 64 << 20;

pub const API_KEY_HEADER: &str = "x-api-key";

type KeyDigest = [u8; 32];

fn digest(key: &[u8]) -> KeyDigest {
    Sha256::digest(key).into()
}

/// The configured API keys, kept as SHA-256 digests, and who must present
/// one.
pub struct ApiKeyCheck {
    digests: Vec<KeyDigest>,
    protect_reads: bool,
}

impl ApiKeyCheck {
    pub fn new(policy: &AuthPolicy) -> Self {
        Self {
            digests: policy
                .keys
                .keys()
                .iter()
                .map(|key| digest(key.as_bytes()))
                .collect(),
            protect_reads: policy.protect_reads,
        }
    }

    /// Whether `given` is one of the keys. The given key is hashed and its
    /// digest compared with every key's digest in constant time, without
    /// stopping at a match: each comparison covers 32 bytes whatever the
    /// keys' lengths, so timing reveals neither which key matched, nor how
    /// much of one, nor how long the keys are.
    fn accepts(&self, given: &[u8]) -> bool {
        let given = digest(given);
        let matched = self
            .digests
            .iter()
            .fold(subtle::Choice::from(0), |found, key| {
                found | key.ct_eq(&given)
            });
        bool::from(matched)
    }
}

/// Checks `X-API-Key` on writes (and on reads when configured).
pub async fn require_api_key(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let auth = &state.auth;
    let is_read = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if auth.digests.is_empty() || (is_read && !auth.protect_reads) {
        return next.run(request).await;
    }
    let Some(given) = request.headers().get(API_KEY_HEADER) else {
        return ApiError::MissingApiKey.into_response();
    };
    if auth.accepts(given.as_bytes()) {
        next.run(request).await
    } else {
        ApiError::WrongApiKey.into_response()
    }
}

/// Turns the limit layers' errors into JSON answers: a request that ran too
/// long is a 503, and one refused because too many are in flight is a 503
/// with `Retry-After`.
pub async fn limit_error(error: BoxError) -> Response<Body> {
    if error.is::<tower::timeout::error::Elapsed>() {
        ApiError::Timeout.into_response()
    } else if error.is::<tower::load_shed::error::Overloaded>() {
        ApiError::Overloaded.into_response()
    } else {
        super::error::internal_error(format!("middleware failed: {error}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_whole_configured_key_is_accepted_whatever_its_length() {
        let check = ApiKeyCheck::new(&AuthPolicy {
            keys: ApiKeys::new(vec!["key-one".into(), "a-much-longer-second-key".into()]),
            protect_reads: false,
        });
        assert!(check.accepts(b"key-one"));
        assert!(check.accepts(b"a-much-longer-second-key"));
        let longer = "key-one".repeat(200);
        for wrong in [
            "",
            "k",
            "key-on",
            "key-one-",
            "KEY-ONE",
            "a-much-longer-second-ke",
            longer.as_str(),
        ] {
            assert!(!check.accepts(wrong.as_bytes()), "{wrong:.20}");
        }
        let digest_of_a_key = digest(b"key-one");
        assert!(
            !check.accepts(&digest_of_a_key),
            "a stored digest is not a key"
        );
    }
}
