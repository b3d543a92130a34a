//! One logged event as the hub and replay carry it: filter metadata plus the
//! pre-encoded subscription frame.

use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::domain::{Call, CallEvent, EventMeta};
use crate::grpc::{convert, wire};

/// A logged event. Cheap to share: subscribers hold `Arc<Record>`.
#[derive(Clone, Debug)]
pub struct Record {
    /// Log position.
    pub sequence: u64,
    /// Owner.
    pub tenant: String,
    /// When the server received the event.
    pub received_at: DateTime<Utc>,
    /// What filters look at.
    pub meta: EventMeta,
    /// The encoded `SubscribeResponse { update }`.
    frame: Bytes,
    /// Where the encoded `CallUpdate` starts inside `frame`.
    update_offset: usize,
}

impl Record {
    /// Encodes an appended event (with its sequence) and its call.
    pub fn from_event(event: &CallEvent, call: Option<&Call>) -> Record {
        let update = convert::encode_update(event, call);
        let mut agent_ids: Vec<String> = call.map(|c| c.agent_ids.clone()).unwrap_or_default();
        if !event.agent_id.is_empty() && !agent_ids.contains(&event.agent_id) {
            agent_ids.push(event.agent_id.clone());
        }
        let meta = EventMeta {
            call_id: event.call_id.clone(),
            conversation_id: event.conversation_id.clone(),
            event_type: Some(event.event_type),
            vendor: Some(event.vendor),
            direction: event.direction.or(call.and_then(|c| c.direction)),
            agent_ids,
            queue_id: call
                .map(|c| c.queue_id.clone())
                .filter(|q| !q.is_empty())
                .unwrap_or_else(|| event.queue_id.clone()),
        };
        Record::from_parts(event.sequence, event.tenant_id.clone(), event.received_at, meta, &update)
    }

    /// Rebuilds a record read back from storage.
    pub fn from_parts(
        sequence: u64,
        tenant: String,
        received_at: DateTime<Utc>,
        meta: EventMeta,
        update: &[u8],
    ) -> Record {
        let frame = wire::update_frame(update);
        let update_offset = frame.len() - update.len();
        Record { sequence, tenant, received_at, meta, frame, update_offset }
    }

    /// The encoded `SubscribeResponse` to stream.
    pub fn frame(&self) -> &Bytes {
        &self.frame
    }

    /// The encoded `CallUpdate` (what the log stores).
    pub fn update_bytes(&self) -> &[u8] {
        &self.frame[self.update_offset..]
    }
}
