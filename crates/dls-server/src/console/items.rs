//! Item tables as forms (a profile's items, a device's overrides): rows of name, index
//! and value, as stored or as typed, read back into items and checked by the same rule
//! as the API ([`dls_message::check`]), the refused row marked. A secret's value
//! ([`dls_engine::secret_items::is_secret`]: a password, a key) is never put in a page:
//! its row is shown empty, and posted empty it keeps the stored value.

use dls_message::Item;

use super::form::Form;

/// The most item rows a form may post (the items are stored whole; the form's body limit
/// bounds them too).
pub(super) const MAX_ROWS: usize = 2_000;
/// Empty rows offered below the items, to add some.
pub(super) const BLANK_ROWS: usize = 3;

/// An item row, as stored or as typed.
pub(super) struct Row {
    pub(super) name: String,
    pub(super) index: String,
    pub(super) value: String,
    /// The message of this row when it was refused.
    pub(super) error: Option<String>,
    /// A secret's value is never put in the page: its row is shown empty, and an empty
    /// value posted for it keeps the stored one.
    pub(super) secret: bool,
}

/// The rows of stored items, a secret's value left out.
pub(super) fn rows_of(items: &[Item]) -> Vec<Row> {
    items
        .iter()
        .map(|i| {
            let secret = dls_engine::secret_items::is_secret(&i.name);
            Row {
                name: i.name.clone(),
                index: i.index.map(|n| n.to_string()).unwrap_or_default(),
                value: if secret { String::new() } else { i.value.clone() },
                error: None,
                secret,
            }
        })
        .collect()
}

/// [`BLANK_ROWS`] empty rows.
pub(super) fn blanks() -> impl Iterator<Item = Row> {
    std::iter::repeat_with(|| Row {
        name: String::new(),
        index: String::new(),
        value: String::new(),
        error: None,
        secret: false,
    })
    .take(BLANK_ROWS)
}

/// The rows a form posted (`item-name`, `item-index`, `item-value` repeated), rows left
/// wholly empty dropped.
///
/// # Errors
/// The message when the columns do not line up or there are more than [`MAX_ROWS`].
pub(super) fn typed_rows(form: &Form) -> Result<Vec<Row>, String> {
    let (names, indexes, values) = (form.all("item-name"), form.all("item-index"), form.all("item-value"));
    if names.len() != indexes.len() || names.len() != values.len() {
        return Err("The form's item rows are incomplete; load the page again.".into());
    }
    if names.len() > MAX_ROWS {
        return Err(format!("At most {MAX_ROWS} items can be edited here."));
    }
    Ok(names
        .iter()
        .zip(&indexes)
        .zip(&values)
        .map(|((n, i), v)| Row {
            name: n.trim().to_owned(),
            index: i.trim().to_owned(),
            value: (*v).to_owned(),
            error: None,
            secret: false,
        })
        .filter(|r| !(r.name.is_empty() && r.index.is_empty() && r.value.is_empty()))
        .collect())
}

/// The items of typed rows; a secret's row posted with an empty value keeps its value in
/// `kept` (the stored items).
///
/// # Errors
/// The page's message for an index that is not a number, its row marked. An item the
/// API's check refuses has its row marked too; the API's call then gives the message.
pub(super) fn items_of(rows: &mut [Row], kept: &[Item]) -> Result<Vec<Item>, String> {
    let mut items = Vec::with_capacity(rows.len());
    for (at, r) in rows.iter_mut().enumerate() {
        let index = if r.index.is_empty() {
            None
        } else if let Ok(i) = r.index.parse::<u32>() {
            Some(i)
        } else {
            r.error = Some("not a number".into());
            return Err(format!(
                "Item {} (#{} in the list): the index {} is not a number from 0 to {}.",
                dls_message::check::quoted(&r.name),
                at + 1,
                dls_message::check::quoted(&r.index),
                u32::MAX
            ));
        };
        let mut value = r.value.clone();
        if value.is_empty()
            && dls_engine::secret_items::is_secret(&r.name)
            && let Some(s) = kept.iter().find(|s| s.name == r.name && s.index == index)
        {
            value.clone_from(&s.value);
        }
        items.push(Item { name: r.name.clone(), index, status: None, value, item_type: None });
    }
    // The API's own check refuses them with its message; here, to mark the row.
    if let Err(e) = dls_message::check::check_items(&items)
        && let Some(r) = rows.get_mut(e.position)
    {
        r.error = Some(e.error.to_string());
    }
    Ok(items)
}

/// Typed rows to show again, what was typed for a secret left out.
pub(super) fn shown_again(rows: &mut [Row]) {
    for r in rows.iter_mut().filter(|r| dls_engine::secret_items::is_secret(&r.name)) {
        r.value.clear();
        r.secret = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, index: &str, value: &str) -> Row {
        Row { name: name.into(), index: index.into(), value: value.into(), error: None, secret: false }
    }

    #[test]
    fn a_secret_is_shown_empty_and_an_empty_secret_keeps_the_stored_value() {
        let stored = vec![Item::new("sip-pwd", "hunter2"), Item::new("e164", "4989")];
        let rows = rows_of(&stored);
        assert_eq!((rows[0].value.as_str(), rows[0].secret), ("", true));
        assert_eq!((rows[1].value.as_str(), rows[1].secret), ("4989", false));
        let mut typed = vec![row("sip-pwd", "", ""), row("e164", "", "4990")];
        let items = items_of(&mut typed, &stored).expect("valid");
        assert_eq!(items[0].value, "hunter2");
        assert_eq!(items[1].value, "4990");
        let mut changed = vec![row("sip-pwd", "", "new")];
        assert_eq!(items_of(&mut changed, &stored).expect("valid")[0].value, "new");
        let mut unkept = vec![row("sip-pwd", "", "")];
        assert_eq!(items_of(&mut unkept, &[]).expect("valid")[0].value, "", "nothing stored to keep");
    }

    #[test]
    fn a_bad_index_or_item_marks_its_row() {
        let mut rows = vec![row("e164", "", "1"), row("function-key-def", "x", "1")];
        let e = items_of(&mut rows, &[]).expect_err("refused");
        assert!(e.contains("#2") && e.contains("not a number"), "{e}");
        assert!(rows[0].error.is_none() && rows[1].error.is_some());
        let mut rows = vec![row("e164", "", "1"), row("", "", "orphan value")];
        items_of(&mut rows, &[]).expect("the API refuses it");
        assert!(rows[0].error.is_none() && rows[1].error.is_some(), "an item without a name is marked");
        let mut typed = vec![row("sip-pwd", "", "typed secret")];
        shown_again(&mut typed);
        assert_eq!((typed[0].value.as_str(), typed[0].secret), ("", true));
    }
}
