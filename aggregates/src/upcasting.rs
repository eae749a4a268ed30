//! How events written by older code are read by the current code.
//!
//! An incompatible change of an event type bumps its version and adds an upcaster here that
//! rewrites the old JSON into the new shape. The event store applies them when it loads an
//! aggregate, and the projections when they decode an event, so old events keep replaying.

use cqrs_es::persist::{EventUpcaster, SemanticVersionEventUpcaster};
use serde_json::Value;

use crate::chat::MESSAGE_RECEIVED_VERSION;

/// Every upcaster, oldest change first.
pub fn all() -> Vec<Box<dyn EventUpcaster>> {
    vec![
        Box::new(SemanticVersionEventUpcaster::new(
            "MessageReceived",
            MESSAGE_RECEIVED_VERSION,
            Box::new(message_received_1_to_2),
        )),
        Box::new(SemanticVersionEventUpcaster::new(
            "ResponseGenerated",
            MESSAGE_RECEIVED_VERSION,
            Box::new(response_generated_1_to_2),
        )),
    ]
}

/// 1.0 held texts and names as strings; 2.0 holds them as `PersonalText`. An old string
/// becomes `{"plain": …}`: it was written before sealing, and stays readable.
fn as_plain(value: Option<&mut Value>) {
    if let Some(value) = value {
        if let Value::String(text) = value {
            *value = serde_json::json!({ "plain": std::mem::take(text) });
        }
    }
}

fn message_received_1_to_2(mut payload: Value) -> Value {
    if let Some(body) = payload.get_mut("MessageReceived") {
        as_plain(body.get_mut("text"));
        if let Some(chat) = body.get_mut("chat") {
            as_plain(chat.get_mut("title"));
            as_plain(chat.get_mut("username"));
        }
        if let Some(from) = body.get_mut("from") {
            as_plain(from.get_mut("first_name"));
            as_plain(from.get_mut("last_name"));
            as_plain(from.get_mut("username"));
        }
    }
    payload
}

fn response_generated_1_to_2(mut payload: Value) -> Value {
    if let Some(response) = payload
        .get_mut("ResponseGenerated")
        .and_then(|body| body.get_mut("response"))
    {
        as_plain(response.get_mut("text"));
    }
    payload
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::ChatEvent;
    use crate::personal::PersonalText;
    use cqrs_es::persist::SerializedEvent;
    use serde_json::json;

    fn upcast(event_type: &str, version: &str, payload: Value) -> SerializedEvent {
        let mut event = SerializedEvent::new(
            "chat".into(),
            1,
            "Chat".into(),
            event_type.into(),
            version.into(),
            payload,
            json!({}),
        );
        for upcaster in all() {
            if upcaster.can_upcast(&event.event_type, &event.event_version) {
                event = upcaster.upcast(event);
            }
        }
        event
    }

    #[test]
    fn a_version_1_message_received_reads_as_version_2() {
        let old = json!({"MessageReceived": {
            "bot_id": "00000000-0000-0000-0000-000000000001", "update_id": 7, "message_id": 70,
            "chat": {"id": 42, "kind": "private", "title": null, "username": "ann"},
            "from": {"id": 42, "is_bot": false, "first_name": "Ann", "last_name": null,
                     "username": "ann", "language_code": "en"},
            "text": "hello", "sent_at": "2025-01-01T00:00:00Z"}});
        let event = upcast("MessageReceived", "1.0", old);
        assert!(
            event.event_version.starts_with("2.0"),
            "{}",
            event.event_version
        );
        let ChatEvent::MessageReceived {
            text, from, chat, ..
        } = serde_json::from_value(event.payload).unwrap()
        else {
            panic!("not a MessageReceived")
        };
        assert_eq!(text, PersonalText::plain("hello"));
        assert_eq!(from.unwrap().first_name, PersonalText::plain("Ann"));
        assert_eq!(chat.username, Some(PersonalText::plain("ann")));
        assert_eq!(chat.title, None);
    }

    #[test]
    fn current_events_are_left_alone() {
        let current = json!({"MessageReceived": {"text": {"plain": "x"}}});
        assert_eq!(
            upcast("MessageReceived", "2.0", current.clone()).payload,
            current
        );
    }
}
