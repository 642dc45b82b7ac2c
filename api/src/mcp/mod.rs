//! The built-in MCP server at `/mcp` (streamable HTTP, with the official Rust SDK `rmcp`): the
//! gate in front of it (an API key with a sessions scope, the key's rate limit), the server's
//! description, and the dispatch of tool calls to [`call`], which drives the REST API in
//! process ([`rest`]) as the caller.
//!
//! The server keeps no state between requests (stateless streamable HTTP): any API node answers
//! any request of an MCP session, and what a tool needs across calls lives with the browser
//! session (the refs of the last snapshot are attributes in its page).

mod call;
pub mod rest;
pub mod tools;

use axum::{
    Router,
    extract::{Request, State},
    http::StatusCode,
    http::request::Parts,
    middleware::{Next, from_fn, from_fn_with_state},
    response::{IntoResponse, Response},
};
use rmcp::{
    ErrorData, RoleServer, ServerHandler,
    model::{
        CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
        ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig,
    },
    service::RequestContext,
    transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
    },
};

use tower_http::timeout::TimeoutLayer;

use crate::{
    auth::Principal,
    error::ApiError,
    extract::credentials::missing,
    middleware,
    permissions::{Scope, Scopes},
    state::AppState,
};

const INSTRUCTIONS: &str = "Driftstack runs headless Chromium sessions. Start one with \
session_create, open a page with navigate, look at it with snapshot (each control has a ref such \
as e12), act with click / type / select_option / press_key by ref, read it with extract, and \
end with session_release. A tool error names a code (the same as the REST API's) and why.";

/// The `/mcp` route in front of `app` (which it drives for every tool call), merged with it.
pub fn mount(state: AppState, app: Router) -> Router {
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        // Callers authenticate with a bearer key on every request (no cookie or other ambient
        // credential a rebinding page could borrow), and the public host name is the
        // deployment's: the Host check is not ours to make here.
        .disable_allowed_hosts();
    let inner = app.clone();
    let service = StreamableHttpService::new(
        move || Ok(Server { app: inner.clone() }),
        LocalSessionManager::default().into(),
        config,
    );
    // A tool call's REST requests have the request timeout each; the MCP request a little more.
    let timeout = state.config.request_timeout + std::time::Duration::from_secs(5);
    Router::new()
        .route_service("/mcp", service)
        .layer(from_fn_with_state(state.clone(), gate))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(from_fn_with_state(state, crate::routing::runner_only_gate))
        .layer(from_fn(middleware::problem_fallback))
        .layer(from_fn(middleware::request_context))
        .merge(app)
}

/// Before any MCP message: an API key (401 otherwise) that holds a sessions scope (403), within
/// its rate limit (429) — answered as problem+json like every REST error.
async fn gate(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let principal = match state.auth.authenticate(req.headers()).await {
        Ok(p) => p,
        Err(err) => return err.into_response(),
    };
    if principal.dashboard.is_some() {
        return ApiError::forbidden(
            "api_key_required",
            "The MCP server takes an API key (Authorization: Bearer ds_live_…), not a dashboard \
             sign-in.",
        )
        .into_response();
    }
    if !(principal.scopes.contains(Scope::SessionsRead)
        || principal.scopes.contains(Scope::SessionsWrite))
    {
        return missing(Scope::SessionsRead).into_response();
    }
    match middleware::rate_check(&state, &principal) {
        Err(refused) => *refused,
        Ok(verdict) => {
            // The tools read what the caller may do (the `evaluate` tool needs its own scope).
            let mut req = req;
            req.extensions_mut().insert(principal);
            let mut response = next.run(req).await;
            if let Some(v) = verdict {
                middleware::rate_headers(&mut response, &v);
            }
            response
        }
    }
}

/// The scopes of the key behind an MCP request (none when the gate did not run).
fn caller_scopes(context: &RequestContext<RoleServer>) -> Scopes {
    context
        .extensions
        .get::<Parts>()
        .and_then(|p| p.extensions.get::<Principal>())
        .map(|p| p.scopes)
        .unwrap_or_default()
}

/// One MCP request's server (made afresh for each request: there is nothing to keep).
#[derive(Clone)]
struct Server {
    app: Router,
}

impl ServerHandler for Server {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("driftstack", env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(tools::catalogue_for(
            caller_scopes(&context),
        )))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let Some(rest) = context
            .extensions
            .get::<Parts>()
            .and_then(|parts| rest::Rest::for_caller(self.app.clone(), parts))
        else {
            return Err(ErrorData::internal_error("no caller on this request", None));
        };
        let offered = tools::catalogue_for(caller_scopes(&context));
        let Some(tool) = offered.iter().find(|t| t.name == request.name) else {
            if tools::catalogue().iter().any(|t| t.name == request.name) {
                // A tool this key is not offered (`evaluate` without its scope).
                let refused = rest::ToolError::from(missing(Scope::SessionsEvaluate));
                let mut result = CallToolResult::error(vec![ContentBlock::text(refused.message())]);
                result.structured_content = Some(refused.structured());
                return Ok(result.into());
            }
            return Err(ErrorData::invalid_params(
                format!(
                    "There is no tool named {:?}; tools/list names them.",
                    request.name
                ),
                None,
            ));
        };
        let known: Vec<String> = tool
            .input_schema
            .get("properties")
            .and_then(|p| p.as_object())
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        let arguments = request.arguments.unwrap_or_default();
        let result = match call::run(&rest, &request.name, &arguments, &known).await {
            Ok(done) => {
                let mut content = vec![ContentBlock::text(done.text)];
                if let Some((data, mime)) = done.image {
                    content.push(ContentBlock::image(data, mime));
                }
                let mut result = CallToolResult::success(content);
                result.structured_content = done.structured;
                result
            }
            Err(err) => {
                let mut result = CallToolResult::error(vec![ContentBlock::text(err.message())]);
                result.structured_content = Some(err.structured());
                result
            }
        };
        Ok(result.into())
    }
}
