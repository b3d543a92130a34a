use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use super::*;
use crate::domain::Media;

const GUID: &str = "int-184a63564dc-ohWfVIbHJz2Hr2JFhAfdlb4Fa-phone-00-acmecorp01";

fn norm_value(v: &Value) -> Result<Normalized, AdapterError> {
    let phone = PhoneNormalizer::new("US").unwrap();
    EventStreaming.normalize(v, &NormalizeContext::new(None, &phone))
}

fn norm(v: Value) -> Result<Normalized, AdapterError> {
    norm_value(&v)
}

/// A decoded Interaction event with `fields` merged into a minimal body.
fn interaction(event: &str, fields: Value) -> Value {
    let mut body = json!({"event": event, "interactionGUID": GUID, "msgInfo": {}});
    if let (Value::Object(b), Value::Object(f)) = (&mut body, fields) {
        b.extend(f);
    }
    json!({ "Interaction": body })
}

fn frame(message_id: &str, event: &Value, redelivery: u64) -> Value {
    json!({
        "messageId": message_id,
        "payload": STANDARD.encode(serde_json::to_vec(event).unwrap()),
        "properties": {"tenant": "acmecorp01"},
        "publishTime": "2022-11-23T20:37:08.512Z",
        "redeliveryCount": redelivery,
    })
}

fn one(n: &Normalized) -> &EventDraft {
    assert!(n.ignored.is_none(), "ignored: {:?}", n.ignored);
    assert_eq!(n.events.len(), 1);
    &n.events[0]
}

fn field_of(err: AdapterError) -> String {
    err.violations()[0].field.clone()
}

#[test]
fn every_event_type_of_the_event_reference_has_a_mapping_row() {
    let seed = [
        "AgentStatusChange",
        "AgentProvChange",
        "AgentSkillCreated",
        "AgentSkillChanged",
        "InteractionCreated",
        "InteractionQueued",
        "InteractionAssigned",
        "InteractionAccepted",
        "InteractionCustomerAccepted",
        "InteractionRejected",
        "InteractionUnqueued",
        "LineHoldStatus",
        "LineMuteStatus",
        "InteractionRecordingStarted",
        "RecordingStatus",
        "InteractionPostProcess",
        "InteractionRecordingReady",
        "InteractionEndPostProcess",
        "InteractionDeassigned",
        "InteractionTransferRequest",
        "InteractionReconnect",
        "InteractionParticipantChange",
        "InteractionParticipantRemovedByHost",
        "InteractionJoinLinesRequest",
        "InteractionJoined",
        "InteractionChanged",
        "InteractionQueueTimeout",
        "InteractionDeleted",
        "GuestChatEnd",
        "MediaProxyAdded",
        "MediaProxyRemoved",
    ];
    assert_eq!(seed.len(), 31);
    for name in seed.iter().chain(&["InteractionDeAssigned", "ClientCheck", "isEndOfTopic"]) {
        assert!(MAPPING.iter().any(|r| r.name == *name), "{name} has no row");
    }
    assert_eq!(EventStreaming.event_types().len(), MAPPING.len());
}

#[test]
fn the_lifecycle_comes_from_the_event_name_and_never_from_call_state() {
    let cases = [
        ("InteractionCreated", E::CallStarted),
        ("InteractionQueued", E::CallQueued),
        ("InteractionAssigned", E::CallOffered),
        ("InteractionAccepted", E::CallConnected),
        ("InteractionCustomerAccepted", E::CallConnected),
        ("InteractionRejected", E::OfferRejected),
        ("InteractionUnqueued", E::CallDequeued),
        ("InteractionQueueTimeout", E::CallDequeued),
        ("InteractionRecordingStarted", E::RecordingStarted),
        ("InteractionRecordingReady", E::RecordingReady),
        ("InteractionPostProcess", E::WrapUpStarted),
        ("InteractionEndPostProcess", E::WrapUpEnded),
        ("InteractionDeassigned", E::ParticipantLeft),
        ("InteractionDeAssigned", E::ParticipantLeft),
        ("InteractionTransferRequest", E::TransferRequested),
        // Changed by issue 11: a participant change is a join; the state machine reads it as the transfer
        // completing only after a TransferRequest (8x8 sends it for conferences and supervisor joins too).
        ("InteractionParticipantChange", E::ParticipantJoined),
        ("InteractionParticipantRemovedByHost", E::ParticipantLeft),
        ("InteractionJoinLinesRequest", E::CallUpdated),
        ("InteractionJoined", E::ConferenceStarted),
        ("InteractionReconnect", E::CallResumed),
        ("InteractionChanged", E::CallUpdated),
        ("InteractionDeleted", E::CallEnded),
    ];
    for (name, expected) in cases {
        // A callState that contradicts the name changes nothing.
        let n = norm(interaction(name, json!({"callState": "CS_IDLE"}))).unwrap();
        let e = one(&n);
        assert_eq!(e.event_type, expected, "{name}");
        assert_eq!(e.attributes.get("callState").map(String::as_str), Some("CS_IDLE"));
        assert_eq!(n.vendor_event_type, name);
    }
}

