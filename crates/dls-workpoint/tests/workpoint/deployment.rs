//! File and firmware deployments against the scripted DLS: accepted in the interaction,
//! downloaded afterwards, reported in `status` (or by the `start-up` after new firmware).

use std::time::Duration;

use dls_message::{Action, Item, MacAddr, Reason, ReplyStatus};
use dls_workpoint::deploy::{DeploymentKind, DownloadLimits, Priority};
use dls_workpoint::{InstalledFile, Phone, ServerTrust, WpiClient};
use sha2::{Digest, Sha256};

use crate::scripted::{ScriptedDls, Served, file_items, generated, item};

const LIMIT: Duration = Duration::from_secs(60);

fn phone() -> Phone {
    Phone::new(MacAddr::parse("00:1A:E8:00:00:42").expect("mac"))
}

fn client(dls: &ScriptedDls) -> WpiClient {
    let mut c = WpiClient::new(&dls.wpi.to_string(), &ServerTrust::AcceptAny).expect("client");
    c.set_timeout(Duration::from_secs(10));
    c
}

fn sha256(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

fn is_date(s: &str) -> bool {
    s.len() == 10 && s.chars().enumerate().all(|(i, c)| if i == 4 || i == 7 { c == '-' } else { c.is_ascii_digit() })
}

fn is_time(s: &str) -> bool {
    s.len() == 8 && s.chars().enumerate().all(|(i, c)| if i == 2 || i == 5 { c == ':' } else { c.is_ascii_digit() })
}

#[tokio::test]
async fn a_file_is_accepted_then_downloaded_installed_and_reported() {
    tokio::time::timeout(LIMIT, async {
        let dls = ScriptedDls::start().await;
        let content = b"RIFF....WAVEfmt a ringtone".to_vec();
        dls.serve("/files/t0k3n/Ring%20tone%20%231.wav", Served::Bytes(content.clone()));
        dls.plan(
            Reason::StartUp,
            vec![(Action::FileDeployment, file_items("RINGTONE", "Ring tone #1.wav", &dls.base_url("t0k3n")))],
        );
        let mut phone = phone();
        let mut c = client(&dls);

        let report = phone.interact(&mut c, Reason::StartUp).await.expect("start-up");
        assert_eq!(report.actions, [Action::FileDeployment, Action::CleanUp]);
        assert_eq!(dls.replies_to(&Action::FileDeployment), [Some(ReplyStatus::Accepted)]);
        assert_eq!(report.deployments.len(), 1);
        let d = &report.deployments[0];
        assert_eq!((d.kind.clone(), d.priority, d.index), (DeploymentKind::File, Priority::Normal, None));
        assert_eq!(d.url, format!("https://{}/files/t0k3n/Ring%20tone%20%231.wav", dls.wpi));
        // Nothing was downloaded inside the interaction.
        assert!(dls.state().downloads.is_empty());

        let runs = phone
            .run_deployments(&mut c, &report.deployments, &ServerTrust::AcceptAny, &DownloadLimits::default())
            .await;
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].reason, Reason::Status);
        assert!(runs[0].outcome.ok(), "{:?}", runs[0].outcome);
        assert_eq!(runs[0].follow_up.as_ref().expect("status interaction").actions, [Action::CleanUp]);
        assert_eq!(dls.state().downloads, ["/files/t0k3n/Ring%20tone%20%231.wav"]);
        let installed = InstalledFile {
            name: "Ring tone #1.wav".into(),
            file_type: "RINGTONE".into(),
            size: content.len() as u64,
            sha256: sha256(&content),
        };
        assert_eq!(phone.installed, [installed]);

        let status = dls.wait_interactions(&Reason::Status, 1, LIMIT).await;
        assert_eq!(status.len(), 1);
        let s = &status[0];
        assert_eq!(item(s, "mac-addr"), Some("00:1A:E8:00:00:42"));
        assert_eq!(item(s, "file-deployment-name"), Some("Ring tone #1.wav"));
        assert_eq!(item(s, "file-deployment-type"), Some("RINGTONE"));
        assert_eq!(item(s, "file-deployment-status"), Some("ok"));
        assert!(item(s, "file-deployment-date").is_some_and(is_date), "{s:?}");
        assert!(item(s, "file-deployment-time").is_some_and(is_time), "{s:?}");
    })
    .await
    .expect("in time");
}

