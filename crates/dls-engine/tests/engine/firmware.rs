//! Software versions and firmware image headers.

use dls_engine::firmware::{
    IMAGE_MAGIC, ImageError, ImageInfo, InfoSource, MAX_IMAGE_HEADER, MAX_VERSION_COMPONENTS, SoftwareVersion,
    applies_to, fake_image, inspect_image, same_version,
};
use proptest::prelude::*;

fn v(s: &str) -> SoftwareVersion {
    SoftwareVersion::parse(s).unwrap_or_else(|| panic!("{s:?} should parse"))
}

#[test]
fn versions_parse_in_every_spelling() {
    for (s, components) in [
        ("V3 R5.12.0", &[3, 5, 12, 0][..]),
        ("V3R5.12.0", &[3, 5, 12, 0]),
        ("v3 r5.12.0", &[3, 5, 12, 0]),
        ("  V3 R5.12.0", &[3, 5, 12, 0]),
        ("V3_R5_12_0", &[3, 5, 12, 0]),
        ("V3 _ R5_12.0", &[3, 5, 12, 0]),
        ("V1 R7.2.0 SIP 191012", &[1, 7, 2, 0]),
        ("V3 R5", &[3, 5]),
        ("V3 R5.", &[3, 5]),
        ("V3 R05.012", &[3, 5, 12]),
        ("V4294967295 R0", &[u32::MAX, 0]),
    ] {
        let parsed = v(s);
        assert_eq!(parsed.components(), components, "{s:?}");
        assert_eq!(parsed.raw(), s);
    }
    let parsed = v("V1 R7.2.0 SIP 191012");
    assert_eq!((parsed.major(), parsed.minor()), (1, 7));
}

#[test]
fn versions_show_canonically() {
    assert_eq!(v("v3r5_12_0").to_string(), "V3 R5.12.0");
    assert_eq!(v("V1 R7.2.0 SIP 191012").to_string(), "V1 R7.2.0");
    assert_eq!(v("V3 R5").to_string(), "V3 R5");
    assert_eq!(v("V03 R005.0012").to_string(), "V3 R5.12");
    assert_eq!("V3R5.1".parse::<SoftwareVersion>().map(|v| v.to_string()), Ok("V3 R5.1".to_owned()));
}

#[test]
fn versions_order_numerically() {
    let ordered = ["V3 R5.12.0", "V3 R5.12.1", "V3 R10.0.0", "V4 R0"].map(v);
    for w in ordered.windows(2) {
        assert!(w[0] < w[1], "{} < {}", w[0], w[1]);
        assert!(w[1] > w[0]);
        assert_ne!(w[0], w[1]);
    }
    assert!(v("V3 R5.9") < v("V3 R5.10"));
    assert!(v("V3 R5.12") < v("V3 R5.12.0.1"));
    assert_eq!(v("V3 R5"), v("V3 R5.0.0"));
    assert_eq!(v("V3 R5").cmp(&v("V3R5_0_0")), std::cmp::Ordering::Equal);
    assert_eq!(v("V3 R5.12.0"), v("v3r5_12"));
    let mut set = std::collections::HashSet::new();
    set.insert(v("V3 R5"));
    assert!(set.contains(&v("V3 R5.0.0.0")));
}

#[test]
fn non_versions_are_refused() {
    let long = format!("V3 R5{}", ".1".repeat(1000));
    let at_limit = format!("V3 R5{}", ".1".repeat(MAX_VERSION_COMPONENTS - 2));
    let over_limit = format!("V3 R5{}", ".1".repeat(MAX_VERSION_COMPONENTS - 1));
    for s in [
        "",
        " ",
        "R5",
        "V",
        "V3",
        "V3 ",
        "V3 R",
        "VR5",
        "3 R5",
        "V 3 R5",
        "V3.R5",
        "V3 R5x",
        "V3 R5.12.0abc",
        "V3 -R5",
        "xV3 R5",
        "V4294967296 R0",
        "V3 R99999999999999999999",
        "V3 R5.4294967296",
        long.as_str(),
        over_limit.as_str(),
    ] {
        assert!(SoftwareVersion::parse(s).is_none(), "{s:?} should not parse");
    }
    assert_eq!(v(&at_limit).components().len(), MAX_VERSION_COMPONENTS);
    assert!(SoftwareVersion::parse(&format!("V3 R5 {}", "x".repeat(2000))).is_none());
    assert!("R5".parse::<SoftwareVersion>().is_err());
}

