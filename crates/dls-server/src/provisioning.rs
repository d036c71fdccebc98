//! Provisioning files for phones that pull one (the Gigaset way), protected with HTTP
//! Digest: `GET /provisioning/<MAC>.xml` on the plain-HTTP listener and on the default-mode
//! TLS listener (HTTPS strongly recommended: one captured MD5 exchange lets an attacker try
//! secrets offline).
//!
//! A device authenticates with its MAC (12 hex digits, any case) and its own secret, or with
//! a fallback credential of one of its profiles or the global ones. It only ever gets its
//! own file: a MAC-style username other than the file's is unknown here, and gets the same
//! `401` as a wrong password.

use std::net::IpAddr;
use std::sync::Arc;

use dls_digest::{Credential, LookupError, Outcome, Request as DigestRequest, Verifier};
use dls_message::MacAddr;
use dls_store::{CredentialScope, Store};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tracing::{error, info, warn};

use crate::http::{ConnInfo, Resp, text};
use crate::secrets::SecretBox;

/// The provisioning file a device gets when its profiles have no template.
pub(crate) const DEFAULT_TEMPLATE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ProviderFrame xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:noNamespaceSchemaLocation="profile.xsd">
  <Provider>
    <MAC_ADDRESS value="{{mac}}"/>
    <PROFILE_NAME class="string" value="DLS {{mac}}"/>
    <SYSMGMT>
      <PROVISIONING_SERVER class="string" value="{{server}}"/>
    </SYSMGMT>
  </Provider>
</ProviderFrame>
"#;

/// What the provisioning endpoint shares between requests.
pub(crate) struct ProvisioningState {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) verifier: Verifier,
    pub(crate) secrets: Arc<SecretBox>,
    /// The path before and after `{mac}` in the configured pattern.
    pub(crate) prefix: String,
    pub(crate) suffix: String,
    /// The service's address for `{{server}}`.
    pub(crate) server_url: String,
    /// The service's clock (Digest nonces' age).
    pub(crate) clock: Arc<dyn crate::clock::Clock>,
    /// Counts requests by Digest outcome, and the store calls.
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
}

/// The sealing context of a device's secret.
pub(crate) fn device_context(mac: MacAddr) -> String {
    format!("device:{mac}")
}

/// The sealing context of a fallback credential.
pub(crate) fn fallback_context(scope: &CredentialScope, username: &str) -> String {
    match scope {
        CredentialScope::Global => format!("fallback:global:{username}"),
        CredentialScope::Profile(p) => format!("fallback:profile:{p}:{username}"),
    }
}

impl ProvisioningState {
    /// Whether `path` is a provisioning file's.
    pub(crate) fn matches(&self, path: &str) -> bool {
        path.len() > self.prefix.len() + self.suffix.len()
            && path.starts_with(&self.prefix)
            && path.ends_with(&self.suffix)
    }

    /// The file's path for a device.
    pub(crate) fn path_of(&self, mac: MacAddr) -> String {
        format!("{}{mac}{}", self.prefix, self.suffix)
    }

    fn mac_of(&self, path: &str) -> Option<MacAddr> {
        let middle = path.strip_prefix(&self.prefix)?.strip_suffix(&self.suffix)?;
        (middle.len() == 12).then(|| MacAddr::parse(middle).ok()).flatten()
    }

    /// The password for `username` when fetching `mac`'s file: `Ok(None)` for a username that
    /// is not allowed to fetch it; `Err` when the store or the sealed secret fails (our fault:
    /// the verifier answers `503`, and counts nothing against the phone).
    fn credential(&self, mac: MacAddr, username: &str) -> Result<Option<Credential>, LookupError> {
        let unavailable = |e: dls_store::StoreError| LookupError::Unavailable(e.to_string());
        let is_mac = username.len() == 12 && username.bytes().all(|b| b.is_ascii_hexdigit());
        let secret = if is_mac {
            if MacAddr::parse(username).ok() != Some(mac) {
                return Ok(None);
            }
            let Some(sealed) =
                self.metrics.store("device_secret", self.store.device_secret(mac)).map_err(unavailable)?
            else {
                return Ok(None);
            };
            self.secrets
                .open(&device_context(mac), &sealed)
                .ok_or_else(|| LookupError::Unusable(format!("the secret of {mac} does not unseal")))?
        } else {
            let found = self
                .metrics
                .store("fallback_credentials", self.store.fallback_credentials(mac))
                .map_err(unavailable)?
                .into_iter()
                .find(|c| c.username == username);
            let Some(c) = found else {
                return Ok(None);
            };
            self.secrets.open(&fallback_context(&c.scope, &c.username), &c.sealed).ok_or_else(|| {
                LookupError::Unusable(format!("a fallback credential of {} does not unseal", scope_name(&c.scope)))
            })?
        };
        let password = String::from_utf8(secret.to_vec())
            .map_err(|_| LookupError::Unusable(format!("a credential for {mac}'s file is not UTF-8")))?;
        Ok(Some(Credential::password(password)))
    }

