//! The console's files, embedded in the binary (no build step: plain HTML, CSS and ES
//! modules, in `assets/`). Every file is served as is; none contains data from the store.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $ct:expr) => {
        Asset { name: $name, content_type: $ct, body: include_bytes!(concat!("assets/", $name)) }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

const ASSETS: &[Asset] = &[
    asset!("console.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("overview.js", JS),
    asset!("keys.js", JS),
    asset!("overrides.js", JS),
    asset!("limits.js", JS),
    asset!("audit.js", JS),
];

const INDEX: &str = include_str!("assets/index.html");

/// `GET /ui/`: the page (the same for everybody: it asks for the token when not logged in).
pub async fn index() -> Response {
    let ct = HeaderValue::from_static("text/html; charset=utf-8");
    (StatusCode::OK, [(header::CONTENT_TYPE, ct)], INDEX).into_response()
}

/// `GET /ui/assets/{file}`.
pub async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.name == file) {
        Some(a) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(a.content_type)),
                // Revalidate: a new binary may bring new files under the same names.
                (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            ],
            a.body,
        )
            .into_response(),
        None => ApiError::not_found(format!("no console file {file:?}")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_the_page_imports_is_served() {
        let text = |a: &Asset| String::from_utf8_lossy(a.body).into_owned();
        let mut wanted: Vec<String> = Vec::new();
        for a in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            for line in text(a).lines().filter(|l| l.starts_with("import ")) {
                let Some(from) = line.split('\'').nth(1) else { continue };
                wanted.push(from.trim_start_matches("./").to_string());
            }
        }
        for piece in INDEX.split('"').filter(|p| p.starts_with("assets/")) {
            wanted.push(piece.trim_start_matches("assets/").to_string());
        }
        for w in &wanted {
            assert!(ASSETS.iter().any(|a| a.name == w), "{w} is referenced but not embedded");
        }
        assert!(wanted.iter().any(|w| w == "app.js"));
    }

    #[test]
    fn no_inline_script_or_style_and_no_inner_html() {
        // The CSP forbids them: they would not run, so they must not exist.
        assert!(!INDEX.contains("<script>") && !INDEX.contains("style=") && !INDEX.contains("<style"));
        let handler = INDEX.match_indices(" on").any(|(i, _)| {
            let rest = &INDEX[i + 3..];
            let name: String = rest.chars().take_while(char::is_ascii_alphabetic).collect();
            !name.is_empty() && rest[name.len()..].starts_with('=')
        });
        assert!(!handler, "no inline event handlers");
        for a in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            let t = String::from_utf8_lossy(a.body);
            for banned in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"] {
                assert!(!t.contains(banned), "{}: {banned}", a.name);
            }
        }
    }
}
