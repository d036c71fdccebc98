//! Form posts: the body read within [`MAX_FORM`] bytes and the body timeout, decoded
//! (`application/x-www-form-urlencoded`, `form_urlencoded`), and the session's CSRF token
//! checked (the `csrf` field, or the `X-CSRF-Token` header htmx sends) before anything is
//! done with it.

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use zeroize::Zeroizing;

use super::PageError;
use crate::admin::AdminState;
use crate::admin::auth::{CSRF_HEADER, Caller};

/// The largest form body (the console's forms are small: names, a password).
pub(crate) const MAX_FORM: usize = 64 << 10;

/// A decoded form: its fields in order. Values may be secrets (a password): they are
/// wiped when it is dropped.
pub(crate) struct Form(Vec<(String, Zeroizing<String>)>);

impl Form {
    /// The first value of `name` (trimmed of surrounding white space unless a password).
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Every value of `name` (a multiple choice), trimmed, the empty ones left out.
    pub(crate) fn chosen<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0.iter().filter(move |(k, _)| k == name).map(|(_, v)| v.trim()).filter(|v| !v.is_empty())
    }

    /// The profiles a profile chooser (`profile_choice.html`) offers: those `assigned`, in
    /// their order, then the others of `all`.
    pub(crate) fn profile_choices(assigned: &[String], all: impl IntoIterator<Item = String>) -> Vec<String> {
        let mut choices = assigned.to_vec();
        choices.extend(all.into_iter().filter(|p| !assigned.contains(p)));
        choices
    }

    /// The profiles a profile chooser posted (`profile` repeated, in the page's order: the
    /// chosen first, in theirs), the one its "move up" button named (`up`) moved one place
    /// earlier; each once.
    pub(crate) fn ordered_profiles(&self) -> Vec<String> {
        let mut chosen: Vec<String> = Vec::new();
        for p in self.chosen("profile") {
            if !chosen.iter().any(|c| c == p) {
                chosen.push(p.to_owned());
            }
        }
        if let Some(up) = self.get("up").map(str::trim)
            && let Some(at) = chosen.iter().position(|c| c == up)
            && at > 0
        {
            chosen.swap(at - 1, at);
        }
        chosen
    }

    /// Every value of `name`, in order (repeated fields: a table's rows).
    pub(crate) fn all(&self, name: &str) -> Vec<&str> {
        self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect()
    }

    /// A field's value as typed, or empty.
    pub(crate) fn text(&self, name: &str) -> String {
        self.get(name).map(str::trim).unwrap_or_default().to_owned()
    }

    /// A field as a secret (`None` when empty).
    pub(crate) fn secret(&self, name: &str) -> Option<Zeroizing<String>> {
        self.get(name).filter(|v| !v.is_empty()).map(|v| Zeroizing::new(v.to_owned()))
    }
}

/// Reads and decodes a form body, within the limits.
///
/// # Errors
/// `413` over [`MAX_FORM`], `408` too slow, `415` not a form, `400` unreadable.
pub(crate) async fn decode(state: &AdminState, req: Request<Incoming>) -> Result<Form, PageError> {
    let form_type = req.headers().get(hyper::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
        v.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
    });
    if !form_type {
        return Err(PageError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "This is not a form of the console."));
    }
    let bytes = match crate::http::read_body(req, MAX_FORM, state.body_timeout).await {
        Ok(b) => Zeroizing::new(b.to_vec()),
        Err(crate::http::BodyError::TooLarge) => {
            return Err(PageError::new(StatusCode::PAYLOAD_TOO_LARGE, "The form is larger than the console accepts."));
        }
        Err(crate::http::BodyError::Timeout) => {
            return Err(PageError::new(StatusCode::REQUEST_TIMEOUT, "The form was not received in time."));
        }
        Err(crate::http::BodyError::Broken) => {
            return Err(PageError::new(StatusCode::BAD_REQUEST, "The form could not be read."));
        }
    };
    Ok(Form(form_urlencoded::parse(&bytes).map(|(k, v)| (k.into_owned(), Zeroizing::new(v.into_owned()))).collect()))
}

/// Reads a form of the session (see [`decode`]) and checks its CSRF token.
///
/// # Errors
/// As [`decode`]; `403` when the token is missing or wrong (nothing is done).
pub(crate) async fn read(state: &AdminState, caller: &Caller, req: Request<Incoming>) -> Result<Form, PageError> {
    let header = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let form = decode(state, req).await?;
    let given = header.as_deref().or_else(|| form.get("csrf"));
    if !caller.csrf_ok(given) {
        tracing::warn!(account = %caller.account, "console form without its session's CSRF token");
        return Err(PageError::new(
            StatusCode::FORBIDDEN,
            "This form is stale or did not come from the console (its security token is missing or wrong); \
             nothing was changed. Load the page again and retry.",
        ));
    }
    Ok(form)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(fields: &[(&str, &str)]) -> Form {
        Form(fields.iter().map(|(k, v)| ((*k).to_owned(), Zeroizing::new((*v).to_owned()))).collect())
    }

    #[test]
    fn a_move_up_swaps_a_profile_with_the_one_before_and_nothing_else() {
        let chosen = [("profile", "a"), ("profile", "b"), ("profile", "c")];
        assert_eq!(form(&chosen).ordered_profiles(), ["a", "b", "c"]);
        let up = |name: &str| {
            let mut fields = chosen.to_vec();
            fields.push(("up", name));
            form(&fields).ordered_profiles()
        };
        assert_eq!(up("c"), ["a", "c", "b"]);
        assert_eq!(up("b"), ["b", "a", "c"]);
        assert_eq!(up("a"), ["a", "b", "c"], "the first stays first");
        assert_eq!(up("zz"), ["a", "b", "c"], "one not chosen moves nothing");
        assert_eq!(form(&[("profile", "a"), ("profile", " a "), ("profile", "")]).ordered_profiles(), ["a"]);
    }
}
