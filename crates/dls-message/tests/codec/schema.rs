//! What the encoder produces validates against `schemas/wpi.xsd`, checked by `xmllint`
//! (libxml2), an implementation nobody here wrote.

use std::path::{Path, PathBuf};
use std::process::Command;

use dls_message::{
    Action, DlsMessage, EncodeOptions, Fragment, Header, Item, ItemStatus, Message, Reason, ReasonForContact,
    ReplyStatus, WorkpointMessage, decode, encode, encode_item_list,
};

use crate::common::samples;

fn schema() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas/wpi.xsd"))
}

/// Runs xmllint on `files`; returns (success, combined output).
fn xmllint(files: &[PathBuf]) -> (bool, String) {
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--nonet")
        .arg("--schema")
        .arg(schema())
        .args(files)
        .output()
        .expect("xmllint must be installed for the schema tests (Debian: apt-get install libxml2-utils)");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn write(dir: &Path, name: &str, xml: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, xml).expect("temp file");
    p
}

/// Canonical messages covering every known word of the protocol.
fn coverage() -> Vec<Message> {
    let statuses = [
        ItemStatus::Failed,
        ItemStatus::UnknownItem,
        ItemStatus::ReadOnly,
        ItemStatus::InvalidIndex,
        ItemStatus::UnexpectedItem,
        ItemStatus::NotSupported,
        ItemStatus::InvalidData,
        ItemStatus::UndefinedStatus,
    ];
    let items: Vec<Item> = statuses
        .iter()
        .enumerate()
        .map(|(i, s)| {
            Item::indexed("key-label-unicode", u32::try_from(i).unwrap_or(0), "Büro <Müller> & Co \"x\"\r\n\ty")
                .with_status(s.clone())
        })
        .chain([Item::new("empty", ""), Item { item_type: Some("t".into()), ..Item::new("typed", "v") }])
        .collect();
    let mut out = Vec::new();
    for (i, reason) in [
        Reason::StartUp,
        Reason::LocalChanges,
        Reason::InventoryChanges,
        Reason::Status,
        Reason::Solicited,
        Reason::ReplyTo,
        Reason::CleanUp,
    ]
    .into_iter()
    .enumerate()
    {
        let (action, status) = if reason == Reason::ReplyTo {
            (
                Some(Action::WriteItems),
                Some([ReplyStatus::Accepted, ReplyStatus::Failed, ReplyStatus::Busy][i % 3].clone()),
            )
        } else {
            (None, None)
        };
        out.push(Message::Workpoint(WorkpointMessage {
            header: Header {
                nonce: format!("{i:032X}"),
                max_items: Some(-1),
                fragment: Some(if i % 2 == 0 { Fragment::Final } else { Fragment::Next }),
            },
            reason: ReasonForContact { value: reason, action, status },
            items: if i % 3 == 0 { None } else { Some(items.clone()) },
        }));
    }
    for status in [ReplyStatus::Accepted, ReplyStatus::Failed, ReplyStatus::Busy] {
        out.push(Message::Workpoint(WorkpointMessage {
            header: Header::new("ab"),
            reason: ReasonForContact::reply_to(Action::ReadItems, status),
            items: Some(vec![]),
        }));
    }
    for (i, action) in [
        Action::ReadAllItems,
        Action::ReadItems,
        Action::WriteItems,
        Action::Restart,
        Action::FileDeployment,
        Action::SoftwareDeployment,
        Action::CleanUp,
        Action::GetNextFragment,
    ]
    .into_iter()
    .enumerate()
    {
        let items = match i % 3 {
            0 => None,
            1 => Some(vec![]),
            _ => Some(
                items
                    .iter()
                    .cloned()
                    .map(|mut it| {
                        it.status = None;
                        it
                    })
                    .collect(),
            ),
        };
        out.push(Message::Dls(DlsMessage::new(format!("{i:032X}"), action, items)));
    }
    out
}

#[test]
fn every_canonical_message_validates() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut files = Vec::new();
    for (name, bytes) in samples() {
        let msg = decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        files.push(write(
            dir.path(),
            &format!("canonical-{name}"),
            &encode(&msg, &EncodeOptions::default()).expect("encodes"),
        ));
    }
    for (i, msg) in coverage().iter().enumerate() {
        files.push(write(
            dir.path(),
            &format!("coverage-{i}.xml"),
            &encode(msg, &EncodeOptions::default()).expect("encodes"),
        ));
    }
    let plain = encode_item_list(&[
        Item::new("dls-secure-port", "18444"),
        Item::indexed("dls-server-ca", 0, "-----BEGIN CERTIFICATE-----\nMII\n-----END CERTIFICATE-----"),
    ])
    .expect("encodes");
    files.push(write(dir.path(), "item-list.xml", &plain));
    let (ok, out) = xmllint(&files);
    assert!(ok, "xmllint refused:\n{out}");
    assert_eq!(out.matches(" validates").count(), files.len(), "{out}");
}

#[test]
fn samples_in_canonical_form_validate_as_they_are() {
    let quirks = ["dls-quirk-dlsmessage-spelling.xml", "quirk-no-namespace-no-declaration.xml"];
    let all: Vec<PathBuf> = samples()
        .into_iter()
        .filter(|(n, _)| !quirks.contains(&n.as_str()))
        .map(|(n, _)| crate::common::samples_dir().join(n))
        .collect();
    let (ok, out) = xmllint(&all);
    assert!(ok, "{out}");
    // The quirks are what receivers tolerate and senders must not produce: the schema says no.
    for q in quirks {
        let (ok, out) = xmllint(&[crate::common::samples_dir().join(q)]);
        assert!(!ok, "{q} should not validate: {out}");
    }
}

#[test]
fn the_schema_rejects_what_the_protocol_forbids() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (i, bad) in [
        "<DLSMessage xmlns=\"http://www.siemens.com/DLS\"><Message><Action>CleanUp</Action></Message></DLSMessage>",
        "<DLSMessage xmlns=\"http://www.siemens.com/DLS\"><Message nonce=\"n\"><Action>Teleport</Action></Message></DLSMessage>",
        "<DLSMessage xmlns=\"http://www.siemens.com/DLS\"><Message nonce=\"n\"><Action>CleanUp</Action><ItemList><Item index=\"1\">x</Item></ItemList></Message></DLSMessage>",
        "<WorkpointMessage xmlns=\"http://www.siemens.com/DLS\"><Message nonce=\"n\"><ItemList/></Message></WorkpointMessage>",
        "<WorkpointMessage xmlns=\"http://www.siemens.com/DLS\"><Message nonce=\"n\" maxItems=\"-2\"><ReasonForContact>start-up</ReasonForContact></Message></WorkpointMessage>",
    ]
    .iter()
    .enumerate()
    {
        let f = write(dir.path(), &format!("bad-{i}.xml"), bad);
        let (ok, out) = xmllint(&[f]);
        assert!(!ok, "should be refused: {bad}\n{out}");
    }
}