#[test]
fn hold_and_mute_status_pick_the_event_and_accept_string_booleans() {
    let held = norm(interaction("LineHoldStatus", json!({"status": true}))).unwrap();
    assert_eq!(one(&held).event_type, E::CallHeld);
    let resumed = norm(interaction("LineHoldStatus", json!({"status": "false"}))).unwrap();
    assert_eq!(one(&resumed).event_type, E::CallResumed);
    let muted = norm(interaction("LineMuteStatus", json!({"status": "true"}))).unwrap();
    assert_eq!(one(&muted).event_type, E::CallMuted);
    let unmuted = norm(interaction("LineMuteStatus", json!({"status": false}))).unwrap();
    assert_eq!(one(&unmuted).event_type, E::CallUnmuted);
}

#[test]
fn a_hold_status_that_is_missing_or_not_a_boolean_names_the_field() {
    assert_eq!(field_of(norm(interaction("LineHoldStatus", json!({}))).unwrap_err()), "Interaction.status");
    assert_eq!(
        field_of(norm(interaction("LineHoldStatus", json!({"status": "maybe"}))).unwrap_err()),
        "Interaction.status"
    );
}

#[test]
fn recording_status_pause_and_resume_carry_the_recording_state() {
    let paused = norm(interaction("RecordingStatus", json!({"status": "pause"}))).unwrap();
    let e = one(&paused);
    assert_eq!(e.event_type, E::RecordingPaused);
    assert_eq!(
        e.detail,
        Some(Detail::Recording(Recording { state: Some(RecordingState::Paused), url: String::new() }))
    );
    let resumed = norm(interaction("RecordingStatus", json!({"status": "resume"}))).unwrap();
    assert_eq!(one(&resumed).event_type, E::RecordingResumed);
    let err = norm(interaction("RecordingStatus", json!({"status": "stop"}))).unwrap_err();
    assert_eq!(field_of(err), "Interaction.status");
}

#[test]
fn a_pulsar_frame_is_decoded_and_identified_by_its_message_id() {
    let inner = interaction("InteractionQueued", json!({"interactionEventTS": 1669235830, "queueId": 1162}));
    let n = norm(frame("CAEQAQ==", &inner, 0)).unwrap();
    assert_eq!(n.identity, Identity::VendorId("8x8es:msg:CAEQAQ==".into()));
    let e = one(&n);
    assert_eq!(e.event_type, E::CallQueued);
    assert_eq!(e.call, Some(CallRef::Id(format!("8x8es:{GUID}"))));
    assert_eq!(e.queue_id, "1162");
    assert_eq!(e.attributes.get("messageId").map(String::as_str), Some("CAEQAQ=="));
    assert_eq!(e.attributes.get("redeliveryCount").map(String::as_str), Some("0"));
    assert_eq!(e.attributes.get("publishTime").map(String::as_str), Some("2022-11-23T20:37:08.512Z"));
    assert_eq!(e.attributes.get("properties.tenant").map(String::as_str), Some("acmecorp01"));
}

