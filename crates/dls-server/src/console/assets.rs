//! The console's static files, embedded in the binary (`include_bytes!`): its style sheet,
//! its one script, and htmx (vendored from the npm package `htmx.org`, 2.0.11, with its
//! licence beside it in `crates/dls-server/assets/`).

use hyper::header::{self, HeaderValue};
use hyper::{Method, Response, StatusCode};

use crate::http::{Resp, full, text};

/// `(name, content type, bytes)` of every static file.
const FILES: &[(&str, &str, &[u8])] = &[
    ("console.css", "text/css; charset=utf-8", include_bytes!("../../assets/console.css")),
    ("console.js", "text/javascript; charset=utf-8", include_bytes!("../../assets/console.js")),
    ("htmx.min.js", "text/javascript; charset=utf-8", include_bytes!("../../assets/htmx.min.js")),
];

/// `GET /static/{name}`: the file, cacheable for a day; anything else `404` (`405` for
/// another method).
pub(super) fn serve(method: &Method, name: &str) -> Resp {
    if *method != Method::GET && *method != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    let Some((_, content_type, bytes)) = FILES.iter().find(|(n, _, _)| *n == name) else {
        return text(StatusCode::NOT_FOUND, "not found\n");
    };
    let mut r = Response::new(full(if *method == Method::HEAD { &[][..] } else { *bytes }));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=86400"));
    r
}
