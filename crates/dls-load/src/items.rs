//! The fleet's phones: their MACs, their items (from the built-in `data/fleet.toml`), and the
//! fixed bodies of a baseline interaction.

use std::sync::OnceLock;

use dls_message::{
    Action, EncodeOptions, Fragment, Header, Item, MacAddr, Message, Reason, ReasonForContact, ReplyStatus,
    WorkpointMessage,
};
use dls_workpoint::{ClientError, Phone};
use serde::Deserialize;

/// The fleet data, built in.
const FLEET_TOML: &str = include_str!("../data/fleet.toml");

/// Phone `index` of a fleet starting at `first`: the MAC plus `index`, within 48 bits.
#[must_use]
pub fn fleet_mac(first: MacAddr, index: usize) -> MacAddr {
    let o = first.octets();
    let base = o.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    let n = base.wrapping_add(u64::try_from(index).unwrap_or(u64::MAX)) & 0xFFFF_FFFF_FFFF;
    let b = n.to_be_bytes();
    MacAddr::from_bytes([b[2], b[3], b[4], b[5], b[6], b[7]])
}

/// The built-in fleet data does not parse (a build with a broken `data/fleet.toml`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the built-in fleet data (data/fleet.toml) is malformed: {0}")]
pub struct FleetDataError(String);

/// A value of the fleet data, its placeholders found.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Template(Vec<Part>);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    Var(Var),
}

/// What a placeholder names (see `data/fleet.toml`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Var {
    Ext,
    E164,
    Subnet,
    Host,
    Key,
    Module,
    Line,
    Blf,
}

impl Var {
    fn parse(name: &str, key: bool) -> Option<Self> {
        let v = match name {
            "ext" => Self::Ext,
            "e164" => Self::E164,
            "subnet" => Self::Subnet,
            "host" => Self::Host,
            "key" => Self::Key,
            "module" => Self::Module,
            "line" => Self::Line,
            "blf" => Self::Blf,
            _ => return None,
        };
        (key || matches!(v, Self::Ext | Self::E164 | Self::Subnet | Self::Host)).then_some(v)
    }
}

/// The values a phone's placeholders take.
struct Values {
    ext: usize,
    e164: String,
    subnet: usize,
    host: usize,
    /// For a function key: its number.
    key: u32,
}

impl Values {
    fn new(index: usize) -> Self {
        let ext = 10_000 + index % 90_000;
        Self { ext, e164: format!("49897007{ext:05}"), subnet: (index / 250) % 250, host: (index % 250) + 2, key: 0 }
    }
}

impl Template {
    /// `{name}` placeholders (`key`: also those of function keys); any other brace refused.
    fn parse(text: &str, key: bool) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find(['{', '}']) {
            let (before, after) = rest.split_at(open);
            if !before.is_empty() {
                parts.push(Part::Text(before.to_owned()));
            }
            let var = after
                .strip_prefix('{')
                .and_then(|a| a.split_once('}'))
                .and_then(|(name, tail)| Var::parse(name, key).map(|v| (v, tail)));
            let Some((var, tail)) = var else { return Err(format!("{text:?}: not a placeholder here")) };
            parts.push(Part::Var(var));
            rest = tail;
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Self(parts))
    }

    fn render(&self, v: &Values) -> String {
        let mut out = String::new();
        for part in &self.0 {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Var(Var::Ext) => out.push_str(&v.ext.to_string()),
                Part::Var(Var::E164) => out.push_str(&v.e164),
                Part::Var(Var::Subnet) => out.push_str(&v.subnet.to_string()),
                Part::Var(Var::Host) => out.push_str(&v.host.to_string()),
                Part::Var(Var::Key) => out.push_str(&v.key.to_string()),
                Part::Var(Var::Module) => out.push_str(if v.key > 1000 { "Module" } else { "Key" }),
                Part::Var(Var::Line) => out.push_str(&(v.ext + v.key as usize % 100).to_string()),
                Part::Var(Var::Blf) => out.push_str(&(10_000 + v.key).to_string()),
            }
        }
        out
    }
}

