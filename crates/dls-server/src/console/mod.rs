//! The web console: HTML pages served on the admin listener at `/`.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, StatusCode};

use crate::admin::AdminState;
use crate::http::{ConnInfo, Resp, text};

/// Serves a console request.
pub(crate) async fn handle(_state: Arc<AdminState>, _req: Request<Incoming>, _info: ConnInfo) -> Resp {
    text(StatusCode::NOT_FOUND, "not found\n")
}
