//! Hostile and malformed input: a clear error, never a panic, never unbounded work.

use dls_message::{DecodeErrorKind as K, Limits, decode, decode_with};

fn kind_of(input: &[u8]) -> K {
    decode(input).expect_err("must be refused").kind().clone()
}

const BILLION_LAUGHS: &str = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<WorkpointMessage><Message nonce="n"><ReasonForContact>start-up</ReasonForContact><ItemList><Item name="x">&lol9;</Item></ItemList></Message></WorkpointMessage>"#;

const EXTERNAL_ENTITY: &str = r#"<?xml version="1.0"?>
<!DOCTYPE foo [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>
<WorkpointMessage><Message nonce="n"><ReasonForContact>start-up</ReasonForContact><ItemList><Item name="x">&xxe;</Item></ItemList></Message></WorkpointMessage>"#;

#[test]
fn dtds_are_refused_outright() {
    assert_eq!(kind_of(BILLION_LAUGHS.as_bytes()), K::DoctypeForbidden);
    assert_eq!(kind_of(EXTERNAL_ENTITY.as_bytes()), K::DoctypeForbidden);
    assert_eq!(
        kind_of(b"<!DOCTYPE WorkpointMessage SYSTEM \"http://example.invalid/x.dtd\"><WorkpointMessage/>"),
        K::DoctypeForbidden
    );
}

#[test]
fn entities_other_than_the_predefined_ones_are_refused() {
    let xml = b"<WorkpointMessage><Message nonce=\"n\"><ReasonForContact>start-up</ReasonForContact><ItemList><Item name=\"x\">&nbsp;</Item></ItemList></Message></WorkpointMessage>";
    assert_eq!(kind_of(xml), K::UnknownEntity("nbsp".into()));
    let in_attr = b"<WorkpointMessage><Message nonce=\"&xxe;\"><ReasonForContact>start-up</ReasonForContact></Message></WorkpointMessage>";
    assert!(matches!(kind_of(in_attr), K::Syntax(_)));
}

#[test]
fn character_references_to_illegal_characters_are_refused() {
    for r in ["&#0;", "&#x1;", "&#xD800;", "&#x110000;", "&#xFFFE;", "&#-5;", "&#xZZ;", "&#;"] {
        let xml = format!(
            "<DLSMessage><Message nonce=\"n\"><Action>WriteItems</Action><ItemList><Item name=\"x\">{r}</Item></ItemList></Message></DLSMessage>"
        );
        let e = decode(xml.as_bytes()).expect_err(r);
        assert!(matches!(e.kind(), K::InvalidCharRef(_) | K::Syntax(_)), "{r}: {e}");
    }
}

#[test]
fn deep_nesting_is_cut_short() {
    let n = 100_000;
    let mut xml = String::from("<WorkpointMessage><Message nonce=\"n\"><ReasonForContact>start-up</ReasonForContact>");
    xml.push_str(&"<a>".repeat(n));
    xml.push_str(&"</a>".repeat(n));
    xml.push_str("</Message></WorkpointMessage>");
    let e = decode(xml.as_bytes()).expect_err("too deep");
    assert_eq!(e.kind(), &K::TooDeep { limit: 16 });
    assert!(e.offset() < 200, "refused early, at {}", e.offset());
    // Nesting inside an item is refused at once.
    let inner = format!(
        "<DLSMessage><Message nonce=\"n\"><Action>WriteItems</Action><ItemList><Item name=\"x\">{}</Item></ItemList></Message></DLSMessage>",
        "<b>".repeat(n)
    );
    assert!(matches!(decode(inner.as_bytes()).expect_err("element in item").kind(), K::UnexpectedElement(_)));
}

#[test]
fn oversize_input_is_refused_before_parsing() {
    let mut xml = b"<WorkpointMessage><Message nonce=\"n\"><ReasonForContact>start-up</ReasonForContact><ItemList><Item name=\"x\">".to_vec();
    xml.resize(8 << 20, b'a');
    assert_eq!(kind_of(&xml), K::TooLarge { size: 8 << 20, limit: 1 << 20 });
    assert!(matches!(
        decode_with(b"<WorkpointMessage/>", &Limits::default().max_input_bytes(4)).expect_err("small limit").kind(),
        K::TooLarge { .. }
    ));
}

#[test]
fn too_many_items_are_refused() {
    let items: String = (0..101).map(|i| format!("<Item name=\"i{i}\"/>")).collect();
    let xml = format!(
        "<WorkpointMessage><Message nonce=\"n\"><ReasonForContact>start-up</ReasonForContact><ItemList>{items}</ItemList></Message></WorkpointMessage>"
    );
    let e = decode_with(xml.as_bytes(), &Limits::default().max_items(100)).expect_err("too many");
    assert_eq!(e.kind(), &K::TooManyItems { limit: 100 });
    assert!(decode_with(xml.as_bytes(), &Limits::default().max_items(101)).is_ok());
}

#[test]
fn invalid_utf8_is_refused_with_its_offset() {
    let xml = b"<WorkpointMessage><Message nonce=\"n\"><ReasonForContact>start-up</ReasonForContact><ItemList><Item name=\"x\">\xC3\x28</Item></ItemList></Message></WorkpointMessage>";
    let e = decode(xml).expect_err("not UTF-8");
    assert_eq!(e.kind(), &K::InvalidUtf8);
    assert_eq!(e.offset(), xml.iter().position(|&b| b == 0xC3).expect("bad byte"));
    // Latin-1 declared and used: still refused (UTF-8 only).
    assert_eq!(kind_of(b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><WorkpointMessage><Message nonce=\"\xE9\"/></WorkpointMessage>"), K::InvalidUtf8);
    // Control characters are not XML.
    assert!(matches!(kind_of(b"<WorkpointMessage>\x01</WorkpointMessage>"), K::Syntax(_)));
}

#[test]
fn missing_and_invalid_parts_are_named() {
    let cases: &[(&str, K)] = &[
        (
            "<WorkpointMessage><Message><ReasonForContact>start-up</ReasonForContact></Message></WorkpointMessage>",
            K::MissingAttribute { element: "Message", attribute: "nonce" },
        ),
        (
            "<WorkpointMessage><Message nonce=\"  \"><ReasonForContact>start-up</ReasonForContact></Message></WorkpointMessage>",
            K::InvalidAttribute { element: "Message", attribute: "nonce", value: "  ".into() },
        ),
        (
            "<WorkpointMessage><Message nonce=\"n\"><ReasonForContact>start-up</ReasonForContact><ItemList><Item>v</Item></ItemList></Message></WorkpointMessage>",
            K::MissingAttribute { element: "Item", attribute: "name" },
        ),
        (
            "<WorkpointMessage><Message nonce=\"n\"><ReasonForContact>start-up</ReasonForContact><ItemList><Item name=\"\">v</Item></ItemList></Message></WorkpointMessage>",
            K::MissingAttribute { element: "Item", attribute: "name" },
        ),
        (
            "<WorkpointMessage><Message nonce=\"n\"><ReasonForContact>start-up</ReasonForContact><ItemList><Item name=\"a\" index=\"one\">v</Item></ItemList></Message></WorkpointMessage>",
            K::InvalidAttribute { element: "Item", attribute: "index", value: "one".into() },
        ),
        (
            "<WorkpointMessage><Message nonce=\"n\"><ReasonForContact>start-up</ReasonForContact><ItemList><Item name=\"a\" index=\"-1\">v</Item></ItemList></Message></WorkpointMessage>",
            K::InvalidAttribute { element: "Item", attribute: "index", value: "-1".into() },
        ),
        (
            "<WorkpointMessage><Message nonce=\"n\"><ReasonForContact>start-up</ReasonForContact><ItemList><Item name=\"a\" index=\"+1\">v</Item></ItemList></Message></WorkpointMessage>",
            K::InvalidAttribute { element: "Item", attribute: "index", value: "+1".into() },
        ),
        (
            "<WorkpointMessage><Message nonce=\"n\"><ReasonForContact>start-up</ReasonForContact><ItemList><Item name=\"a\" index=\"4294967296\">v</Item></ItemList></Message></WorkpointMessage>",
            K::InvalidAttribute { element: "Item", attribute: "index", value: "4294967296".into() },
        ),
        (
            "<WorkpointMessage><Message nonce=\"n\" maxItems=\"lots\"><ReasonForContact>start-up</ReasonForContact></Message></WorkpointMessage>",
            K::InvalidAttribute { element: "Message", attribute: "maxItems", value: "lots".into() },
        ),
        ("<WorkpointMessage><Message nonce=\"n\"></Message></WorkpointMessage>", K::MissingElement("ReasonForContact")),
        (
            "<WorkpointMessage><Message nonce=\"n\"><ReasonForContact></ReasonForContact></Message></WorkpointMessage>",
            K::MissingElement("ReasonForContact (text)"),
        ),
        ("<DLSMessage><Message nonce=\"n\"><ItemList/></Message></DLSMessage>", K::MissingElement("Action")),
        ("<WorkpointMessage></WorkpointMessage>", K::MissingElement("Message")),
        ("<WorkpointMessage/>", K::MissingElement("Message")),
        ("", K::MissingElement("root element")),
        ("   ", K::MissingElement("root element")),
        ("<Envelope/>", K::UnexpectedRoot("Envelope".into())),
        (
            "<WorkpointMessage xmlns=\"urn:other\"><Message nonce=\"n\"/></WorkpointMessage>",
            K::WrongNamespace("urn:other".into()),
        ),
        (
            "<WorkpointMessage><Message nonce=\"n\"><Action>WriteItems</Action></Message></WorkpointMessage>",
            K::UnexpectedElement("Action".into()),
        ),
        (
            "<DLSMessage><Message nonce=\"n\"><ReasonForContact>start-up</ReasonForContact></Message></DLSMessage>",
            K::UnexpectedElement("ReasonForContact".into()),
        ),
        (
            "<DLSMessage><Message nonce=\"n\"><Action>CleanUp</Action></Message><Message nonce=\"m\"><Action>CleanUp</Action></Message></DLSMessage>",
            K::UnexpectedElement("Message".into()),
        ),
        (
            "<DLSMessage><Message nonce=\"n\"><Action>CleanUp</Action><ItemList/><ItemList/></Message></DLSMessage>",
            K::UnexpectedElement("ItemList".into()),
        ),
        (
            "<DLSMessage><Message nonce=\"n\"><Action>CleanUp</Action><ItemList><Other/></ItemList></Message></DLSMessage>",
            K::UnexpectedElement("Other".into()),
        ),
        (
            "<DLSMessage><Message nonce=\"n\"><Action>CleanUp</Action></Message></DLSMessage><DLSMessage/>",
            K::UnexpectedElement("DLSMessage".into()),
        ),
        ("<DLSMessage>stray<Message nonce=\"n\"><Action>CleanUp</Action></Message></DLSMessage>", K::UnexpectedText),
        ("<DLSMessage><Message nonce=\"n\"><Action>CleanUp</Action></Message></DLSMessage>trailing", K::UnexpectedText),
    ];
    for (xml, want) in cases {
        let e = decode(xml.as_bytes()).expect_err(xml);
        assert_eq!(e.kind(), want, "{xml}");
        let line = e.to_string();
        assert!(!line.contains('\n') && line.contains("line 1"), "{line}");
    }
}

#[test]
fn syntax_errors_are_reported_not_panicked() {
    for xml in [
        "<WorkpointMessage><Message nonce=\"n\">",
        "<WorkpointMessage><Message nonce=\"n\"></WorkpointMessage>",
        "<WorkpointMessage><Message nonce=\"n\" nonce=\"m\"/></WorkpointMessage>",
        "<WorkpointMessage><Message nonce=n/></WorkpointMessage>",
        "<WorkpointMessage><Message nonce=\"n\"><ReasonForContact>start-up</ReasonForContact><ItemList><Item name=\"a\">x &amp</Item></ItemList></Message></WorkpointMessage>",
        "<WorkpointMessage><!-- -- --></WorkpointMessage>",
        "<WorkpointMessage><![CDATA[x]]></WorkpointMessage>",
        "<",
        "<?xml",
        "\u{FEFF}\u{FEFF}<WorkpointMessage/>",
    ] {
        let e = decode(xml.as_bytes()).expect_err(xml);
        assert!(e.offset() <= xml.len(), "{xml}: offset {}", e.offset());
    }
}

#[test]
fn error_positions_point_at_the_problem() {
    let xml = "<WorkpointMessage>\n  <Message nonce=\"n\">\n    <ReasonForContact>start-up</ReasonForContact>\n    <ItemList><Item index=\"2\">v</Item></ItemList>\n  </Message>\n</WorkpointMessage>";
    let e = decode(xml.as_bytes()).expect_err("no name");
    assert_eq!(e.line(), 4);
    assert_eq!(e.column(), 15);
    assert_eq!(&xml[e.offset()..e.offset() + 5], "<Item");
}
