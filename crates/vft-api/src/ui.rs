//! The coordinator's dashboard: static files from `crates/vft-api/ui/`, embedded in the binary
//! at build time, debug builds included (`build.rs` makes cargo rebuild when they change).
//! Everything the page needs ships here; the content security policy makes the browser refuse
//! anything from elsewhere.

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

#[derive(rust_embed::RustEmbed)]
#[folder = "ui/"]
struct Assets;

/// Only the vft server itself: no CDN, no web fonts, no inline script.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; \
    font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

/// `GET /`: the dashboard page.
pub async fn index(headers: HeaderMap) -> Response {
    asset("index.html", &headers)
}

/// `GET /ui/{*path}`: the page's scripts, styles and images.
pub async fn file(Path(path): Path<String>, headers: HeaderMap) -> Response {
    asset(&path, &headers)
}

fn asset(path: &str, request: &HeaderMap) -> Response {
    let Some(file) = Assets::get(path) else {
        return crate::ApiError::NotFound("no such file".into()).into_response();
    };
    let etag = format!("\"{}\"", hex::encode(file.metadata.sha256_hash()));
    let mut headers = HeaderMap::new();
    let mime = file.metadata.mimetype();
    let content_type = if mime.starts_with("text/") || mime.ends_with("javascript") {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_owned()
    };
    let value = |s: &str| HeaderValue::from_str(s).expect("header value of ASCII");
    headers.insert(header::CONTENT_TYPE, value(&content_type));
    headers.insert(header::ETAG, value(&etag));
    // Revalidate every time: a new vft version must never run with the old script.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
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
    let unchanged = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag));
    if unchanged {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    (headers, file.data.into_owned()).into_response()
}

#[cfg(test)]
mod tests {
    /// Every file under ui/ is in the binary (not read from disk at run time), and nothing else.
    #[test]
    fn every_ui_file_is_embedded() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ui");
        let mut on_disk = Vec::new();
        let mut dirs = vec![root.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).expect("ui dir") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    let relative = path.strip_prefix(&root).expect("under ui");
                    on_disk.push(relative.to_string_lossy().replace('\\', "/"));
                }
            }
        }
        on_disk.sort();
        let mut embedded: Vec<String> = super::Assets::iter().map(|p| p.into_owned()).collect();
        embedded.sort();
        assert_eq!(embedded, on_disk);
        for needed in ["index.html", "app.js", "vendor/chart.umd.min.js"] {
            assert!(embedded.iter().any(|f| f == needed), "{needed} missing");
        }
        let index = super::Assets::get("index.html").expect("index");
        assert!(
            matches!(index.data, std::borrow::Cow::Borrowed(_)),
            "read from disk, not embedded"
        );
    }
}
