//! Accounts, roles and API tokens on the admin API: each role against each class of route,
//! `401` without valid credentials, `403` for a role that may not, tokens revoked and
//! accounts deleted take effect at once, and every change is audited with its actor.

use serde_json::{Value, json};

use crate::common::{TestServer, admin_request};

/// Creates an account of `role` with an API token (through the admin token); the token.
async fn account_with_token(srv: &TestServer, name: &str, role: &str) -> String {
    let (status, body) = srv.admin("POST", "/api/v1/accounts", Some(json!({ "name": name, "role": role }))).await;
    assert_eq!(status, 201, "{body}");
    assert!(body["password"].as_str().is_some_and(|p| p.len() == 20), "a one-time password: {body}");
    let (status, body) =
        srv.admin("POST", &format!("/api/v1/accounts/{name}/tokens"), Some(json!({ "name": "ci" }))).await;
    assert_eq!(status, 201, "{body}");
    let token = body["token"].as_str().expect("the token, once").to_owned();
    assert!(token.starts_with("dls_"), "{token}");
    token
}

async fn as_(srv: &TestServer, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    admin_request(srv.admin, method, path, Some(token), body).await
}

#[tokio::test]
async fn each_role_may_what_it_may_and_nothing_more() {
    let srv = TestServer::start().await;
    let viewer = account_with_token(&srv, "vera", "viewer").await;
    let operator = account_with_token(&srv, "otto", "operator").await;
    let admin = account_with_token(&srv, "ada", "admin").await;
    let mac = "0001E325EA01";

    // Reads: every role.
    for token in [&viewer, &operator, &admin] {
        for path in ["/api/v1/devices", "/api/v1/profiles", "/api/v1/jobs", "/api/v1/files", "/api/v1/audit"] {
            let (status, body) = as_(&srv, token, "GET", path, None).await;
            assert_eq!(status, 200, "{path}: {body}");
        }
        assert_eq!(as_(&srv, token, "GET", "/api/v1/credentials/fallback", None).await.0, 200);
    }
    let (status, me) = as_(&srv, &viewer, "GET", "/api/v1/whoami", None).await;
    assert_eq!((status, me["actor"].as_str(), me["role"].as_str()), (200, Some("vera:ci"), Some("viewer")));

    // Operating: the viewer may not, with a message saying what it takes, and nothing changes.
    let device = json!({ "mac": mac, "profiles": [] });
    let (status, body) = as_(&srv, &viewer, "POST", "/api/v1/devices", Some(device.clone())).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "the role viewer may not do this: it takes operator");
    assert_eq!(srv.admin("GET", &format!("/api/v1/devices/{mac}"), None).await.0, 404, "nothing was added");
    let profile = json!({ "item": [{ "name": "sntp-addr", "value": "10.0.0.1" }] });
    assert_eq!(as_(&srv, &viewer, "PUT", "/api/v1/profiles/sales", Some(profile.clone())).await.0, 403);
    assert_eq!(
        as_(
            &srv,
            &viewer,
            "POST",
            "/api/v1/jobs",
            Some(json!({ "target": { "all": true }, "job": { "kind": "restart" } }))
        )
        .await
        .0,
        403
    );
    assert_eq!(as_(&srv, &viewer, "DELETE", "/api/v1/files/1", None).await.0, 403);
    assert_eq!(
        as_(&srv, &viewer, "POST", &format!("/api/v1/devices/{mac}/security"), Some(json!({ "new_pin": true })))
            .await
            .0,
        403
    );

    // The operator may: devices, profiles, PINs, jobs.
    assert_eq!(as_(&srv, &operator, "POST", "/api/v1/devices", Some(device)).await.0, 201);
    assert_eq!(as_(&srv, &operator, "PUT", "/api/v1/profiles/sales", Some(profile)).await.0, 200);
    let (status, body) = as_(
        &srv,
        &operator,
        "POST",
        &format!("/api/v1/devices/{mac}/security"),
        Some(json!({ "mode": "pin", "new_pin": true })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["pin"].as_str().is_some());
    // ... but not credentials, secrets or accounts.
    let secret = json!({ "secret": "s3cret-mac-id" });
    assert_eq!(
        as_(&srv, &operator, "PUT", &format!("/api/v1/devices/{mac}/secret"), Some(secret.clone())).await.0,
        403
    );
    let fallback = json!({ "scope": "global", "username": "admin", "password": "pw-123456" });
    assert_eq!(as_(&srv, &operator, "PUT", "/api/v1/credentials/fallback", Some(fallback.clone())).await.0, 403);
    let with_secret = json!({ "mac": "0001E325EA02", "secret": "s3cret" });
    assert_eq!(as_(&srv, &operator, "POST", "/api/v1/devices", Some(with_secret.clone())).await.0, 403);
    assert_eq!(
        as_(&srv, &operator, "GET", &format!("/api/v1/devices/{mac}/provisioning-url?embed=true"), None).await.0,
        403
    );
    assert_eq!(as_(&srv, &operator, "GET", &format!("/api/v1/devices/{mac}/provisioning-url"), None).await.0, 200);
    for (method, path) in
        [("GET", "/api/v1/accounts"), ("GET", "/api/v1/accounts/vera"), ("DELETE", "/api/v1/accounts/vera")]
    {
        assert_eq!(as_(&srv, &operator, method, path, None).await.0, 403, "{method} {path}");
    }
    assert_eq!(
        as_(&srv, &operator, "POST", "/api/v1/accounts", Some(json!({ "name": "x", "role": "admin" }))).await.0,
        403
    );
    // The admin may all of it.
    assert_eq!(as_(&srv, &admin, "PUT", &format!("/api/v1/devices/{mac}/secret"), Some(secret)).await.0, 200);
    assert_eq!(as_(&srv, &admin, "PUT", "/api/v1/credentials/fallback", Some(fallback)).await.0, 200);
    assert_eq!(as_(&srv, &admin, "POST", "/api/v1/devices", Some(with_secret)).await.0, 201);
    let (status, accounts) = as_(&srv, &admin, "GET", "/api/v1/accounts", None).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = accounts.as_array().expect("list").iter().filter_map(|a| a["name"].as_str()).collect();
    assert_eq!(names, ["ada", "otto", "vera"]);
    assert!(accounts.to_string().find("argon2").is_none(), "no hash is ever answered");
    srv.stop().await;
}

