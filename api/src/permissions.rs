//! The permission vocabulary (`resource:action`) shared by API-key scopes and dashboard roles,
//! and the marker types with which a route states what it needs in its signature
//! (`crate::extract::Require<SessionsWrite>`), so a missing check is visible in review.

use serde::{Deserialize, Serialize};

macro_rules! scopes {
    ($($variant:ident => $text:literal),+ $(,)?) => {
        /// One permission, written `resource:action`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum Scope {
            $(#[serde(rename = $text)] $variant,)+
        }

        impl Scope {
            pub const ALL: &'static [Scope] = &[$(Scope::$variant,)+];

            pub fn as_str(self) -> &'static str {
                match self { $(Scope::$variant => $text,)+ }
            }

            pub fn parse(s: &str) -> Option<Scope> {
                match s { $($text => Some(Scope::$variant),)+ _ => None }
            }
        }

        // Written by hand: the derive would list the variant names, not their `resource:action`
        // spelling on the wire.
        impl utoipa::PartialSchema for Scope {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .description(Some("One permission, written `resource:action`."))
                    .enum_values(Some([$($text,)+]))
                    .into()
            }
        }

        impl utoipa::ToSchema for Scope {}
    };
}

scopes! {
    AccountRead => "account:read",
    AccountWrite => "account:write",
    KeysRead => "keys:read",
    KeysWrite => "keys:write",
    SessionsRead => "sessions:read",
    SessionsWrite => "sessions:write",
    ProfilesRead => "profiles:read",
    ProfilesWrite => "profiles:write",
    UsageRead => "usage:read",
    AuditRead => "audit:read",
    WebhooksRead => "webhooks:read",
    WebhooksWrite => "webhooks:write",
    TeamRead => "team:read",
    TeamWrite => "team:write",
    BillingRead => "billing:read",
    BillingWrite => "billing:write",
    // Newer scopes go last: the list is the order of the documented enum.
    SessionsEvaluate => "sessions:evaluate",
}

impl Scope {
    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

/// A set of scopes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Scopes(u32);

impl Scopes {
    pub fn all() -> Self {
        Scope::ALL.iter().copied().collect()
    }

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    pub fn is_subset_of(self, other: Scopes) -> bool {
        self.0 & !other.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL
            .iter()
            .copied()
            .filter(move |s| self.contains(*s))
    }

    /// The stored form: scope names separated by spaces.
    pub fn to_stored(self) -> String {
        self.iter().map(Scope::as_str).collect::<Vec<_>>().join(" ")
    }

    /// Reads the stored form, skipping names this build does not know.
    pub fn from_stored(s: &str) -> Self {
        s.split_whitespace().filter_map(Scope::parse).collect()
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        Scopes(iter.into_iter().fold(0, |acc, s| acc | s.bit()))
    }
}

/// What a team role may do. Owners everything; admins everything but billing changes;
/// developers build with the product (sessions, profiles, webhooks, keys) and read the rest;
/// viewers read.
pub fn role_scopes(role: &str) -> Scopes {
    use Scope::*;
    match role {
        "owner" => Scopes::all(),
        "admin" => Scopes::all()
            .iter()
            .filter(|s| *s != BillingWrite)
            .collect(),
        "developer" => [
            AccountRead,
            KeysRead,
            KeysWrite,
            SessionsRead,
            SessionsWrite,
            SessionsEvaluate,
            ProfilesRead,
            ProfilesWrite,
            UsageRead,
            WebhooksRead,
            WebhooksWrite,
            TeamRead,
            BillingRead,
        ]
        .into_iter()
        .collect(),
        "viewer" => [
            AccountRead,
            KeysRead,
            SessionsRead,
            ProfilesRead,
            UsageRead,
            WebhooksRead,
            TeamRead,
            BillingRead,
        ]
        .into_iter()
        .collect(),
        _ => Scopes::default(),
    }
}

/// A permission a route needs; implemented by the marker types below.
pub trait Permission: Send + Sync + 'static {
    const SCOPE: Scope;
}

macro_rules! permissions {
    ($($name:ident => $scope:ident),+ $(,)?) => {
        $(
            #[doc = concat!("Requires the `", stringify!($scope), "` permission.")]
            pub struct $name;
            impl Permission for $name {
                const SCOPE: Scope = Scope::$scope;
            }
        )+
    };
}

permissions! {
    AccountRead => AccountRead,
    AccountWrite => AccountWrite,
    KeysRead => KeysRead,
    KeysWrite => KeysWrite,
    SessionsRead => SessionsRead,
    SessionsWrite => SessionsWrite,
    ProfilesRead => ProfilesRead,
    ProfilesWrite => ProfilesWrite,
    AuditRead => AuditRead,
    UsageRead => UsageRead,
    BillingRead => BillingRead,
    BillingWrite => BillingWrite,
    TeamRead => TeamRead,
    TeamWrite => TeamWrite,
    WebhooksRead => WebhooksRead,
    WebhooksWrite => WebhooksWrite,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_through_storage() {
        let set: Scopes = [Scope::SessionsRead, Scope::KeysWrite]
            .into_iter()
            .collect();
        assert_eq!(Scopes::from_stored(&set.to_stored()), set);
        assert!(set.is_subset_of(Scopes::all()));
        assert!(!Scopes::all().is_subset_of(set));
        assert!(set.contains(Scope::KeysWrite) && !set.contains(Scope::KeysRead));
        assert_eq!(Scopes::all().iter().count(), Scope::ALL.len());
    }
}