#[test]
fn versions_from_components() {
    assert_eq!(SoftwareVersion::from_components(&[3, 5, 12, 0]).map(|v| v.to_string()), Some("V3 R5.12.0".into()));
    assert!(SoftwareVersion::from_components(&[3]).is_none());
    assert!(SoftwareVersion::from_components(&[1; MAX_VERSION_COMPONENTS + 1]).is_none());
}

#[test]
fn versions_serialize_canonically() {
    let json = serde_json::to_string(&v("v3r5_12_0")).expect("serializes");
    assert_eq!(json, "\"V3 R5.12.0\"");
    let back: SoftwareVersion = serde_json::from_str("\"V3R5.12.0\"").expect("deserializes");
    assert_eq!(back, v("V3 R5.12.0"));
    assert!(serde_json::from_str::<SoftwareVersion>("\"R5\"").is_err());
}

#[test]
fn same_version_compares_parsed_or_trimmed() {
    assert!(same_version("V3 R5.12.0", "V3R5.12"));
    assert!(same_version("v3 r5.12.0", "V3_R5_12_0 SIP"));
    assert!(!same_version("V3 R5.12.0", "V3 R5.12.1"));
    assert!(same_version(" custom-1 ", "custom-1"));
    assert!(!same_version("custom-1", "custom-2"));
    assert!(!same_version("V3 R5.12.0", "garbage"));
}

#[test]
fn header_round_trip() {
    let image = fake_image(&["OpenStage 60", "OpenStage 80"], "SIP", "V3 R5.12.0", 10_000);
    assert!(image.starts_with(IMAGE_MAGIC));
    let info = inspect_image(&image[..MAX_IMAGE_HEADER], "whatever.img").expect("valid header");
    assert_eq!(info.source, InfoSource::Header);
    assert_eq!(info.device_types, ["OpenStage 60", "OpenStage 80"]);
    assert_eq!(info.software_type.as_deref(), Some("SIP"));
    assert_eq!(info.version, Some(v("V3 R5.12.0")));
    // The header wins over the file name, and a whole image can be given.
    let info2 = inspect_image(&image, "fw_V9R9.9.9.img").expect("valid header");
    assert_eq!(info2, info);
    // Deterministic payload.
    assert_eq!(image, fake_image(&["OpenStage 60", "OpenStage 80"], "SIP", "V3 R5.12.0", 10_000));
    let header_len = image.windows(2).position(|w| w == b"\n\n").expect("terminator") + 2;
    assert_eq!(image.len() - header_len, 10_000);
    // A header of the magic line and the empty line only, and only the header.
    let empty = inspect_image(b"DLS-FIRMWARE-IMAGE 1\n\n", "").expect("valid header");
    assert_eq!(empty, ImageInfo { source: InfoSource::Header, ..ImageInfo::default() });
    let bare = fake_image(&[], "HFA", "V1 R7.2.0 SIP 191012", 0);
    let info = inspect_image(&bare, "").expect("valid header");
    assert!(info.device_types.is_empty());
    assert_eq!(info.version.map(|v| v.to_string()), Some("V1 R7.2.0".to_owned()));
}

#[test]
fn header_details() {
    let head = b"DLS-FIRMWARE-IMAGE 1\nbuild-host: ci-7\nDevice-Type :  OpenStage 40 \ndevice-type: openstage 40\n\
software-version:V3R5.1\n\n\xff\xfe payload";
    let info = inspect_image(head, "").expect("valid header");
    assert_eq!(info.device_types, ["OpenStage 40"]);
    assert_eq!(info.software_type, None);
    assert_eq!(info.version, Some(v("V3 R5.1")));
}

