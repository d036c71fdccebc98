//! The console's devices and device pages over real HTTP: search, filters and pages; adding
//! a device; the device page's sections; secure-mode actions and the PIN sheet; the Digest
//! secret; roles, CSRF and escaping of what phones report.

use std::time::Duration;

use dls_message::{MacAddr, Reason};
use dls_workpoint::{Phone, ServerTrust, WpiClient};
use serde_json::json;

use crate::common::{TestServer, http, sql};

struct Browser {
    cookie: String,
    csrf: String,
}

fn header(h: &hyper::HeaderMap, name: &str) -> String {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

async fn get(srv: &TestServer, path: &str, b: &Browser) -> (u16, String) {
    let (status, _, body) = http(srv.admin, "GET", path, &[("cookie", &b.cookie)], Vec::new()).await;
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn post(srv: &TestServer, path: &str, cookie: Option<&str>, form: &str) -> (u16, hyper::HeaderMap, String) {
    let mut headers = vec![("content-type", "application/x-www-form-urlencoded")];
    if let Some(c) = cookie {
        headers.push(("cookie", c));
    }
    let (status, h, body) = http(srv.admin, "POST", path, &headers, form.as_bytes().to_vec()).await;
    (status, h, String::from_utf8_lossy(&body).into_owned())
}

/// A form post of the browser `b`, with its CSRF token.
async fn submit(srv: &TestServer, b: &Browser, path: &str, form: &str) -> (u16, String) {
    let (status, _, page) = post(srv, path, Some(&b.cookie), &format!("csrf={}&{form}", b.csrf)).await;
    (status, page)
}

/// An account of `role` logged in.
async fn browser(srv: &TestServer, name: &str, role: &str) -> Browser {
    let account = json!({ "name": name, "role": role, "password": "correct horse 1" });
    assert_eq!(srv.admin("POST", "/api/v1/accounts", Some(account)).await.0, 201);
    let (status, h, page) = post(srv, "/login", None, &format!("account={name}&password=correct+horse+1")).await;
    assert_eq!(status, 303, "{page}");
    let cookie = header(&h, "set-cookie").split(';').next().expect("a cookie").to_owned();
    let (status, _, page) = http(srv.admin, "GET", "/", &[("cookie", &cookie)], Vec::new()).await;
    assert_eq!(status, 200);
    let page = String::from_utf8_lossy(&page).into_owned();
    let at = page.find("name=\"csrf\" value=\"").expect("a form") + 19;
    Browser { csrf: page[at..at + 64].to_owned(), cookie }
}

fn macs_listed(page: &str) -> Vec<String> {
    page.match_indices("<a href=\"/devices/").map(|(i, _)| page[i + 18..i + 30].to_owned()).collect()
}

#[tokio::test]
async fn the_list_searches_filters_orders_and_pages() {
    let srv = TestServer::start().await;
    let ada = browser(&srv, "ada", "viewer").await;
    let (status, page) = get(&srv, "/devices", &ada).await;
    assert_eq!(status, 200);
    assert!(page.contains("No device yet"), "the empty state says what to do: {page}");
    assert!(page.contains("aria-current=\"page\">Devices"), "in the navigation");
    assert!(!page.contains("Add device"), "a viewer adds nothing: {page}");

    let profile = json!({ "item": [{ "name": "e164", "value": "4711" }] });
    assert_eq!(srv.admin("PUT", "/api/v1/profiles/sales", Some(profile)).await.0, 200);
    for i in 0..60_u8 {
        let profiles = if i % 2 == 0 { vec!["sales"] } else { vec![] };
        let mac = format!("0001E325{i:04X}");
        assert_eq!(
            srv.admin("POST", "/api/v1/devices", Some(json!({ "mac": mac, "profiles": profiles }))).await.0,
            201
        );
    }
    sql(&srv, "UPDATE devices SET device_type = 'OpenStage 60', software_version = 'V3 R5.1', e164 = '+49 89 4711' WHERE mac = '0001E3250007'").await;

    let (_, page) = get(&srv, "/devices", &ada).await;
    let first = macs_listed(&page);
    assert_eq!(first.len(), 50, "a page of 50");
    assert_eq!(first[0], "0001E3250000");
    let next = page.split("href=\"").find(|s| s.starts_with("/devices?after=")).expect("a next page");
    let next = next.split('"').next().expect("a link").replace("&amp;", "&");
    let (_, page) = get(&srv, &next, &ada).await;
    let second = macs_listed(&page);
    assert_eq!(second.len(), 10);
    assert_eq!(second[0], "0001E3250032");
    assert!(page.contains("First page") && !page.contains("Next page"), "{page}");

    let (_, page) = get(&srv, "/devices?order=desc", &ada).await;
    assert_eq!(macs_listed(&page)[0], "0001E325003B");
    for query in ["q=25:00:07", "q=4711", "q=0001e3250007", "type=OpenStage+60", "version=V3+R5.1"] {
        let (status, page) = get(&srv, &format!("/devices?{query}"), &ada).await;
        assert_eq!((status, macs_listed(&page)), (200, vec!["0001E3250007".to_owned()]), "{query}");
    }
    let (_, page) = get(&srv, "/devices?profile=sales", &ada).await;
    assert_eq!(macs_listed(&page).len(), 30);
    let (_, page) = get(&srv, "/devices?q=nothing-like-it", &ada).await;
    assert!(page.contains("No device matches"), "{page}");
    let (status, page) = get(&srv, "/devices?after=zz", &ada).await;
    assert_eq!(status, 400, "{page}");
    srv.stop().await;
}

#[tokio::test]
async fn an_operator_adds_a_device_as_the_api_does() {
    let srv = TestServer::start().await;
    assert_eq!(srv.admin("PUT", "/api/v1/profiles/sales", Some(json!({ "item": [] }))).await.0, 200);
    let olga = browser(&srv, "olga", "operator").await;
    let (status, page) =
        submit(&srv, &olga, "/devices", "mac=00-01-e3-25-ea-41&e164=%2B49+89+1234&profile=sales").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Device 0001E325EA41 added."), "{page}");
    let (_, device) = srv.admin("GET", "/api/v1/devices/0001E325EA41", None).await;
    assert_eq!(device["profiles"], json!(["sales"]));
    assert_eq!(device["overrides"][0]["name"], "e164");
    assert_eq!(device["overrides"][0]["value"], "+49 89 1234");
    let (_, audit) = srv.admin("GET", "/api/v1/audit?mac=0001E325EA41", None).await;
    assert_eq!(audit[0]["actor"], "olga", "{audit}");
    assert_eq!(audit[0]["kind"], "device-added", "{audit}");

    // Errors inline, what was typed kept (escaped).
    let (status, page) = submit(&srv, &olga, "/devices", "mac=0001E325EA41").await;
    assert_eq!(status, 409, "{page}");
    assert!(page.contains("role=\"alert\""), "{page}");
    let (status, page) = submit(&srv, &olga, "/devices", "mac=%3Cscript%3Ex").await;
    assert_eq!(status, 400, "{page}");
    assert!(
        !page.contains("<script>x") && page.contains("&#60;script&#62;x") || page.contains("&lt;script&gt;x"),
        "{page}"
    );
    let (status, page) = submit(&srv, &olga, "/devices", "mac=0001E325EA42&profile=nope").await;
    assert!(status >= 400, "{status} {page}");
    assert_eq!(srv.admin("GET", "/api/v1/devices/0001E325EA42", None).await.0, 404, "nothing half-made");

    // Without the CSRF token, or as a viewer: refused, nothing added.
    let (status, _, _) = post(&srv, "/devices", Some(&olga.cookie), "mac=0001E325EA43").await;
    assert_eq!(status, 403);
    let vera = browser(&srv, "vera", "viewer").await;
    let (status, _) = submit(&srv, &vera, "/devices", "mac=0001E325EA43").await;
    assert_eq!(status, 403);
    assert_eq!(srv.admin("GET", "/api/v1/devices/0001E325EA43", None).await.0, 404);
    srv.stop().await;
}

#[tokio::test]
async fn the_device_page_shows_what_differs_and_escapes_what_phones_report() {
    let srv = TestServer::start().await;
    let profile = json!({ "item": [
        { "name": "e164", "value": "4711" },
        { "name": "sip-server", "value": "10.0.0.1" },
        { "name": "sip-pwd", "value": "hunter2-profile" }
    ] });
    assert_eq!(srv.admin("PUT", "/api/v1/profiles/sales", Some(profile)).await.0, 200);
    let device = json!({ "mac": "0001E325EA51", "profiles": ["sales"], "overrides": [{ "name": "display-id", "value": "desk 7" }] });
    assert_eq!(srv.admin("POST", "/api/v1/devices", Some(device)).await.0, 201);
    // A phone that reports script as its display id starts up and takes the profile; then
    // the profile changes, so that its sip-server differs from what the phone has.
    let mut phone = Phone::new(MacAddr::parse("0001E325EA51").expect("a MAC"));
    phone.set("display-id-unicode", None, "<script>alert(7)</script>");
    phone.set("sip-server", None, "10.0.0.1");
    let mut client = WpiClient::new(&format!("127.0.0.1:{}", srv.wpi.port()), &ServerTrust::AcceptAny).expect("client");
    client.set_timeout(Duration::from_secs(30));
    phone.interact(&mut client, Reason::StartUp).await.expect("a start-up");
    let changed = json!({ "item": [
        { "name": "e164", "value": "4711" },
        { "name": "sip-server", "value": "10.9.9.9" },
        { "name": "sip-pwd", "value": "hunter2-profile" }
    ] });
    assert_eq!(srv.admin("PUT", "/api/v1/profiles/sales", Some(changed)).await.0, 200);
    let vera = browser(&srv, "vera", "viewer").await;
    let (status, page) = get(&srv, "/devices/00:01:e3:25:ea:51", &vera).await;
    assert_eq!(status, 200, "{page}");
    assert!(!page.contains("<script>alert(7)"), "a phone's value is text: {page}");
    assert!(page.contains("alert(7)"));
    assert!(!page.contains("hunter2-profile"), "a secret is never shown: {page}");
    assert!(page.contains("(secret, not shown)"));
    let sip = &page[page.find("<th scope=\"row\">sip-server").expect("the item")..];
    let sip = &sip[..sip.find("</tr>").expect("its row")];
    assert!(sip.contains("<td>10.9.9.9</td><td>10.0.0.1</td>") && sip.contains("<strong>differs"), "{sip}");
    let e164 = &page[page.find("<th scope=\"row\">e164").expect("the item")..];
    assert!(e164[..e164.find("</tr>").expect("row")].contains("same"));
    assert!(page.contains("desk 7") && page.contains("sales"), "overrides and profiles");
    assert!(page.contains("device-added"), "the audit timeline");
    for action in ["Issue a PIN", "Set mode", "Reset", "Set secret"] {
        assert!(!page.contains(action), "a viewer gets no {action}");
    }
    assert_eq!(get(&srv, "/devices/0001E325EA59", &vera).await.0, 404);
    assert_eq!(get(&srv, "/devices/nonsense", &vera).await.0, 404);
    // A viewer's crafted posts: refused.
    assert_eq!(submit(&srv, &vera, "/devices/0001E325EA51/security", "action=pin").await.0, 403);
    assert_eq!(submit(&srv, &vera, "/devices/0001E325EA51/secret", "secret=abc").await.0, 403);
    srv.stop().await;
}

#[tokio::test]
async fn secure_mode_actions_and_the_pin_sheet() {
    let srv = TestServer::start().await;
    assert_eq!(srv.admin("POST", "/api/v1/devices", Some(json!({ "mac": "0001E325EA61" }))).await.0, 201);
    let olga = browser(&srv, "olga", "operator").await;
    let (_, page) = get(&srv, "/devices/0001E325EA61", &olga).await;
    assert!(page.contains("Issue a PIN") && page.contains("data-confirm"), "{page}");
    assert!(!page.contains("Set secret"), "the secret is an admin's");

    let (status, sheet) = submit(&srv, &olga, "/devices/0001E325EA61/security", "action=pin").await;
    assert_eq!(status, 200, "{sheet}");
    let at = sheet.find("class=\"once pin\">").expect("the PIN") + 17;
    let pin: String = sheet[at..].chars().take_while(char::is_ascii_digit).collect();
    assert!(pin.len() >= 6, "{pin}");
    assert!(sheet.contains("data-print") && sheet.contains("0001E325EA61"));
    let (_, device) = srv.admin("GET", "/api/v1/devices/0001E325EA61", None).await;
    assert_eq!(
        (device["security"]["mode"].as_str(), device["security"]["pin_outstanding"].as_bool()),
        (Some("pin"), Some(true))
    );
    // Shown once: never on the device page, nor in the store in clear.
    let (_, page) = get(&srv, "/devices/0001E325EA61", &olga).await;
    assert!(!page.contains(&pin) && page.contains("outstanding"), "{page}");
    let (_, audit) = srv.admin("GET", "/api/v1/audit?mac=0001E325EA61", None).await;
    assert!(!audit.to_string().contains(&pin));
    assert!(
        audit.as_array().expect("records").iter().any(|r| r["kind"] == "pin-issued" && r["actor"] == "olga"),
        "{audit}"
    );

    let (status, page) = submit(&srv, &olga, "/devices/0001E325EA61/security", "action=mode&mode=nopin").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Secure mode set to nopin."), "{page}");
    let (status, page) = submit(&srv, &olga, "/devices/0001E325EA61/security", "action=mode&mode=bogus").await;
    assert_eq!(status, 422, "{page}");
    let (status, page) = submit(&srv, &olga, "/devices/0001E325EA61/security", "action=reset").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("was reset"), "{page}");
    let (status, _) = submit(&srv, &olga, "/devices/0001E325EA69/security", "action=pin").await;
    assert_eq!(status, 404, "no such device");
    let (status, _, _) = post(&srv, "/devices/0001E325EA61/security", Some(&olga.cookie), "action=pin").await;
    assert_eq!(status, 403, "no CSRF token");
    assert_eq!(submit(&srv, &olga, "/devices/0001E325EA61/secret", "secret=abc").await.0, 403, "an operator");
    srv.stop().await;
}

#[tokio::test]
async fn an_admin_sets_and_clears_the_digest_secret_never_shown() {
    let srv = TestServer::start().await;
    assert_eq!(srv.admin("POST", "/api/v1/devices", Some(json!({ "mac": "0001E325EA71" }))).await.0, 201);
    let ada = browser(&srv, "ada", "admin").await;
    let (status, page) = submit(&srv, &ada, "/devices/0001E325EA71/secret", "secret=s3cr3t-value").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("The Digest secret was set.") && page.contains("Set (never shown)"), "{page}");
    assert!(!page.contains("s3cr3t-value"));
    let (status, page) = submit(&srv, &ada, "/devices/0001E325EA71/secret", "secret=").await;
    assert_eq!(status, 422, "{page}");
    let (status, page) = submit(&srv, &ada, "/devices/0001E325EA71/secret", "clear=1").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("The Digest secret was cleared.") && page.contains("Not set."), "{page}");
    let (_, audit) = srv.admin("GET", "/api/v1/audit?mac=0001E325EA71", None).await;
    let kinds: Vec<&str> = audit.as_array().expect("records").iter().filter_map(|r| r["kind"].as_str()).collect();
    assert!(kinds.contains(&"secret-set") && kinds.contains(&"secret-cleared"), "{kinds:?}");
    srv.stop().await;
}

