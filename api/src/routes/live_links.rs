//! Shareable live links: `POST /v1/sessions/{id}/live-links` makes a URL to a minimal live page
//! (no dashboard sign-in) that a person can open or a customer can embed; `DELETE …/{link}`
//! revokes it. The URL carries a one-time token (only its SHA-256 is stored); the page
//! exchanges it (`POST /v1/live-links/exchange`) for a short-lived viewer credential, so no API
//! key is ever in a URL. Which origins may frame the page is the account's `live-embedding`
//! setting (default: none). The page itself is `routes::live_page`.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use common::ids::{AccountId, LiveLinkId, SessionId};
use rand::{TryRngCore, rngs::OsRng};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Digest;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    audit::Entry,
    auth::Principal,
    error::{ApiError, Problem},
    extract::{Require, Validate, ValidatedJson, Violations, parse_path_id},
    permissions::{AccountRead, AccountWrite, SessionsWrite},
    secrets::viewer_token,
    state::AppState,
    store::live_links::{Gone, Lookup, NewLink},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_live_link))
        .routes(routes!(revoke_live_link))
        .routes(routes!(exchange_live_link))
        .routes(routes!(get_live_embedding, set_live_embedding))
}

/// What a person with the link may do.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum LinkMode {
    /// Watch only.
    View,
    /// Watch, take control when nobody holds it, click and type.
    Interact,
}