/// `data/fleet.toml` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFleet {
    items: Vec<(String, String)>,
    codecs: Vec<(String, String)>,
    #[serde(rename = "function-keys")]
    function_keys: RawKeys,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeys {
    ranges: Vec<(u32, u32)>,
    kinds: Vec<RawKind>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawKind {
    def: String,
    label: String,
    #[serde(default)]
    select_dial: String,
    #[serde(default)]
    blf_monitored_phone: String,
}

/// One kind of function key.
#[derive(Debug)]
struct KeyKind {
    def: String,
    label: Template,
    select_dial: Template,
    blf_monitored_phone: Template,
}

/// The items of the fleet's phones, from the built-in `data/fleet.toml`: as an OpenStage 60
/// with one key module reports them, about 350 beyond the identity items of [`Phone::new`],
/// the values varying with the phone where a real fleet's do (numbers, addresses, labels).
#[derive(Debug)]
pub struct FleetTemplate {
    items: Vec<(String, Template)>,
    codecs: Vec<(String, String)>,
    keys: Vec<u32>,
    kinds: Vec<KeyKind>,
}

impl FleetTemplate {
    /// The built-in fleet data, parsed once.
    ///
    /// # Errors
    /// [`FleetDataError`] if it does not parse (a broken build: a unit test checks it).
    pub fn builtin() -> Result<&'static Self, FleetDataError> {
        static PARSED: OnceLock<Result<FleetTemplate, FleetDataError>> = OnceLock::new();
        PARSED.get_or_init(|| Self::parse(FLEET_TOML).map_err(FleetDataError)).as_ref().map_err(Clone::clone)
    }

    fn parse(text: &str) -> Result<Self, String> {
        let raw: RawFleet = toml::from_str(text).map_err(|e| e.to_string())?;
        let items = raw
            .items
            .into_iter()
            .map(|(name, value)| Ok((name, Template::parse(&value, false)?)))
            .collect::<Result<Vec<_>, String>>()?;
        let mut keys = Vec::new();
        for (from, to) in raw.function_keys.ranges {
            if from > to || to - from >= 10_000 {
                return Err(format!("function-keys: bad range {from}..={to}"));
            }
            keys.extend(from..=to);
        }
        if raw.function_keys.kinds.is_empty() {
            return Err("function-keys: no kinds".into());
        }
        let kinds = raw
            .function_keys
            .kinds
            .into_iter()
            .map(|k| {
                Ok(KeyKind {
                    def: k.def,
                    label: Template::parse(&k.label, true)?,
                    select_dial: Template::parse(&k.select_dial, true)?,
                    blf_monitored_phone: Template::parse(&k.blf_monitored_phone, true)?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Self { items, codecs: raw.codecs, keys, kinds })
    }

    /// The items of fleet phone `index` beyond the identity items of [`Phone::new`].
    #[must_use]
    pub fn items(&self, index: usize) -> Vec<Item> {
        let mut v = Values::new(index);
        let mut items = Vec::with_capacity(self.items.len() + 2 * self.codecs.len() + 5 * self.keys.len());
        for (name, value) in &self.items {
            items.push(Item::new(name.as_str(), value.render(&v)));
        }
        for (i, (codec, rank)) in (1..).zip(&self.codecs) {
            items.push(Item::indexed("codec-type", i, codec.as_str()));
            items.push(Item::indexed("codec-rank", i, rank.as_str()));
        }
        for &key in &self.keys {
            v.key = key;
            // Not empty: checked when parsed.
            let kind = &self.kinds[key as usize % self.kinds.len()];
            let label = kind.label.render(&v);
            items.push(Item::indexed("function-key-def", key, kind.def.as_str()));
            items.push(Item::indexed("key-label-unicode", key, label.as_str()));
            items.push(Item::indexed("key-label-unicode-2", key, label));
            items.push(Item::indexed("select-dial", key, kind.select_dial.render(&v)));
            items.push(Item::indexed("blf-monitored-phone", key, kind.blf_monitored_phone.render(&v)));
        }
        items
    }

    /// Fleet phone `index`: the identity items of [`Phone::new`] and [`items`](Self::items).
    #[must_use]
    pub fn phone(&self, first: MacAddr, index: usize) -> Phone {
        Phone::with_items(fleet_mac(first, index), self.items(index))
    }
}

/// The bodies of a baseline interaction, in order: phone 0's `start-up` message, its
/// whole inventory as the reply to `ReadAllItems` (one message: it fits in 50 kB), and an
/// empty reply to `WriteItems` (every item accepted) — the requests a first start-up with a
/// configuration to write posts, with their sizes. The bodies are fixed: the baseline
/// server does not read them.
///
/// # Errors
/// [`ClientError::Protocol`] if a body cannot be encoded (not with these items).
pub fn baseline_bodies(first: MacAddr) -> Result<Vec<Vec<u8>>, ClientError> {
    let phone = FleetTemplate::builtin().map_err(|e| ClientError::Protocol(e.to_string()))?.phone(first, 0);
    let nonce = dls_workpoint::new_nonce();
    let message = |reason: ReasonForContact, items: Vec<Item>| WorkpointMessage {
        header: Header { nonce: nonce.clone(), max_items: Some(phone.max_items), fragment: Some(Fragment::Final) },
        reason,
        items: Some(items),
    };
    [
        message(ReasonForContact::new(Reason::StartUp), phone.basic_items()),
        message(ReasonForContact::reply_to(Action::ReadAllItems, ReplyStatus::Accepted), phone.reported_items()),
        message(ReasonForContact::reply_to(Action::WriteItems, ReplyStatus::Accepted), Vec::new()),
    ]
    .into_iter()
    .map(|m| {
        dls_message::encode(&Message::Workpoint(m), &EncodeOptions::default())
            .map(String::into_bytes)
            .map_err(|e| ClientError::Protocol(format!("baseline body not encodable: {e}")))
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_fleet_data_parses_and_has_what_the_generator_needs() {
        let t = FleetTemplate::builtin().expect("data/fleet.toml parses");
        assert!(t.items.len() > 100, "{} items", t.items.len());
        for name in ["e164", "sip-user-id", "sip-pwd", "ip-addr", "dls-addr", "admin-pwd"] {
            assert!(t.items.iter().any(|(n, _)| n == name), "{name}");
        }
        assert_eq!(t.codecs.len(), 5);
        assert_eq!(t.keys.len(), 9 + 36);
        assert_eq!((t.keys.first(), t.keys.last()), (Some(&1), Some(&1036)));
        assert_eq!(t.kinds.len(), 5);
        assert!(
            t.kinds.iter().any(|k| !k.select_dial.0.is_empty())
                && t.kinds.iter().any(|k| !k.blf_monitored_phone.0.is_empty())
        );
        assert!(std::ptr::eq(t, FleetTemplate::builtin().expect("again")), "parsed once");
    }

    #[test]
    fn placeholders_are_replaced_per_phone() {
        let t = FleetTemplate::builtin().expect("parses");
        let items = t.items(251);
        let get = |name: &str, index: Option<u32>| {
            items.iter().find(|i| i.name == name && i.index == index).map(|i| i.value.as_str())
        };
        assert_eq!(get("e164", None), Some("4989700710251"));
        assert_eq!(get("display-id-unicode", None), Some("Desk 10251"));
        assert_eq!(get("ip-addr", None), Some("10.20.1.3"));
        assert_eq!(get("default-route", None), Some("10.20.1.1"));
        assert_eq!(get("codec-rank", Some(3)), Some("3"));
        assert_eq!(get("key-label-unicode", Some(5)), Some("Line 10256"));
        assert_eq!(get("key-label-unicode-2", Some(1001)), Some("Module 1001"));
        assert_eq!(get("select-dial", Some(1001)), Some("49897001001"));
        assert_eq!(get("select-dial", Some(5)), Some(""));
        assert_eq!(get("blf-monitored-phone", Some(7)), Some("4989700710007"));
        assert_eq!(get("key-label-unicode", Some(8)), Some("Pickup"));
        assert_eq!(get("function-key-def", Some(9)), Some("0"));
    }

    #[test]
    fn malformed_fleet_data_is_refused() {
        for (text, want) in [
            (
                "items = [[\"a\", \"{key}\"]]\ncodecs = []\n[function-keys]\nranges = []\nkinds = [{ def = \"0\", label = \"\" }]\n",
                "not a placeholder",
            ),
            (
                "items = [[\"a\", \"{ext\"]]\ncodecs = []\n[function-keys]\nranges = []\nkinds = [{ def = \"0\", label = \"\" }]\n",
                "not a placeholder",
            ),
            (
                "items = [[\"a\", \"b}\"]]\ncodecs = []\n[function-keys]\nranges = []\nkinds = [{ def = \"0\", label = \"\" }]\n",
                "not a placeholder",
            ),
            (
                "items = []\ncodecs = []\n[function-keys]\nranges = [[9, 1]]\nkinds = [{ def = \"0\", label = \"\" }]\n",
                "bad range",
            ),
            ("items = []\ncodecs = []\n[function-keys]\nranges = [[1, 9]]\nkinds = []\n", "no kinds"),
            ("items = []\ncodecs = []\nextra = 1\n[function-keys]\nranges = []\nkinds = []\n", "unknown field"),
        ] {
            let e = FleetTemplate::parse(text).expect_err(text);
            assert!(e.contains(want), "{text:?}: {e}");
        }
        let t = FleetTemplate::parse(
            "items = [[\"a\", \"x{ext}y{e164}\"]]\ncodecs = []\n[function-keys]\nranges = [[1001, 1001]]\nkinds = [{ def = \"7\", label = \"{module}{key}{line}{blf}\" }]\n",
        )
        .expect("parses");
        let items = t.items(0);
        assert_eq!(items[0].value, "x10000y4989700710000");
        assert_eq!(items[2].value, "Module10011000111001");
    }
}
