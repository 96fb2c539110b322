//! URLs as they may be shown: in errors and logs, never with a secret in them.

use url::Url;

/// Query parameters whose values are secrets (`?token=` carries an access token).
const SECRET_PARAMETERS: [&str; 1] = ["token"];

/// `url` with the value of every secret query parameter replaced by `REDACTED`, for error
/// messages: a refused upgrade must not print the token that was refused.
pub fn redacted(url: &Url) -> Url {
    if !url
        .query_pairs()
        .any(|(name, _)| SECRET_PARAMETERS.contains(&name.as_ref()))
    {
        return url.clone();
    }
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(name, value)| {
            let value = if SECRET_PARAMETERS.contains(&name.as_ref()) {
                "REDACTED".to_owned()
            } else {
                value.into_owned()
            };
            (name.into_owned(), value)
        })
        .collect();
    let mut shown = url.clone();
    shown.query_pairs_mut().clear().extend_pairs(pairs);
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_in_the_query_is_never_shown() {
        let url = Url::parse("ws://h:1/ws/chat/r/?user=ana&token=eyJsecret.part.sig")
            .expect("a valid URL");
        let shown = redacted(&url).to_string();
        assert!(!shown.contains("eyJsecret"), "{shown}");
        assert!(
            shown.contains("user=ana") && shown.contains("token=REDACTED"),
            "{shown}"
        );
    }

    #[test]
    fn a_url_without_secrets_is_shown_as_it_is() {
        let url = Url::parse("ws://h:1/ws/chat/r/?user=ana").expect("a valid URL");
        assert_eq!(redacted(&url), url);
    }
}
