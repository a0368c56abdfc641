//! Bearer tokens on every API route: a missing, unknown or revoked token is 401; a token whose
//! scope is too small for the route is 403 (checked by the route, which knows what it does).

use super::{ApiError, AppState};
use crate::tokens::{Scope, TokenEntry};
use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// The token of the request, set by [`require_token`].
#[derive(Clone, Debug)]
pub struct Caller(pub TokenEntry);

impl Caller {
    /// 403 unless the token's scope is at least `scope`.
    pub fn require(&self, scope: Scope, what: &str) -> Result<(), ApiError> {
        if self.0.scope >= scope {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "token `{}` has scope `{}`; {what} needs scope `{}` or more (`orch token create NAME --scope {}`)",
                self.0.name,
                self.0.scope.as_str(),
                scope.as_str(),
                scope.as_str()
            )))
        }
    }
}

/// Refuses a request without a valid `Authorization: Bearer <token>`; otherwise hands the
/// token's entry to the route as [`Caller`].
pub async fn require_token(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(token) = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
    else {
        return ApiError::unauthorized(
            "missing `Authorization: Bearer <token>`; make a token with `orch token create NAME --scope read`",
        )
        .into_response();
    };
    match state.tokens.find(token) {
        Ok(Some(entry)) => {
            request.extensions_mut().insert(Caller(entry));
            next.run(request).await
        }
        Ok(None) => ApiError::unauthorized("unknown or revoked token (see `orch token list`)")
            .into_response(),
        Err(e) => ApiError::internal(e.to_string()).into_response(),
    }
}