#[test]
fn a_redelivered_frame_has_the_same_identity_and_the_same_canonical_event() {
    let inner = interaction("InteractionAccepted", json!({"interactionEventTS": 1669235900}));
    let first = norm(frame("CAEQAg==", &inner, 0)).unwrap();
    let again = norm(frame("CAEQAg==", &inner, 1)).unwrap();
    assert_eq!(first.identity, again.identity);
    assert_eq!(one(&again).attributes.get("redeliveryCount").map(String::as_str), Some("1"));
    assert_eq!(one(&first).event_type, one(&again).event_type);
}

#[test]
fn a_frame_and_its_decoded_event_give_the_same_canonical_event() {
    let inner = interaction("InteractionCreated", json!({"interactionEventTS": 1669235827}));
    let framed = norm(frame("CAEQAw==", &inner, 0)).unwrap();
    let decoded = norm(inner).unwrap();
    let (mut a, b) = (one(&framed).clone(), one(&decoded).clone());
    for k in ["messageId", "publishTime", "redeliveryCount", "properties.tenant"] {
        assert!(a.attributes.remove(k).is_some(), "{k}");
    }
    assert_eq!(a, b);
}

#[test]
fn bad_base64_names_the_payload_field() {
    let f = json!({"messageId": "CAEQAQ==", "payload": "not base64!", "publishTime": "2022-11-23T20:37:08Z"});
    let err = norm(f).unwrap_err();
    assert_eq!(field_of(err.clone()), "payload");
    assert!(err.violations()[0].description.contains("base64"), "{err}");
}

#[test]
fn bad_inner_json_names_the_payload_field_with_the_parser_position() {
    let f = json!({"messageId": "CAEQAQ==", "payload": STANDARD.encode(b"{\"Interaction\": {\"event\": }}")});
    let err = norm(f).unwrap_err();
    let v = &err.violations()[0];
    assert_eq!(v.field, "payload");
    assert_eq!(v.description, "decoded payload is not valid JSON at line 1 column 27: expected value");
}

#[test]
fn a_frame_without_a_message_id_or_with_a_non_event_inside_is_rejected() {
    let no_id = json!({"payload": STANDARD.encode(b"{}"), "publishTime": "2022-11-23T20:37:08Z"});
    assert_eq!(field_of(norm(no_id).unwrap_err()), "messageId");
    // The Message Format page's placeholder payload matches no event shape.
    let placeholder = json!({"messageId": "CAEQAQ==", "payload": "eyJldmVudElkIjogImV2dF8xMjM0NTYiLCAiZXZlbnRUeXBlIjogImFnZW50LmxvZ2luIn0="});
    assert_eq!(field_of(norm(placeholder).unwrap_err()), "payload");
}

#[test]
fn errors_inside_a_frame_name_the_path_within_the_decoded_payload() {
    let inner = json!({"Interaction": {"event": "InteractionQueued", "msgInfo": {}}});
    assert_eq!(field_of(norm(frame("CAEQBA==", &inner, 0)).unwrap_err()), "payload.Interaction.interactionGUID");
}

#[test]
fn control_frames_heartbeats_and_skill_changes_are_ignored() {
    for (v, name) in [
        (json!({"type": "isEndOfTopic", "endOfTopic": "true"}), "isEndOfTopic"),
        (
            json!({"ClientCheck": {"heartbeat": "[HEARTBEAT]", "msgInfo": {"instanceId": "i", "sequenceId": 70}}}),
            "ClientCheck",
        ),
        (
            json!({"AgentProvChange": {"agentId": "agU", "enabled": "yes", "event": "AgentSkillChanged", "msgInfo": {}}}),
            "AgentSkillChanged",
        ),
        (json!({"AgentProvChange": {"agentId": "agU", "event": "AgentSkillCreated"}}), "AgentSkillCreated"),
        (json!({"AgentProvChange": {"agentId": "agU"}}), "AgentProvChange"),
        (interaction("MediaProxyAdded", json!({})), "MediaProxyAdded"),
        (interaction("GuestChatEnd", json!({})), "GuestChatEnd"),
    ] {
        let n = norm(v).unwrap();
        assert!(n.ignored.is_some() && n.events.is_empty(), "{name}");
        assert_eq!(n.vendor_event_type, name);
    }
}

