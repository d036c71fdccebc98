//! Property tests: encode then decode is the identity; decode never panics.

use dls_message::{
    Action, DlsMessage, EncodeOptions, Fragment, Header, Item, ItemStatus, Message, Reason, ReasonForContact,
    ReplyStatus, WorkpointMessage, decode, encode,
};
use dls_message::{Envelope, Limits, decode_from_dls};
use proptest::prelude::*;

use crate::common::enveloped;

/// Any string of characters XML 1.0 can carry, markup and white space included.
fn xml_text() -> impl Strategy<Value = String> {
    let ch = prop_oneof![
        4 => any::<char>().prop_filter("XML 1.0 Char", |c| matches!(*c, '\t' | '\n' | '\r' | ' '..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)),
        2 => prop::sample::select(vec!['<', '>', '&', '"', '\'', ' ', '\t', '\n', '\r', ']', ';', '#']),
        4 => prop::char::range('a', 'z'),
    ];
    prop::collection::vec(ch, 0..40).prop_map(|v| v.into_iter().collect())
}

fn non_empty_text() -> impl Strategy<Value = String> {
    xml_text().prop_filter("non-empty", |s| !s.trim().is_empty())
}

/// An unknown protocol word: no surrounding white space (words are trimmed on decode).
fn other_word() -> impl Strategy<Value = String> {
    "[a-z]{1,6}-x[a-z ]{0,6}[a-z]"
}

fn item_status() -> impl Strategy<Value = ItemStatus> {
    prop_oneof![
        prop::sample::select(vec![
            ItemStatus::Failed,
            ItemStatus::UnknownItem,
            ItemStatus::ReadOnly,
            ItemStatus::InvalidIndex,
            ItemStatus::UnexpectedItem,
            ItemStatus::NotSupported,
            ItemStatus::InvalidData,
            ItemStatus::UndefinedStatus,
        ]),
        other_word().prop_map(ItemStatus::Other),
    ]
}

fn item() -> impl Strategy<Value = Item> {
    (
        xml_text().prop_filter("name", |s| !s.is_empty()),
        any::<Option<u32>>(),
        prop::option::of(item_status()),
        xml_text(),
        prop::option::weighted(0.1, xml_text()),
    )
        .prop_map(|(name, index, status, value, item_type)| Item { name, index, status, value, item_type })
}

fn header() -> impl Strategy<Value = Header> {
    (
        non_empty_text(),
        prop::option::of(-1i64..100_000),
        prop::option::of(prop_oneof![
            Just(Fragment::Next),
            Just(Fragment::Final),
            other_word().prop_map(Fragment::Other)
        ]),
    )
        .prop_map(|(nonce, max_items, fragment)| Header { nonce, max_items, fragment })
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        prop::sample::select(vec![
            Action::ReadAllItems,
            Action::ReadItems,
            Action::WriteItems,
            Action::Restart,
            Action::FileDeployment,
            Action::SoftwareDeployment,
            Action::CleanUp,
            Action::GetNextFragment,
        ]),
        "[A-Z][a-zA-Z]{0,10}".prop_map(Action::Other),
    ]
}

fn reason() -> impl Strategy<Value = ReasonForContact> {
    let value = prop_oneof![
        prop::sample::select(vec![
            Reason::StartUp,
            Reason::LocalChanges,
            Reason::InventoryChanges,
            Reason::Status,
            Reason::Solicited,
            Reason::ReplyTo,
            Reason::CleanUp,
        ]),
        other_word().prop_map(Reason::Other),
    ];
    let status = prop_oneof![
        Just(ReplyStatus::Accepted),
        Just(ReplyStatus::Failed),
        Just(ReplyStatus::Busy),
        other_word().prop_map(ReplyStatus::Other)
    ];
    (value, prop::option::of(action()), prop::option::of(status)).prop_map(|(value, action, status)| ReasonForContact {
        value,
        action,
        status,
    })
}