#[tokio::test]
async fn an_operator_orders_a_devices_profiles_as_the_api_does() {
    let srv = TestServer::start().await;
    for p in ["base", "floor-2", "sales"] {
        assert_eq!(srv.admin("PUT", &format!("/api/v1/profiles/{p}"), Some(json!({ "item": [] }))).await.0, 200);
    }
    assert_eq!(srv.admin("POST", "/api/v1/devices", Some(json!({ "mac": "0001E325EA81" }))).await.0, 201);
    let olga = browser(&srv, "olga", "operator").await;
    let (_, page) = get(&srv, "/devices/0001E325EA81", &olga).await;
    assert!(
        page.contains("id=\"profiles-form\"") && !page.contains("name=\"up\""),
        "nothing chosen, nothing to move: {page}"
    );

    let path = "/devices/0001E325EA81/profiles";
    let (status, page) = submit(&srv, &olga, path, "profile=sales&profile=base").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Profiles set."), "{page}");
    let profiles = |d: serde_json::Value| d["profiles"].clone();
    assert_eq!(profiles(srv.admin("GET", "/api/v1/devices/0001E325EA81", None).await.1), json!(["sales", "base"]));
    // The chosen are listed first, in their order; the second can move up.
    let (sales, base, floor) = (
        page.find("value=\"sales\"").expect("sales"),
        page.find("value=\"base\" checked").expect("base"),
        page.find("value=\"floor-2\"").expect("floor"),
    );
    assert!(sales < base && base < floor, "{page}");
    assert!(page.contains("name=\"up\" value=\"base\"") && !page.contains("name=\"up\" value=\"sales\""), "{page}");
    let (status, page) = submit(&srv, &olga, path, "profile=sales&profile=base&up=base").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(profiles(srv.admin("GET", "/api/v1/devices/0001E325EA81", None).await.1), json!(["base", "sales"]));
    let (status, _) = submit(&srv, &olga, path, "").await;
    assert_eq!(status, 200);
    assert_eq!(profiles(srv.admin("GET", "/api/v1/devices/0001E325EA81", None).await.1), json!([]), "none: no profile");

    // A profile that does not exist: refused inline, nothing changed.
    let (status, page) = submit(&srv, &olga, path, "profile=sales&profile=%3Cb%3Enope").await;
    assert!(status >= 400, "{status} {page}");
    assert!(page.contains("role=\"alert\"") && !page.contains("<b>nope"), "{page}");
    assert_eq!(profiles(srv.admin("GET", "/api/v1/devices/0001E325EA81", None).await.1), json!([]));
    let (_, audit) = srv.admin("GET", "/api/v1/audit?mac=0001E325EA81&kind=device-changed", None).await;
    let audit = audit.as_array().expect("records").clone();
    assert_eq!(audit.len(), 3, "{audit:?}");
    assert!(audit.iter().all(|r| r["actor"] == "olga"), "{audit:?}");

    // A viewer sees the profiles and changes nothing; without the CSRF token, nothing either.
    let vera = browser(&srv, "vera", "viewer").await;
    let (_, page) = get(&srv, "/devices/0001E325EA81", &vera).await;
    assert!(!page.contains("id=\"profiles-form\"") && !page.contains("/delete\""), "{page}");
    assert_eq!(submit(&srv, &vera, path, "profile=sales").await.0, 403);
    assert_eq!(post(&srv, path, Some(&olga.cookie), "profile=sales").await.0, 403);
    assert_eq!(profiles(srv.admin("GET", "/api/v1/devices/0001E325EA81", None).await.1), json!([]));
    srv.stop().await;
}