#[tokio::test]
async fn several_indexed_files_and_a_large_one_streamed() {
    tokio::time::timeout(LIMIT, async {
        let dls = ScriptedDls::start().await;
        let big = 8 << 20;
        dls.serve("/files/a/logo.png", Served::Bytes(b"PNG".to_vec()));
        dls.serve("/files/a/phonebook.ldif", Served::Generated(big));
        let mut items = Vec::new();
        for (i, (t, n)) in [(0, ("LOGO", "logo.png")), (1, ("LDAP", "phonebook.ldif"))] {
            items.extend(file_items(t, n, &dls.base_url("a")).into_iter().map(|it| Item { index: Some(i), ..it }));
            items.push(Item::indexed("file-action", i, "deploy"));
        }
        dls.plan(Reason::StartUp, vec![(Action::FileDeployment, items)]);
        let mut phone = phone();
        let mut c = client(&dls);
        let report = phone.interact(&mut c, Reason::StartUp).await.expect("start-up");
        assert_eq!(report.deployments.iter().map(|d| d.index).collect::<Vec<_>>(), [Some(0), Some(1)]);
        let runs = phone
            .run_deployments(&mut c, &report.deployments, &ServerTrust::AcceptAny, &DownloadLimits::default())
            .await;
        assert!(runs.iter().all(|r| r.outcome.ok() && r.follow_up.is_ok()), "{runs:?}");
        let got: Vec<_> = phone.installed.iter().map(|f| (f.file_type.as_str(), f.size)).collect();
        assert_eq!(got, [("LOGO", 3), ("LDAP", big)]);
        assert_eq!(phone.installed[1].sha256, sha256(&generated(big)));
        let status = dls.wait_interactions(&Reason::Status, 2, LIMIT).await;
        let names: Vec<_> =
            status.iter().map(|m| (item(m, "file-deployment-name"), item(m, "file-deployment-status"))).collect();
        assert_eq!(names, [(Some("logo.png"), Some("ok")), (Some("phonebook.ldif"), Some("ok"))]);

        // A file over the size cap fails, and is not installed.
        let small = DownloadLimits { max_bytes: 1 << 20, ..DownloadLimits::default() };
        let outcome = phone.deploy(&report.deployments[1], &ServerTrust::AcceptAny, &small).await;
        assert!(outcome.result.as_ref().is_err_and(|e| e.contains("too large")), "{outcome:?}");
    })
    .await
    .expect("in time");
}

#[tokio::test]
async fn new_firmware_makes_the_phone_start_up_with_its_version() {
    tokio::time::timeout(LIMIT, async {
        let dls = ScriptedDls::start().await;
        dls.serve("/files/fw/OpenStage_60_V3R5.13.0.img", Served::Generated(300_000));
        let mut items = file_items("APP", "OpenStage_60_V3R5.13.0.img", &dls.base_url("fw"));
        items.push(Item::new("file-sw-type", "Siemens SIP"));
        items.push(Item::new("file-sw-version", "V3 R5.13.0"));
        dls.plan(Reason::StartUp, vec![(Action::SoftwareDeployment, items)]);
        let mut phone = phone();
        let mut c = client(&dls);
        let report = phone.interact(&mut c, Reason::StartUp).await.expect("start-up");
        assert_eq!(dls.replies_to(&Action::SoftwareDeployment), [Some(ReplyStatus::Accepted)]);
        assert!(report.deployments[0].is_software());
        let before = c.connections_opened();

        let runs = phone
            .run_deployments(&mut c, &report.deployments, &ServerTrust::AcceptAny, &DownloadLimits::default())
            .await;
        assert_eq!(runs[0].reason, Reason::StartUp);
        assert!(runs[0].outcome.ok() && runs[0].follow_up.is_ok(), "{runs:?}");
        assert_eq!(c.connections_opened(), before + 1, "a reboot is a new connection");
        let starts = dls.wait_interactions(&Reason::StartUp, 2, LIMIT).await;
        assert_eq!(starts.len(), 2);
        assert_eq!(item(&starts[0], "software-version"), Some("V3 R5.12.0"));
        assert_eq!(item(&starts[1], "software-version"), Some("V3 R5.13.0"));
        assert_eq!(item(&starts[1], "related-software-version"), Some("V3 R5.13.0"));
        assert_eq!(item(&starts[1], "software-type"), Some("Siemens SIP"));
        assert!(dls.interactions().iter().all(|m| m.reason.value != Reason::Status));
        assert_eq!(phone.installed[0].file_type, "APP");
    })
    .await
    .expect("in time");
}