fn message() -> impl Strategy<Value = Message> {
    let items = || prop::option::of(prop::collection::vec(item(), 0..8));
    prop_oneof![
        (header(), reason(), items()).prop_map(|(header, reason, items)| Message::Workpoint(WorkpointMessage {
            header,
            reason,
            items
        })),
        (header(), action(), items()).prop_map(|(header, action, items)| Message::Dls(DlsMessage {
            header,
            action,
            items
        })),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn encode_then_decode_is_the_identity(msg in message()) {
        let xml = encode(&msg, &EncodeOptions::default()).expect("every generated message is encodable");
        let back = decode(xml.as_bytes()).map_err(|e| TestCaseError::fail(format!("{e}\n{xml}")))?;
        prop_assert_eq!(back, msg);
    }

    #[test]
    fn json_then_message_is_the_identity(msg in message()) {
        let json = serde_json::to_string(&msg).expect("serialises");
        let back: Message = serde_json::from_str(&json).expect("deserialises");
        prop_assert_eq!(back, msg);
    }

    #[test]
    fn enveloped_then_decoded_at_the_phone_is_the_identity(
        (header, action, items) in (header(), action(), prop::option::of(prop::collection::vec(item(), 0..8))),
        prefix in prop::option::of("[a-z]{1,4}"),
    ) {
        let msg = DlsMessage { header, action, items };
        let xml = encode(&Message::Dls(msg.clone()), &EncodeOptions::default()).expect("encodable");
        let bare = decode_from_dls(xml.as_bytes(), &Limits::default()).map_err(|e| TestCaseError::fail(format!("{e}\n{xml}")))?;
        prop_assert_eq!((&bare.message, bare.envelope), (&msg, None));
        let signed = enveloped(&xml, prefix.as_deref());
        let back = decode_from_dls(signed.as_bytes(), &Limits::default()).map_err(|e| TestCaseError::fail(format!("{e}\n{signed}")))?;
        prop_assert_eq!((back.message, back.envelope), (msg, Some(Envelope::XmlDsigUnverified)));
    }

    #[test]
    fn decode_from_dls_never_panics_on_mangled_envelopes(msg in message(), at in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<prop::sample::Index>()) {
        let xml = encode(&msg, &EncodeOptions::default()).expect("encodable");
        let mut signed = enveloped(&xml, Some("ds")).into_bytes();
        let i = at.index(signed.len());
        signed[i] = byte;
        if let Err(e) = decode_from_dls(&signed, &Limits::default()) {
            prop_assert!(e.offset() <= signed.len());
        }
        signed.truncate(cut.index(signed.len()));
        let _ = decode_from_dls(&signed, &Limits::default());
    }

    #[test]
    fn decode_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Err(e) = decode(&bytes) {
            prop_assert!(e.offset() <= bytes.len());
        }
    }

    #[test]
    fn decode_never_panics_on_mangled_messages(msg in message(), at in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<prop::sample::Index>()) {
        let mut xml = encode(&msg, &EncodeOptions::default()).expect("encodable").into_bytes();
        let i = at.index(xml.len());
        xml[i] = byte;
        let _ = decode(&xml);
        xml.truncate(cut.index(xml.len()));
        let _ = decode(&xml);
    }
}

#[test]
fn characters_xml_cannot_carry_are_refused_by_encode() {
    for bad in ["\u{0}", "a\u{1}b", "\u{1F}", "\u{FFFE}", "x\u{FFFF}"] {
        let msg: Message = DlsMessage::new("n", Action::WriteItems, Some(vec![Item::new("x", bad)])).into();
        assert!(encode(&msg, &EncodeOptions::default()).is_err(), "{bad:?}");
    }
    let msg: Message = DlsMessage::new("", Action::CleanUp, None).into();
    assert!(encode(&msg, &EncodeOptions::default()).is_err());
    let msg: Message = DlsMessage::new("n", Action::WriteItems, Some(vec![Item::new("", "v")])).into();
    assert!(encode(&msg, &EncodeOptions::default()).is_err());
}
