//! The console's profiles, jobs, files and credentials pages over real HTTP: what each role
//! sees and may do, CSRF, validation answered on the page, and escaping.

use serde_json::json;

use crate::common::{TestServer, http};

/// A browser: its session cookie, and the CSRF token of the last page it loaded.
pub(crate) struct Browser {
    pub(crate) cookie: String,
    pub(crate) csrf: String,
}

pub(crate) fn header(h: &hyper::HeaderMap, name: &str) -> String {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

pub(crate) fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a page with a form") + 19;
    page[at..at + 64].to_owned()
}

pub(crate) async fn get(srv: &TestServer, path: &str, b: &Browser) -> (u16, hyper::HeaderMap, String) {
    let (status, h, body) = http(srv.admin, "GET", path, &[("cookie", &b.cookie)], Vec::new()).await;
    (status, h, String::from_utf8_lossy(&body).into_owned())
}

/// Posts `form` with the browser's session; `csrf` adds its token.
pub(crate) async fn post(
    srv: &TestServer,
    path: &str,
    b: &Browser,
    form: &str,
    csrf: bool,
) -> (u16, hyper::HeaderMap, String) {
    let form = if csrf { format!("csrf={}&{form}", b.csrf) } else { form.to_owned() };
    let headers = [("content-type", "application/x-www-form-urlencoded"), ("cookie", b.cookie.as_str())];
    let (status, h, body) = http(srv.admin, "POST", path, &headers, form.into_bytes()).await;
    (status, h, String::from_utf8_lossy(&body).into_owned())
}

/// An account of `role` logged in.
pub(crate) async fn logged_in(srv: &TestServer, name: &str, role: &str) -> Browser {
    let account = json!({ "name": name, "role": role, "password": "correct horse 1" });
    assert_eq!(srv.admin("POST", "/api/v1/accounts", Some(account)).await.0, 201);
    let headers = [("content-type", "application/x-www-form-urlencoded")];
    let form = format!("account={name}&password=correct+horse+1").into_bytes();
    let (status, h, _) = http(srv.admin, "POST", "/login", &headers, form).await;
    assert_eq!(status, 303);
    let cookie = header(&h, "set-cookie").split(';').next().expect("a cookie").to_owned();
    let mut b = Browser { cookie, csrf: String::new() };
    let (status, _, page) = get(srv, "/", &b).await;
    assert_eq!(status, 200);
    b.csrf = csrf_of(&page);
    b
}

async fn profile(srv: &TestServer, name: &str) -> serde_json::Value {
    let (status, p) = srv.admin("GET", &format!("/api/v1/profiles/{name}"), None).await;
    assert_eq!(status, 200, "{p}");
    p
}