impl LinkMode {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkMode::View => "view",
            LinkMode::Interact => "interact",
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateLiveLinkRequest {
    /// `view` (default) or `interact`.
    pub mode: Option<LinkMode>,
    /// 60–86400 (default 600). The link also ends with the session.
    #[schema(minimum = 60, maximum = 86400)]
    pub expires_in_seconds: Option<i64>,
}

impl Validate for CreateLiveLinkRequest {
    fn validate(&self, v: &mut Violations) {
        if let Some(s) = self.expires_in_seconds {
            v.check(
                (60..=86_400).contains(&s),
                "expires_in_seconds",
                "must be 60–86400",
            );
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LiveLinkResponse {
    /// `lvl_…`
    pub id: String,
    pub session_id: String,
    pub mode: LinkMode,
    /// The live page; send it to a person or put it in an `<iframe>` (see `live-embedding`).
    /// It works once: opening it again answers 410.
    pub url: String,
    pub created_at: String,
    pub expires_at: String,
}

/// A fresh link token: `lvt_` and 43 base64url characters (256 random bits).
fn new_token() -> Result<String, ApiError> {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| ApiError::internal(anyhow::anyhow!("no randomness: {e}")))?;
    Ok(format!(
        "lvt_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

pub fn token_hash(token: &str) -> String {
    common::crypto::hex(&sha2::Sha256::digest(token.as_bytes()))
}

/// A link made for `session` (live, the account's), by `created_by`.
pub struct MadeLink {
    pub id: LiveLinkId,
    pub url: String,
    pub created_at: common::clock::Millis,
    pub expires_at: common::clock::Millis,
}

/// Makes a live link (also used by handoffs).
pub async fn make_link(
    state: &AppState,
    account: &AccountId,
    session: &SessionId,
    mode: LinkMode,
    expires_at: common::clock::Millis,
    created_by: &str,
) -> Result<MadeLink, ApiError> {
    let token = new_token()?;
    let id = LiveLinkId::generate();
    let now = state.clock.now_ms();
    state
        .live_links
        .create(&NewLink {
            id: &id,
            account,
            session,
            mode: mode.as_str(),
            token_hash: &token_hash(&token),
            created_by,
            now,
            expires_at,
        })
        .await?;
    Ok(MadeLink {
        id,
        url: format!("{}/live/{token}", state.public_url),
        created_at: now,
        expires_at,
    })
}

/// The session, if it is the account's and live.
pub async fn live_session(
    state: &AppState,
    principal: &Principal,
    raw: &str,
) -> Result<SessionId, ApiError> {
    let id: SessionId = parse_path_id(raw)?;
    let record = state
        .sessions
        .get(&principal.account_id, &id)
        .await
        .map_err(|_| ApiError::not_found("session"))?;
    if !record.status.is_live() {
        return Err(ApiError::conflict(
            "session_ended",
            "The session has ended.",
        ));
    }
    Ok(id)
}

/// Makes a shareable link to the session's live view: a minimal page (no sign-in) in `view` or
/// `interact` mode, valid once, until `expires_in_seconds` pass or the session ends.
///
/// Requires `sessions:write`.
#[utoipa::path(post, path = "/v1/sessions/{id}/live-links", tag = "sessions",
    params(("id" = String, Path, description = "`ses_…`")),
    request_body = CreateLiveLinkRequest,
    responses((status = 201, body = LiveLinkResponse),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn create_live_link(
    State(state): State<AppState>,
    auth: Require<SessionsWrite>,
    Path(id): Path<String>,
    ValidatedJson(body): ValidatedJson<CreateLiveLinkRequest>,
) -> Result<(StatusCode, Json<LiveLinkResponse>), ApiError> {
    let p = &auth.principal;
    let session = live_session(&state, p, &id).await?;
    let mode = body.mode.unwrap_or(LinkMode::View);
    let expires_at = state.clock.now_ms() + body.expires_in_seconds.unwrap_or(600) * 1000;
    let link = make_link(
        &state,
        &p.account_id,
        &session,
        mode,
        expires_at,
        p.actor.id(),
    )
    .await?;
    state
        .record(Entry::by(
            p,
            "session.live_link.created",
            Some(link.id.to_string()),
            json!({"session_id": session, "mode": mode.as_str()}),
        ))
        .await;
    Ok((
        StatusCode::CREATED,
        Json(LiveLinkResponse {
            id: link.id.to_string(),
            session_id: session.to_string(),
            mode,
            url: link.url,
            created_at: common::clock::rfc3339(link.created_at),
            expires_at: common::clock::rfc3339(link.expires_at),
        }),
    ))
}

/// Revokes a live link: it can no longer be opened, and viewers who came through it are
/// disconnected (within 2 seconds).
///
/// Requires `sessions:write`.
#[utoipa::path(delete, path = "/v1/sessions/{id}/live-links/{link_id}", tag = "sessions",
    params(("id" = String, Path, description = "`ses_…`"),
           ("link_id" = String, Path, description = "`lvl_…`")),
    responses((status = 204, description = "Revoked"),
              (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn revoke_live_link(
    State(state): State<AppState>,
    auth: Require<SessionsWrite>,
    Path((id, link_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let p = &auth.principal;
    let session: SessionId = parse_path_id(&id)?;
    let link: LiveLinkId = parse_path_id(&link_id)?;
    let now = state.clock.now_ms();
    if !state
        .live_links
        .revoke(&p.account_id, &session, &link, now)
        .await?
    {
        return Err(ApiError::not_found("live link"));
    }
    state
        .record(Entry::by(
            p,
            "session.live_link.revoked",
            Some(link.to_string()),
            json!({"session_id": session}),
        ))
        .await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExchangeRequest {
    /// The `lvt_…` token from the link's URL.
    pub token: String,
}

impl Validate for ExchangeRequest {
    fn validate(&self, v: &mut Violations) {
        v.check(
            self.token.starts_with("lvt_") && self.token.len() < 100,
            "token",
            "must be the lvt_… token of a live link",
        );
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ExchangeResponse {
    pub session_id: String,
    pub mode: LinkMode,
    /// The viewer credential: pass it as `?token=` to the live WebSocket.
    pub token: String,
    /// The live WebSocket URL, credential included.
    pub live_url: String,
    pub expires_at: String,
    /// When the link was made for a handoff: why the session was handed over.
    pub handoff_reason: Option<String>,
}

/// Exchanges a live link's one-time token for a viewer credential (the live page does this).
/// A token works once; a revoked, expired or used link, or one whose session ended, answers
/// 410 `live_link_gone`.
///
/// Requires `none`: the link's one-time token is the credential.
#[utoipa::path(post, path = "/v1/live-links/exchange", tag = "sessions",
    request_body = ExchangeRequest,
    responses((status = 200, body = ExchangeResponse),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 410, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")),
    security(()))]
pub async fn exchange_live_link(
    State(state): State<AppState>,
    ValidatedJson(body): ValidatedJson<ExchangeRequest>,
) -> Result<Json<ExchangeResponse>, ApiError> {
    let now = state.clock.now_ms();
    let link = match state
        .live_links
        .exchange(&token_hash(&body.token), now)
        .await?
    {
        Lookup::Usable(link) => link,
        Lookup::Gone(gone) => return Err(gone_problem(gone)),
        Lookup::Unknown => return Err(ApiError::not_found("live link")),
    };
    let mode = if link.mode == "interact" {
        LinkMode::Interact
    } else {
        LinkMode::View
    };
    let credential = viewer_token::sign(
        &state.connect_key,
        &link.session_id,
        &link.id,
        mode.as_str(),
        link.expires_at / 1000,
    );
    let base = state
        .public_url
        .replacen("https://", "wss://", 1)
        .replacen("http://", "ws://", 1);
    let session: SessionId = parse_path_id(&link.session_id)?;
    let account = AccountId::from_trusted(link.account_id.clone());
    let handoff_reason = state
        .sessions
        .get(&account, &session)
        .await
        .ok()
        .and_then(|s| s.handoff)
        .filter(|h| h.state == "requested" && h.live_link_id.as_deref() == Some(&link.id))
        .map(|h| h.reason);
    state
        .record(Entry {
            account_id: Some(account),
            actor: link.id.clone(),
            action: "session.live_link.opened",
            target: Some(link.id.clone()),
            ip: None,
            user_agent: None,
            data: json!({"session_id": link.session_id}),
        })
        .await;
    Ok(Json(ExchangeResponse {
        live_url: format!(
            "{base}/v1/sessions/{}/live?token={credential}",
            link.session_id
        ),
        session_id: link.session_id,
        mode,
        token: credential,
        expires_at: common::clock::rfc3339(link.expires_at),
        handoff_reason,
    }))
}

pub fn gone_problem(gone: Gone) -> ApiError {
    ApiError::new(StatusCode::GONE, "live_link_gone", gone.explain())
}

/// An origin: `http(s)://host[:port]`, no path, query or wildcard.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = String, pattern = "^https?://[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?$")]
pub struct Origin(pub String);

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LiveEmbedding {
    /// Origins (`https://app.example.com`, no path) whose pages may show the live page in an
    /// `<iframe>`; empty (the default): no page may frame it. At most 20.
    #[schema(max_items = 20)]
    pub frame_ancestors: Vec<Origin>,
}

impl Validate for LiveEmbedding {
    fn validate(&self, v: &mut Violations) {
        v.check(
            self.frame_ancestors.len() <= 20,
            "frame_ancestors",
            "at most 20 origins",
        );
        for (i, Origin(origin)) in self.frame_ancestors.iter().enumerate() {
            if !is_origin(origin) {
                v.add(
                    format!("frame_ancestors[{i}]"),
                    "must be an origin: http(s)://host[:port], no path, query or wildcard",
                );
            }
        }
    }
}

/// `http(s)://host[:port]` and nothing else (it goes into a CSP header).
fn is_origin(s: &str) -> bool {
    let Some(rest) = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
    else {
        return false;
    };
    let (host, port) = match rest.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (rest, None),
    };
    !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        && port.is_none_or(|p| (1..=5).contains(&p.len()) && p.chars().all(|c| c.is_ascii_digit()))
}

/// The origins allowed to frame the account's live pages.
///
/// Requires `account:read`.
#[utoipa::path(get, path = "/v1/account/live-embedding", tag = "account",
    responses((status = 200, body = LiveEmbedding)), security(("bearer" = [])))]
pub async fn get_live_embedding(
    State(state): State<AppState>,
    auth: Require<AccountRead>,
) -> Result<Json<LiveEmbedding>, ApiError> {
    let frame_ancestors = state
        .live_links
        .frame_ancestors(auth.principal.account_id.as_str())
        .await?;
    Ok(Json(LiveEmbedding {
        frame_ancestors: frame_ancestors.into_iter().map(Origin).collect(),
    }))
}

/// Sets the origins allowed to frame the account's live pages (`frame-ancestors`).
///
/// Requires `account:write`.
#[utoipa::path(put, path = "/v1/account/live-embedding", tag = "account",
    request_body = LiveEmbedding,
    responses((status = 200, body = LiveEmbedding),
              (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn set_live_embedding(
    State(state): State<AppState>,
    auth: Require<AccountWrite>,
    ValidatedJson(body): ValidatedJson<LiveEmbedding>,
) -> Result<Json<LiveEmbedding>, ApiError> {
    let p = &auth.principal;
    let origins: Vec<String> = body.frame_ancestors.iter().map(|o| o.0.clone()).collect();
    state
        .live_links
        .set_frame_ancestors(&p.account_id, &origins)
        .await?;
    state
        .record(Entry::by(
            p,
            "account.live_embedding.updated",
            None,
            json!({"frame_ancestors": origins}),
        ))
        .await;
    Ok(Json(body))
}
