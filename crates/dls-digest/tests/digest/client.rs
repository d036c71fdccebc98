//! A test-only Digest client, written from RFC 7616 with the hash crates directly (not the
//! library's helpers), to drive the verifier through cases real clients will not produce.

use md5::Md5;
use sha2::{Digest, Sha256, Sha512_256};

pub(crate) fn h(algorithm: &str, data: &str) -> String {
    let base = algorithm.to_ascii_uppercase();
    let base = base.strip_suffix("-SESS").unwrap_or(&base);
    match base {
        "MD5" => hex::encode(Md5::digest(data.as_bytes())),
        "SHA-256" => hex::encode(Sha256::digest(data.as_bytes())),
        "SHA-512-256" => hex::encode(Sha512_256::digest(data.as_bytes())),
        other => panic!("test client: unknown algorithm {other}"),
    }
}

/// The parameters of one answer; change fields to build odd ones.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub(crate) username: String,
    pub(crate) password: String,
    pub(crate) realm: String,
    pub(crate) nonce: String,
    pub(crate) opaque: Option<String>,
    pub(crate) method: String,
    pub(crate) uri: String,
    pub(crate) algorithm: String,
    /// `None`: an RFC 2069 answer.
    pub(crate) qop: Option<String>,
    pub(crate) nc: u32,
    pub(crate) cnonce: String,
    pub(crate) userhash: bool,
    pub(crate) username_star: bool,
}

impl Answer {
    pub(crate) fn from_challenge(challenge: &str, username: &str, password: &str, uri: &str) -> Self {
        let c = dls_digest::Authorization::parse(challenge.as_bytes()).expect("challenge parses");
        let get = |n: &str| c.param(n).map(str::to_owned);
        Self {
            username: username.to_owned(),
            password: password.to_owned(),
            realm: get("realm").expect("realm"),
            nonce: get("nonce").expect("nonce"),
            opaque: get("opaque"),
            method: "GET".to_owned(),
            uri: uri.to_owned(),
            algorithm: get("algorithm").unwrap_or_else(|| "MD5".to_owned()),
            qop: Some("auth".to_owned()),
            nc: 1,
            cnonce: "f2/wE4q74E6zIJEt".to_owned(),
            userhash: false,
            username_star: false,
        }
    }

    pub(crate) fn nc_hex(&self) -> String {
        format!("{:08x}", self.nc)
    }

    pub(crate) fn response(&self) -> String {
        let alg = &self.algorithm;
        let mut ha1 = h(alg, &format!("{}:{}:{}", self.username, self.realm, self.password));
        if alg.to_ascii_lowercase().ends_with("-sess") {
            ha1 = h(alg, &format!("{ha1}:{}:{}", self.nonce, self.cnonce));
        }
        let ha2 = h(alg, &format!("{}:{}", self.method, self.uri));
        match &self.qop {
            Some(qop) => h(alg, &format!("{ha1}:{}:{}:{}:{qop}:{ha2}", self.nonce, self.nc_hex(), self.cnonce)),
            None => h(alg, &format!("{ha1}:{}:{ha2}", self.nonce)),
        }
    }

    pub(crate) fn header(&self) -> String {
        let user = if self.userhash {
            format!("username=\"{}\", userhash=true", h(&self.algorithm, &format!("{}:{}", self.username, self.realm)))
        } else if self.username_star {
            format!("username*=UTF-8''{}", percent_encode(&self.username))
        } else {
            format!("username=\"{}\"", escape(&self.username))
        };
        let mut s = format!(
            "Digest {user}, realm=\"{}\", nonce=\"{}\", uri=\"{}\", algorithm={}, response=\"{}\"",
            escape(&self.realm),
            self.nonce,
            self.uri,
            self.algorithm,
            self.response()
        );
        if let Some(qop) = &self.qop {
            s += &format!(", qop={qop}, nc={}, cnonce=\"{}\"", self.nc_hex(), self.cnonce);
        }
        if let Some(o) = &self.opaque {
            s += &format!(", opaque=\"{o}\"");
        }
        s
    }
}

pub(crate) fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