#[tokio::test]
async fn profiles_are_listed_edited_checked_and_show_the_devices_they_reach() {
    let srv = TestServer::start().await;
    let op = logged_in(&srv, "olga", "operator").await;
    let (status, _, page) = get(&srv, "/profiles", &op).await;
    assert!(status == 200 && page.contains("No profile yet") && page.contains("Add profile"), "{page}");

    // Add one, then fill it in: device type, re-assert policy, items (blank rows ignored).
    let (status, h, page) = post(&srv, "/profiles", &op, "name=sales", true).await;
    assert_eq!((status, header(&h, "location").as_str()), (303, "/profiles/sales"), "{page}");
    let (status, _, page) = post(&srv, "/profiles", &op, "name=sales", true).await;
    assert!(status == 409 && page.contains("exists already"), "{page}");
    let (status, _, page) = post(&srv, "/profiles", &op, "name=bad%2Fname", true).await;
    assert!(status == 400 && page.contains("profile name"), "{page}");
    let form = "device-type=OpenStage+60&reassert=yes\
                &item-name=sntp-addr&item-index=&item-value=ntp.example\
                &item-name=function-key-def&item-index=3&item-value=%3Cscript%3Ex%3C%2Fscript%3E\
                &item-name=&item-index=&item-value=";
    let (status, h, page) = post(&srv, "/profiles/sales", &op, form, true).await;
    assert_eq!((status, header(&h, "location").as_str()), (303, "/profiles/sales?saved=1"), "{page}");
    let p = profile(&srv, "sales").await;
    assert_eq!(p["device-type"], "OpenStage 60");
    assert_eq!(p["reassert-on-local-changes"], true);
    assert_eq!(p["item"].as_array().map(Vec::len), Some(2), "{p}");
    assert_eq!((p["item"][1]["index"].as_u64(), p["item"][1]["value"].as_str()), (Some(3), Some("<script>x</script>")));
    let (_, log) = srv.admin("GET", "/api/v1/audit?kind=profile-saved&actor=olga", None).await;
    assert_eq!(log.as_array().map(Vec::len), Some(2), "added and saved, by olga: {log}");

    // The page: saved, the value shown as text, the devices it reaches (by type, assigned).
    for (mac, body) in [
        ("0001E3000A01", json!({ "mac": "0001E3000A01", "profiles": ["sales"] })),
        ("0001E3000A02", json!({ "mac": "0001E3000A02" })),
        ("0001E3000A03", json!({ "mac": "0001E3000A03" })),
    ] {
        assert_eq!(srv.admin("POST", "/api/v1/devices", Some(body)).await.0, 201, "{mac}");
    }
    crate::common::sql(&srv, "UPDATE devices SET device_type = 'OpenStage 60' WHERE mac = '0001E3000A02'").await;
    let (status, _, page) = get(&srv, "/profiles/sales?saved=1", &op).await;
    assert!(status == 200 && page.contains("Saved."), "{page}");
    assert!(!page.contains("<script>x"), "{page}");
    assert!(page.contains("&#60;script&#62;x") || page.contains("&lt;script&gt;x"), "shown as text: {page}");
    assert!(page.contains("0001E3000A01") && page.contains("0001E3000A02") && !page.contains("0001E3000A03"), "{page}");
    let (_, _, list) = get(&srv, "/profiles", &op).await;
    assert!(list.contains("devices reporting OpenStage 60"), "{list}");

    // An item the phone cannot be sent: 422, the item named, its row marked, nothing stored.
    let bad = "device-type=&reassert=no&item-name=sntp-addr&item-index=&item-value=ntp.example\
               &item-name=&item-index=&item-value=no+name";
    let (status, _, page) = post(&srv, "/profiles/sales", &op, bad, true).await;
    assert_eq!(status, 422, "{page}");
    assert!(page.contains("#2 in the list") && page.contains("aria-invalid=\"true\""), "{page}");
    assert!(page.contains("value=\"no name\""), "what was typed is kept: {page}");
    let (status, _, page) = post(&srv, "/profiles/sales", &op, "item-name=x&item-index=three&item-value=", true).await;
    assert!(status == 422 && page.contains("is not a number"), "{page}");
    let ctl = "item-name=x&item-index=&item-value=a%01b";
    let (status, _, page) = post(&srv, "/profiles/sales", &op, ctl, true).await;
    assert!(status == 422 && page.contains("\"x\""), "{page}");
    assert_eq!(profile(&srv, "sales").await["reassert-on-local-changes"], true, "unchanged");

    // Without the CSRF token: 403, nothing changed.
    let (status, _, _) = post(&srv, "/profiles/sales", &op, "item-name=y&item-index=&item-value=1", false).await;
    assert_eq!(status, 403);
    assert_eq!(profile(&srv, "sales").await["item"].as_array().map(Vec::len), Some(2));

    // A viewer reads, without a form; its crafted posts are refused.
    let viewer = logged_in(&srv, "vic", "viewer").await;
    let (status, _, page) = get(&srv, "/profiles/sales", &viewer).await;
    assert!(status == 200 && page.contains("ntp.example"), "{page}");
    assert!(!page.contains("Save profile") && !page.contains("Delete profile"), "{page}");
    let (_, _, list) = get(&srv, "/profiles", &viewer).await;
    assert!(!list.contains("Add profile"), "{list}");
    for (path, form) in [
        ("/profiles/sales", "item-name=y&item-index=&item-value=1"),
        ("/profiles", "name=x"),
        ("/profiles/sales/delete", ""),
    ] {
        assert_eq!(post(&srv, path, &viewer, form, true).await.0, 403, "{path}");
    }
    assert_eq!(profile(&srv, "sales").await["item"].as_array().map(Vec::len), Some(2));

    // Delete: gone, and a missing profile is a 404 page.
    let (status, _, page) = post(&srv, "/profiles/sales/delete", &op, "", true).await;
    assert!(status == 200 && page.contains("deleted"), "{page}");
    assert_eq!(srv.admin("GET", "/api/v1/profiles/sales", None).await.0, 404);
    assert_eq!(get(&srv, "/profiles/sales", &op).await.0, 404);
    srv.stop().await;
}

