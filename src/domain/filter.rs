//! Subscription filters, matched against events without decoding them.

use std::collections::HashSet;

use super::model::{Call, Direction, EventType, Vendor};

/// The fields of a logged event that filters look at, kept beside the encoded
/// bytes so that fan-out and replay never decode an event to filter it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventMeta {
    /// Call id (empty for agent events).
    pub call_id: String,
    /// Conversation id.
    pub conversation_id: String,
    /// Event type.
    pub event_type: Option<EventType>,
    /// Vendor that reported the event.
    pub vendor: Option<Vendor>,
    /// Direction of the call.
    pub direction: Option<Direction>,
    /// The event's agent and every agent of the call so far.
    pub agent_ids: Vec<String>,
    /// Queue of the call.
    pub queue_id: String,
}

/// What a subscriber wants: each set empty = any; all non-empty sets must
/// match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Call ids.
    pub call_ids: HashSet<String>,
    /// Conversation ids.
    pub conversation_ids: HashSet<String>,
    /// Event types.
    pub types: HashSet<EventType>,
    /// Vendors to pass (empty: any).
    pub vendors: HashSet<Vendor>,
    /// Call directions to pass (empty: any).
    pub directions: HashSet<Direction>,
    /// Agent ids.
    pub agent_ids: HashSet<String>,
    /// Queue ids.
    pub queue_ids: HashSet<String>,
}

fn nonempty(s: &String) -> Option<&String> {
    (!s.is_empty()).then_some(s)
}

fn ok<T: Eq + std::hash::Hash>(set: &HashSet<T>, v: Option<&T>) -> bool {
    set.is_empty() || v.is_some_and(|v| set.contains(v))
}

impl EventFilter {
    /// True when the filter lets everything through.
    pub fn is_empty(&self) -> bool {
        self.call_ids.is_empty()
            && self.conversation_ids.is_empty()
            && self.types.is_empty()
            && self.vendors.is_empty()
            && self.directions.is_empty()
            && self.agent_ids.is_empty()
            && self.queue_ids.is_empty()
    }

    /// Whether an event passes.
    pub fn matches(&self, m: &EventMeta) -> bool {
        ok(&self.call_ids, nonempty(&m.call_id))
            && ok(&self.conversation_ids, nonempty(&m.conversation_id))
            && ok(&self.types, m.event_type.as_ref())
            && ok(&self.vendors, m.vendor.as_ref())
            && ok(&self.directions, m.direction.as_ref())
            && (self.agent_ids.is_empty() || m.agent_ids.iter().any(|a| self.agent_ids.contains(a)))
            && ok(&self.queue_ids, nonempty(&m.queue_id))
    }

    /// Whether a call belongs in a snapshot (event types do not apply).
    pub fn matches_call(&self, c: &Call) -> bool {
        ok(&self.call_ids, Some(&c.call_id))
            && ok(&self.conversation_ids, Some(&c.conversation_id))
            && ok(&self.vendors, Some(&c.vendor))
            && ok(&self.directions, c.direction.as_ref())
            && (self.agent_ids.is_empty() || c.agent_ids.iter().any(|a| self.agent_ids.contains(a)))
            && ok(&self.queue_ids, (!c.queue_id.is_empty()).then_some(&c.queue_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> EventMeta {
        EventMeta {
            call_id: "sf:1".into(),
            conversation_id: "sf:1".into(),
            event_type: Some(EventType::CallHeld),
            vendor: Some(Vendor::SalesforceVoice),
            direction: Some(Direction::Inbound),
            agent_ids: vec!["a1".into(), "a2".into()],
            queue_id: "q".into(),
        }
    }

    #[test]
    fn an_empty_filter_matches_everything() {
        assert!(EventFilter::default().matches(&meta()));
        assert!(EventFilter::default().matches(&EventMeta::default()));
    }

    #[test]
    fn every_set_field_must_match_and_any_value_within_a_field_does() {
        let mut f = EventFilter::default();
        f.types.insert(EventType::CallHeld);
        f.types.insert(EventType::CallEnded);
        f.agent_ids.insert("a2".into());
        assert!(f.matches(&meta()));
        f.directions.insert(Direction::Outbound);
        assert!(!f.matches(&meta()));
    }

    #[test]
    fn agent_events_without_a_call_fail_call_filters() {
        let mut f = EventFilter::default();
        f.call_ids.insert("sf:1".into());
        let agent_event = EventMeta {
            event_type: Some(EventType::AgentStatusChanged),
            agent_ids: vec!["a1".into()],
            ..EventMeta::default()
        };
        assert!(!f.matches(&agent_event));
    }
}
