//! Prefixed, time-ordered identifiers (`ses_…`, `key_…`, …).
//!
//! Every entity has its own newtype so that no bare `String` id crosses a crate boundary. An id is a
//! prefix plus the 32 lowercase hex digits of a UUIDv7, so ids sort by creation time as strings and
//! page well by cursor. Parsing is strict: a wrong prefix, length or alphabet is an error.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a string is not a valid id of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected an id like `{prefix}` followed by 32 lowercase hex digits")]
pub struct IdParseError {
    pub prefix: &'static str,
}

/// Parses `s` as `prefix` + 32 lowercase hex digits, returning the hex part.
fn parse_prefixed<'a>(s: &'a str, prefix: &'static str) -> Result<&'a str, IdParseError> {
    let rest = s.strip_prefix(prefix).ok_or(IdParseError { prefix })?;
    let valid = rest.len() == 32 && rest.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if valid {
        Ok(rest)
    } else {
        Err(IdParseError { prefix })
    }
}

macro_rules! define_id {
    ($(#[$meta:meta])* $name:ident, $prefix:literal) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A new id, ordered after every id made earlier by this process.
            pub fn generate() -> Self {
                Self(format!("{}{}", $prefix, uuid::Uuid::now_v7().simple()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Wraps a value read back from our own database, which only ever holds valid ids.
            pub fn from_trusted(s: String) -> Self {
                Self(s)
            }
        }

        impl FromStr for $name {
            type Err = IdParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                parse_prefixed(s, $prefix).map(|_| Self(s.to_owned()))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

define_id!(/** A team: the unit that owns everything billable. */ AccountId, "acct_");
define_id!(/** A person who signs in to the dashboard. */ UserId, "usr_");
define_id!(/** An API key. */ ApiKeyId, "key_");
define_id!(/** A browser session. */ SessionId, "ses_");
define_id!(/** A persistent browser identity. */ ProfileId, "prof_");
define_id!(/** A point-in-time copy of a profile's state. */ SnapshotId, "snap_");
define_id!(/** A runner process that hosts browsers. */ RunnerId, "run_");
define_id!(/** A webhook endpoint. */ WebhookEndpointId, "whe_");
define_id!(/** An event in the events outbox. */ EventId, "evt_");
define_id!(/** One delivery of an event to one endpoint. */ DeliveryId, "dlv_");
define_id!(/** An audit log entry. */ AuditId, "aud_");
define_id!(/** A team invitation. */ InviteId, "inv_");
define_id!(/** A file a session downloaded. */ DownloadId, "dl_");
define_id!(/** A file uploaded into a session for its file inputs. */ UploadId, "upl_");
define_id!(/** One entry of a session's logs (console, page, network, CDP). */ LogId, "log_");
define_id!(/** A shareable link to a session's live view. */ LiveLinkId, "lvl_");
define_id!(/** A session handed to a person for a while. */ HandoffId, "hof_");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_back_and_sort_by_time() {
        let a = SessionId::generate();
        let b = SessionId::generate();
        assert!(a < b, "{a} should sort before {b}");
        assert_eq!(a.as_str().parse::<SessionId>().as_ref(), Ok(&a));
    }

    #[test]
    fn strict_parsing_rejects_wrong_prefix_length_and_alphabet() {
        let good = SessionId::generate().to_string();
        let hex = &good[4..];
        for bad in [
            format!("key_{hex}"),
            format!("ses_{}", &hex[1..]),
            format!("ses_{hex}0"),
            format!("ses_{}", hex.to_uppercase()),
            format!("ses_../{}", &hex[3..]),
            String::new(),
            "ses_".into(),
        ] {
            assert!(bad.parse::<SessionId>().is_err(), "{bad:?} parsed");
        }
    }
}
