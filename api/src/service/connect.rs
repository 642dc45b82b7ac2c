//! Who may attach to a session's browser (raw CDP, the live view): the signed token of the
//! session's `connect_url`, or a credential of the session's account with the route's scope.

use axum::http::HeaderMap;
use common::ids::SessionId;

use crate::{error::ApiError, permissions::Scope, secrets::connect_token, state::AppState};

/// The token must be valid for this session; without one, a credential of the session's account
/// with `scope` will do. Unknown sessions and other accounts' sessions are 404s.
pub async fn authorize(
    state: &AppState,
    id: &SessionId,
    token: Option<&str>,
    headers: &HeaderMap,
    scope: Scope,
) -> Result<(), ApiError> {
    let now = state.clock.now_ms() / 1000;
    if let Some(token) = token {
        let valid = std::iter::once(&*state.connect_key)
            .chain(state.connect_keys_previous.iter())
            .any(|key| connect_token::verify(key, id.as_str(), token, now));
        if valid {
            return Ok(());
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
    Ok(())
}
