//! The caller of a request, as extractors: [`Principal`] (any valid credential) and
//! [`Require<P>`] (a credential holding permission `P`). Resolution itself is `auth`'s.

use std::marker::PhantomData;

use axum::{extract::FromRequestParts, http::request::Parts};

use crate::{
    auth::Principal,
    error::ApiError,
    permissions::{Permission, Scope},
    state::AppState,
};

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // The idempotency middleware may already have resolved the caller.
        let principal = match parts.extensions.get::<Principal>() {
            Some(p) => p.clone(),
            None => state.auth.authenticate(&parts.headers).await?,
        };
        parts.extensions.insert(principal.clone());
        Ok(principal)
    }
}

/// The authenticated caller, proven to hold permission `P`. A missing or bad credential is a 401;
/// a credential without `P` is a 403 naming the permission.
pub struct Require<P: Permission> {
    pub principal: Principal,
    _permission: PhantomData<P>,
}

impl<P: Permission> FromRequestParts<AppState> for Require<P> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = Principal::from_request_parts(parts, state).await?;
        if !principal.scopes.contains(P::SCOPE) {
            return Err(missing(P::SCOPE));
        }
        Ok(Require {
            principal,
            _permission: PhantomData,
        })
    }
}

/// A 403 naming the permission a credential lacks.
pub fn missing(scope: Scope) -> ApiError {
    ApiError::forbidden(
        "missing_permission",
        format!("This credential lacks the `{}` permission.", scope.as_str()),
    )
    .with("permission", serde_json::json!(scope.as_str()))
}