#[tokio::test]
async fn overrides_are_edited_a_secret_never_shown_and_kept_when_left_empty() {
    let srv = TestServer::start().await;
    let overrides = json!([{ "name": "e164", "value": "4711" }, { "name": "sip-pwd", "value": "hunter2-secret" }]);
    let device = json!({ "mac": "0001E325EA91", "overrides": overrides });
    assert_eq!(srv.admin("POST", "/api/v1/devices", Some(device)).await.0, 201);
    let olga = browser(&srv, "olga", "operator").await;
    let (_, page) = get(&srv, "/devices/0001E325EA91", &olga).await;
    assert!(page.contains("id=\"overrides-form\"") && page.contains("value=\"4711\""), "{page}");
    assert!(!page.contains("hunter2-secret") && page.contains("(secret, kept)"), "never in the page: {page}");

    // Change the number, leave the password empty (kept), add an item with an index.
    let path = "/devices/0001E325EA91/overrides";
    let rows = "item-name=e164&item-index=&item-value=4712\
        &item-name=sip-pwd&item-index=&item-value=\
        &item-name=function-key-def&item-index=1001&item-value=1\
        &item-name=&item-index=&item-value=";
    let (status, page) = submit(&srv, &olga, path, rows).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Overrides saved."), "{page}");
    let (_, d) = srv.admin("GET", "/api/v1/devices/0001E325EA91", None).await;
    let stored: Vec<(String, String)> = d["overrides"]
        .as_array()
        .expect("overrides")
        .iter()
        .map(|i| (i["name"].as_str().unwrap_or("").to_owned(), i["value"].as_str().unwrap_or("").to_owned()))
        .collect();
    assert!(stored.contains(&("e164".into(), "4712".into())), "{stored:?}");
    assert!(stored.contains(&("sip-pwd".into(), "hunter2-secret".into())), "kept: {stored:?}");
    assert!(stored.contains(&("function-key-def".into(), "1".into())), "{stored:?}");

    // Refused rows: 422, shown again as typed and marked, a typed secret left out, nothing changed.
    let bad = "item-name=e164&item-index=&item-value=%3Cscript%3Ealert(1)%3C%2Fscript%3E\
        &item-name=sip-pwd&item-index=&item-value=typed-new-secret\
        &item-name=function-key-def&item-index=x&item-value=1";
    let (status, page) = submit(&srv, &olga, path, bad).await;
    assert_eq!(status, 422, "{page}");
    assert!(page.contains("not a number") && page.contains("aria-invalid=\"true\""), "{page}");
    assert!(!page.contains("<script>alert(1)") && !page.contains("typed-new-secret"), "{page}");
    let (_, again) = srv.admin("GET", "/api/v1/devices/0001E325EA91", None).await;
    assert_eq!(again["overrides"], d["overrides"], "nothing changed");
    let (status, page) = submit(&srv, &olga, path, "item-name=e164&item-value=1").await;
    assert_eq!(status, 422, "rows that do not line up: {page}");

    // Clearing every row removes every override; the audit says how many, never a value.
    let (status, _) = submit(&srv, &olga, path, "item-name=&item-index=&item-value=").await;
    assert_eq!(status, 200);
    assert_eq!(srv.admin("GET", "/api/v1/devices/0001E325EA91", None).await.1["overrides"], json!([]));
    let (_, audit) = srv.admin("GET", "/api/v1/audit?mac=0001E325EA91&kind=device-changed", None).await;
    let text = audit.to_string();
    assert!(text.contains("3 overrides set") && text.contains("0 overrides set"), "{text}");
    assert!(!text.contains("hunter2") && !text.contains("4712"), "{text}");
    srv.stop().await;
}

