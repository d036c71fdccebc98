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
