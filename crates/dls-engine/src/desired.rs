//! Profiles, and their layering into one desired configuration per device.
//!
//! Layers, each overriding the items of the ones before it (an item is identified by its
//! name and index):
//! 1. the profile named [`GLOBAL_PROFILE`], which applies to every device;
//! 2. profiles whose `device-type` matches the type the device reports (by profile name);
//! 3. the profiles assigned to the device (its groups), in the order assigned;
//! 4. the device's own overrides.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use dls_message::{Item, ValueEscaping};

/// The profile that applies to every device.
pub const GLOBAL_PROFILE: &str = "global";

/// A named, ordered list of items, with policies.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Profile {
    /// The name (set from the store, not from a profile file).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// When set, the profile applies to every device reporting this `device-type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_type: Option<String>,
    /// Whether `local-changes` / `inventory-changes` make the service write the desired
    /// configuration back (`true`), or are only recorded (`false`, the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reassert_on_local_changes: Option<bool>,
    /// For early firmware that does not decode `&lt;` `&gt;` `&amp;`: sanitise values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legacy_value_sanitising: Option<bool>,
    /// For phones that pull a provisioning file (HTTP Digest): the file's template, with
    /// `{{mac}}`, `{{item:NAME}}` (the desired value of item NAME) and `{{server}}`
    /// placeholders, values XML-escaped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning_template: Option<String>,
    /// The items, in order.
    #[serde(default, rename = "item")]
    pub items: Vec<Item>,
}

/// A device's desired configuration: the merged items and the policies that apply.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Desired {
    /// The merged items, in order of first appearance.
    pub items: Vec<Item>,
    /// Whether local changes are overwritten with the desired configuration.
    pub reassert_on_local_changes: bool,
    /// How values are escaped for this device.
    #[serde(skip)]
    pub value_escaping: ValueEscaping,
    /// The layers applied, in order (profile names, then `device` for overrides).
    pub layers: Vec<String>,
    /// The provisioning-file template of the last layer that has one.
    #[serde(skip)]
    pub provisioning_template: Option<String>,
}

/// Merges the layers that apply to a device.
#[must_use]
pub fn resolve<'a>(
    profiles: &'a [Profile],
    device_type: Option<&str>,
    assigned: &[String],
    overrides: &'a [Item],
) -> Desired {
    let by_name: HashMap<&str, &Profile> = profiles.iter().map(|p| (p.name.as_str(), p)).collect();
    let mut layers: Vec<&Profile> = Vec::new();
    if let Some(g) = by_name.get(GLOBAL_PROFILE) {
        layers.push(g);
    }
    if let Some(t) = device_type {
        let mut typed: Vec<&Profile> =
            profiles.iter().filter(|p| p.name != GLOBAL_PROFILE && p.device_type.as_deref() == Some(t)).collect();
        typed.sort_by(|a, b| a.name.cmp(&b.name));
        layers.extend(typed);
    }
    for name in assigned {
        if let Some(p) = by_name.get(name.as_str())
            && !layers.iter().any(|l| l.name == p.name)
        {
            layers.push(p);
        }
    }

    let mut out = Desired::default();
    // Where each item key is in `out.items`: keys borrowed from the layers.
    let mut position: HashMap<(&str, Option<u32>), usize> = HashMap::new();
    let mut put = |items: &mut Vec<Item>, item: &'a Item| {
        let item_clean = || Item { status: None, ..item.clone() };
        match position.entry((item.name.as_str(), item.index)) {
            Entry::Occupied(e) => items[*e.get()] = item_clean(),
            Entry::Vacant(e) => {
                e.insert(items.len());
                items.push(item_clean());
            }
        }
    };
    for p in &layers {
        for item in &p.items {
            put(&mut out.items, item);
        }
        if let Some(r) = p.reassert_on_local_changes {
            out.reassert_on_local_changes = r;
        }
        if let Some(t) = &p.provisioning_template {
            out.provisioning_template = Some(t.clone());
        }
        if let Some(l) = p.legacy_value_sanitising {
            out.value_escaping = if l { ValueEscaping::LegacySanitise } else { ValueEscaping::Standard };
        }
        out.layers.push(p.name.clone());
    }
    if !overrides.is_empty() {
        for item in overrides {
            put(&mut out.items, item);
        }
        out.layers.push("device".to_owned());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(name: &str, device_type: Option<&str>, items: &[(&str, Option<u32>, &str)]) -> Profile {
        Profile {
            name: name.into(),
            device_type: device_type.map(Into::into),
            items: items.iter().map(|(n, i, v)| Item { index: *i, ..Item::new(*n, *v) }).collect(),
            ..Profile::default()
        }
    }

    #[test]
    fn layers_override_in_order() {
        let profiles = vec![
            profile("sales", None, &[("sntp-addr", None, "ntp.sales"), ("function-key-def", Some(1), "30")]),
            profile(GLOBAL_PROFILE, None, &[("sntp-addr", None, "ntp.global"), ("country-iso", None, "DE")]),
            profile("os60", Some("OpenStage 60"), &[("country-iso", None, "AT"), ("function-key-def", Some(1), "1")]),
            profile("unused", None, &[("vlan-id", None, "5")]),
        ];
        let d =
            resolve(&profiles, Some("OpenStage 60"), &["sales".into(), "missing".into()], &[Item::new("e164", "100")]);
        let got: Vec<(&str, Option<u32>, &str)> =
            d.items.iter().map(|i| (i.name.as_str(), i.index, i.value.as_str())).collect();
        assert_eq!(
            got,
            vec![
                ("sntp-addr", None, "ntp.sales"),
                ("country-iso", None, "AT"),
                ("function-key-def", Some(1), "30"),
                ("e164", None, "100")
            ]
        );
        assert_eq!(d.layers, vec!["global", "os60", "sales", "device"]);
        // Another type: the typed profile does not apply.
        let d = resolve(&profiles, Some("OpenStage 40"), &[], &[]);
        assert_eq!(d.items.len(), 2);
        assert_eq!(d.layers, vec!["global"]);
    }

    #[test]
    fn profile_files_parse_from_toml_shape() {
        // The shape `dls profile set` reads (TOML there; JSON here, same serde model).
        let p: Profile = serde_json::from_str(
            r#"{"device-type":"OpenStage 60","reassert-on-local-changes":true,"item":[{"name":"sntp-addr","value":"ntp"},{"name":"function-key-def","index":0,"value":"30"}]}"#,
        )
        .expect("parses");
        assert_eq!(p.items[1].index, Some(0));
        assert_eq!(p.reassert_on_local_changes, Some(true));
    }
}
