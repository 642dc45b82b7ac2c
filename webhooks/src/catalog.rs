//! The event catalog: every event type Driftstack emits, with a description and the JSON Schema
//! of its `data`. Served by `GET /v1/webhooks/events`.

use serde_json::{Value, json};

pub struct EventType {
    pub name: &'static str,
    pub description: &'static str,
    pub schema: fn() -> Value,
}

fn session() -> Value {
    json!({"type": "object", "required": ["session_id"], "properties": {
        "session_id": {"type": "string"}, "status": {"type": "string"},
        "end_reason": {"type": ["string", "null"]}, "runner_id": {"type": "string"}}})
}
fn profile() -> Value {
    json!({"type": "object", "required": ["profile_id"], "properties": {
        "profile_id": {"type": "string"}, "snapshot_id": {"type": "string"}}})
}
fn api_key() -> Value {
    json!({"type": "object", "required": ["key_id"], "properties": {
        "key_id": {"type": "string"}, "name": {"type": "string"},
        "replaced_by": {"type": "string"}}})
}
fn usage() -> Value {
    json!({"type": "object", "properties": {"meter": {"type": "string"},
        "percent_used": {"type": "number"}, "threshold": {"type": "number"}}})
}
fn billing() -> Value {
    json!({"type": "object", "properties": {"tier": {"type": "string"}, "previous_tier": {"type": "string"}}})
}
fn team() -> Value {
    json!({"type": "object", "properties": {"user_id": {"type": "string"}, "role": {"type": "string"}}})
}
fn download() -> Value {
    json!({"type": "object", "properties": {
        "session_id": {"type": "string"}, "download_id": {"type": "string"},
        "filename": {"type": "string"}, "size": {"type": "integer"}, "sha256": {"type": "string"}
    }})
}
fn recording() -> Value {
    json!({"type": "object", "properties": {
        "session_id": {"type": "string"}, "events": {"type": "integer"},
        "bytes": {"type": "integer"}, "truncated": {"type": "boolean"}
    }})
}
fn handoff_requested() -> Value {
    json!({"type": "object", "properties": {
        "session_id": {"type": "string"}, "handoff_id": {"type": "string"},
        "reason": {"type": "string"}, "mode": {"type": "string", "enum": ["view", "interact"]},
        "live_url": {"type": "string"}, "expires_at": {"type": "string", "format": "date-time"}
    }})
}
fn handoff_ended() -> Value {
    json!({"type": "object", "properties": {
        "session_id": {"type": "string"}, "handoff_id": {"type": "string"},
        "by": {"type": "string", "description": "Who completed it (`lvl_…`, `usr_…`, `key_…`) or `timeout`."}
    }})
}
fn test() -> Value {
    json!({"type": "object", "properties": {"endpoint_id": {"type": "string"}, "message": {"type": "string"}}})
}

pub const CATALOG: &[EventType] = &[
    EventType {
        name: "session.created",
        description: "A session started and is ready for commands.",
        schema: session,
    },
    EventType {
        name: "session.ended",
        description: "A session was released or the server shut down.",
        schema: session,
    },
    EventType {
        name: "session.failed",
        description: "A session's browser crashed or its runner was lost.",
        schema: session,
    },
    EventType {
        name: "session.timed_out",
        description: "A session reached its idle timeout or maximum duration.",
        schema: session,
    },
    EventType {
        name: "session.download.completed",
        description: "A file a session downloaded is stored and can be fetched.",
        schema: download,
    },
    EventType {
        name: "session.recording.ready",
        description: "A recorded session ended and its whole recording can be read.",
        schema: recording,
    },
    EventType {
        name: "session.handoff.requested",
        description: "A session was handed to a person; `live_url` is the page for them.",
        schema: handoff_requested,
    },
    EventType {
        name: "session.handoff.completed",
        description: "The person (or the API) completed a handoff; the session is active again.",
        schema: handoff_ended,
    },
    EventType {
        name: "session.handoff.expired",
        description: "A handoff's time ran out before a person completed it; the session goes on.",
        schema: handoff_ended,
    },
    EventType {
        name: "profile.created",
        description: "A profile was created.",
        schema: profile,
    },
    EventType {
        name: "profile.deleted",
        description: "A profile was deleted.",
        schema: profile,
    },
    EventType {
        name: "profile.snapshot.created",
        description: "A snapshot of a profile was taken.",
        schema: profile,
    },
    EventType {
        name: "profile.snapshot.restored",
        description: "A profile was restored from a snapshot.",
        schema: profile,
    },
    EventType {
        name: "api_key.created",
        description: "An API key was created.",
        schema: api_key,
    },
    EventType {
        name: "api_key.rotated",
        description: "An API key was rotated; the old one works until its grace period ends.",
        schema: api_key,
    },
    EventType {
        name: "api_key.revoked",
        description: "An API key was revoked.",
        schema: api_key,
    },
    EventType {
        name: "usage.threshold_reached",
        description: "A usage meter reached 80 % or 100 % of its cap.",
        schema: usage,
    },
    EventType {
        name: "billing.subscription_changed",
        description: "The account moved to another tier.",
        schema: billing,
    },
    EventType {
        name: "team.member_added",
        description: "Someone joined the team.",
        schema: team,
    },
    EventType {
        name: "team.member_removed",
        description: "Someone was removed from the team.",
        schema: team,
    },
    EventType {
        name: "webhook.test",
        description: "A test event sent on request.",
        schema: test,
    },
    EventType {
        name: "webhook.endpoint_disabled",
        description: "An endpoint was disabled after failing for days, or because it answered 410.",
        schema: test,
    },
];

pub fn is_known(name: &str) -> bool {
    CATALOG.iter().any(|e| e.name == name)
}
