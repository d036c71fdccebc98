//! Test data in the repository's `tests/` folder.

use std::path::PathBuf;

pub(crate) fn samples_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/samples/wpi"))
}

/// Every sample: (file name, bytes).
pub(crate) fn samples() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(samples_dir())
        .expect("tests/samples/wpi exists")
        .map(|e| e.expect("readable dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .map(|p| {
            let name = p.file_name().expect("file name").to_string_lossy().into_owned();
            let bytes = std::fs::read(&p).expect("readable sample");
            (name, bytes)
        })
        .collect();
    out.sort();
    assert!(out.len() >= 13, "samples missing from tests/samples/wpi");
    out
}

/// The signed samples (`tests/samples/wpi-signed`): what only the phone's side decodes.
pub(crate) fn signed_sample(name: &str) -> Vec<u8> {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/samples/wpi-signed")).join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// `dls_message` (a `DLSMessage` without its XML declaration) enveloped in an XML-DSig
/// `Signature` with `SignedInfo`, `SignatureValue`, `KeyInfo` and the object, its elements
/// prefixed with `prefix` when given.
pub(crate) fn enveloped(dls_message: &str, prefix: Option<&str>) -> String {
    let body =
        dls_message.trim_start().strip_prefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>").unwrap_or(dls_message);
    let (p, decl) = match prefix {
        Some(p) => (format!("{p}:"), format!("xmlns:{p}")),
        None => (String::new(), "xmlns".to_owned()),
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{p}Signature {decl}=\"http://www.w3.org/2000/09/xmldsig#\">\
         <{p}SignedInfo><{p}CanonicalizationMethod Algorithm=\"http://www.w3.org/TR/2001/REC-xml-c14n-20010315\"/>\
         <{p}SignatureMethod Algorithm=\"http://www.w3.org/2000/09/xmldsig#rsa-sha1\"/>\
         <{p}Reference URI=\"#DLSMessage\"><{p}DigestMethod Algorithm=\"http://www.w3.org/2000/09/xmldsig#sha1\"/>\
         <{p}DigestValue>AAAA</{p}DigestValue></{p}Reference></{p}SignedInfo>\n\
         <{p}SignatureValue>c2lnbmF0dXJl</{p}SignatureValue>\n\
         <{p}KeyInfo><{p}X509Data><{p}X509Certificate>Y2VydA==</{p}X509Certificate></{p}X509Data></{p}KeyInfo>\n\
         <{p}Object Id=\"DLSMessage\">{body}</{p}Object></{p}Signature>\n"
    )
}