#[tokio::test]
async fn bad_tokens_get_401_and_revocation_is_immediate() {
    let srv = TestServer::start().await;
    let token = account_with_token(&srv, "otto", "operator").await;
    assert_eq!(as_(&srv, &token, "GET", "/api/v1/devices", None).await.0, 200);
    for bad in ["", "nope", "dls_0000000000000000000000000000000000000000000000000000000000000000", &token[..20]] {
        let (status, body) = as_(&srv, bad, "GET", "/api/v1/devices", None).await;
        assert_eq!(status, 401, "{bad:?}: {body}");
    }
    assert_eq!(admin_request(srv.admin, "GET", "/api/v1/devices", None, None).await.0, 401, "no credentials");
    // Tokens are listed without the token.
    let (status, tokens) = srv.admin("GET", "/api/v1/accounts/otto/tokens", None).await;
    assert_eq!(status, 200);
    assert_eq!(tokens[0]["name"], "ci");
    assert!(tokens[0]["last_used_at"].as_u64().is_some(), "its use was recorded: {tokens}");
    assert!(!tokens.to_string().contains(&token[4..]), "the token is never shown again");
    // A second token of the same name is a conflict.
    assert_eq!(srv.admin("POST", "/api/v1/accounts/otto/tokens", Some(json!({ "name": "ci" }))).await.0, 409);
    assert_eq!(srv.admin("POST", "/api/v1/accounts/otto/tokens", Some(json!({ "name": "a b" }))).await.0, 400);
    // Revoked: refused at once.
    assert_eq!(srv.admin("DELETE", "/api/v1/accounts/otto/tokens/ci", None).await.0, 200);
    assert_eq!(as_(&srv, &token, "GET", "/api/v1/devices", None).await.0, 401);
    assert_eq!(srv.admin("DELETE", "/api/v1/accounts/otto/tokens/ci", None).await.0, 404);
    // A role changed applies at once; a deleted account's tokens stop working.
    let (_, body) = srv.admin("POST", "/api/v1/accounts/otto/tokens", Some(json!({ "name": "two" }))).await;
    let two = body["token"].as_str().expect("token").to_owned();
    assert_eq!(
        as_(&srv, &two, "DELETE", "/api/v1/profiles/none", None).await.0,
        404,
        "an operator reaches the handler"
    );
    let (status, body) = srv.admin("PATCH", "/api/v1/accounts/otto", Some(json!({ "role": "viewer" }))).await;
    assert_eq!((status, body["role"].as_str()), (200, Some("viewer")));
    assert_eq!(as_(&srv, &two, "DELETE", "/api/v1/profiles/none", None).await.0, 403);
    assert_eq!(srv.admin("DELETE", "/api/v1/accounts/otto", None).await.0, 200);
    assert_eq!(as_(&srv, &two, "GET", "/api/v1/devices", None).await.0, 401);
    assert_eq!(srv.admin("DELETE", "/api/v1/accounts/otto", None).await.0, 404);
    srv.stop().await;
}

