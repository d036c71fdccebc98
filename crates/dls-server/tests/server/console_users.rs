//! The console's users page over real HTTP: an operator adds, changes, logs on and off and
//! deletes mobility users (each change audited with the operator as the actor), bad input
//! answered on the page (`422`), an unknown user `404`, CSRF, a viewer reads and changes
//! nothing, names shown as text, and no password or saved data value on any page or in the
//! log.

use serde_json::json;

use crate::common::{Logs, TestServer, sql};
use crate::console_pages::{get, header, logged_in, post};

const MAC: &str = "001AE82D3F61";
const PASSWORD: &str = "Typed-at-phone-1";
const NEW_PASSWORD: &str = "Typed-at-phone-2";

async fn user(srv: &TestServer) -> (u16, serde_json::Value) {
    srv.admin("GET", "/api/v1/users/+4989123456", None).await
}

/// The kinds of the audit records of `actor`, newest first.
async fn kinds(srv: &TestServer, actor: &str) -> Vec<String> {
    let (_, log) = srv.admin("GET", &format!("/api/v1/audit?actor={actor}"), None).await;
    log.as_array().into_iter().flatten().map(|r| r["kind"].as_str().unwrap_or("").to_owned()).collect()
}

#[tokio::test]
async fn users_are_added_changed_logged_on_and_deleted_by_operators_on_the_page() {
    let logs = Logs::capture();
    let srv = TestServer::start().await;
    for p in ["sales", "desk-2"] {
        assert_eq!(srv.admin("PUT", &format!("/api/v1/profiles/{p}"), Some(json!({}))).await.0, 200, "{p}");
    }
    assert_eq!(srv.admin("POST", "/api/v1/devices", Some(json!({ "mac": MAC }))).await.0, 201);
    let olga = logged_in(&srv, "olga", "operator").await;

    let (status, _, page) = get(&srv, "/users", &olga).await;
    assert_eq!(status, 200);
    assert!(page.contains("href=\"/users\" aria-current=\"page\""), "in the navigation: {page}");
    assert!(page.contains("No mobility user yet") && page.contains("Add user"), "{page}");
    assert!(page.contains("<label for=\"new-password\">") && page.contains("value=\"desk-2\""), "{page}");

    // Added: the user's page, the name as text, the password nowhere.
    let form = format!(
        "number=%2B49+89+123456&name=%3Cscript%3Ealert(1)%3C%2Fscript%3E&password={PASSWORD}&profile=sales&profile=desk-2"
    );
    let (status, h, _) = post(&srv, "/users", &olga, &form, true).await;
    assert_eq!((status, header(&h, "location").as_str()), (303, "/users/+4989123456?done=added"));
    let (status, _, page) = get(&srv, "/users/+4989123456?done=added", &olga).await;
    assert!(status == 200 && page.contains("User added."), "{page}");
    assert!(page.contains("&#60;script&#62;alert(1)&#60;/script&#62;") && !page.contains("<script>alert"), "{page}");
    assert!(page.contains("<a href=\"/profiles/desk-2\">desk-2</a>"), "{page}");
    assert!(!page.contains(PASSWORD), "{page}");
    let (_, u) = user(&srv).await;
    assert_eq!(u["profiles"], json!(["sales", "desk-2"]), "{u}");
    let (_, _, page) = get(&srv, "/users", &olga).await;
    assert!(page.contains("<a href=\"/users/+4989123456\">+4989123456</a>") && page.contains("0 items, 0 bytes"));
    assert!(page.contains("&#60;script&#62;") && !page.contains("<script>alert"), "{page}");

    // Refused on the page: what was typed kept (never the password), nothing added.
    for (form, status, says) in [
        (format!("number=abc&name=Kim&password={PASSWORD}"), 422, "digits, with one optional leading +"),
        (format!("number=%2B4930&password={PASSWORD}&profile=nope"), 422, "nope"),
        ("number=%2B4930&password=".to_owned(), 422, "Password: type one"),
        ("number=%2B4930&password=abc".to_owned(), 422, "4 to 128"),
        (format!("number=%2B49+89+123456&password={PASSWORD}"), 409, "exists"),
    ] {
        let (got, _, page) = post(&srv, "/users", &olga, &form, true).await;
        assert!(got == status && page.contains(says), "{form}: {got} {page}");
        assert!(page.contains("role=\"alert\"") && !page.contains(PASSWORD), "{form}: {page}");
    }
    let (_, _, page) = post(&srv, "/users", &olga, &format!("number=abc&name=Kim&password={PASSWORD}"), true).await;
    assert!(page.contains("value=\"abc\"") && page.contains("value=\"Kim\""), "{page}");
    let form = format!("number=%2B4930&password={PASSWORD}");
    assert_eq!(post(&srv, "/users", &olga, &form, false).await.0, 403, "no CSRF token");
    let (_, list) = srv.admin("GET", "/api/v1/users", None).await;
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");

    // A logon at a device: a bad or unknown MAC said on the page; queued, the job shown.
    let at = "/users/+4989123456/logon";
    let (status, _, page) = post(&srv, at, &olga, "mac=zz", true).await;
    assert!(status == 422 && page.contains("MAC address:") && page.contains("value=\"zz\""), "{page}");
    let (status, _, page) = post(&srv, at, &olga, "mac=00:1A:E8:00:00:99", true).await;
    assert!(status == 404 && page.contains("role=\"alert\"") && page.contains("User +4989123456"), "{page}");
    let (status, h, _) = post(&srv, at, &olga, "mac=00:1A:E8:2D:3F:61", true).await;
    let location = header(&h, "location");
    assert!(status == 303 && location.starts_with("/users/+4989123456?done=logon&job="), "{location}");
    let (_, _, page) = get(&srv, &location, &olga).await;
    assert!(page.contains("Logon queued as job") && page.contains("mobility-logon"), "{page}");
    assert!(page.contains(&format!("<a href=\"/devices/{MAC}\">{MAC}</a>")), "{page}");
    let (_, _, page) = get(&srv, "/jobs", &olga).await;
    assert!(page.contains("mobility-logon <small>user +4989123456</small>"), "{page}");

    // Profiles and password.
    let at = "/users/+4989123456/profiles";
    let (status, h, _) = post(&srv, at, &olga, "profile=desk-2", true).await;
    assert_eq!((status, header(&h, "location").as_str()), (303, "/users/+4989123456?done=profiles"));
    assert_eq!(user(&srv).await.1["profiles"], json!(["desk-2"]));
    let (status, _, page) = post(&srv, at, &olga, "profile=sales&profile=nope", true).await;
    assert!(status == 422 && page.contains("nope"), "{page}");
    assert_eq!(user(&srv).await.1["profiles"], json!(["desk-2"]), "unchanged");
    let at = "/users/+4989123456/password";
    let (status, _, page) = post(&srv, at, &olga, "password=abc", true).await;
    assert!(status == 422 && page.contains("4 to 128") && !page.contains("abc\""), "{page}");
    let (status, h, _) = post(&srv, at, &olga, &format!("password={NEW_PASSWORD}"), true).await;
    assert_eq!((status, header(&h, "location").as_str()), (303, "/users/+4989123456?done=password"));

    // A logoff where it is not logged on is refused on the page; logged on (as the phone's
    // acceptance would record it), with saved data: names and sizes, never the value.
    let (status, _, page) = post(&srv, "/users/+4989123456/logoff", &olga, "", true).await;
    assert!(status == 404 && page.contains("role=\"alert\"") && page.contains("User +4989123456"), "{page}");
    sql(&srv, &format!("UPDATE mobility_users SET device = '{MAC}', since = 1 WHERE number = '+4989123456'")).await;
    sql(&srv, "INSERT INTO mobility_data VALUES ('+4989123456', 'userdata-ldap', 'UFJJVkFURQ==', 7, 1)").await;
    let (_, _, page) = get(&srv, "/users/+4989123456", &olga).await;
    assert!(page.contains("userdata-ldap") && page.contains("7 bytes") && !page.contains("UFJJVkFURQ=="), "{page}");
    assert!(page.contains("Queue logoff") && page.contains("data-confirm=\"Log +4989123456 off"), "{page}");
    let (_, _, page) = get(&srv, "/users", &olga).await;
    assert!(page.contains(&format!("at <a href=\"/devices/{MAC}\">{MAC}</a> since")), "{page}");
    assert!(page.contains("1 items, 7 bytes"), "{page}");
    let (status, h, _) = post(&srv, "/users/+4989123456/logoff", &olga, "", true).await;
    assert!(status == 303 && header(&h, "location").contains("done=logoff&job="), "{h:?}");

    // A viewer reads, without a form, and changes nothing.
    let vic = logged_in(&srv, "vic", "viewer").await;
    let (status, _, page) = get(&srv, "/users", &vic).await;
    assert!(status == 200 && page.contains("+4989123456") && !page.contains("Add user"), "{page}");
    assert!(!page.contains("action=\"/users\""), "{page}");
    let (status, _, page) = get(&srv, "/users/+4989123456", &vic).await;
    assert!(status == 200 && page.contains("userdata-ldap"), "{page}");
    assert!(!page.contains("action=\"/users/"), "no form: {page}");
    for (path, form) in [
        ("/users", format!("number=%2B4930&password={PASSWORD}")),
        ("/users/+4989123456/password", format!("password={PASSWORD}")),
        ("/users/+4989123456/profiles", "profile=sales".to_owned()),
        ("/users/+4989123456/logon", format!("mac={MAC}")),
        ("/users/+4989123456/logoff", String::new()),
        ("/users/+4989123456/delete", String::new()),
    ] {
        assert_eq!(post(&srv, path, &vic, &form, true).await.0, 403, "{path}");
    }
    assert!(kinds(&srv, "vic").await.iter().all(|k| k.starts_with("log")), "the viewer changed nothing");

    // Unknown users.
    assert_eq!(get(&srv, "/users/+4999", &olga).await.0, 404);
    assert_eq!(get(&srv, "/users/abc", &olga).await.0, 404);
    assert_eq!(post(&srv, "/users/+4999/password", &olga, &format!("password={PASSWORD}"), true).await.0, 404);
    assert_eq!(post(&srv, "/users/+4999/delete", &olga, "", true).await.0, 404);

    // Deleted, asking first.
    let (_, _, page) = get(&srv, "/users/+4989123456", &olga).await;
    assert!(page.contains("data-confirm=\"Delete the user +4989123456"), "{page}");
    let (status, h, _) = post(&srv, "/users/+4989123456/delete", &olga, "", true).await;
    assert_eq!((status, header(&h, "location").as_str()), (303, "/users?deleted=%2B4989123456"));
    let (_, _, page) = get(&srv, "/users?deleted=%2B4989123456", &olga).await;
    assert!(page.contains("User +4989123456 deleted") && page.contains("No mobility user yet"), "{page}");
    assert_eq!(user(&srv).await.0, 404);

    let mut olgas = kinds(&srv, "olga").await;
    olgas.retain(|k| k.starts_with("user-"));
    olgas.reverse();
    assert_eq!(
        olgas,
        [
            "user-added",
            "user-logon-queued",
            "user-profiles-set",
            "user-password-set",
            "user-logoff-queued",
            "user-deleted"
        ]
    );
    let (_, all) = srv.admin("GET", "/api/v1/audit?limit=1000", None).await;
    for secret in [PASSWORD, NEW_PASSWORD] {
        assert!(!all.to_string().contains(secret), "{secret} in the audit log");
        assert!(!logs.lines().iter().any(|l| l.contains(secret)), "{secret} in the log");
    }
    srv.stop().await;
}