#[test]
fn unknown_event_names_and_classes_are_ignored_not_rejected() {
    let n = norm(interaction("InteractionTeleported", json!({}))).unwrap();
    assert!(n.ignored.as_deref().is_some_and(|w| w.contains("InteractionTeleported")));
    let n = norm(json!({"QueueStats": {"queueId": 1}})).unwrap();
    assert!(n.ignored.is_some());
}

#[test]
fn an_interaction_without_an_event_name_or_guid_names_the_field() {
    let no_event = json!({"Interaction": {"interactionGUID": GUID}});
    assert_eq!(field_of(norm(no_event).unwrap_err()), "Interaction.event");
    let no_guid = json!({"Interaction": {"event": "InteractionCreated"}});
    assert_eq!(field_of(norm(no_guid).unwrap_err()), "Interaction.interactionGUID");
}

#[test]
fn direction_reads_in_and_out_and_rejects_anything_else_naming_the_field() {
    let out = norm(interaction("InteractionAssigned", json!({"direction": "out"}))).unwrap();
    assert_eq!(one(&out).direction, Some(Direction::Outbound));
    let queue_dir = interaction(
        "InteractionQueued",
        json!({"attachedData": {"attachedDatum": [{"attachedDataKey": "priority", "attachedDataValue": 50}, {"attachedDataKey": "queueDirection", "attachedDataValue": "in"}]}}),
    );
    assert_eq!(one(&norm(queue_dir).unwrap()).direction, Some(Direction::Inbound));
    let flag = norm(interaction("InteractionCreated", json!({"isOutboundCall": "true"}))).unwrap();
    assert_eq!(one(&flag).direction, Some(Direction::Outbound));

    let err = norm(interaction("InteractionQueued", json!({"direction": "sideways"}))).unwrap_err();
    assert_eq!(field_of(err), "Interaction.direction");
    let bad_queue_dir = interaction(
        "InteractionQueued",
        json!({"attachedData": {"attachedDatum": [{"attachedDataKey": "queueDirection", "attachedDataValue": "both"}]}}),
    );
    assert_eq!(
        field_of(norm(bad_queue_dir).unwrap_err()),
        "Interaction.attachedData.attachedDatum[0].attachedDataValue"
    );
}

/// The attached-data paths are spelled out only when something is wrong:
/// each malformed shape still names its own field.
#[test]
fn malformed_attached_data_names_its_field() {
    for (attached, field) in [
        (json!("x"), "Interaction.attachedData"),
        (json!({"attachedDatum": 7}), "Interaction.attachedData.attachedDatum"),
        (
            json!({"attachedDatum": [{"attachedDataValue": 1}]}),
            "Interaction.attachedData.attachedDatum[0].attachedDataKey",
        ),
        (
            json!({"attachedDatum": [{"attachedDataKey": "phoneNum", "attachedDataValue": 1}, {"attachedDataKey": "callDurationSec", "attachedDataValue": "soon"}]}),
            "Interaction.attachedData.attachedDatum[1].attachedDataValue",
        ),
    ] {
        let v = interaction("InteractionQueued", json!({ "attachedData": attached }));
        assert_eq!(field_of(norm(v).unwrap_err()), field, "{attached}");
    }
}

#[test]
fn a_numeric_phone_num_becomes_e164_and_a_numeric_calling_name_is_no_display_name() {
    let v = interaction(
        "InteractionQueued",
        json!({"attachedData": {"attachedDatum": [
            {"attachedDataKey": "callingName", "attachedDataValue": 447799147855u64},
            {"attachedDataKey": "phoneNum", "attachedDataValue": 5515557212u64}
        ]}}),
    );
    let n = norm(v).unwrap();
    let customer = &one(&n).parties[0];
    assert_eq!(customer.role, Some(PartyRole::Customer));
    assert_eq!(customer.phone_number, "5515557212");
    assert_eq!(customer.e164, "+15515557212");
    assert_eq!(customer.display_name, "");

    let named = interaction(
        "InteractionCreated",
        json!({"attachedData": {"attachedDatum": [
            {"attachedDataKey": "callingName", "attachedDataValue": "Andrew Cunningh"},
            {"attachedDataKey": "phoneNum", "attachedDataValue": 5515557212u64},
            {"attachedDataKey": "remotePhoneNum", "attachedDataValue": "+15515557212"}
        ]}}),
    );
    let n = norm(named).unwrap();
    let customer = &one(&n).parties[0];
    assert_eq!((customer.phone_number.as_str(), customer.display_name.as_str()), ("+15515557212", "Andrew Cunningh"));

    let only_name = interaction(
        "InteractionQueued",
        json!({"attachedData": {"attachedDatum": {"attachedDataKey": "callingName", "attachedDataValue": 447799147855u64}}}),
    );
    assert_eq!(one(&norm(only_name).unwrap()).parties[0].e164, "+447799147855");
}

