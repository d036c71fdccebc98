//! The admin API: token, devices, profiles, desired configuration, errors.

use serde_json::json;

use crate::common::{TestServer, admin_request};

#[tokio::test]
async fn the_token_is_required_and_compared_exactly() {
    let srv = TestServer::start().await;
    let (s, _) = admin_request(srv.admin, "GET", "/api/v1/devices", None, None).await;
    assert_eq!(s, 401);
    let wrong = format!("{}x", srv.token());
    let (s, _) = admin_request(srv.admin, "GET", "/api/v1/devices", Some(&wrong), None).await;
    assert_eq!(s, 401);
    let (s, _) = admin_request(srv.admin, "GET", "/api/v1/devices", Some(&srv.token()[..10]), None).await;
    assert_eq!(s, 401);
    let (s, v) = admin_request(srv.admin, "GET", "/healthz", None, None).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("ok")));
    // The token file is the owner's only.
    use std::os::unix::fs::PermissionsExt;
    for f in ["admin-token", "ca.key", "server.key", "fingerprint.key", "dls.sqlite"] {
        let mode = std::fs::metadata(srv.data().join(f)).expect(f).permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{f}");
    }
    srv.stop().await;
}

#[tokio::test]
async fn devices_and_profiles() {
    let srv = TestServer::start().await;
    let (s, _) = srv
        .admin("PUT", "/api/v1/profiles/sales", Some(json!({"item": [{"name": "sntp-addr", "value": "ntp.sales"}]})))
        .await;
    assert_eq!(s, 200);
    let (s, _) = srv
        .admin(
            "PUT",
            "/api/v1/profiles/global",
            Some(
                json!({"item": [{"name": "country-iso", "value": "DE"}, {"name": "sntp-addr", "value": "ntp.global"}]}),
            ),
        )
        .await;
    assert_eq!(s, 200);
    let (s, d) =
        srv.admin("POST", "/api/v1/devices", Some(json!({"mac": "00-1a-e8-3c-4d-5e", "profiles": ["sales"]}))).await;
    assert_eq!(s, 201, "{d}");
    assert_eq!(d["mac"], "001AE83C4D5E");
    let (s, _) = srv.admin("POST", "/api/v1/devices", Some(json!({"mac": "001AE83C4D5E"}))).await;
    assert_eq!(s, 409);
    let (s, e) = srv.admin("POST", "/api/v1/devices", Some(json!({"mac": "001AE83C4D5F", "profiles": ["nope"]}))).await;
    assert_eq!(s, 400, "{e}");
    let (s, _) = srv.admin("POST", "/api/v1/devices", Some(json!({"mac": "not a mac"}))).await;
    assert_eq!(s, 400);
    let (s, _) = srv.admin("POST", "/api/v1/devices", Some(json!({"mac": "001AE83C4D5F", "colour": "red"}))).await;
    assert_eq!(s, 400, "unknown fields are refused");

    let (s, desired) = srv.admin("GET", "/api/v1/devices/001AE83C4D5E/desired", None).await;
    assert_eq!(s, 200);
    assert_eq!(desired["layers"], json!(["global", "sales"]));
    let items = desired["items"].as_array().cloned().unwrap_or_default();
    assert!(items.iter().any(|i| i["name"] == "sntp-addr" && i["value"] == "ntp.sales"));

    let (s, list) = srv.admin("GET", "/api/v1/devices?profile=sales", None).await;
    assert_eq!((s, list.as_array().map_or(0, Vec::len)), (200, 1));
    let (s, list) = srv.admin("GET", "/api/v1/devices?profile=global", None).await;
    assert_eq!((s, list.as_array().map_or(0, Vec::len)), (200, 0));
    let (s, _) = srv.admin("GET", "/api/v1/devices?colour=red", None).await;
    assert_eq!(s, 400);

    let (s, d) = srv.admin("PATCH", "/api/v1/devices/001AE83C4D5E", Some(json!({"profiles": []}))).await;
    assert_eq!(s, 200, "{d}");
    let (_, desired) = srv.admin("GET", "/api/v1/devices/001AE83C4D5E/desired", None).await;
    assert_eq!(desired["layers"], json!(["global"]));

    let (s, _) = srv.admin("DELETE", "/api/v1/profiles/sales", None).await;
    assert_eq!(s, 200);
    let (s, _) = srv.admin("GET", "/api/v1/profiles/sales", None).await;
    assert_eq!(s, 404);
    let (s, _) = srv.admin("DELETE", "/api/v1/devices/001AE83C4D5E", None).await;
    assert_eq!(s, 200);
    let (s, _) = srv.admin("GET", "/api/v1/devices/001AE83C4D5E", None).await;
    assert_eq!(s, 404);
    let (s, _) = srv.admin("DELETE", "/api/v1/devices/001AE83C4D5E", None).await;
    assert_eq!(s, 404);
    let (s, _) = srv.admin("POST", "/api/v1/profiles", None).await;
    assert_eq!(s, 405);
    let (s, _) = srv.admin("GET", "/api/v1/nothing", None).await;
    assert_eq!(s, 404);
    srv.stop().await;
}

