//! Every listener's routes, in one place. What each path leads to:
//!
//! | listener | path | handler |
//! |---|---|---|
//! | default-mode WPI (TLS, `:18443`) | `/DeploymentService/LoginService` (POST) | [`wpi::handle`]: the engine, default port |
//! | | the provisioning pattern (`/provisioning/{mac}.xml`) | [`provisioning::handle`]: a Digest-protected file |
//! | | `/files/{token}/{name}` | [`downloads::handle`]: a deployment file (`Range`) |
//! | secure-mode WPI (mutual TLS, `:18444`) | `/DeploymentService/LoginService` (POST) | [`wpi::handle`]: the engine, secure port; no client certificate: `403` |
//! | plain HTTP (`:18080`) | the provisioning pattern | [`provisioning::handle`] |
//! | | `/dcmp/contact-me` | [`dcmp::handle`]: DCMP polls |
//! | admin API (`127.0.0.1:18081`) | `/healthz`, `/readyz`, `/metrics` (no token), `/api/v1/…` | [`admin::handle`] (its own table) |
//!
//! Anything else is `404`.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, StatusCode};

use crate::http::{ConnInfo, Resp, text};
use crate::wpi::{LOGIN_SERVICE_PATH, Port, WpiState};
use crate::{admin, dcmp, downloads, provisioning, wpi};

/// The default-mode WPI listener.
pub(crate) async fn default_port(state: Arc<WpiState>, req: Request<Incoming>, info: ConnInfo) -> Resp {
    let path = req.uri().path();
    if path == LOGIN_SERVICE_PATH {
        wpi::handle(state, req, info, Port::Default).await
    } else if state.provisioning.matches(path) {
        provisioning::handle(state.provisioning.clone(), req, info).await
    } else if path.starts_with(downloads::PREFIX) {
        downloads::handle(state.downloads.clone(), req, info).await
    } else {
        not_found()
    }
}

/// The secure-mode WPI listener: only the phones' endpoint.
pub(crate) async fn secure_port(state: Arc<WpiState>, req: Request<Incoming>, info: ConnInfo) -> Resp {
    if info.client.is_none() {
        return text(StatusCode::FORBIDDEN, "a client certificate is required\n");
    }
    if req.uri().path() == LOGIN_SERVICE_PATH { wpi::handle(state, req, info, Port::Secure).await } else { not_found() }
}

/// What the plain-HTTP listener serves.
pub(crate) struct HttpRoutes {
    pub(crate) provisioning: Arc<provisioning::ProvisioningState>,
    pub(crate) dcmp: Arc<dcmp::DcmpState>,
}

/// The plain-HTTP listener.
pub(crate) async fn http_port(routes: Arc<HttpRoutes>, req: Request<Incoming>, info: ConnInfo) -> Resp {
    let path = req.uri().path();
    if routes.provisioning.matches(path) {
        provisioning::handle(routes.provisioning.clone(), req, info).await
    } else if path == dcmp::PATH {
        dcmp::handle(routes.dcmp.clone(), req, info).await
    } else {
        not_found()
    }
}

/// The admin listener.
pub(crate) async fn admin_port(state: Arc<admin::AdminState>, req: Request<Incoming>, info: ConnInfo) -> Resp {
    admin::handle(state, req, info).await
}

fn not_found() -> Resp {
    text(StatusCode::NOT_FOUND, "not found\n")
}
