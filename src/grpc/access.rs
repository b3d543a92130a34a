//! Who may do what: authentication (an interceptor on our services),
//! authorization and tenancy (per RPC), and request-rate limits.
//!
//! * The tenant comes from the credential, never from the payload. A request
//!   naming another tenant is PERMISSION_DENIED, unless the token is an
//!   admin's. With authentication off, the request's `tenant_id` decides
//!   (empty means `default`).
//! * Missing or unknown token: UNAUTHENTICATED. Token without the role:
//!   PERMISSION_DENIED.
//! * Rate limits are per token (or per tenant with authentication off):
//!   RESOURCE_EXHAUSTED with `RetryInfo` saying when to come back.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tonic::service::Interceptor;
use tonic::{Code, Request, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::status::{ERROR_DOMAIN, bad_request};
use crate::adapters::FieldViolation;
use crate::auth::{Authenticator, Caller, Role};
use crate::clock::SharedClock;
use crate::domain::TenantId;

/// Authenticates every request of the service it wraps.
#[derive(Clone)]
pub struct AuthInterceptor {
    auth: Authenticator,
}

impl AuthInterceptor {
    /// An interceptor checking tokens against `auth` (a no-op when disabled).
    pub fn new(auth: Authenticator) -> AuthInterceptor {
        AuthInterceptor { auth }
    }
}

impl Interceptor for AuthInterceptor {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if !self.auth.enabled() {
            return Ok(request);
        }
        let header = request.metadata().get("authorization").and_then(|v| v.to_str().ok());
        match self.auth.authenticate(header) {
            Ok(caller) => {
                request.extensions_mut().insert(caller);
                Ok(request)
            }
            Err(e) => {
                metrics::counter!("switchboard_auth_failures_total", "reason" => format!("{e:?}").to_ascii_lowercase())
                    .increment(1);
                Err(Status::unauthenticated(e.to_string()))
            }
        }
    }
}

/// A token bucket per key.
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    /// Key (`token:<name>` or `tenant:<id>`) → (tokens, last refill). Bound:
    /// [`MAX_BUCKETS`] plus the keys seen within the last `burst /
    /// per_second` seconds: past `MAX_BUCKETS`, a check drops every key
    /// whose bucket has refilled (an idle key is as good as new). Empty when
    /// rate limiting is off.
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
    clock: SharedClock,
}

/// Buckets kept before idle ones are forgotten.
const MAX_BUCKETS: usize = 100_000;

impl RateLimiter {
    /// `per_second` requests per second with bursts of `burst`; 0 disables.
    /// Refills are measured on `clock`'s monotonic time.
    pub fn new(per_second: f64, burst: f64, clock: SharedClock) -> RateLimiter {
        RateLimiter { per_second, burst: burst.max(1.0), buckets: Mutex::new(HashMap::new()), clock }
    }

    /// Takes one request from `key`'s bucket, or says how long to wait.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        if self.per_second <= 0.0 {
            return Ok(());
        }
        let now = self.clock.instant();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > MAX_BUCKETS {
            // Bounded memory: forget idle keys.
            let burst = self.burst;
            let rate = self.per_second;
            buckets.retain(|_, (tokens, at)| *tokens + now.duration_since(*at).as_secs_f64() * rate < burst);
        }
        let (tokens, at) = buckets.entry(key.to_string()).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.per_second).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / self.per_second))
        }
    }
}

fn denied(message: String, reason: &str) -> Status {
    let mut details = ErrorDetails::new();
    details.set_error_info(reason, ERROR_DOMAIN, HashMap::new());
    Status::with_error_details(Code::PermissionDenied, message, details)
}

/// Checks the caller's role and resolves the tenant the request acts for.
pub fn authorize<T>(
    request: &Request<T>,
    requested: &str,
    role: Role,
    limiter: &RateLimiter,
) -> Result<TenantId, Status> {
    let caller = request.extensions().get::<Caller>();
    let tenant = match caller {
        Some(c) => {
            if !c.has(role) {
                return Err(denied(
                    format!("token {:?} does not have the {} role", c.name, role.name()),
                    "MISSING_ROLE",
                ));
            }
            if requested.is_empty() || requested == c.tenant.as_str() {
                c.tenant.clone()
            } else if c.is_admin() {
                parse_tenant(requested)?
            } else {
                return Err(denied("tenant_id does not match the credential's tenant".into(), "TENANT_MISMATCH"));
            }
        }
        None if requested.is_empty() => TenantId::default_tenant(),
        None => parse_tenant(requested)?,
    };
    let key = match caller {
        Some(c) => format!("token:{}", c.name),
        None => format!("tenant:{tenant}"),
    };
    if let Err(wait) = limiter.check(&key) {
        metrics::counter!("switchboard_rate_limited_total").increment(1);
        let mut details = ErrorDetails::new();
        details.set_retry_info(Some(wait));
        details.set_error_info("RATE_LIMITED", ERROR_DOMAIN, HashMap::new());
        return Err(Status::with_error_details(
            Code::ResourceExhausted,
            "request rate limit exceeded; retry later",
            details,
        ));
    }
    Ok(tenant)
}

fn parse_tenant(requested: &str) -> Result<TenantId, Status> {
    TenantId::parse(requested).map_err(|why| {
        bad_request(format!("invalid tenant_id: {why}"), "INVALID_REQUEST", &[FieldViolation::new("tenant_id", why)])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::clock::{ManualClock, SystemClock};

    #[test]
    fn a_bucket_allows_its_burst_then_says_when_to_retry() {
        let clock = ManualClock::new();
        let l = RateLimiter::new(10.0, 3.0, clock.clone());
        for _ in 0..3 {
            assert!(l.check("k").is_ok());
        }
        let wait = l.check("k").unwrap_err();
        assert!(wait <= Duration::from_millis(100) && wait > Duration::ZERO);
        assert!(l.check("other").is_ok(), "buckets are per key");
        clock.advance(wait / 2);
        let rest = l.check("k").unwrap_err();
        assert!(rest.abs_diff(wait / 2) < Duration::from_micros(1), "half a token refilled: {rest:?}");
        clock.advance(wait);
        assert!(l.check("k").is_ok(), "the token is back after the wait");
        assert!(l.check("k").is_err());
    }

    #[test]
    fn a_zero_rate_disables_limiting() {
        let l = RateLimiter::new(0.0, 0.0, SystemClock::shared());
        for _ in 0..1000 {
            assert!(l.check("k").is_ok());
        }
    }
}
