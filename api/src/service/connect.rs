//! Who may attach to a session's browser (raw CDP, the live view): the signed token of the
//! session's `connect_url`, a live link's viewer credential (the live view only), or a credential
//! of the session's account with the route's scope.

use axum::http::HeaderMap;
use common::ids::SessionId;

use crate::{
    auth::Principal,
    error::ApiError,
    permissions::Scope,
    secrets::{connect_token, viewer_token},
    state::AppState,
};

/// What the caller of a session's socket may do.
#[derive(Clone, Debug)]
pub enum Access {
    /// The `connect_url` token: whatever raw CDP can.
    ConnectToken,
    /// A live link's viewer credential: the live view in the link's mode.
    Viewer { link: String, interact: bool },
    /// A credential of the session's account.
    Credential(Principal),
}

impl Access {
    /// May send input to the page (when it holds control).
    pub fn may_interact(&self) -> bool {
        match self {
            Access::ConnectToken => true,
            Access::Viewer { interact, .. } => *interact,
            Access::Credential(p) => p.scopes.contains(Scope::SessionsWrite),
        }
    }

    /// May take control from whoever holds it.
    pub fn may_take_over(&self) -> bool {
        match self {
            Access::ConnectToken => true,
            Access::Viewer { .. } => false,
            Access::Credential(p) => p.scopes.contains(Scope::SessionsWrite),
        }
    }

    /// Who it is, for other viewers and the audit log.
    pub fn label(&self) -> String {
        match self {
            Access::ConnectToken => "connect_url".to_owned(),
            Access::Viewer { link, .. } => link.clone(),
            Access::Credential(p) => p.actor.id().to_owned(),
        }
    }
}

/// The token must be valid for this session (a viewer credential only where `scope` is
/// `sessions:read`: the live view); without one, a credential of the session's account with
/// `scope` will do. Unknown sessions and other accounts' sessions are 404s.
pub async fn authorize(
    state: &AppState,
    id: &SessionId,
    token: Option<&str>,
    headers: &HeaderMap,
    scope: Scope,
) -> Result<Access, ApiError> {
    let now = state.clock.now_ms() / 1000;
    if let Some(token) = token {
        let keys =
            || std::iter::once(&*state.connect_key).chain(state.connect_keys_previous.iter());
        if keys().any(|key| connect_token::verify(key, id.as_str(), token, now)) {
            return Ok(Access::ConnectToken);
        }
        if scope == Scope::SessionsRead
            && let Some((link, mode)) =
                keys().find_map(|key| viewer_token::verify(key, id.as_str(), token, now))
        {
            let closed = state.live_links.closed(&link, state.clock.now_ms()).await?;
            if closed.is_some() {
                return Err(ApiError::new(
                    axum::http::StatusCode::GONE,
                    "live_link_gone",
                    "This live link was revoked or has expired.",
                ));
            }
            return Ok(Access::Viewer {
                link,
                interact: mode == "interact",
            });
        }
        return Err(ApiError::unauthorized(
            "The connect token is invalid, expired or for another session; take a fresh \
             `connect_url` from GET /v1/sessions/{id}.",
        ));
    }
    let principal = state.auth.authenticate(headers).await?;
    if !principal.scopes.contains(scope) {
        return Err(crate::extract::credentials::missing(scope));
    }
    state
        .sessions
        .get(&principal.account_id, id)
        .await
        .map_err(|_| ApiError::not_found("session"))?;
    Ok(Access::Credential(principal))
}
