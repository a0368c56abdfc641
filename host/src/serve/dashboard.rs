//! The web dashboard: plain HTML, CSS and ES modules embedded in the binary (no build step, no
//! CDN), served without a token at `GET /` and `GET /ui/{*file}`. The page then calls the API
//! with the bearer token the user pasted.
//!
//! Everything the page shows from data is inserted as text through DOM APIs (never as HTML),
//! and the Content-Security-Policy forbids inline and foreign scripts, so a VM named
//! `<img src=x onerror=alert(1)>` shows as text and could not run even if it were parsed.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The policy sent with every dashboard file: only scripts, styles and API calls from this
/// server; no inline script or style, no eval, no frames, no forms posting elsewhere.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One embedded file of the dashboard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Asset {
    /// Its path under `/ui/`.
    pub name: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes.
    pub body: &'static str,
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the dashboard; `index.html` is also served at `/`.
pub const ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        body: include_str!("dashboard/index.html"),
    },
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("dashboard/style.css"),
    },
    Asset {
        name: "app.js",
        content_type: JS,
        body: include_str!("dashboard/app.js"),
    },
    Asset {
        name: "api.js",
        content_type: JS,
        body: include_str!("dashboard/api.js"),
    },
    Asset {
        name: "sse.js",
        content_type: JS,
        body: include_str!("dashboard/sse.js"),
    },
    Asset {
        name: "dom.js",
        content_type: JS,
        body: include_str!("dashboard/dom.js"),
    },
    Asset {
        name: "form.js",
        content_type: JS,
        body: include_str!("dashboard/form.js"),
    },
    Asset {
        name: "dag.js",
        content_type: JS,
        body: include_str!("dashboard/dag.js"),
    },
    Asset {
        name: "diff.js",
        content_type: JS,
        body: include_str!("dashboard/diff.js"),
    },
];

/// The embedded file `name` (a path under `/ui/`), if there is one.
pub fn asset(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

/// The dashboard's routes, `GET /` and `GET /ui/{*file}`, for any server state; they need no
/// token (the files hold no data).
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { respond("index.html") }))
        .route(
            "/ui/{*file}",
            get(|Path(file): Path<String>| async move { respond(&file) }),
        )
}

fn respond(name: &str) -> Response {
    let Some(asset) = asset(name) else {
        let mut missing = (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::json!({ "error": format!("no dashboard file `{name}`") }).to_string(),
        )
            .into_response();
        secure(&mut missing);
        return missing;
    };
    let mut response = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, asset.content_type)],
        asset.body,
    )
        .into_response();
    secure(&mut response);
    response
}

fn secure(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // The files change with the binary, never while it runs; the page is small.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scripts() -> impl Iterator<Item = &'static Asset> {
        ASSETS.iter().filter(|a| a.content_type == JS)
    }

    #[test]
    fn every_module_the_page_imports_is_embedded() {
        for a in scripts() {
            for line in a.body.lines() {
                let Some(rest) = line.trim().strip_prefix("import ") else {
                    continue;
                };
                let Some(from) = rest.split(" from ").nth(1) else {
                    continue;
                };
                let file = from
                    .trim()
                    .trim_end_matches(';')
                    .trim_matches(['\'', '"'])
                    .trim_start_matches("./");
                assert!(
                    asset(file).is_some(),
                    "{} imports {file}, not embedded",
                    a.name
                );
            }
        }
        let index = asset("index.html").unwrap().body;
        for file in ["app.js", "style.css"] {
            assert!(index.contains(&format!("/ui/{file}")), "index.html: {file}");
        }
    }

    #[test]
    fn no_script_parses_data_as_html() {
        for a in scripts() {
            for banned in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
                "new Function",
                "createContextualFragment",
                "DOMParser",
            ] {
                assert!(!a.body.contains(banned), "{} uses {banned}", a.name);
            }
        }
    }

    #[test]
    fn the_page_has_no_inline_script_and_the_policy_forbids_it() {
        let index = asset("index.html").unwrap().body;
        for tag in index.split("<script").skip(1) {
            let open = &tag[..tag.find('>').unwrap()];
            assert!(open.contains("src="), "inline script in index.html: {tag}");
        }
        let handler = index
            .split(|c: char| c.is_whitespace())
            .find(|w| w.starts_with("on") && w.contains('='));
        assert_eq!(handler, None, "inline handler in index.html");
        assert!(CONTENT_SECURITY_POLICY.contains("script-src 'self'"));
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe"));
    }

    #[test]
    fn the_token_never_goes_in_a_url() {
        for a in scripts() {
            for banned in ["token=", "new EventSource", "localStorage"] {
                assert!(!a.body.contains(banned), "{} uses {banned}", a.name);
            }
        }
    }
}