#[tokio::test]
async fn the_admin_api_over_tls_and_plain_http_to_it_told_to_use_https() {
    use tokio::process::Command;

    use crate::common::run;
    let srv = TestServer::start_with(|c| c.admin_tls = true).await;
    let url = std::fs::read_to_string(srv.data().join("admin-url")).expect("admin-url");
    assert_eq!(url.trim(), format!("https://{}", srv.admin));
    let ca = srv.data().join("ca.crt");
    let auth = format!("Authorization: Bearer {}", srv.token());
    let devices = format!("https://127.0.0.1:{}/api/v1/devices", srv.admin.port());
    let (code, out, err) = run(
        Command::new("curl").args(["-sS", "--max-time", "10", "--cacert"]).arg(&ca).args(["-H", &auth, &devices]),
        30,
    )
    .await;
    assert_eq!((code, out.trim()), (0, "[]"), "{err}");
    // The server certificate's names: localhost too.
    let by_name = format!("https://localhost:{}/healthz", srv.admin.port());
    let (code, out, err) =
        run(Command::new("curl").args(["-sS", "--max-time", "10", "--cacert"]).arg(&ca).arg(&by_name), 30).await;
    assert!(code == 0 && out.contains("ok"), "{code} {out} {err}");
    // Without the CA the certificate is not trusted.
    let (code, _, _) = run(Command::new("curl").args(["-sS", "--max-time", "10", "-H", &auth, &devices]), 30).await;
    assert_eq!(code, 60, "curl: certificate not trusted");
    // Plain HTTP to the TLS port: a clear 400, the token was not accepted.
    let plain = format!("http://127.0.0.1:{}/api/v1/devices", srv.admin.port());
    let (code, out, err) =
        run(Command::new("curl").args(["-sS", "-i", "--max-time", "10", "-H", &auth, &plain]), 30).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    assert!(out.contains("this port speaks HTTPS (TLS): use an https:// URL"), "{out}");
    let (s, _) = admin_request(srv.admin, "GET", "/api/v1/devices", Some(&srv.token()), None).await;
    assert_eq!(s, 400, "the project's own plain client too");
    srv.stop().await;
}

#[tokio::test]
async fn a_warning_at_start_for_an_admin_api_off_loopback_without_tls() {
    use crate::common::Logs;
    let warned = |logs: &Logs| logs.lines().iter().any(|l| l.contains("WARN") && l.contains("without TLS"));
    for (listen, tls, warning) in
        [("0.0.0.0:0", false, true), ("127.0.0.1:0", false, false), ("0.0.0.0:0", true, false)]
    {
        let logs = Logs::capture();
        let srv = TestServer::start_with(|c| {
            c.admin_listen = listen.parse().expect("addr");
            c.admin_tls = tls;
        })
        .await;
        assert_eq!(warned(&logs), warning, "{listen} tls={tls}: {:#?}", logs.lines());
        // Bound to all addresses, clients of this host are pointed at loopback.
        let url = std::fs::read_to_string(srv.data().join("admin-url")).expect("admin-url");
        let scheme = if tls { "https" } else { "http" };
        assert_eq!(url.trim(), format!("{scheme}://127.0.0.1:{}", srv.admin.port()));
        srv.stop().await;
    }
}
