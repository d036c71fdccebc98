//! The phone-shaped samples decode to their expected JSON and survive a round trip.

use dls_message::{EncodeOptions, Message, decode, encode};

use crate::common::{samples, samples_dir};

#[test]
fn every_sample_decodes_to_its_expected_json() {
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(samples_dir().join("expected.json")).expect("expected.json"))
            .expect("JSON");
    let expected = expected.as_object().expect("an object keyed by file name");
    let all = samples();
    assert_eq!(expected.len(), all.len(), "every sample has an expectation");
    for (name, bytes) in all {
        let msg = decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let got = serde_json::to_value(&msg).expect("serialises");
        assert_eq!(&got, expected.get(&name).unwrap_or_else(|| panic!("{name} has no expectation")), "{name}");
    }
}

#[test]
fn decode_encode_decode_is_the_identity_on_every_sample() {
    for (name, bytes) in samples() {
        let first = decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let xml = encode(&first, &EncodeOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let second = decode(xml.as_bytes()).unwrap_or_else(|e| panic!("{name} re-encoded: {e}\n{xml}"));
        assert_eq!(first, second, "{name}");
        // And the canonical form is a fixed point.
        assert_eq!(encode(&second, &EncodeOptions::default()).as_deref(), Ok(xml.as_str()), "{name}");
    }
}

#[test]
fn json_round_trips() {
    for (name, bytes) in samples() {
        let msg = decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let json = serde_json::to_string(&msg).expect("serialises");
        let back: Message = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(back, msg, "{name}");
    }
}

#[test]
fn canonical_form_details() {
    let (_, bytes) = samples().into_iter().find(|(n, _)| n == "dls-quirk-dlsmessage-spelling.xml").expect("sample");
    let xml = encode(&decode(&bytes).expect("decodes"), &EncodeOptions::default()).expect("encodes");
    assert!(
        xml.starts_with(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DLSMessage xmlns=\"http://www.siemens.com/DLS\">"
        ),
        "{xml}"
    );
    assert!(!xml.contains("DlsMessage"));
    // ItemList absent stays absent.
    assert!(!xml.contains("ItemList"), "{xml}");
}

#[test]
fn tolerated_spellings_decode_alike() {
    let canonical = br#"<WorkpointMessage xmlns="http://www.siemens.com/DLS"><Message nonce="AB" maxItems="-1"><ReasonForContact action="WriteItems" status="accepted">reply-to</ReasonForContact><ItemList><Item name="a" index="0">x &lt;y&gt; &amp; z</Item><Item name="b"></Item></ItemList></Message></WorkpointMessage>"#;
    let want = decode(canonical).expect("canonical decodes");
    let variants: [&[u8]; 6] = [
        // BOM, declaration, CRLF, single quotes, attributes reordered, self-closing empty item
        b"\xEF\xBB\xBF<?xml version='1.0' encoding='UTF-8'?>\r\n<WorkpointMessage xmlns='http://www.siemens.com/DLS'>\r\n<Message maxItems='-1' nonce='AB'>\r\n<ReasonForContact status='accepted' action='WriteItems'>reply-to</ReasonForContact>\r\n<ItemList>\r\n<Item index='0' name='a'>x &lt;y&gt; &amp; z</Item>\r\n<Item name='b'/>\r\n</ItemList>\r\n</Message>\r\n</WorkpointMessage>\r\n",
        // no namespace, CDATA and character references
        b"<WorkpointMessage><Message nonce=\"AB\" maxItems=\"-1\"><ReasonForContact action=\"WriteItems\" status=\"accepted\">reply-to</ReasonForContact><ItemList><Item name=\"a\" index=\"0\"><![CDATA[x <y>]]> &#38; &#x7A;</Item><Item name=\"b\"/></ItemList></Message></WorkpointMessage>",
        // a prefixed namespace
        b"<d:WorkpointMessage xmlns:d=\"http://www.siemens.com/DLS\"><d:Message nonce=\"AB\" maxItems=\"-1\"><d:ReasonForContact action=\"WriteItems\" status=\"accepted\">reply-to</d:ReasonForContact><d:ItemList><d:Item name=\"a\" index=\"0\">x &lt;y&gt; &amp; z</d:Item><d:Item name=\"b\"></d:Item></d:ItemList></d:Message></d:WorkpointMessage>",
        // comments and a processing instruction in between, white space around the reason
        b"<!-- hi --><?pi x?><WorkpointMessage><!-- a --><Message nonce=\"AB\" maxItems=\"-1\"><ReasonForContact action=\"WriteItems\" status=\"accepted\">\n  reply-to\n</ReasonForContact><ItemList><Item name=\"a\" index=\"0\">x &lt;y<!-- c -->&gt; &amp; z</Item><Item name=\"b\"/></ItemList></Message></WorkpointMessage><!-- end -->",
        // an unknown element from newer firmware is skipped
        b"<WorkpointMessage><Message nonce=\"AB\" maxItems=\"-1\"><Future a=\"1\"><Deeper/>text</Future><ReasonForContact action=\"WriteItems\" status=\"accepted\">reply-to</ReasonForContact><ItemList><Item name=\"a\" index=\"0\">x &lt;y&gt; &amp; z</Item><Item name=\"b\"/></ItemList></Message></WorkpointMessage>",
        // apostrophe and quote entities in an attribute of no interest, empty element written in full
        b"<WorkpointMessage xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:schemaLocation=\"http://www.siemens.com/DLS\"><Message nonce=\"AB\" maxItems=\" -1 \" other=\"&apos;&quot;\"><ReasonForContact action=\"WriteItems\" status=\"accepted\">reply-to</ReasonForContact><ItemList><Item name=\"a\" index=\"0\">x &lt;y&gt; &amp; z</Item><Item name=\"b\"></Item></ItemList></Message></WorkpointMessage>",
    ];
    for (i, v) in variants.iter().enumerate() {
        assert_eq!(decode(v).as_ref(), Ok(&want), "variant {i}");
    }
}

#[test]
fn values_are_taken_exactly() {
    let xml = "<DLSMessage><Message nonce=\"n\"><Action>WriteItems</Action><ItemList><Item name=\"v\">  two  spaces\n\tand tab  </Item><Item name=\"cr\">a&#13;b</Item></ItemList></Message></DLSMessage>";
    let msg = decode(xml.as_bytes()).expect("decodes");
    let items = msg.items().expect("items");
    assert_eq!(items[0].value, "  two  spaces\n\tand tab  ");
    assert_eq!(items[1].value, "a\rb");
}

#[test]
fn unknown_words_are_kept_not_refused() {
    use dls_message::{Action, ItemStatus, Reason, ReplyStatus};
    let xml = br#"<WorkpointMessage><Message nonce="n" fragment="later"><ReasonForContact action="Teleport" status="maybe">new-reason</ReasonForContact><ItemList><Item name="x" status="on fire"/></ItemList></Message></WorkpointMessage>"#;
    let Message::Workpoint(m) = decode(xml).expect("decodes") else { panic!("kind") };
    assert_eq!(m.reason.value, Reason::Other("new-reason".into()));
    assert_eq!(m.reason.action, Some(Action::Other("Teleport".into())));
    assert_eq!(m.reason.status, Some(ReplyStatus::Other("maybe".into())));
    assert_eq!(m.items.expect("items")[0].status, Some(ItemStatus::Other("on fire".into())));
    assert_eq!(m.header.fragment, Some(dls_message::Fragment::Other("later".into())));
}

#[test]
fn legacy_sanitising_is_opt_in() {
    use dls_message::{Action, DlsMessage, Item, ValueEscaping};
    let msg: Message =
        DlsMessage::new("n", Action::WriteItems, Some(vec![Item::new("display-id-unicode", "A & B <C>")])).into();
    let standard = encode(&msg, &EncodeOptions::default()).expect("encodes");
    assert!(standard.contains(">A &amp; B &lt;C&gt;</Item>"), "{standard}");
    let legacy =
        encode(&msg, &EncodeOptions::default().with_value_escaping(ValueEscaping::LegacySanitise)).expect("encodes");
    assert!(legacy.contains(">A + B (C)</Item>"), "{legacy}");
    assert!(!legacy.contains('&'), "{legacy}");
}