#[tokio::test]
async fn failed_downloads_are_reported_failed() {
    tokio::time::timeout(LIMIT, async {
        let dls = ScriptedDls::start().await;
        dls.serve("/files/x/cut.mp3", Served::Truncated { declared: 10_000, sent: vec![7; 1000] });
        let mut fw = file_items("APP", "missing.img", &dls.base_url("x"));
        fw.push(Item::new("file-sw-version", "V9"));
        dls.plan(
            Reason::StartUp,
            vec![
                (Action::FileDeployment, file_items("RINGTONE", "missing.mp3", &dls.base_url("x"))),
                (Action::FileDeployment, file_items("MOH", "cut.mp3", &dls.base_url("x"))),
                (Action::SoftwareDeployment, fw),
            ],
        );
        let mut phone = phone();
        let mut c = client(&dls);
        let report = phone.interact(&mut c, Reason::StartUp).await.expect("start-up");
        assert_eq!(report.deployments.len(), 3);
        let runs = phone
            .run_deployments(&mut c, &report.deployments, &ServerTrust::AcceptAny, &DownloadLimits::default())
            .await;
        let errors: Vec<_> = runs.iter().map(|r| r.outcome.result.clone().expect_err("failed")).collect();
        assert!(errors[0].contains("404"), "{errors:?}");
        assert!(errors[1].contains("1000"), "{errors:?}");
        assert!(errors[2].contains("404"), "{errors:?}");
        assert!(runs.iter().all(|r| r.reason == Reason::Status && r.follow_up.is_ok()), "{runs:?}");
        assert!(phone.installed.is_empty());
        assert_eq!(phone.get("software-version", None), Some("V3 R5.12.0"));

        let status = dls.wait_interactions(&Reason::Status, 3, LIMIT).await;
        let got: Vec<_> = status
            .iter()
            .map(|m| {
                (item(m, "file-deployment-name"), item(m, "file-deployment-type"), item(m, "file-deployment-status"))
            })
            .collect();
        assert_eq!(
            got,
            [
                (Some("missing.mp3"), Some("RINGTONE"), Some("failed")),
                (Some("cut.mp3"), Some("MOH"), Some("failed")),
                (Some("missing.img"), Some("APP"), Some("failed")),
            ]
        );
        assert_eq!(dls.interactions().iter().filter(|m| m.reason.value == Reason::StartUp).count(), 1);
    })
    .await
    .expect("in time");
}

#[tokio::test]
async fn incomplete_or_plain_http_deployments_are_refused() {
    tokio::time::timeout(LIMIT, async {
        let dls = ScriptedDls::start().await;
        let no_name: Vec<Item> =
            file_items("LOGO", "x.png", &dls.base_url("y")).into_iter().filter(|i| i.name != "file-name").collect();
        let plain = file_items("LOGO", "x.png", &format!("http://{}/files/y/", dls.wpi));
        let no_version = file_items("APP", "fw.img", &dls.base_url("y"));
        dls.plan(
            Reason::StartUp,
            vec![
                (Action::FileDeployment, no_name),
                (Action::FileDeployment, plain),
                (Action::SoftwareDeployment, no_version),
            ],
        );
        let mut phone = phone();
        let report = phone.interact(&mut client(&dls), Reason::StartUp).await.expect("start-up");
        assert!(report.deployments.is_empty());
        assert_eq!(dls.replies_to(&Action::FileDeployment), [Some(ReplyStatus::Failed), Some(ReplyStatus::Failed)]);
        assert_eq!(dls.replies_to(&Action::SoftwareDeployment), [Some(ReplyStatus::Failed)]);
    })
    .await
    .expect("in time");
}
