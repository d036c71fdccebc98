//! The phone's side: a `DLSMessage` enveloped in an XML-DSig `Signature` decodes with
//! `decode_from_dls` (saying the signature was not verified), never with `decode`; a malformed
//! envelope is a clear error; the limits count the whole document.

use dls_message::{
    Action, DecodeErrorKind as K, DlsMessage, EncodeOptions, Envelope, Item, ItemStatus, Limits, Message, decode,
    decode_from_dls, encode,
};

use crate::common::{enveloped, signed_sample};

const WRITE: &str = r#"<DLSMessage xmlns="http://www.siemens.com/DLS"><Message nonce="0123456789ABCDEF0123456789ABCDEF"><Action>WriteItems</Action><ItemList><Item name="sip-mobility-state" status="secure">0</Item><Item name="e164">4989700799001</Item><Item name="userdata-phonebook" index="1">cGhvbmVib29r</Item></ItemList></Message></DLSMessage>"#;

fn dls(bytes: &[u8]) -> Result<dls_message::FromDls, dls_message::DecodeError> {
    decode_from_dls(bytes, &Limits::default())
}

fn envelope_error(xml: &str) -> String {
    let e = dls(xml.as_bytes()).expect_err(xml);
    match e.kind() {
        K::Envelope(why) => {
            assert!(e.to_string().starts_with("XML-DSig envelope: "), "{e}");
            why.clone()
        }
        other => panic!("not an envelope error: {other:?} ({e})\n{xml}"),
    }
}

#[test]
fn a_vendor_shaped_signed_reply_decodes_and_says_it_was_not_verified() {
    let got = dls(&signed_sample("dls-signed-mobility-writeitems.xml")).expect("decodes");
    assert_eq!(got.envelope, Some(Envelope::XmlDsigUnverified));
    let m = &got.message;
    assert_eq!(m.header.nonce, "CAA836D42B58A6D7DA134F5DFAACAA64");
    assert_eq!(m.action, Action::WriteItems);
    let items = m.items.as_deref().expect("items");
    assert_eq!(items.len(), 6);
    assert_eq!(items[0], Item::new("sip-mobility-state", "0").with_status(ItemStatus::Other("secure".into())));
    assert_eq!(m.item("e164"), Some("4989700799001"));
    assert_eq!(items[3], Item::indexed("locked-config-menus", 38, "false"));
    // The service's decoder does not accept it.
    let e = decode(&signed_sample("dls-signed-mobility-writeitems.xml")).expect_err("service side");
    assert_eq!(e.kind(), &K::WrongNamespace("http://www.w3.org/2000/09/xmldsig#".into()));
}

