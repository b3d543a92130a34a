//! The board's embedded files and how each is answered: content type,
//! validator, cache and security headers.

use std::sync::LazyLock;

use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};

/// One embedded file.
struct Asset {
    /// Its path on the gRPC port.
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

/// The page, its script bundle and its style sheet: the page and the style
/// sheet straight from their sources in `clients/web/board/`, the script as
/// `clients/build.sh` bundled it into `assets/`.
const ASSETS: [Asset; 3] = [
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../../clients/web/board/index.html"),
    },
    Asset {
        path: "/board/board.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("assets/board.js"),
    },
    Asset {
        path: "/board/board.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../clients/web/board/board.css"),
    },
];

/// Where the page's assets live; anything else below it is a 404.
const ASSET_DIR: &str = "/board/";

/// What the page may load and talk to: only its own origin (its assets and
/// gRPC-Web), nothing inline, never framed.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// A strong validator per asset, so browsers revalidate cheaply (`no-cache`
/// with `If-None-Match`) and never run a stale bundle after an upgrade.
static ETAGS: LazyLock<[HeaderValue; 3]> = LazyLock::new(|| {
    ASSETS.each_ref().map(|a| {
        let digest = ring::digest::digest(&ring::digest::SHA256, a.body);
        HeaderValue::from_str(&format!("\"{}\"", hex::encode(&digest.as_ref()[..12])))
            .expect("hex is a valid header value")
    })
});

/// Whether a request is the board's: a `GET` or `HEAD` of the page or of
/// anything under `/board/`. gRPC and gRPC-Web are `POST`s to
/// `/package.Service/Method`, so they never are.
pub(super) fn is_board_request(method: &Method, path: &str) -> bool {
    (method == Method::GET || method == Method::HEAD) && (path == "/" || path.starts_with(ASSET_DIR))
}

/// The answer to a board request: the asset (`304` when the browser's copy
/// is current, no body for `HEAD`), or `404`.
pub(super) fn respond(method: &Method, path: &str, request: &HeaderMap) -> Response<&'static [u8]> {
    let Some(i) = ASSETS.iter().position(|a| a.path == path) else {
        let mut response = Response::new(&b"no such board asset\n"[..]);
        *response.status_mut() = StatusCode::NOT_FOUND;
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
        return response;
    };
    let asset = &ASSETS[i];
    let etag = &ETAGS[i];
    let current = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim().as_bytes() == etag.as_bytes()));
    let body: &'static [u8] = if current || method == Method::HEAD { b"" } else { asset.body };
    let mut response = Response::new(body);
    if current {
        *response.status_mut() = StatusCode::NOT_MODIFIED;
    }
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    if method == Method::HEAD && !current {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(asset.body.len()));
    }
    h.insert(header::ETAG, etag.clone());
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_assets_that_are_embedded_and_nothing_inline() {
        let page = std::str::from_utf8(ASSETS[0].body).unwrap();
        for path in ["/board/board.js", "/board/board.css"] {
            let relative = path.trim_start_matches('/');
            assert!(page.contains(&format!("\"{relative}\"")), "the page does not load {relative}");
            assert!(ASSETS.iter().any(|a| a.path == path), "{path} is not embedded");
        }
        assert!(!page.contains("<script>") && !page.contains(" style="), "the CSP forbids inline script and style");
    }

    #[test]
    fn a_current_copy_gets_304_and_unknown_assets_404() {
        let first = respond(&Method::GET, "/", &HeaderMap::new());
        assert_eq!(first.status(), StatusCode::OK);
        let mut again = HeaderMap::new();
        again.insert(header::IF_NONE_MATCH, first.headers()[header::ETAG].clone());
        let second = respond(&Method::GET, "/", &again);
        assert_eq!(second.status(), StatusCode::NOT_MODIFIED);
        assert!(second.body().is_empty());
        assert_eq!(respond(&Method::GET, "/board/nope.js", &HeaderMap::new()).status(), StatusCode::NOT_FOUND);
        assert!(respond(&Method::HEAD, "/board/board.js", &HeaderMap::new()).body().is_empty());
    }

    #[test]
    fn grpc_requests_are_never_board_requests() {
        assert!(is_board_request(&Method::GET, "/"));
        assert!(is_board_request(&Method::HEAD, "/board/board.css"));
        assert!(!is_board_request(&Method::POST, "/"));
        assert!(!is_board_request(&Method::POST, "/switchboard.v1.CallService/Subscribe"));
        assert!(!is_board_request(&Method::GET, "/switchboard.v1.CallService/Subscribe"));
    }
}