#[tokio::test]
async fn a_profiles_secret_values_never_reach_a_page_and_are_kept_when_left_empty() {
    let srv = TestServer::start().await;
    let items = json!({ "item": [
        { "name": "sip-pwd", "value": "hunter2-secret" },
        { "name": "sntp-addr", "value": "ntp.example" },
    ] });
    assert_eq!(srv.admin("PUT", "/api/v1/profiles/voice", Some(items)).await.0, 200);
    let op = logged_in(&srv, "olga", "operator").await;
    let viewer = logged_in(&srv, "vera", "viewer").await;
    for b in [&op, &viewer] {
        let (status, _, page) = get(&srv, "/profiles/voice", b).await;
        assert_eq!(status, 200);
        assert!(!page.contains("hunter2-secret") && page.contains("ntp.example"), "{page}");
    }
    let (_, _, page) = get(&srv, "/profiles/voice", &viewer).await;
    assert!(page.contains("(secret, not shown)"), "{page}");

    // Saved with the secret's row left empty: kept; the other item changed.
    let form = "device-type=&reassert=inherit\
                &item-name=sip-pwd&item-index=&item-value=\
                &item-name=sntp-addr&item-index=&item-value=ntp2.example";
    let (status, _, page) = post(&srv, "/profiles/voice", &op, form, true).await;
    assert_eq!(status, 303, "{page}");
    let p = profile(&srv, "voice").await;
    assert_eq!(
        (p["item"][0]["value"].as_str(), p["item"][1]["value"].as_str()),
        (Some("hunter2-secret"), Some("ntp2.example"))
    );

    // Refused: a typed secret is not shown back either; nothing changed.
    let form = "device-type=&reassert=inherit\
                &item-name=sip-pwd&item-index=&item-value=typed-new-secret\
                &item-name=function-key-def&item-index=x&item-value=1";
    let (status, _, page) = post(&srv, "/profiles/voice", &op, form, true).await;
    assert_eq!(status, 422, "{page}");
    assert!(!page.contains("typed-new-secret") && !page.contains("hunter2-secret"), "{page}");
    assert_eq!(profile(&srv, "voice").await["item"][0]["value"], "hunter2-secret");
    srv.stop().await;
}