#[test]
fn the_agent_is_an_agent_party_with_its_extension_and_no_e164() {
    let n =
        norm(interaction("InteractionAssigned", json!({"agentId": "agAglVJkg0TU28dok9y9UQKg", "agentPhone": 40375})))
            .unwrap();
    let e = one(&n);
    assert_eq!(e.agent_id, "agAglVJkg0TU28dok9y9UQKg");
    let agent = &e.parties[0];
    assert_eq!(agent.role, Some(PartyRole::Agent));
    assert_eq!((agent.phone_number.as_str(), agent.e164.as_str()), ("40375", ""));

    let left = norm(interaction("InteractionDeassigned", json!({"agentId": "agA"}))).unwrap();
    assert!(matches!(&one(&left).detail, Some(Detail::Participant(p)) if p.agent_id == "agA"));
}

#[test]
fn interaction_deleted_maps_the_hangup_reason_initiator_disposition_and_notes() {
    let cases = [
        ("CEC_DISCONNECT_BUSY", Some(CallOutcome::Busy)),
        ("CEC_DISCONNECT_BADADDRESS", Some(CallOutcome::BadAddress)),
        ("CEC_DISCONNECT_NOANSWER", Some(CallOutcome::NoAnswer)),
        ("CEC_DISCONNECT_CANCELLED", Some(CallOutcome::Cancelled)),
        ("CEC_DISCONNECT_REJECTED", Some(CallOutcome::Rejected)),
        ("CEC_DISCONNECT_FAILED", Some(CallOutcome::Failed)),
        ("CEC_DISCONNECT_BLOCKED", Some(CallOutcome::Blocked)),
        ("CEC_DISCONNECT_NORMAL", None),
        ("CEC_NONE", None),
    ];
    for (reason, outcome) in cases {
        let v = interaction(
            "InteractionDeleted",
            json!({"callHangupReason": reason, "hangupInitiator": "SYSTEM", "dispositionCode": "SALE", "agentNotes": "call back Friday"}),
        );
        let n = norm(v).unwrap();
        let e = one(&n);
        let Some(Detail::Ended(ended)) = &e.detail else { panic!("no ended detail for {reason}") };
        assert_eq!(ended.outcome, outcome, "{reason}");
        assert_eq!(ended.reason, reason);
        assert_eq!(ended.hangup_initiator, Some(PartyRole::System));
        assert_eq!(ended.disposition, "SALE");
        assert_eq!(e.facts.notes, vec!["call back Friday".to_string()]);
    }
    let numeric =
        norm(interaction("InteractionDeleted", json!({"dispositionCode": 1000, "hangupInitiator": "CUSTOMER"})))
            .unwrap();
    assert_eq!(one(&numeric).facts.disposition.as_deref(), Some("1000"));
    assert_eq!(one(&numeric).facts.hangup_initiator, Some(PartyRole::Customer));
}

#[test]
fn call_times_are_milliseconds_and_the_duration_reads_seconds_or_a_clock() {
    let v = interaction(
        "InteractionDeleted",
        json!({"attachedData": {"attachedDatum": [
            {"attachedDataKey": "callAnsweredTime", "attachedDataValue": 1669235841000u64},
            {"attachedDataKey": "callHangupTime", "attachedDataValue": "1669236906000"},
            {"attachedDataKey": "callDuration", "attachedDataValue": "00:17:45"}
        ]}}),
    );
    let n = norm(v).unwrap();
    let f = &one(&n).facts;
    assert_eq!(f.answered_at.unwrap().timestamp(), 1_669_235_841);
    assert_eq!(f.ended_at.unwrap().timestamp(), 1_669_236_906);
    assert_eq!(f.duration, Some(Duration::from_secs(1065)));
    let secs = interaction(
        "InteractionDeleted",
        json!({"attachedData": {"attachedDatum": [{"attachedDataKey": "callDurationSec", "attachedDataValue": 1065}, {"attachedDataKey": "callDuration", "attachedDataValue": "00:00:01"}]}}),
    );
    assert_eq!(one(&norm(secs).unwrap()).facts.duration, Some(Duration::from_secs(1065)));
}

