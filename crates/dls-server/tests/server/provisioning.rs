//! Digest-protected provisioning files, fetched by real clients: `curl --digest` (MD5 and
//! SHA-256) and Python `requests` (`HTTPDigestAuth`), over HTTP and HTTPS.

use serde_json::json;
use tokio::process::Command;

use crate::common::{TestServer, run, sql, write};

const MAC: &str = "001A2B3C4D5E";
const SECRET: &str = "MACID-7f3a9";

async fn provisioned(srv: &TestServer) {
    let (s, v) = srv.admin("PUT", "/api/v1/profiles/gigaset", Some(json!({
        "provisioning-template": "<Provider><MAC value=\"{{mac}}\"/><Account user=\"{{item:sip-user-id}}\"/><Server value=\"{{server}}\"/></Provider>",
        "item": [{"name": "sip-user-id", "value": "4711 & <co>"}],
    }))).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = srv
        .admin("POST", "/api/v1/devices", Some(json!({"mac": MAC, "profiles": ["gigaset"], "secret": SECRET})))
        .await;
    assert_eq!(s, 201, "{v}");
    assert!(!v.to_string().contains(SECRET), "the secret is never shown");
    let (s, _) =
        srv.admin("POST", "/api/v1/devices", Some(json!({"mac": "001A2B3C4D5F", "secret": "other-secret"}))).await;
    assert_eq!(s, 201);
    let (s, v) = srv
        .admin(
            "PUT",
            "/api/v1/credentials/fallback",
            Some(json!({"scope": {"profile": "gigaset"}, "username": "branch", "password": "fallback-pw"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
}

async fn curl(args: &[&str], url: &str) -> (String, String) {
    let (code, out, err) =
        run(Command::new("curl").args(["-sS", "--max-time", "10", "-w", "\n%{http_code}"]).args(args).arg(url), 30)
            .await;
    assert_eq!(code, 0, "curl failed: {err}");
    let (body, status) = out.rsplit_once('\n').unwrap_or(("", &out));
    (status.to_owned(), body.to_owned())
}

#[tokio::test]
async fn curl_digest_md5_and_sha256_over_http_and_https() {
    let srv = TestServer::start_with(|c| c.digest_algorithms = vec!["SHA-256".into(), "MD5".into()]).await;
    provisioned(&srv).await;
    let ca = write(srv.dir.path(), "ca.pem", &srv.ca_pem());
    let http = format!("http://127.0.0.1:{}/provisioning/{MAC}.xml", srv.http.port());
    let https = format!("https://127.0.0.1:{}/provisioning/{}.xml", srv.wpi.port(), MAC.to_lowercase());
    let user = format!("{MAC}:{SECRET}");
    for url in [&http, &https] {
        let (status, body) = curl(&["--digest", "-u", &user, "--cacert", &ca.to_string_lossy()], url).await;
        assert_eq!(status, "200", "{url}: {body}");
        assert!(body.contains(&format!("<MAC value=\"{MAC}\"/>")), "{body}");
        assert!(body.contains("user=\"4711 &amp; &lt;co&gt;\""), "values are escaped: {body}");
    }
    // The MAC as username is case-insensitive.
    let lower = format!("{}:{SECRET}", MAC.to_lowercase());
    assert_eq!(curl(&["--digest", "-u", &lower], &http).await.0, "200");
    // Wrong secret, another device's credentials, no credentials: 401 and never the file.
    for user in [format!("{MAC}:wrong"), "001A2B3C4D5F:other-secret".to_owned()] {
        let (status, body) = curl(&["--digest", "-u", &user], &http).await;
        assert_eq!(status, "401", "{user}");
        assert!(!body.contains("<Provider>"), "{body}");
    }
    assert_eq!(curl(&[], &http).await.0, "401");
    // The fallback credential of the device's profile works; curl negotiates SHA-256 first.
    let (code, out, err) = run(
        Command::new("curl")
            .args([
                "-sS",
                "-v",
                "--max-time",
                "10",
                "--digest",
                "-u",
                "branch:fallback-pw",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
            ])
            .arg(&http),
        30,
    )
    .await;
    assert_eq!((code, out.as_str()), (0, "200"), "{err}");
    assert!(err.contains("algorithm=SHA-256") || err.contains("algorithm=\"SHA-256\""), "SHA-256 used: {err}");
    // Wrong path and method.
    assert_eq!(curl(&[], &format!("http://127.0.0.1:{}/provisioning/not-a-mac.xml", srv.http.port())).await.0, "404");
    assert_eq!(curl(&["-X", "POST"], &http).await.0, "405");
    srv.stop().await;
}

#[tokio::test]
async fn python_requests_and_the_phone_fallback_sequence() {
    let srv = TestServer::start().await;
    provisioned(&srv).await;
    let url = format!("http://127.0.0.1:{}/provisioning/{MAC}.xml", srv.http.port());
    // The phone's sequence: MAC + wrong MAC-ID, then the configured fallback, then success,
    // without being throttled; twice, as a phone rebooting would.
    let script = format!(
        r#"
import requests, sys
from requests.auth import HTTPDigestAuth
url = "{url}"
out = []
for _ in range(2):
    for user, pw in [("{MAC}", "wrong"), ("branch", "fallback-pw")]:
        r = requests.get(url, auth=HTTPDigestAuth(user, pw), timeout=10)
        out.append(str(r.status_code))
r = requests.get(url, auth=HTTPDigestAuth("{MAC}", "{SECRET}"), timeout=10)
out.append(str(r.status_code))
print(" ".join(out))
print(r.text.count("<Provider>"))
"#
    );
    let (code, out, err) = run(Command::new("python3").arg("-c").arg(&script), 60).await;
    assert_eq!(code, 0, "python3 with requests is needed (pip install requests): {err}");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("401 200 401 200 200"), "{out}{err}");
    assert_eq!(lines.next(), Some("1"));
    srv.stop().await;
}

#[tokio::test]
async fn replays_bursts_and_the_admin_side() {
    let srv = TestServer::start().await;
    provisioned(&srv).await;
    let url = format!("http://127.0.0.1:{}/provisioning/{MAC}.xml", srv.http.port());
    // A captured Authorization header replayed as is: refused.
    let (code, out, err) = run(
        Command::new("curl")
            .args(["-sS", "-v", "--max-time", "10", "--digest", "-u", &format!("{MAC}:{SECRET}"), "-o", "/dev/null"])
            .arg(&url),
        30,
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let header = err
        .lines()
        .filter_map(|l| l.strip_prefix("> Authorization: "))
        .next_back()
        .expect("curl shows its Authorization header")
        .trim()
        .to_owned();
    let (status, _) = curl(&["-H", &format!("Authorization: {header}")], &url).await;
    assert_eq!(status, "401", "replayed");
    // A burst far beyond a phone's 1 + 1 + 3 tries is throttled with Retry-After: the
    // guesser's own (username, address) pair, nobody else.
    let mut last = String::new();
    for _ in 0..30 {
        last = curl(&["--digest", "-u", "admin:guess"], &url).await.0;
        if last == "429" {
            break;
        }
    }
    assert_eq!(last, "429", "throttled");
    // The provisioning URL for a redirect service, with the credentials embedded.
    let (s, v) = srv.admin("GET", &format!("/api/v1/devices/{MAC}/provisioning-url?embed=true"), None).await;
    assert_eq!(s, 200);
    let u = v["url"].as_str().expect("url");
    assert!(
        u.starts_with(&format!("https://{MAC}:{SECRET}@")) && u.ends_with(&format!("/provisioning/{MAC}.xml")),
        "{u}"
    );
    let (s, v) = srv.admin("GET", "/api/v1/credentials/fallback", None).await;
    assert_eq!(s, 200);
    assert!(!v.to_string().contains("fallback-pw"), "{v}");
    // Secrets are sealed in the database.
    let db = std::fs::read(srv.data().join("dls.sqlite")).expect("db");
    let wal = std::fs::read(srv.data().join("dls.sqlite-wal")).unwrap_or_default();
    for bytes in [db, wal] {
        assert!(!bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()), "the secret is not stored in clear");
    }
    srv.stop().await;
}

/// Runs one SQL statement on the service's database from outside, as an operator's mistake or
/// a failing disk would change it under the running service.
#[tokio::test]
async fn guesses_from_another_address_and_a_failing_store_never_lock_the_phone_out() {
    let srv = TestServer::start().await;
    provisioned(&srv).await;
    let url = format!("http://127.0.0.1:{}/provisioning/{MAC}.xml", srv.http.port());
    // The attack: 50 wrong MAC-ID guesses for the phone's MAC from another address.
    let mut statuses = Vec::new();
    for i in 0..50 {
        let user = format!("{MAC}:guess{i:07}");
        statuses.push(curl(&["--interface", "127.0.0.2", "--digest", "-u", &user], &url).await.0);
    }
    assert!(statuses.iter().all(|s| s == "401" || s == "429"), "{statuses:?}");
    assert!(statuses.iter().filter(|s| *s == "401").count() <= 12, "the guesser is slowed: {statuses:?}");
    // The phone, which never authenticated before, is served from its own address.
    let user = format!("{MAC}:{SECRET}");
    assert_eq!(curl(&["--digest", "-u", &user], &url).await.0, "200");

    // The store fails under the running service: 503 with Retry-After, far more often than
    // any limit, and none of it counts against the phone.
    sql(&srv, "ALTER TABLE device_secrets RENAME TO device_secrets_away").await;
    for _ in 0..30 {
        let (status, out) = curl(&["-i", "--digest", "-u", &user], &url).await;
        assert_eq!(status, "503", "{out}");
        assert!(out.to_ascii_lowercase().contains("retry-after: 10"), "{out}");
        assert!(!out.contains(SECRET), "{out}");
    }
    sql(&srv, "ALTER TABLE device_secrets_away RENAME TO device_secrets").await;
    let (status, body) = curl(&["--digest", "-u", &user], &url).await;
    assert_eq!(status, "200", "{body}");
    assert!(body.contains(&format!("<MAC value=\"{MAC}\"/>")), "{body}");
    srv.stop().await;
}