#[tokio::test]
async fn accounts_are_checked_and_passwords_reset() {
    let srv = TestServer::start().await;
    for (body, status) in [
        (json!({ "name": "Alice", "role": "viewer" }), 400),
        (json!({ "name": "admin-token", "role": "admin" }), 400),
        (json!({ "name": "<script>", "role": "admin" }), 400),
        (json!({ "name": "alice", "role": "root" }), 400),
        (json!({ "name": "alice", "role": "viewer", "password": "short" }), 422),
        (json!({ "name": "alice", "role": "viewer", "password": "long enough pw" }), 201),
        (json!({ "name": "alice", "role": "viewer", "password": "long enough pw" }), 409),
    ] {
        let (got, answer) = srv.admin("POST", "/api/v1/accounts", Some(body.clone())).await;
        assert_eq!(got, status, "{body}: {answer}");
        if status == 201 {
            assert!(answer.get("password").is_none(), "a given password is not echoed");
        }
    }
    let (status, body) = srv.admin("POST", "/api/v1/accounts/alice/password", Some(json!({}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["password"].as_str().map(str::len), Some(20));
    let (status, _) =
        srv.admin("POST", "/api/v1/accounts/alice/password", Some(json!({ "password": "another long one" }))).await;
    assert_eq!(status, 200);
    assert_eq!(srv.admin("POST", "/api/v1/accounts/bob/password", Some(json!({}))).await.0, 404);
    srv.stop().await;
}

#[tokio::test]
async fn every_change_is_audited_with_its_actor() {
    let srv = TestServer::start().await;
    let otto = account_with_token(&srv, "otto", "operator").await;
    let mac = "0001E325EA07";
    assert_eq!(as_(&srv, &otto, "POST", "/api/v1/devices", Some(json!({ "mac": mac }))).await.0, 201);
    assert_eq!(
        as_(&srv, &otto, "PATCH", &format!("/api/v1/devices/{mac}"), Some(json!({ "profiles": [] }))).await.0,
        200
    );
    let (status, _) = as_(
        &srv,
        &otto,
        "POST",
        &format!("/api/v1/devices/{mac}/security"),
        Some(json!({ "mode": "pin", "new_pin": true })),
    )
    .await;
    assert_eq!(status, 200);
    let job = json!({ "target": { "mac": mac }, "job": { "kind": "restart" } });
    assert_eq!(as_(&srv, &otto, "POST", "/api/v1/jobs", Some(job)).await.0, 201);
    // A refused change is not recorded.
    assert_eq!(
        as_(&srv, &otto, "POST", "/api/v1/accounts", Some(json!({ "name": "x", "role": "admin" }))).await.0,
        403
    );

    let (status, log) = srv.admin("GET", "/api/v1/audit?actor=otto", None).await;
    assert_eq!(status, 200);
    let kinds: Vec<(&str, &str)> = log
        .as_array()
        .expect("list")
        .iter()
        .map(|r| (r["kind"].as_str().unwrap_or(""), r["actor"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(
        kinds,
        [
            ("jobs-queued", "otto:ci"),
            ("pin-issued", "otto:ci"),
            ("mode-changed", "otto:ci"),
            ("device-changed", "otto:ci"),
            ("device-added", "otto:ci"),
        ]
    );
    assert!(log.to_string().find("\"pin\"").is_none());
    // The admin token's own changes, by kind; a device's timeline; a bad filter.
    let (_, created) = srv.admin("GET", "/api/v1/audit?kind=account-created", None).await;
    assert_eq!(created[0]["actor"], "admin-token");
    assert!(created[0]["detail"].as_str().is_some_and(|d| d.contains("account otto (operator)")), "{created}");
    let (_, timeline) = srv.admin("GET", &format!("/api/v1/audit?mac={mac}&limit=2"), None).await;
    assert_eq!(timeline.as_array().map(Vec::len), Some(2));
    let before = timeline[1]["id"].as_i64().expect("id");
    let (_, next) = srv.admin("GET", &format!("/api/v1/audit?mac={mac}&before={before}"), None).await;
    assert!(next.as_array().is_some_and(|n| n.iter().all(|r| r["id"].as_i64() < Some(before))));
    for bad in ["kind=nope", "since=yesterday", "colour=red"] {
        assert_eq!(srv.admin("GET", &format!("/api/v1/audit?{bad}"), None).await.0, 400, "{bad}");
    }
    srv.stop().await;
}

/// A viewer reads everything but secrets: the values of secret items (passwords, keys) in
/// profiles, a device's overrides, its desired configuration and write jobs are replaced;
/// an operator, who sets them, reads them.
#[tokio::test]
async fn a_viewer_reads_no_secret_value_and_an_operator_does() {
    let srv = TestServer::start().await;
    let viewer = account_with_token(&srv, "vera", "viewer").await;
    let operator = account_with_token(&srv, "otto", "operator").await;
    let secret = "hunter2-secret";
    let profile =
        json!({ "item": [{ "name": "sip-pwd", "value": secret }, { "name": "sntp-addr", "value": "ntp.example" }] });
    assert_eq!(srv.admin("PUT", "/api/v1/profiles/voice", Some(profile)).await.0, 200);
    let device = json!({ "mac": "0001E325EA01", "profiles": ["voice"],
                         "overrides": [{ "name": "ldap-pwd", "value": secret }, { "name": "e164", "value": "4711" }] });
    assert_eq!(srv.admin("POST", "/api/v1/devices", Some(device)).await.0, 201);
    let job = json!({ "target": { "mac": "0001E325EA01" },
                      "job": { "kind": "write", "items": [{ "name": "admin-pwd", "value": secret }] } });
    let (status, queued) = srv.admin("POST", "/api/v1/jobs", Some(job)).await;
    assert_eq!(status, 201, "{queued}");
    let id = queued["jobs"][0]["id"].as_i64().expect("a job id");

    let paths = [
        "/api/v1/profiles".to_owned(),
        "/api/v1/profiles/voice".to_owned(),
        "/api/v1/devices/0001E325EA01".to_owned(),
        "/api/v1/devices/0001E325EA01/desired".to_owned(),
        "/api/v1/jobs".to_owned(),
        format!("/api/v1/jobs/{id}"),
    ];
    for path in &paths {
        let (status, seen) = as_(&srv, &viewer, "GET", path, None).await;
        let text = seen.to_string();
        assert_eq!(status, 200, "{path}: {text}");
        assert!(!text.contains(secret) && text.contains("(secret, not shown)"), "{path}: {text}");
        assert!(
            text.contains("ntp.example") || text.contains("4711") || path.contains("jobs"),
            "the rest is shown: {text}"
        );
        let (status, seen) = as_(&srv, &operator, "GET", path, None).await;
        assert!(status == 200 && seen.to_string().contains(secret), "{path}: {seen}");
    }
    srv.stop().await;
}
