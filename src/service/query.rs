//! GetCall and ListCalls, with AIP-158 page tokens.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::{ServiceError, Services};
use crate::domain::identity::short_hash;
use crate::domain::{Call, TenantId};
use crate::store::CallQuery;

/// Default and maximum page sizes (DESIGN §6).
pub const DEFAULT_PAGE_SIZE: usize = 50;
/// The largest page.
pub const MAX_PAGE_SIZE: usize = 1000;

/// What a page token remembers: the query it belongs to and where the next
/// page starts. Opaque to clients.
#[derive(Serialize, Deserialize)]
struct PageToken {
    /// Hash of tenant and filter: a token only continues its own listing.
    q: String,
    /// The next page holds calls whose first sequence is below this.
    b: u64,
}

fn query_hash(tenant: &TenantId, q: &CallQuery) -> String {
    let key = format!("{tenant}|{:?}|{:?}|{:?}|{:?}|{:?}", q.state, q.vendor, q.direction, q.agent_id, q.queue_id);
    short_hash(&[key.as_bytes()])
}

impl Services {
    /// One call of the tenant.
    pub async fn get_call(&self, tenant: &TenantId, call_id: &str) -> Result<Call, ServiceError> {
        if call_id.is_empty() || call_id.len() > crate::adapters::MAX_ID_LEN {
            return Err(ServiceError::invalid(
                "call_id",
                format!("must be 1 to {} bytes", crate::adapters::MAX_ID_LEN),
            ));
        }
        self.store.get_call(tenant, call_id).await?.ok_or_else(|| ServiceError::NotFound(format!("call {call_id:?}")))
    }

    /// A page of calls and the token of the next page (empty at the end).
    pub async fn list_calls(
        &self,
        tenant: &TenantId,
        mut query: CallQuery,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<Call>, String), ServiceError> {
        if page_size < 0 {
            return Err(ServiceError::invalid("page_size", "must not be negative"));
        }
        let size = match page_size {
            0 => DEFAULT_PAGE_SIZE,
            n => (n as usize).min(MAX_PAGE_SIZE),
        };
        let hash = query_hash(tenant, &query);
        if !page_token.is_empty() {
            let token: PageToken = URL_SAFE_NO_PAD
                .decode(page_token)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .ok_or_else(|| ServiceError::invalid("page_token", "is not a token issued by this service"))?;
            if token.q != hash {
                return Err(ServiceError::invalid("page_token", "was issued for a different filter"));
            }
            query.before_first_sequence = Some(token.b);
        }
        query.limit = size + 1;
        let mut calls = self.store.list_calls(tenant, &query).await?;
        let next = if calls.len() > size {
            calls.truncate(size);
            let b = calls.last().map_or(0, |c| c.first_sequence);
            let token = serde_json::to_vec(&PageToken { q: hash, b }).unwrap_or_default();
            URL_SAFE_NO_PAD.encode(token)
        } else {
            String::new()
        };
        Ok((calls, next))
    }
}