#[tokio::test]
async fn jobs_are_queued_on_a_selection_shown_polled_and_cancelled() {
    let srv = TestServer::start().await;
    let op = logged_in(&srv, "olga", "operator").await;
    let (status, _, page) = get(&srv, "/jobs", &op).await;
    assert!(status == 200 && page.contains("No job") && page.contains("Queue job"), "{page}");
    // Nothing to watch: the table is loaded again every 30 s (jobs queued elsewhere show).
    assert!(page.contains("hx-get=\"/jobs/table?state=\"") && page.contains("hx-trigger=\"every 30s\""), "{page}");
    for mac in ["0001E3000B01", "0001E3000B02"] {
        assert_eq!(srv.admin("POST", "/api/v1/devices", Some(json!({ "mac": mac, "profiles": [] }))).await.0, 201);
    }

    // By MACs: one job each, audited with the account.
    let form = "target=macs&macs=00-01-E3-00-0B-01%2C+0001E3000B02&kind=read&file=&priority=normal";
    let (status, _, page) = post(&srv, "/jobs", &op, form, true).await;
    assert!(status == 200 && page.contains("2 jobs queued"), "{page}");
    let (_, jobs) = srv.admin("GET", "/api/v1/jobs", None).await;
    assert_eq!(jobs.as_array().map(Vec::len), Some(2), "{jobs}");
    let (_, log) = srv.admin("GET", "/api/v1/audit?kind=jobs-queued&actor=olga", None).await;
    assert_eq!(log.as_array().map(Vec::len), Some(1), "{log}");
    // The fragment htmx polls: the table alone, with the states.
    let (status, _, table) = get(&srv, "/jobs/table", &op).await;
    assert!(status == 200 && table.starts_with("<div id=\"jobs-table\"") && !table.contains("<html"), "{table}");
    assert!(table.contains("queued: 2") && table.contains("0001E3000B01"), "{table}");
    assert!(table.contains("hx-trigger=\"every 2s\""), "jobs not over: watched every 2 s: {table}");
    assert_eq!(get(&srv, "/jobs/table?state=nonsense", &op).await.0, 400);
    let (_, _, done) = get(&srv, "/jobs?state=done", &op).await;
    assert!(done.contains("No job in the state done"), "{done}");

    // Bad selections: answered on the page, what was typed kept, nothing queued.
    for (form, status, says) in [
        ("target=macs&macs=&kind=read", 422, "type at least one MAC"),
        ("target=macs&macs=%3Cscript%3E&kind=read", 400, "&#60;script&#62;"),
        ("target=macs&macs=0001E3000B99&kind=read", 404, "0001E3000B99"),
        ("target=profile&profile=&kind=read", 422, "Profile: choose one"),
        ("target=all&kind=deploy-file&file=", 422, "File: choose one"),
        ("target=all&kind=deploy-file&file=77&priority=normal", 404, "file 77 not found"),
        ("target=all&kind=nonsense", 422, "unknown variant"),
        ("target=&kind=read", 422, "Choose which devices"),
    ] {
        let (s, _, page) = post(&srv, "/jobs", &op, form, true).await;
        assert!(s == status && page.contains(says), "{form}: {s} {page}");
    }
    let (_, jobs) = srv.admin("GET", "/api/v1/jobs", None).await;
    assert_eq!(jobs.as_array().map(Vec::len), Some(2), "{jobs}");

    // By device type and all; then cancel one (asking first), and a job over is not.
    crate::common::sql(&srv, "UPDATE devices SET device_type = 'OpenStage 60' WHERE mac = '0001E3000B02'").await;
    let (_, _, page) = post(&srv, "/jobs", &op, "target=device-type&device-type=OpenStage+60&kind=restart", true).await;
    assert!(page.contains("queued;"), "{page}");
    let (_, _, page) = post(&srv, "/jobs", &op, "target=all&kind=reassert-config", true).await;
    assert!(page.contains("2 jobs queued"), "{page}");
    let (_, jobs) = srv.admin("GET", "/api/v1/jobs", None).await;
    let id = jobs[0]["id"].as_i64().expect("an id");
    assert!(
        page.contains(&format!("action=\"/jobs/{id}/cancel\"")) && page.contains("data-confirm=\"Cancel job"),
        "{page}"
    );
    // The fragment's cancel forms carry the session's token (htmx loads it on its own).
    let (_, _, table) = get(&srv, "/jobs/table", &op).await;
    assert!(table.contains(&format!("<input type=\"hidden\" name=\"csrf\" value=\"{}\">", op.csrf)), "{table}");
    let viewer = logged_in(&srv, "vic", "viewer").await;
    let (_, _, seen) = get(&srv, "/jobs", &viewer).await;
    assert!(!seen.contains("Queue job") && !seen.contains("/cancel"), "{seen}");
    assert_eq!(post(&srv, &format!("/jobs/{id}/cancel"), &viewer, "", true).await.0, 403);
    assert_eq!(post(&srv, "/jobs", &viewer, "target=all&kind=restart", true).await.0, 403);
    assert_eq!(post(&srv, &format!("/jobs/{id}/cancel"), &op, "", false).await.0, 403);
    let (status, _, page) = post(&srv, &format!("/jobs/{id}/cancel"), &op, "", true).await;
    assert!(status == 200 && page.contains("cancelled"), "{page}");
    let (status, _, page) = post(&srv, &format!("/jobs/{id}/cancel"), &op, "", true).await;
    assert_eq!(status, 409, "{page}");
    let (_, job) = srv.admin("GET", &format!("/api/v1/jobs/{id}"), None).await;
    assert_eq!(job["state"], "cancelled");
    let (_, jobs) = srv.admin("GET", "/api/v1/jobs", None).await;
    assert_eq!(jobs.as_array().map(Vec::len), Some(5), "{jobs}");
    srv.stop().await;
}

