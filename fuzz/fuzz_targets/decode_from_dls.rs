//! The phone's side of the codec: any bytes, bare or put inside an XML-DSig envelope —
//! `decode_from_dls` never panics and an error always has an offset inside the input; what
//! decodes re-encodes (without the envelope) to the same message; and a `DLSMessage` that
//! decodes bare decodes to the same message enveloped, when both decode.
#![no_main]

use dls_message::{EncodeOptions, Limits, Message, decode_from_dls, encode};
use libfuzzer_sys::fuzz_target;

const HEAD: &[u8] = b"<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><ds:SignedInfo/>\
<ds:SignatureValue>AA==</ds:SignatureValue><ds:Object Id=\"DLSMessage\">";
const TAIL: &[u8] = b"</ds:Object></ds:Signature>";

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let bare = decode_from_dls(data, &limits);
    match &bare {
        Ok(got) => {
            let xml = encode(&Message::Dls(got.message.clone()), &EncodeOptions::default())
                .expect("a decoded message always encodes");
            let again = decode_from_dls(xml.as_bytes(), &limits).expect("an encoded message always decodes");
            assert_eq!(again.message, got.message);
            assert!(again.envelope.is_none());
        }
        Err(e) => assert!(e.offset() <= data.len()),
    }
    let wrapped = [HEAD, data, TAIL].concat();
    match decode_from_dls(&wrapped, &limits) {
        Ok(inner) => {
            assert!(inner.envelope.is_some());
            if let Ok(bare) = bare
                && bare.envelope.is_none()
            {
                assert_eq!(inner.message, bare.message);
            }
        }
        Err(e) => assert!(e.offset() <= wrapped.len()),
    }
});