#[tokio::test]
async fn an_operator_deletes_a_device_after_confirming() {
    let srv = TestServer::start().await;
    assert_eq!(srv.admin("POST", "/api/v1/devices", Some(json!({ "mac": "0001E325EAA1" }))).await.0, 201);
    let olga = browser(&srv, "olga", "operator").await;
    let (_, page) = get(&srv, "/devices/0001E325EAA1", &olga).await;
    assert!(
        page.contains("action=\"/devices/0001E325EAA1/delete\"") && page.contains("data-confirm=\"Delete the device"),
        "{page}"
    );
    let vera = browser(&srv, "vera", "viewer").await;
    assert_eq!(submit(&srv, &vera, "/devices/0001E325EAA1/delete", "").await.0, 403);
    assert_eq!(post(&srv, "/devices/0001E325EAA1/delete", Some(&olga.cookie), "").await.0, 403, "no CSRF token");
    assert_eq!(srv.admin("GET", "/api/v1/devices/0001E325EAA1", None).await.0, 200, "still there");

    let (status, page) = submit(&srv, &olga, "/devices/0001E325EAA1/delete", "").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Device 0001E325EAA1 deleted."), "the list says so: {page}");
    assert_eq!(srv.admin("GET", "/api/v1/devices/0001E325EAA1", None).await.0, 404);
    let (status, page) = submit(&srv, &olga, "/devices/0001E325EAA1/delete", "").await;
    assert_eq!(status, 404, "{page}");
    let (_, audit) = srv.admin("GET", "/api/v1/audit?mac=0001E325EAA1&kind=device-deleted", None).await;
    assert_eq!(audit[0]["actor"], "olga", "{audit}");
    srv.stop().await;
}