/// Uploads `content` as the files page's script does.
async fn upload(srv: &TestServer, b: &Browser, query: &str, content: &[u8], csrf: bool) -> (u16, serde_json::Value) {
    let mut headers = vec![("cookie", b.cookie.as_str()), ("content-type", "application/octet-stream")];
    if csrf {
        headers.push(("x-csrf-token", b.csrf.as_str()));
    }
    let (status, _, body) =
        http(srv.admin, "POST", &format!("/files/upload?{query}"), &headers, content.to_vec()).await;
    (status, serde_json::from_slice(&body).unwrap_or_default())
}

#[tokio::test]
async fn files_are_uploaded_within_the_limit_listed_and_deleted() {
    let srv = TestServer::start_with(|c| c.max_file_bytes = 1000).await;
    let op = logged_in(&srv, "olga", "operator").await;
    let (status, _, page) = get(&srv, "/files", &op).await;
    assert!(status == 200 && page.contains("No file yet") && page.contains("data-upload=\"/files/upload\""), "{page}");
    assert!(page.contains("data-max-bytes=\"1000\""), "{page}");

    let (status, file) = upload(&srv, &op, "name=%3Cb%3Ering.mp3&type=RINGTONE", b"a ring tone", true).await;
    assert_eq!(status, 201, "{file}");
    let id = file["id"].as_i64().expect("an id");
    let stored =
        std::fs::read(srv.dir.path().join("data").join("files").join(id.to_string())).expect("in the file store");
    assert_eq!(stored, b"a ring tone");
    let (_, log) = srv.admin("GET", "/api/v1/audit?kind=file-added&actor=olga", None).await;
    assert_eq!(log.as_array().map(Vec::len), Some(1), "{log}");
    let (_, _, page) = get(&srv, &format!("/files?added={id}"), &op).await;
    assert!(page.contains(&format!("File {id} added.")) && page.contains("RINGTONE"), "{page}");
    assert!(!page.contains("<b>ring") && page.contains("ring.mp3"), "the name as text: {page}");

    // Over the limit: 413 with the limit said; without the token, or as a viewer: refused.
    let (status, answer) = upload(&srv, &op, "name=big.bin&type=LOGO", &[0; 1001], true).await;
    assert_eq!(status, 413, "{answer}");
    assert!(answer["error"].as_str().is_some_and(|e| e.contains("at most 1000 bytes")), "{answer}");
    let (status, answer) = upload(&srv, &op, "name=x.bin&type=LOGO", b"x", false).await;
    assert!(status == 403 && answer["error"].as_str().is_some_and(|e| e.contains("security token")), "{answer}");
    let (status, answer) = upload(&srv, &op, "type=LOGO", b"x", true).await;
    assert!(status == 400 && answer["error"] == "name is required", "{answer}");
    let viewer = logged_in(&srv, "vic", "viewer").await;
    let (_, _, seen) = get(&srv, "/files", &viewer).await;
    assert!(seen.contains("ring.mp3") && !seen.contains("data-upload") && !seen.contains("/delete"), "{seen}");
    assert_eq!(upload(&srv, &viewer, "name=v.bin&type=LOGO", b"x", true).await.0, 403);
    assert_eq!(post(&srv, &format!("/files/{id}/delete"), &viewer, "", true).await.0, 403);
    let (_, files) = srv.admin("GET", "/api/v1/files", None).await;
    assert_eq!(files.as_array().map(Vec::len), Some(1), "{files}");

    // Delete (the page asks first), content and record gone.
    let (_, _, page) = get(&srv, "/files", &op).await;
    assert!(page.contains("data-confirm=\"Delete the file"), "{page}");
    assert_eq!(post(&srv, &format!("/files/{id}/delete"), &op, "", false).await.0, 403);
    let (status, _, page) = post(&srv, &format!("/files/{id}/delete"), &op, "", true).await;
    assert!(status == 200 && page.contains("deleted"), "{page}");
    assert!(!srv.dir.path().join("data").join("files").join(id.to_string()).exists());
    let (status, _, page) = post(&srv, &format!("/files/{id}/delete"), &op, "", true).await;
    assert!(status == 404 && page.contains("not found"), "{page}");
    srv.stop().await;
}

