//! The web console's pages and forms over real HTTP: status codes, roles, sessions and
//! their timeouts, CSRF, the security headers, and escaping of what phones and people typed.

use std::sync::Arc;
use std::time::Duration;

use dls_server::ManualClock;
use serde_json::json;

use crate::common::{TestServer, http, sql};

/// A browser: its session cookie, and the CSRF token of the last page it loaded.
struct Browser {
    cookie: String,
    csrf: String,
}

fn body(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn header(h: &hyper::HeaderMap, name: &str) -> String {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

/// The CSRF token a page carries (its forms' `csrf` field).
fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a page with a form") + 19;
    page[at..at + 64].to_owned()
}

async fn account(srv: &TestServer, name: &str, role: &str) {
    let (status, body) = srv
        .admin("POST", "/api/v1/accounts", Some(json!({ "name": name, "role": role, "password": "correct horse 1" })))
        .await;
    assert_eq!(status, 201, "{body}");
}

async fn post_form(srv: &TestServer, path: &str, cookie: Option<&str>, form: &str) -> (u16, hyper::HeaderMap, String) {
    let mut headers = vec![("content-type", "application/x-www-form-urlencoded")];
    if let Some(c) = cookie {
        headers.push(("cookie", c));
    }
    let (status, h, b) = http(srv.admin, "POST", path, &headers, form.as_bytes().to_vec()).await;
    (status, h, body(&b))
}

async fn get(srv: &TestServer, path: &str, cookie: Option<&str>) -> (u16, hyper::HeaderMap, String) {
    let headers: Vec<(&str, &str)> = cookie.map(|c| vec![("cookie", c)]).unwrap_or_default();
    let (status, h, b) = http(srv.admin, "GET", path, &headers, Vec::new()).await;
    (status, h, body(&b))
}

async fn login(srv: &TestServer, name: &str) -> Browser {
    let (status, h, page) = post_form(srv, "/login", None, &format!("account={name}&password=correct+horse+1")).await;
    assert_eq!(status, 303, "{page}");
    assert_eq!(header(&h, "location"), "/");
    let set = header(&h, "set-cookie");
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/"), "{set}");
    assert!(!set.contains("Secure"), "plain HTTP on loopback: {set}");
    let cookie = set.split(';').next().expect("a cookie").to_owned();
    let (status, _, page) = get(srv, "/", Some(&cookie)).await;
    assert_eq!(status, 200, "{page}");
    Browser { csrf: csrf_of(&page), cookie }
}

#[tokio::test]
async fn without_a_session_every_page_leads_to_the_login_page() {
    let srv = TestServer::start().await;
    for path in ["/", "/audit", "/accounts", "/settings", "/no-such-page"] {
        let (status, h, _) = get(&srv, path, None).await;
        assert_eq!((status, header(&h, "location").as_str()), (303, "/login"), "{path}");
    }
    // htmx follows HX-Redirect; a made-up cookie is an ended session.
    let (status, h, _) =
        http(srv.admin, "GET", "/", &[("hx-request", "true"), ("cookie", "dls-session=00")], Vec::new()).await;
    assert_eq!((status, header(&h, "hx-redirect").as_str()), (401, "/login?ended=1"));
    let (status, h, page) = get(&srv, "/login", None).await;
    assert_eq!(status, 200);
    let csp = header(&h, "content-security-policy");
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe"),
        "{csp}"
    );
    assert_eq!(
        (header(&h, "x-frame-options").as_str(), header(&h, "x-content-type-options").as_str()),
        ("DENY", "nosniff")
    );
    assert!(page.contains("<label for=\"account\">") && page.contains("<label for=\"password\">"));
    assert!(!page.contains("<script>"), "no inline script");
    // Static files, without a session.
    for (file, kind) in
        [("console.css", "text/css"), ("console.js", "text/javascript"), ("htmx.min.js", "text/javascript")]
    {
        let (status, h, b) = get(&srv, &format!("/static/{file}"), None).await;
        assert!(status == 200 && header(&h, "content-type").starts_with(kind) && !b.is_empty(), "{file}");
    }
    assert_eq!(get(&srv, "/static/../admin-token", None).await.0, 404);
    // The API and the health checks are where they were.
    assert_eq!(get(&srv, "/api/v1/devices", None).await.0, 401);
    assert_eq!(get(&srv, "/healthz", None).await.0, 200);
    srv.stop().await;
}