    fn render(&self, mac: MacAddr) -> Result<String, dls_store::StoreError> {
        let desired = self.metrics.store("desired", self.store.desired(mac))?;
        let template = desired.provisioning_template.as_deref().unwrap_or(DEFAULT_TEMPLATE);
        Ok(render(template, |key| match key {
            "mac" => Some(mac.to_string()),
            "server" => Some(self.server_url.clone()),
            _ => {
                let name = key.strip_prefix("item:")?;
                let item = desired.items.iter().find(|i| i.name == name && i.index.is_none())?;
                // A value stored before it was checked, that XML cannot carry, is left out
                // rather than spoil the whole file.
                if let Some((at, c)) = dls_message::check::first_non_xml_char(&item.value) {
                    let code = u32::from(c);
                    warn!(%mac, item = name, code, at, "provisioning file: a value XML 1.0 cannot carry is left out");
                    return None;
                }
                Some(item.value.clone())
            }
        }))
    }
}

/// A credential scope for a log line.
fn scope_name(scope: &CredentialScope) -> String {
    match scope {
        CredentialScope::Global => "the global scope".to_owned(),
        CredentialScope::Profile(p) => format!("profile {p}"),
    }
}

/// `503` with `Retry-After`: the service is at fault, the phone should come back.
fn unavailable(retry_after_secs: u64) -> Resp {
    let mut r = text(StatusCode::SERVICE_UNAVAILABLE, "temporarily unavailable\n");
    if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// Replaces `{{key}}` with the XML-escaped value `lookup` gives (nothing for unknown keys).
pub(crate) fn render(template: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        if let Some(v) = lookup(after[..end].trim()) {
            for c in v.chars() {
                match c {
                    '&' => out.push_str("&amp;"),
                    '<' => out.push_str("&lt;"),
                    '>' => out.push_str("&gt;"),
                    '"' => out.push_str("&quot;"),
                    '\'' => out.push_str("&apos;"),
                    c => out.push(c),
                }
            }
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// Serves one provisioning request.
pub(crate) async fn handle(state: Arc<ProvisioningState>, req: Request<Incoming>, info: ConnInfo) -> Resp {
    let method = req.method().clone();
    if method != Method::GET && method != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
        r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let path = req.uri().path().to_owned();
    let Some(mac) = state.mac_of(&path) else {
        return text(StatusCode::NOT_FOUND, "not found\n");
    };
    let target = req.uri().path_and_query().map_or_else(|| path.clone(), |pq| pq.as_str().to_owned());
    let authorization = req.headers().get(header::AUTHORIZATION).map(|v| v.as_bytes().to_vec());
    let source: IpAddr = info.peer.ip();
    let st = state.clone();
    let m = method.as_str().to_owned();
    let result = crate::tasks::spawn_blocking(move || {
        let now = st.clock.now().0;
        let request =
            DigestRequest { method: &m, target: &target, authorization: authorization.as_deref(), source, now };
        let lookup = |username: &str| st.credential(mac, username);
        let outcome = st.verifier.verify(&request, &lookup);
        let body = match &outcome {
            Outcome::Accept { .. } => Some(st.render(mac)),
            _ => None,
        };
        (outcome, body)
    })
    .await;
    let st_retry_after = state.verifier.config().store_retry_after_secs.max(1);
    let Ok((outcome, body)) = result else {
        return text(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n");
    };
    state.metrics.digest(&outcome);
    match outcome {
        Outcome::Accept { algorithm, .. } => match body {
            Some(Ok(xml)) => {
                info!(%mac, peer = %info.peer, algorithm = algorithm.name(), "provisioning file served");
                let mut r = Response::new(crate::http::full(xml));
                r.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/xml; charset=utf-8"));
                r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                r
            }
            Some(Err(e)) => {
                error!(%mac, peer = %info.peer, error = %e, "provisioning file not rendered; answered 503");
                unavailable(st_retry_after)
            }
            None => text(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n"),
        },
        Outcome::Challenge { www_authenticate, stale, reason } => {
            info!(%mac, peer = %info.peer, reason = reason.as_str(), stale, "digest challenge");
            let mut r = text(StatusCode::UNAUTHORIZED, "authentication required\n");
            for v in www_authenticate {
                if let Ok(v) = HeaderValue::from_str(&v) {
                    r.headers_mut().append(header::WWW_AUTHENTICATE, v);
                }
            }
            r
        }
        Outcome::BadRequest { reason } => {
            warn!(%mac, peer = %info.peer, %reason, "bad digest request");
            text(StatusCode::BAD_REQUEST, format!("bad request: {reason}\n"))
        }
        Outcome::Throttled { retry_after_secs } => {
            warn!(%mac, peer = %info.peer, retry_after_secs, "digest attempts throttled");
            let mut r = text(StatusCode::TOO_MANY_REQUESTS, "too many failed attempts\n");
            if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r
        }
        Outcome::Unavailable { error, retry_after_secs } => {
            error!(%mac, peer = %info.peer, %error, "credential lookup failed; answered 503");
            unavailable(retry_after_secs)
        }
        _ => text(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_escape_values() {
        let out = render("<a v=\"{{ item:x }}\">{{mac}}{{unknown}}{{</a>", |k| match k {
            "item:x" => Some("a&b<\"'>".into()),
            "mac" => Some("001A".into()),
            _ => None,
        });
        assert_eq!(out, "<a v=\"a&amp;b&lt;&quot;&apos;&gt;\">001A{{</a>");
    }
}
