//! PLACEHOLDER: replaced by the real adapter before this lands.

use serde_json::Value;

use super::{Adapter, AdapterError, NormalizeContext};
use crate::domain::{Normalized, Vendor};

/// Placeholder adapter.
pub struct AgentPanel;

impl Adapter for AgentPanel {
    fn vendor(&self) -> Vendor {
        Vendor::AgentPanel8x8
    }

    fn shape(&self) -> &'static str {
        "AgentPanel (not yet implemented)"
    }

    fn event_types(&self) -> Vec<&'static str> {
        Vec::new()
    }

    fn detect(&self, _payload: &Value, _vendor_event_type: Option<&str>) -> bool {
        false
    }

    fn normalize(&self, _payload: &Value, _ctx: &NormalizeContext<'_>) -> Result<Normalized, AdapterError> {
        Err(AdapterError::field("payload", "not implemented"))
    }
}