#[test]
fn interaction_deleted_is_one_shot_and_other_events_key_on_the_msg_info_sequence() {
    let deleted =
        norm(interaction("InteractionDeleted", json!({"msgInfo": {"instanceId": "i1", "sequenceId": 251}}))).unwrap();
    assert_eq!(deleted.identity, Identity::Natural(format!("8x8es:InteractionDeleted:{GUID}")));
    let queued =
        norm(interaction("InteractionQueued", json!({"msgInfo": {"instanceId": "i1", "sequenceId": 230}}))).unwrap();
    assert_eq!(queued.identity, Identity::Natural(format!("8x8es:InteractionQueued:{GUID}:i1:230")));
    assert_eq!(one(&queued).order, Some(VendorOrder { scope: "i1".into(), position: 230 }));
    let bare = norm(interaction("InteractionQueued", json!({}))).unwrap();
    assert!(bare.identity.is_content_hash());
    assert_eq!(one(&bare).order, None);
}

#[test]
fn occurred_at_prefers_interaction_event_ts_then_msg_info_then_publish_time_and_never_event_ts() {
    let all = interaction(
        "InteractionQueued",
        json!({"interactionEventTS": 1744819217, "eventTS": 1744810000, "msgInfo": {"timestamp": 1744819218942u64}}),
    );
    assert_eq!(one(&norm(all.clone()).unwrap()).occurred_at.unwrap().timestamp(), 1_744_819_217);
    let msg_only =
        interaction("InteractionQueued", json!({"eventTS": 1744810000, "msgInfo": {"timestamp": 1744819218942u64}}));
    let t = one(&norm(msg_only).unwrap()).occurred_at.unwrap();
    assert_eq!((t.timestamp(), t.timestamp_subsec_millis()), (1_744_819_218, 0), "cut to the second");
    let framed = norm(frame("CAEQBQ==", &interaction("InteractionQueued", json!({"eventTS": 1744810000})), 0)).unwrap();
    assert_eq!(one(&framed).occurred_at.unwrap().to_rfc3339(), "2022-11-23T20:37:08+00:00");
    let none = norm(interaction("InteractionQueued", json!({"eventTS": 1744810000}))).unwrap();
    assert_eq!(one(&none).occurred_at, None);
    assert_eq!(one(&none).attributes.get("eventTS").map(String::as_str), Some("1744810000"));
}

#[test]
fn non_voice_media_is_ignored_but_video_is_phone_media() {
    for fields in [
        json!({"mediaType": "chat"}),
        json!({"mediaType": "email"}),
        json!({"resourceType": 3}),
        json!({"resourceType": "2"}),
    ] {
        let n = norm(interaction("InteractionQueued", fields.clone())).unwrap();
        assert!(n.ignored.as_deref().is_some_and(|w| w.contains("non-voice")), "{fields}");
    }
    let chat_guid =
        json!({"Interaction": {"event": "InteractionAccepted", "interactionGUID": "int-19a-xYz-chat-01-tenant01"}});
    assert!(norm(chat_guid).unwrap().ignored.is_some());
    let video = norm(interaction("InteractionQueued", json!({"mediaType": "phone", "resourceType": 4}))).unwrap();
    assert_eq!(one(&video).media, Some(Media::Video));
    let voice = norm(interaction("InteractionQueued", json!({"mediaType": "phone", "resourceType": 0}))).unwrap();
    assert_eq!(one(&voice).media, Some(Media::Voice));
}

#[test]
fn original_interaction_guid_links_the_conversation() {
    let v = interaction(
        "InteractionCreated",
        json!({"attachedData": {"attachedDatum": [{"attachedDataKey": "originalInteractionGuid", "attachedDataValue": "int-1-a-phone-00-t"}]}}),
    );
    assert_eq!(one(&norm(v).unwrap()).conversation_id.as_deref(), Some("8x8es:int-1-a-phone-00-t"));
    assert_eq!(one(&norm(interaction("InteractionCreated", json!({}))).unwrap()).conversation_id, None);
}