#[test]
fn prefixed_and_unprefixed_envelopes_hold_the_same_message() {
    let bare = match decode(WRITE.as_bytes()).expect("bare") {
        Message::Dls(m) => m,
        Message::Workpoint(_) => panic!("kind"),
    };
    let plain = dls(WRITE.as_bytes()).expect("bare, phone side");
    assert_eq!((&plain.message, plain.envelope), (&bare, None));
    for prefix in [None, Some("ds"), Some("dsig")] {
        let xml = enveloped(WRITE, prefix);
        let got = dls(xml.as_bytes()).unwrap_or_else(|e| panic!("{prefix:?}: {e}\n{xml}"));
        assert_eq!(got.message, bare, "{prefix:?}");
        assert_eq!(got.envelope, Some(Envelope::XmlDsigUnverified));
        let service = decode(xml.as_bytes()).expect_err("service side");
        assert!(matches!(service.kind(), K::UnexpectedRoot(_) | K::WrongNamespace(_)), "{service}");
    }
    // A prefixed DLSMessage inside, and one that inherits the default namespace.
    let prefixed =
        WRITE.replace("<DLSMessage xmlns=", "<d:DLSMessage xmlns:d=").replace("</DLSMessage>", "</d:DLSMessage>");
    assert_eq!(dls(enveloped(&prefixed, None).as_bytes()).expect("prefixed inside").message, bare);
    let inherits = WRITE.replace(r#" xmlns="http://www.siemens.com/DLS""#, "");
    assert_eq!(dls(enveloped(&inherits, None).as_bytes()).expect("no namespace inside").message, bare);
    // Comments and white space around the message; KeyInfo left out; the root spelled DlsMessage.
    let spaced = enveloped(&format!("\n  <!-- signed -->\n  {WRITE}\n  <!-- end -->\n"), None)
        .replace(r#"<KeyInfo><X509Data><X509Certificate>Y2VydA==</X509Certificate></X509Data></KeyInfo>"#, "");
    assert_eq!(dls(spaced.as_bytes()).expect("spaced").message, bare);
    let spelled = WRITE.replace("DLSMessage", "DlsMessage");
    assert_eq!(dls(enveloped(&spelled, None).as_bytes()).expect("DlsMessage").message, bare);
}

#[test]
fn an_encoded_message_enveloped_round_trips() {
    let m = DlsMessage::new(
        "ABCDEF0123456789ABCDEF0123456789",
        Action::ReadItems,
        Some(vec![Item::new("userdata-phonebook", ""), Item::indexed("userdata-ldap", 1, "<&>")]),
    );
    let xml = encode(&Message::Dls(m.clone()), &EncodeOptions::default()).expect("encodes");
    assert_eq!(dls(enveloped(&xml, Some("ds")).as_bytes()).expect("decodes").message, m);
}

#[test]
fn a_malformed_envelope_is_a_clear_error() {
    let good = enveloped(WRITE, None);
    let object = format!(r#"<Object Id="DLSMessage">{WRITE}</Object>"#);
    let cases: Vec<(String, &str)> = vec![
        (good.replace(&object, ""), "has no <Object Id=\"DLSMessage\">"),
        (good.replace(&object, &format!("{object}{object}")), "a second <Object>"),
        (good.replace(&object, &format!(r#"<Object Id="other"/>{object}"#)), "Id=\"other\""),
        (good.replace(r#"<Object Id="DLSMessage">"#, "<Object>"), "no Id"),
        (good.replace(&object, r#"<Object Id="DLSMessage"></Object>"#), "is empty"),
        (good.replace(&object, r#"<Object Id="DLSMessage"/>"#), "is empty"),
        (good.replace(WRITE, &format!("{WRITE}{WRITE}")), "after its DLSMessage"),
        (good.replace(WRITE, "<WorkpointMessage/>"), "not a DLSMessage"),
        (good.replace(WRITE, &format!("{WRITE}junk")), "text in <Object>"),
        (good.replace("<SignatureValue>", "junk<SignatureValue>"), "text in <Signature>"),
        (good.replace("<KeyInfo>", "<Manifest/><KeyInfo>"), "unexpected <Manifest>"),
        (good.replace("<KeyInfo>", "<SignedInfo/><KeyInfo>"), "a second <SignedInfo>"),
        (good.replace("<SignatureValue>c2lnbmF0dXJl</SignatureValue>", ""), "no <SignatureValue>"),
        (
            {
                let start = good.find("<SignedInfo>").expect("signed info");
                let end = good.find("</SignedInfo>").expect("end") + "</SignedInfo>".len();
                format!("{}{}", &good[..start], &good[end..])
            },
            "no <SignedInfo>",
        ),
        (good.replace("http://www.w3.org/2000/09/xmldsig#", "http://example.com/other"), "not http://www.w3.org"),
        (good.replace(r#" xmlns="http://www.w3.org/2000/09/xmldsig#""#, ""), "declares no namespace"),
        (enveloped(WRITE, Some("ds")).replace("xmlns:ds=", "xmlns:dx="), "declares no namespace"),
        (r#"<Signature xmlns="http://www.w3.org/2000/09/xmldsig#"/>"#.to_owned(), "is empty"),
    ];
    for (xml, want) in cases {
        let why = envelope_error(&xml);
        assert!(why.contains(want), "{why:?} should say {want:?}\n{xml}");
    }
}

#[test]
fn other_roots_and_broken_documents_are_refused() {
    let start_up = r#"<WorkpointMessage xmlns="http://www.siemens.com/DLS"><Message nonce="n"><ReasonForContact>start-up</ReasonForContact></Message></WorkpointMessage>"#;
    let e = dls(start_up.as_bytes()).expect_err("a phone's message");
    assert_eq!(e.kind(), &K::NotFromDls("WorkpointMessage".into()));
    assert!(e.to_string().contains("want DLSMessage, or an XML-DSig Signature"), "{e}");
    assert_eq!(dls(b"<Foo/>").expect_err("foo").kind(), &K::NotFromDls("Foo".into()));
    // A DTD before the envelope, an entity inside it, something after it, a cut document.
    let good = enveloped(WRITE, None);
    let dtd = good.replacen("<Signature", "<!DOCTYPE Signature [<!ENTITY x \"y\">]><Signature", 1);
    assert_eq!(dls(dtd.as_bytes()).expect_err("dtd").kind(), &K::DoctypeForbidden);
    let entity = good.replace("c2lnbmF0dXJl", "&x;");
    assert_eq!(dls(entity.as_bytes()).expect_err("entity").kind(), &K::UnknownEntity("x".into()));
    let after = format!("{good}<Object/>");
    assert!(matches!(dls(after.as_bytes()).expect_err("after").kind(), K::UnexpectedElement(_)));
    for cut in [good.len() / 3, good.len() / 2, good.len() - 14] {
        assert!(dls(&good.as_bytes()[..cut]).is_err(), "cut at {cut}");
    }
    let mismatched = good.replace("</Object>", "</Objet>");
    assert!(matches!(dls(mismatched.as_bytes()).expect_err("end tag").kind(), K::Syntax(_)));
}

#[test]
fn the_limits_count_the_whole_document() {
    let good = enveloped(WRITE, None);
    // Size.
    let e = decode_from_dls(good.as_bytes(), &Limits::default().max_input_bytes(good.len() - 1)).expect_err("size");
    assert!(matches!(e.kind(), K::TooLarge { .. }));
    assert!(decode_from_dls(good.as_bytes(), &Limits::default().max_input_bytes(good.len())).is_ok());
    // Items: three in the message.
    let e = decode_from_dls(good.as_bytes(), &Limits::default().max_items(2)).expect_err("items");
    assert_eq!(e.kind(), &K::TooManyItems { limit: 2 });
    // Depth: the items stand at 6 in the envelope, at 4 bare.
    assert!(decode_from_dls(WRITE.as_bytes(), &Limits::default().max_depth(4)).is_ok());
    let e = decode_from_dls(good.as_bytes(), &Limits::default().max_depth(5)).expect_err("depth");
    assert_eq!(e.kind(), &K::TooDeep { limit: 5 });
    assert!(decode_from_dls(good.as_bytes(), &Limits::default().max_depth(6)).is_ok());
    assert_eq!(
        decode_from_dls(good.as_bytes(), &Limits::default().max_depth(2)).expect_err("object").kind(),
        &K::TooDeep { limit: 2 }
    );
    // Deep nesting in the parts that are skipped is cut short, early.
    let n = 100_000;
    let deep = good.replace("<DigestValue>AAAA</DigestValue>", &format!("{}{}", "<a>".repeat(n), "</a>".repeat(n)));
    let e = dls(deep.as_bytes()).expect_err("deep");
    assert_eq!(e.kind(), &K::TooDeep { limit: 16 });
    assert!(e.offset() < 1_000, "refused early, at {}", e.offset());
    let deep = good.replace("<Item name=\"e164\">", &format!("{}<Item name=\"e164\">", "<a>".repeat(n)));
    assert!(dls(deep.as_bytes()).is_err());
    // Many items inside the envelope: the item limit, not memory.
    let many = "<Item name=\"k\">v</Item>".repeat(20_001);
    let big = good.replace("<ItemList>", &format!("<ItemList>{many}"));
    assert_eq!(dls(big.as_bytes()).expect_err("many").kind(), &K::TooManyItems { limit: 20_000 });
}