#[test]
fn malformed_headers_are_refused() {
    let mut unterminated = IMAGE_MAGIC.to_vec();
    while unterminated.len() < MAX_IMAGE_HEADER + 100 {
        unterminated.extend_from_slice(b"x-padding: 0123456789\n");
    }
    unterminated.extend_from_slice(b"\npayload");
    assert_eq!(inspect_image(&unterminated, ""), Err(ImageError::Unterminated));
    assert_eq!(inspect_image(b"DLS-FIRMWARE-IMAGE 1\nsoftware-version: V3 R5\n", ""), Err(ImageError::Unterminated));
    assert_eq!(inspect_image(b"DLS-FIRMWARE-IMAGE 1", ""), Err(ImageError::Unterminated));
    assert_eq!(
        inspect_image(b"DLS-FIRMWARE-IMAGE 1\ndevice-type: T\xc3\xa9l\n\n", ""),
        Err(ImageError::NotAscii { offset: 35, byte: 0xc3 })
    );
    assert!(matches!(
        inspect_image(b"DLS-FIRMWARE-IMAGE 1\r\nsoftware-version: V3 R5\r\n\r\n\n", ""),
        Err(ImageError::UnsupportedFormat(_) | ImageError::NotAscii { .. })
    ));
    assert!(matches!(
        inspect_image(b"DLS-FIRMWARE-IMAGE 1\nsoftware-version: V3 R5\r\n\n", ""),
        Err(ImageError::NotAscii { byte: b'\r', .. })
    ));
    assert!(matches!(
        inspect_image(b"DLS-FIRMWARE-IMAGE 1\nsoftware-type:\tSIP\n\n", ""),
        Err(ImageError::NotAscii { byte: b'\t', .. })
    ));
    assert_eq!(
        inspect_image(b"DLS-FIRMWARE-IMAGE 1\nsoftware-version: V3 R5\nsoftware-version: V3 R6\n\n", ""),
        Err(ImageError::Duplicate("software-version"))
    );
    assert_eq!(
        inspect_image(b"DLS-FIRMWARE-IMAGE 1\nsoftware-type: SIP\nsoftware-type: HFA\n\n", ""),
        Err(ImageError::Duplicate("software-type"))
    );
    assert_eq!(
        inspect_image(b"DLS-FIRMWARE-IMAGE 1\nsoftware-version: 3.5.12\n\n", "fw_V3R5.12.0.img"),
        Err(ImageError::BadVersion("3.5.12".to_owned()))
    );
    assert_eq!(
        inspect_image(b"DLS-FIRMWARE-IMAGE 1\nsoftware-version:\n\n", ""),
        Err(ImageError::EmptyValue("software-version"))
    );
    assert_eq!(
        inspect_image(b"DLS-FIRMWARE-IMAGE 1\ndevice-type: A\njust text\n\n", ""),
        Err(ImageError::MalformedLine { line: 3 })
    );
    assert_eq!(inspect_image(b"DLS-FIRMWARE-IMAGE 1\n: value\n\n", ""), Err(ImageError::MalformedLine { line: 2 }));
    assert_eq!(
        inspect_image(b"DLS-FIRMWARE-IMAGE 2\nsoftware-version: V3 R5\n\n", ""),
        Err(ImageError::UnsupportedFormat("2".to_owned()))
    );
    // One-line messages.
    for e in [
        ImageError::Unterminated,
        ImageError::NotAscii { offset: 3, byte: 0 },
        ImageError::Duplicate("software-version"),
        ImageError::BadVersion("x".into()),
        ImageError::MalformedLine { line: 2 },
    ] {
        assert!(!e.to_string().contains('\n'), "{e}");
    }
}

#[test]
fn header_at_the_size_limit() {
    let mut head = IMAGE_MAGIC.to_vec();
    head.extend_from_slice(b"software-version: V3 R5\n");
    head.extend_from_slice(b"x-pad: ");
    let pad = MAX_IMAGE_HEADER - head.len() - 2;
    head.extend(std::iter::repeat_n(b'p', pad));
    head.extend_from_slice(b"\n\n");
    assert_eq!(head.len(), MAX_IMAGE_HEADER);
    assert!(inspect_image(&head, "").is_ok());
    // One byte more and the terminating empty line is past the limit.
    head.insert(head.len() - 5, b'p');
    assert_eq!(inspect_image(&head, ""), Err(ImageError::Unterminated));
}

