//! Mobility users through the admin API: every change, and every read of a saved item's
//! value (personal data), writes an audit record with its actor (an operator's API token
//! here), the device where there is one, and never a password; a refused request writes
//! none; the passwords are in neither the audit log nor the service's log.

use serde_json::{Value, json};

use crate::common::{Logs, TestServer, admin_request, sql};

const MAC: &str = "001AE82D3F61";
const FIRST: &str = "first-Secret-42";
const SECOND: &str = "second-Secret-43";

async fn as_otto(srv: &TestServer, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    admin_request(srv.admin, method, path, Some(token), body).await
}

/// The audit records of `actor`, oldest first: (kind, mac, detail).
async fn records(srv: &TestServer, actor: &str) -> Vec<(String, String, String)> {
    let (status, v) = srv.admin("GET", &format!("/api/v1/audit?actor={actor}"), None).await;
    assert_eq!(status, 200, "{v}");
    let mut all: Vec<(String, String, String)> = v
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            assert_eq!(r["actor"], actor, "{r}");
            let text = |k: &str| r[k].as_str().unwrap_or("").to_owned();
            (text("kind"), text("mac"), text("detail"))
        })
        .collect();
    all.reverse();
    all
}

#[tokio::test]
async fn every_users_action_is_audited_with_its_actor_and_never_a_password() {
    let logs = Logs::capture();
    let srv = TestServer::start().await;
    assert_eq!(srv.admin("PUT", "/api/v1/profiles/sales", Some(json!({}))).await.0, 200);
    assert_eq!(srv.admin("POST", "/api/v1/devices", Some(json!({ "mac": MAC }))).await.0, 201);
    let (status, _) = srv.admin("POST", "/api/v1/accounts", Some(json!({ "name": "otto", "role": "operator" }))).await;
    assert_eq!(status, 201);
    let (status, t) = srv.admin("POST", "/api/v1/accounts/otto/tokens", Some(json!({ "name": "ci" }))).await;
    assert_eq!(status, 201, "{t}");
    let token = t["token"].as_str().expect("a token").to_owned();
    let otto = |method: &'static str, path: &'static str, body: Option<Value>| {
        let (srv, token) = (&srv, token.clone());
        async move { as_otto(srv, &token, method, path, body).await }
    };

    let user = json!({ "number": "+49 89 123456", "name": "Anna", "password": FIRST, "profiles": ["sales"] });
    let (status, v) = otto("POST", "/api/v1/users", Some(user)).await;
    assert_eq!((status, v["number"].as_str()), (201, Some("+4989123456")), "{v}");
    let (status, v) = otto("PUT", "/api/v1/users/+4989123456/password", Some(json!({ "password": SECOND }))).await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = otto("PUT", "/api/v1/users/%2B4989123456/profiles", Some(json!({ "profiles": [] }))).await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = otto("POST", "/api/v1/users/+4989123456/logon", Some(json!({ "mac": MAC }))).await;
    assert_eq!(status, 201, "{v}");
    let logon_job = v["job"]["id"].as_i64().expect("a job");

    // The phone took the logon and saved data at a logoff (as the protocol would).
    sql(&srv, &format!("UPDATE mobility_users SET device = '{MAC}', since = 1 WHERE number = '+4989123456'")).await;
    sql(&srv, "INSERT INTO mobility_data VALUES ('+4989123456', 'userdata-ldap', 'UFJJVkFURQ==', 7, 1)").await;
    let (status, v) = otto("GET", "/api/v1/users/+4989123456/data/userdata-ldap", None).await;
    assert_eq!((status, v["value"].as_str()), (200, Some("UFJJVkFURQ==")), "{v}");
    let (status, v) = otto("POST", "/api/v1/users/+4989123456/logoff", None).await;
    assert_eq!(status, 201, "{v}");
    let logoff_job = v["job"]["id"].as_i64().expect("a job");
    // The user's jobs, newest first; the number in any usual spelling, its + as %2B.
    let (status, jobs) = srv.admin("GET", "/api/v1/jobs?user=%2B49+89+123456", None).await;
    let ids: Vec<i64> = jobs.as_array().expect("jobs").iter().filter_map(|j| j["id"].as_i64()).collect();
    assert_eq!((status, ids), (200, vec![logoff_job, logon_job]), "{jobs}");
    assert_eq!(srv.admin("GET", "/api/v1/jobs?user=%2B4999", None).await.1, json!([]));
    assert_eq!(srv.admin("GET", "/api/v1/jobs?user=abc", None).await.0, 400);

    // Refused: nothing recorded.
    assert_eq!(otto("GET", "/api/v1/users/+4989123456/data/userdata-none", None).await.0, 404);
    let (status, v) = otto("PUT", "/api/v1/users/+4989123456/password", Some(json!({ "password": "abc" }))).await;
    assert_eq!(status, 422, "{v}");
    let (status, v) = otto("PUT", "/api/v1/users/+4989123456/profiles", Some(json!({ "profiles": ["nope"] }))).await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(otto("POST", "/api/v1/users", Some(json!({ "number": "x", "password": FIRST }))).await.0, 400);
    assert_eq!(otto("DELETE", "/api/v1/users/+4999", None).await.0, 404);

    let (status, v) = otto("DELETE", "/api/v1/users/+4989123456", None).await;
    assert_eq!(status, 200, "{v}");

    let log = records(&srv, "otto:ci").await;
    let kinds: Vec<&str> = log.iter().map(|(k, _, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "user-added",
            "user-password-set",
            "user-profiles-set",
            "user-logon-queued",
            "user-data-read",
            "user-logoff-queued",
            "user-deleted"
        ],
        "{log:?}"
    );
    let detail = |kind: &str| log.iter().find(|(k, _, _)| k == kind).map(|(_, m, d)| (m.as_str(), d.as_str()));
    assert_eq!(detail("user-added"), Some(("", "user +4989123456 (\"Anna\"), profiles sales")));
    assert_eq!(detail("user-password-set"), Some(("", "user +4989123456")));
    assert_eq!(detail("user-profiles-set"), Some(("", "user +4989123456: no profile")));
    assert_eq!(detail("user-logon-queued"), Some((MAC, format!("user +4989123456, job {logon_job}").as_str())));
    assert_eq!(detail("user-data-read"), Some(("", "user +4989123456: item \"userdata-ldap\" (7 bytes)")));
    assert_eq!(detail("user-logoff-queued"), Some((MAC, format!("user +4989123456, job {logoff_job}").as_str())));
    assert_eq!(detail("user-deleted"), Some(("", "user +4989123456 and its saved data")));

    // Each kind is a filter of the audit log.
    for kind in kinds {
        let (status, v) = srv.admin("GET", &format!("/api/v1/audit?kind={kind}"), None).await;
        assert_eq!((status, v.as_array().map(Vec::len)), (200, Some(1)), "{kind}: {v}");
    }
    // No password, and no data value, anywhere.
    let (_, all) = srv.admin("GET", "/api/v1/audit?limit=1000", None).await;
    let all = all.to_string();
    for secret in [FIRST, SECOND, "UFJJVkFURQ=="] {
        assert!(!all.contains(secret), "{secret} in the audit log: {all}");
        assert!(!logs.lines().iter().any(|l| l.contains(secret)), "{secret} in the log");
    }
    srv.stop().await;
}