#[tokio::test]
async fn login_is_checked_throttled_audited_and_ends_with_logout() {
    let srv = TestServer::start().await;
    account(&srv, "alice", "admin").await;
    let (status, _, page) = post_form(&srv, "/login", None, "account=alice&password=wrong+password").await;
    assert_eq!(status, 401);
    assert!(page.contains("Wrong account name or password."), "{page}");
    assert!(page.contains("value=\"alice\""), "the name typed is kept");
    let (status, _, page) = post_form(&srv, "/login", None, "account=nobody&password=wrong+password").await;
    assert!(status == 401 && page.contains("Wrong account name or password."), "the same answer for no account");
    assert_eq!(post_form(&srv, "/login", None, "account=alice").await.0, 422);
    let b = login(&srv, "alice").await;

    // The audit log tells both, and who.
    let (_, failed) = srv.admin("GET", "/api/v1/audit?kind=login-failed", None).await;
    assert_eq!(failed.as_array().map(Vec::len), Some(2), "{failed}");
    assert_eq!(
        (failed[1]["actor"].as_str(), failed[1]["detail"].as_str()),
        (Some("alice"), Some("wrong password from 127.0.0.1"))
    );
    // What was typed for an account that does not exist is not kept (it may be a password).
    assert_eq!(
        (failed[0]["actor"].as_str(), failed[0]["detail"].as_str()),
        (None, Some("no such account, from 127.0.0.1"))
    );
    let (_, ok) = srv.admin("GET", "/api/v1/audit?kind=login-succeeded", None).await;
    assert_eq!(ok[0]["actor"], "alice");

    // Logout: the session is gone, its cookie no longer works.
    let (status, _, _) = post_form(&srv, "/logout", Some(&b.cookie), "csrf=0000").await;
    assert_eq!(status, 403, "a logout needs the CSRF token too");
    let (status, h, _) = post_form(&srv, "/logout", Some(&b.cookie), &format!("csrf={}", b.csrf)).await;
    assert_eq!((status, header(&h, "location").as_str()), (303, "/login"));
    assert!(header(&h, "set-cookie").contains("Max-Age=0"));
    let (status, h, _) = get(&srv, "/", Some(&b.cookie)).await;
    assert_eq!((status, header(&h, "location").as_str()), (303, "/login?ended=1"));

    // Guessing is slowed, with the wait said.
    for _ in 0..5 {
        post_form(&srv, "/login", None, "account=alice&password=guess+guess+guess").await;
    }
    let (status, _, page) = post_form(&srv, "/login", None, "account=alice&password=correct+horse+1").await;
    assert_eq!(status, 429, "{page}");
    assert!(page.contains("try again in"), "{page}");
    srv.stop().await;
}

#[tokio::test]
async fn roles_shape_the_navigation_and_are_enforced() {
    let srv = TestServer::start().await;
    account(&srv, "vera", "viewer").await;
    account(&srv, "ada", "admin").await;
    let viewer = login(&srv, "vera").await;
    let admin = login(&srv, "ada").await;
    let (_, _, page) = get(&srv, "/", Some(&viewer.cookie)).await;
    assert!(page.contains("href=\"/audit\"") && page.contains("href=\"/settings\""));
    assert!(!page.contains("href=\"/accounts\""), "the viewer is not shown what it may not do");
    let (_, _, page) = get(&srv, "/", Some(&admin.cookie)).await;
    assert!(page.contains("href=\"/accounts\""));
    for path in ["/audit", "/settings"] {
        assert_eq!(get(&srv, path, Some(&viewer.cookie)).await.0, 200, "{path}");
    }
    assert_eq!(get(&srv, "/accounts", Some(&viewer.cookie)).await.0, 403);
    // A viewer's crafted POST, with its own valid CSRF token: refused, nothing changed.
    let (status, _, page) =
        post_form(&srv, "/accounts", Some(&viewer.cookie), &format!("csrf={}&name=mallory&role=admin", viewer.csrf))
            .await;
    assert_eq!(status, 403, "{page}");
    assert_eq!(srv.admin("GET", "/api/v1/accounts/mallory", None).await.0, 404);
    // The settings show no secret.
    sql(&srv, "SELECT 1").await;
    let (_, _, page) = get(&srv, "/settings", Some(&viewer.cookie)).await;
    assert!(page.contains("admin-listen") && page.contains("audit-retention-days"), "{page}");
    assert!(!page.contains(&srv.token()));
    srv.stop().await;
}