#[test]
fn attached_data_and_mixed_type_fields_become_flat_attributes() {
    let v = interaction(
        "InteractionQueued",
        json!({
            "isAgentInitiated": "false", "isQueued": true, "inboundChannelid": "N/A", "transactionNum": 848184,
            "attachedData": {"attachedDatum": [
                {"attachedDataKey": "@pri", "attachedDataValue": 100},
                {"attachedDataKey": "isVip", "attachedDataValue": true},
                {"attachedDataKey": "channelName", "attachedDataValue": "Support Queue"}
            ]},
            "msgInfo": {"instanceId": "us1tomcat04", "sequenceId": 224, "timestamp": 1669235827942u64}
        }),
    );
    let n = norm(v).unwrap();
    let a = &one(&n).attributes;
    for (k, want) in [
        ("@pri", "100"),
        ("isVip", "true"),
        ("channelName", "Support Queue"),
        ("isAgentInitiated", "false"),
        ("isQueued", "true"),
        ("inboundChannelid", "N/A"),
        ("transactionNum", "848184"),
        ("msgInfo.sequenceId", "224"),
        ("msgInfo.timestamp", "1669235827942"),
    ] {
        assert_eq!(a.get(k).map(String::as_str), Some(want), "{k}");
    }
    assert!(!a.contains_key("interactionGUID") && !a.contains_key("event"));
}

#[test]
fn a_malformed_attached_datum_names_its_path() {
    let v = interaction("InteractionQueued", json!({"attachedData": {"attachedDatum": [{"attachedDataValue": 1}]}}));
    assert_eq!(field_of(norm(v).unwrap_err()), "Interaction.attachedData.attachedDatum[0].attachedDataKey");
    let t = interaction(
        "InteractionDeleted",
        json!({"attachedData": {"attachedDatum": [{"attachedDataKey": "callHangupTime", "attachedDataValue": "soon"}]}}),
    );
    assert_eq!(field_of(norm(t).unwrap_err()), "Interaction.attachedData.attachedDatum[0].attachedDataValue");
}

#[test]
fn a_rejected_offer_keeps_the_reject_reason_in_words() {
    let n = norm(interaction("InteractionRejected", json!({"agentId": "ag9I", "rejectReason": 1}))).unwrap();
    let a = &one(&n).attributes;
    assert_eq!(a.get("rejectReason").map(String::as_str), Some("1"));
    assert_eq!(a.get("rejectReasonText").map(String::as_str), Some("timeout"));
}

#[test]
fn agent_status_change_is_an_agent_event_without_a_call() {
    let v = json!({"AgentStatusChange": {
        "agentId": "ag64oyEUb_Sk6bxVB9P5yaaa",
        "msgInfo": {"instanceId": "example.8x8.com", "sequenceId": 215, "timestamp": 1669235544917u64},
        "newReasonCodeUser": "801=1722", "newState": 5, "newSubState": "none", "newSubStateReason": "none",
        "statusEventTS": 1669235544
    }});
    let n = norm(v).unwrap();
    assert_eq!(n.vendor_event_type, "AgentStatusChange");
    assert_eq!(
        n.identity,
        Identity::Natural("8x8es:AgentStatusChange:ag64oyEUb_Sk6bxVB9P5yaaa:example.8x8.com:215".into())
    );
    let e = one(&n);
    assert_eq!((e.event_type, e.call.clone()), (E::AgentStatusChanged, None));
    assert_eq!(e.agent_id, "ag64oyEUb_Sk6bxVB9P5yaaa");
    assert_eq!(
        e.detail,
        Some(Detail::AgentStatus {
            state: "5".into(),
            reason: "801=1722".into(),
            agent_state: Some(AgentState::Available)
        }),
        "newState 5 is the one documented code: AVAILABLE"
    );
    assert_eq!(e.occurred_at.unwrap().timestamp(), 1_669_235_544);

    let sub = json!({"AgentStatusChange": {"agentId": "a", "newState": "2", "newSubState": "lunch", "newSubStateReason": "break"}});
    assert_eq!(
        one(&norm(sub).unwrap()).detail,
        Some(Detail::AgentStatus { state: "2/lunch".into(), reason: "break".into(), agent_state: None }),
        "an undocumented code is UNSPECIFIED; the raw state says it"
    );
    let no_agent = json!({"AgentStatusChange": {"newState": 5}});
    assert_eq!(field_of(norm(no_agent).unwrap_err()), "AgentStatusChange.agentId");
}