#[tokio::test]
async fn fallback_credentials_are_set_by_admins_and_their_passwords_never_shown() {
    let srv = TestServer::start().await;
    assert_eq!(srv.admin("PUT", "/api/v1/profiles/sales", Some(json!({}))).await.0, 200);
    let admin = logged_in(&srv, "ada", "admin").await;
    let (status, _, page) = get(&srv, "/credentials", &admin).await;
    assert!(status == 200 && page.contains("No fallback credential") && page.contains("Set credential"), "{page}");
    let form = "scope=profile&profile=sales&username=%3Cscript%3Eprov&password=Sup3r-secret-pw";
    let (status, _, page) = post(&srv, "/credentials", &admin, form, true).await;
    assert!(status == 200 && page.contains("is set"), "{page}");
    assert!(!page.contains("Sup3r-secret-pw") && !page.contains("<script>prov"), "{page}");
    let (_, list) = srv.admin("GET", "/api/v1/credentials/fallback", None).await;
    assert_eq!(list[0]["username"], "<script>prov", "{list}");
    let (_, log) = srv.admin("GET", "/api/v1/audit?kind=credential-set&actor=ada", None).await;
    assert_eq!(log.as_array().map(Vec::len), Some(1), "{log}");
    for (form, says) in [
        ("scope=global&username=prov&password=", "Password: type one"),
        ("scope=profile&profile=&username=prov&password=x1234567", "Scope:"),
        ("scope=global&username=prov&password=a%01b", "control characters"),
    ] {
        let (status, _, page) = post(&srv, "/credentials", &admin, form, true).await;
        assert!((400..=422).contains(&status) && page.contains(says), "{form}: {status} {page}");
    }
    // A viewer and an operator read the names; neither changes anything.
    for (name, role) in [("vic", "viewer"), ("olga", "operator")] {
        let b = logged_in(&srv, name, role).await;
        let (status, _, page) = get(&srv, "/credentials", &b).await;
        assert!(status == 200 && page.contains("prov") && !page.contains("Set credential"), "{page}");
        assert!(!page.contains("/credentials/remove"), "{page}");
        let form = "scope=global&username=x&password=pw-1234567";
        assert_eq!(post(&srv, "/credentials", &b, form, true).await.0, 403, "{role}");
        let form = "scope=profile&profile=sales&username=%3Cscript%3Eprov";
        assert_eq!(post(&srv, "/credentials/remove", &b, form, true).await.0, 403, "{role}");
    }
    assert_eq!(post(&srv, "/credentials", &admin, "scope=global&username=x&password=pw-1234567", false).await.0, 403);
    let (_, list) = srv.admin("GET", "/api/v1/credentials/fallback", None).await;
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    let (_, _, page) = get(&srv, "/credentials", &admin).await;
    assert!(page.contains("data-confirm=\"Remove the credential"), "{page}");
    let form = "scope=profile&profile=sales&username=%3Cscript%3Eprov";
    let (status, _, page) = post(&srv, "/credentials/remove", &admin, form, true).await;
    assert!(status == 200 && page.contains("is removed"), "{page}");
    let (_, list) = srv.admin("GET", "/api/v1/credentials/fallback", None).await;
    assert_eq!(list.as_array().map(Vec::len), Some(0), "{list}");
    srv.stop().await;
}