#[tokio::test]
async fn forms_need_the_sessions_csrf_token_and_same_origin() {
    let srv = TestServer::start().await;
    account(&srv, "ada", "admin").await;
    let b = login(&srv, "ada").await;
    // No token, a wrong one, another session's: 403 and nothing added.
    let other = login(&srv, "ada").await;
    for csrf in ["", "csrf=0123&", &format!("csrf={}&", other.csrf)] {
        let (status, _, page) =
            post_form(&srv, "/accounts", Some(&b.cookie), &format!("{csrf}name=eve&role=viewer")).await;
        assert_eq!(status, 403, "{csrf}: {page}");
        assert!(page.contains("nothing was changed"), "{page}");
    }
    assert_eq!(srv.admin("GET", "/api/v1/accounts/eve", None).await.0, 404);
    // Another site's page posting with the browser's cookie.
    let (status, _, _) = http(
        srv.admin,
        "POST",
        "/accounts",
        &[
            ("cookie", &b.cookie),
            ("origin", "https://evil.example"),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        format!("csrf={}&name=eve&role=viewer", b.csrf).into_bytes(),
    )
    .await;
    assert_eq!(status, 403);
    // A form over the limit.
    let huge = format!("csrf={}&name={}", b.csrf, "x".repeat(100_000));
    assert_eq!(post_form(&srv, "/accounts", Some(&b.cookie), &huge).await.0, 413);
    // The right token: added, with a one-time password shown once, and audited.
    let (status, _, page) =
        post_form(&srv, "/accounts", Some(&b.cookie), &format!("csrf={}&name=eve&role=viewer&password=", b.csrf)).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Account eve added (viewer).") && page.contains("one-time password of eve"), "{page}");
    let (_, log) = srv.admin("GET", "/api/v1/audit?kind=account-created&actor=ada", None).await;
    assert_eq!(log.as_array().map(Vec::len), Some(1), "{log}");
    // Errors inline: a bad name, a short password.
    let (status, _, page) =
        post_form(&srv, "/accounts", Some(&b.cookie), &format!("csrf={}&name=Bad+Name&role=viewer", b.csrf)).await;
    assert!(status == 400 && page.contains("an account name must be"), "{status}: {page}");
    let (status, _, page) =
        post_form(&srv, "/accounts", Some(&b.cookie), &format!("csrf={}&name=fred&role=viewer&password=short", b.csrf))
            .await;
    assert!(status == 422 && page.contains("at least 10 characters"), "{status}: {page}");
    // Tokens: created (shown once), revoked; role changes; deletion.
    let (status, _, page) =
        post_form(&srv, "/accounts/eve/tokens", Some(&b.cookie), &format!("csrf={}&name=ci", b.csrf)).await;
    assert!(status == 200 && page.contains("<code class=\"once\">dls_"), "{page}");
    let (_, _, page) =
        post_form(&srv, "/accounts/eve/role", Some(&b.cookie), &format!("csrf={}&role=operator", b.csrf)).await;
    assert!(page.contains("eve is now operator."), "{page}");
    let (_, _, page) =
        post_form(&srv, "/accounts/eve/tokens/ci/revoke", Some(&b.cookie), &format!("csrf={}", b.csrf)).await;
    assert!(page.contains("Token ci of eve revoked."), "{page}");
    assert!(page.contains("data-confirm=\"Delete the account eve"), "a destructive action asks first");
    let (_, _, page) = post_form(&srv, "/accounts/eve/delete", Some(&b.cookie), &format!("csrf={}", b.csrf)).await;
    assert!(page.contains("Account eve deleted"), "{page}");
    srv.stop().await;
}

#[tokio::test]
async fn the_api_takes_a_console_session_with_its_csrf_header() {
    let srv = TestServer::start().await;
    account(&srv, "otto", "operator").await;
    let b = login(&srv, "otto").await;
    let device = br#"{"mac": "0001E325EA11"}"#.to_vec();
    let json = ("content-type", "application/json");
    let (status, _, _) = http(srv.admin, "GET", "/api/v1/devices", &[("cookie", &b.cookie)], Vec::new()).await;
    assert_eq!(status, 200, "reading needs no CSRF token");
    let (status, _, answer) =
        http(srv.admin, "POST", "/api/v1/devices", &[("cookie", &b.cookie), json], device.clone()).await;
    assert_eq!(status, 403, "{}", body(&answer));
    assert_eq!(srv.admin("GET", "/api/v1/devices/0001E325EA11", None).await.0, 404);
    let headers = [("cookie", b.cookie.as_str()), json, ("x-csrf-token", b.csrf.as_str())];
    assert_eq!(http(srv.admin, "POST", "/api/v1/devices", &headers, device).await.0, 201);
    let (_, log) = srv.admin("GET", "/api/v1/audit?kind=device-added", None).await;
    assert_eq!(log[0]["actor"], "otto", "a session's actor is the account");
    srv.stop().await;
}

#[tokio::test]
async fn sessions_end_when_idle_and_after_the_absolute_timeout() {
    let clock = Arc::new(ManualClock::from_system());
    let srv = TestServer::start_with_clock(|_| {}, clock.clone()).await;
    account(&srv, "ada", "admin").await;
    let b = login(&srv, "ada").await;
    clock.advance(Duration::from_secs(29 * 60));
    assert_eq!(get(&srv, "/", Some(&b.cookie)).await.0, 200, "29 minutes idle: still valid, and touched");
    clock.advance(Duration::from_secs(29 * 60));
    assert_eq!(get(&srv, "/", Some(&b.cookie)).await.0, 200, "idle counts from the last request");
    clock.advance(Duration::from_secs(31 * 60));
    let (status, h, _) = get(&srv, "/", Some(&b.cookie)).await;
    assert_eq!((status, header(&h, "location").as_str()), (303, "/login?ended=1"), "idle too long");
    let (_, _, page) = get(&srv, "/login?ended=1", None).await;
    assert!(page.contains("Your session has ended"), "{page}");
    // Active all along, it still ends 12 hours after the login.
    let b = login(&srv, "ada").await;
    let mut active = Duration::ZERO;
    while get(&srv, "/", Some(&b.cookie)).await.0 == 200 && active < Duration::from_secs(24 * 3600) {
        clock.advance(Duration::from_secs(25 * 60));
        active += Duration::from_secs(25 * 60);
    }
    let hours = active.as_secs_f64() / 3600.0;
    assert!((12.0..12.5).contains(&hours), "a request every 25 minutes, ended after {hours} h");
    srv.stop().await;
}

#[tokio::test]
async fn what_phones_and_people_typed_is_shown_as_text() {
    let srv = TestServer::start().await;
    account(&srv, "ada", "admin").await;
    assert_eq!(srv.admin("POST", "/api/v1/devices", Some(json!({ "mac": "0001E325EA21" }))).await.0, 201);
    // A phone that reports script as its type and version.
    sql(&srv, "UPDATE devices SET device_type = '<script>alert(1)</script>', software_version = '\"><img src=x>' WHERE mac = '0001E325EA21'").await;
    // Someone typing script where a name goes: a fallback credential's username.
    let credential = json!({ "scope": "global", "username": "<script>alert(2)</script>", "password": "pw-123456" });
    assert_eq!(srv.admin("PUT", "/api/v1/credentials/fallback", Some(credential)).await.0, 200);
    // ... and at the login form: answered, and shown back, as text.
    let (_, _, page) =
        post_form(&srv, "/login", None, "account=%3Cscript%3Ealert(3)%3C%2Fscript%3E&password=whatever+at+all").await;
    assert!(!page.contains("<script>alert(3)") && page.contains("alert(3)"), "{page}");
    let b = login(&srv, "ada").await;
    let (_, _, dashboard) = get(&srv, "/", Some(&b.cookie)).await;
    assert!(
        dashboard.contains("&#60;script&#62;alert(1)&#60;/script&#62;") || dashboard.contains("&lt;script&gt;alert(1)"),
        "{dashboard}"
    );
    assert!(!dashboard.contains("<script>alert(1)") && !dashboard.contains("<img src=x>"), "{dashboard}");
    let (_, _, audit) = get(&srv, "/audit?kind=credential-set", Some(&b.cookie)).await;
    assert!(!audit.contains("<script>alert(2)"), "{audit}");
    assert!(audit.contains("alert(2)"), "shown, as text: {audit}");
    // The audit filter: bad input answered on the page.
    let (status, _, page) = get(&srv, "/audit?mac=nonsense", Some(&b.cookie)).await;
    assert!(status == 400 && page.contains("Device:"), "{page}");
    let (status, _, page) = get(&srv, "/audit?since=yesterday", Some(&b.cookie)).await;
    assert!(status == 400 && page.contains("From: not a date and time"), "{page}");
    let (status, _, page) = get(&srv, "/audit?mac=0001E325EA21&tz=-60&since=2000-01-01T00:00", Some(&b.cookie)).await;
    assert!(status == 200 && page.contains("device-added"), "{page}");
    srv.stop().await;
}