#[test]
fn detection_claims_frames_decoded_events_and_control_frames_but_no_other_vendor() {
    let yes = [
        frame("CAEQAQ==", &interaction("InteractionCreated", json!({})), 0),
        interaction("InteractionCreated", json!({})),
        json!({"AgentStatusChange": {"agentId": "a"}}),
        json!({"AgentProvChange": {"agentId": "a"}}),
        json!({"ClientCheck": {"heartbeat": "[HEARTBEAT]"}}),
        json!({"type": "isEndOfTopic", "endOfTopic": "true"}),
    ];
    for v in &yes {
        assert!(EventStreaming.detect(v, None), "{v}");
    }
    let no = [
        json!({"type": "callended", "detail": {"callId": "c"}}),
        json!({"notificationType": "CallEvent", "notification": {"callId": "1"}}),
        json!({"eventType": "mashell-voice-phone-completed-cc-v1", "status": "success", "data": {}}),
        json!({"callId": "1", "callerFlowId": "f"}),
        json!({"Something": {"a": 1}}),
        json!({"Interaction": "not an object"}),
        json!([1, 2]),
    ];
    for v in &no {
        assert!(!EventStreaming.detect(v, None), "{v}");
    }
}

#[test]
fn per_agent_events_are_scoped_to_the_agents_party_and_call_events_are_not() {
    let agent = json!({"agentId": "agGrace", "agentPhone": 40375});
    for name in ["InteractionPostProcess", "InteractionEndPostProcess", "InteractionDeassigned"] {
        let n = norm(interaction(name, agent.clone())).unwrap();
        assert_eq!(one(&n).party_scope.as_ref().map(|p| p.agent_id.as_str()), Some("agGrace"), "{name}");
    }
    // Removed by the host: `agentId` may be the host, so the event is nobody's step.
    for name in ["InteractionAccepted", "InteractionDeleted", "LineHoldStatus", "InteractionParticipantRemovedByHost"] {
        let mut fields = agent.clone();
        fields["status"] = json!(true);
        assert_eq!(one(&norm(interaction(name, fields)).unwrap()).party_scope, None, "{name}");
    }
    // Without an agent there is no party to scope to: the event is the call's.
    assert_eq!(one(&norm(interaction("InteractionPostProcess", json!({}))).unwrap()).party_scope, None);
}

#[test]
fn queue_name_wrap_up_codes_previous_leg_and_queue_timeout_are_read() {
    let attached = json!({"attachedDatum": [
        {"attachedDataKey": "tenantSkillName", "attachedDataValue": "Customer Service"},
        {"attachedDataKey": "channelName", "attachedDataValue": "Support Queue"},
        {"attachedDataKey": "tclSelectedItems", "attachedDataValue": "12|301, 12|305"},
        {"attachedDataKey": "originalInteractionGuid", "attachedDataValue": "int-first"},
    ]});
    let n = norm(interaction("InteractionQueueTimeout", json!({"queueId": 1162, "attachedData": attached}))).unwrap();
    let d = one(&n);
    assert_eq!(d.facts.queue_name.as_deref(), Some("Customer Service"), "tenantSkillName before channelName");
    let codes: Vec<_> = d.facts.wrap_up_codes.iter().map(|c| c.code.as_str()).collect();
    assert_eq!(codes, vec!["12|301", "12|305"]);
    assert_eq!(d.facts.previous_call_id.as_deref(), Some("8x8es:int-first"));
    assert_eq!(d.facts.queue_result, Some(QueueResult::Timeout));
    let unqueued = norm(interaction("InteractionUnqueued", json!({}))).unwrap();
    assert_eq!(one(&unqueued).facts.queue_result, None, "why it left the queue is not said");
}