#[test]
fn file_name_fallback() {
    for (name, expected) in [
        ("OpenStage_SIP_V3R5.12.0.img", "V3 R5.12.0"),
        ("os60_V3_R5_12_0.img", "V3 R5.12.0"),
        ("V3 R5.12.0", "V3 R5.12.0"),
        ("firmware/v3r5.12.0-sip.bin", "V3 R5.12.0"),
        ("C:\\images\\fw-v1_r7_2_0.app", "V1 R7.2.0"),
        ("fw-vendor_V3R5.12.0.img", "V3 R5.12.0"),
    ] {
        let info = inspect_image(b"\x00\x01 opaque vendor bytes", name).expect("no header");
        assert_eq!(info.source, InfoSource::FileName, "{name}");
        assert_eq!(info.version.as_ref().map(ToString::to_string).as_deref(), Some(expected), "{name}");
        assert!(info.device_types.is_empty());
        assert_eq!(info.software_type, None);
    }
    let raw = inspect_image(b"", "os60_V3_R5_12_0.img").expect("no header").version.expect("a version");
    assert_eq!(raw.raw(), "V3_R5_12_0");
    for name in ["firmware.img", "", "rev3r5.img", "V3R5x.img", "image_V3.img", "Ü_V3R99999999999.img"] {
        assert_eq!(inspect_image(b"opaque", name), Ok(ImageInfo::default()), "{name}");
    }
}

#[test]
fn applies_to_device_types() {
    let any = ImageInfo::default();
    assert!(applies_to(&any, "OpenStage 60"));
    let info = inspect_image(&fake_image(&["OpenStage 60", " OpenScape Desk Phone IP 55G "], "SIP", "V3 R5", 0), "")
        .expect("valid header");
    assert!(applies_to(&info, "openstage 60"));
    assert!(applies_to(&info, "  OpenScape Desk Phone IP 55G"));
    assert!(!applies_to(&info, "OpenStage 40"));
    assert!(!applies_to(&info, ""));
}

fn version_string() -> impl Strategy<Value = (Vec<u32>, String)> {
    (
        prop::collection::vec(any::<u32>(), 2..=MAX_VERSION_COMPONENTS),
        any::<bool>(),
        prop::sample::select(vec!["", " ", "_", "  "]),
        prop::sample::select(vec![".", "_"]),
        prop::sample::select(vec!["", " SIP 191012", ".img", "-beta"]),
    )
        .prop_map(|(c, lower, gap, sep, tail)| {
            let (vv, rr) = if lower { ("v", "r") } else { ("V", "R") };
            let rest: String = c[2..].iter().map(|n| format!("{sep}{n}")).collect();
            let s = format!("{vv}{}{gap}{rr}{}{rest}{tail}", c[0], c[1]);
            (c, s)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn inspect_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..5000), name in ".{0,40}") {
        let _ = inspect_image(&bytes, &name);
        let mut with_magic = IMAGE_MAGIC.to_vec();
        with_magic.extend_from_slice(&bytes);
        let _ = inspect_image(&with_magic, &name);
    }

    #[test]
    fn inspect_never_panics_on_header_like_input(
        lines in prop::collection::vec("(device-type|software-type|software-version|x)?:? ?[ -~\u{e9}\r\t]{0,12}\n?", 0..40),
        name in "[a-zA-Z0-9_ .vVrR/-]{0,30}",
    ) {
        let mut head = IMAGE_MAGIC.to_vec();
        head.extend(lines.iter().flat_map(|l| l.bytes()));
        head.extend_from_slice(b"\n\n");
        let _ = inspect_image(&head, &name);
    }

    #[test]
    fn display_then_parse_is_identity((components, s) in version_string()) {
        let parsed = SoftwareVersion::parse(&s).expect("generated versions parse");
        prop_assert_eq!(parsed.components(), &components[..]);
        let shown = parsed.to_string();
        let again = SoftwareVersion::parse(&shown).expect("canonical form parses");
        prop_assert_eq!(again.components(), &components[..]);
        prop_assert_eq!(&again.to_string(), &shown);
        prop_assert_eq!(again.raw(), shown.as_str());
        let built = SoftwareVersion::from_components(&components).expect("valid components");
        prop_assert_eq!(built.to_string(), shown);
    }

    #[test]
    fn order_agrees_with_components(a in prop::collection::vec(0u32..4, 2..6), b in prop::collection::vec(0u32..4, 2..6)) {
        let (va, vb) = (
            SoftwareVersion::from_components(&a).expect("valid"),
            SoftwareVersion::from_components(&b).expect("valid"),
        );
        let pad = |mut v: Vec<u32>| { v.resize(6, 0); v };
        prop_assert_eq!(va.cmp(&vb), pad(a).cmp(&pad(b)));
        prop_assert_eq!(va == vb, va.cmp(&vb).is_eq());
    }
}
