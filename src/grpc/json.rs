//! JSON renderings for the CLI and golden files: protobuf messages in their canonical JSON mapping (proto
//! field names), and call updates as CloudEvents (DESIGN §3.3).

use std::sync::LazyLock;

use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use serde_json::{Value, json};

use crate::codec::proto::{self, v1 as pb};
use crate::domain::{EventType, Vendor};

static POOL: LazyLock<Option<DescriptorPool>> =
    LazyLock::new(|| DescriptorPool::decode(proto::FILE_DESCRIPTOR_SET).ok());

/// A message as canonical protobuf JSON.
pub fn message<M: Message>(msg: &M, full_name: &str) -> Value {
    let Some(desc) = POOL.as_ref().and_then(|p| p.get_message_by_name(full_name)) else {
        return Value::Null;
    };
    let Ok(dynamic) = DynamicMessage::decode(desc, msg.encode_to_vec().as_slice()) else {
        return Value::Null;
    };
    let opts = SerializeOptions::new().use_proto_field_name(true).stringify_64_bit_integers(false);
    dynamic.serialize_with_options(serde_json::value::Serializer, &opts).unwrap_or(Value::Null)
}

fn type_name(n: i32) -> String {
    EventType::from_number(n).map_or("unspecified".into(), |t| t.name().to_ascii_lowercase())
}

fn source(tenant: &str, vendor: i32) -> String {
    let v = Vendor::from_number(vendor).map_or("unknown", Vendor::label);
    format!("/tenants/{tenant}/vendors/{v}")
}

/// One subscription message as a CloudEvents-shaped JSON object.
pub fn cloud_event(resp: &pb::SubscribeResponse) -> Value {
    use pb::subscribe_response::Response;
    match &resp.response {
        Some(Response::Update(u)) => {
            let e = u.event.clone().unwrap_or_default();
            let time = e.occurred_at.as_ref().and_then(crate::codec::convert::from_timestamp).map(|t| t.to_rfc3339());
            json!({
                "specversion": "1.0",
                "id": e.event_id,
                "source": source(&e.tenant_id, e.vendor),
                "type": format!("switchboard.call.v1.{}", type_name(e.r#type)),
                "subject": if e.call_id.is_empty() { Value::Null } else { json!(format!("calls/{}", e.call_id)) },
                "time": time,
                "datacontenttype": "application/json",
                "sequence": e.sequence,
                "data": message(u, "switchboard.v1.CallUpdate"),
            })
        }
        Some(Response::Snapshot(c)) => json!({
            "specversion": "1.0",
            "id": format!("snapshot/{}/{}", c.call_id, c.last_sequence),
            "source": source(&c.tenant_id, c.vendor),
            "type": "switchboard.call.v1.snapshot",
            "subject": format!("calls/{}", c.call_id),
            "datacontenttype": "application/json",
            "sequence": c.last_sequence,
            "data": message(c, "switchboard.v1.Call"),
        }),
        Some(Response::Checkpoint(cp)) => {
            let reason = pb::CheckpointReason::try_from(cp.reason).map_or("unspecified".to_string(), |r| {
                r.as_str_name().trim_start_matches("CHECKPOINT_REASON_").to_ascii_lowercase()
            });
            json!({
                "specversion": "1.0",
                "id": format!("checkpoint/{}/{reason}", cp.sequence),
                "source": "/switchboard",
                "type": format!("switchboard.checkpoint.v1.{reason}"),
                "datacontenttype": "application/json",
                "sequence": cp.sequence,
                "data": message(cp, "switchboard.v1.Checkpoint"),
            })
        }
        None => Value::Null,
    }
}
