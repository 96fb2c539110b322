//! `--allowed-origins`: which browser pages may open sockets here. A page's `Origin` header is
//! set by the browser and cannot be forged by the page's script, so checking it stops other
//! sites from opening sockets with a visitor's cookies (cross-site WebSocket hijacking).

/// One allowed origin: exact (`https://app.example.com`, `http://localhost:8000`), or a
/// scheme and a domain under which any subdomain is allowed (`https://*.example.com` allows
/// `https://a.example.com` and `https://a.b.example.com`, not `https://example.com`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OriginRule {
    /// This origin exactly (compared case-insensitively, as hosts are).
    Exact(String),
    /// `scheme://` and `.domain`: any host ending in `.domain`.
    Subdomains { scheme: String, suffix: String },
}

impl OriginRule {
    /// Checks `text`: a scheme, `://`, a host (or `*.` and a domain), an optional port, no
    /// path.
    pub(crate) fn new(text: &str) -> Result<Self, String> {
        let lower = text.trim_end_matches('/').to_ascii_lowercase();
        let Some((scheme, host)) = lower.split_once("://") else {
            return Err(
                "an origin is scheme://host[:port], e.g. https://app.example.com".to_owned(),
            );
        };
        if !matches!(scheme, "http" | "https") {
            return Err("an origin's scheme is http or https".to_owned());
        }
        if host.is_empty() || host.contains(['/', '?', '#', '@', ' ']) {
            return Err(
                "an origin has a host and no path, e.g. https://app.example.com".to_owned(),
            );
        }
        match host.strip_prefix("*.") {
            Some(domain) if !domain.is_empty() && !domain.contains('*') => Ok(Self::Subdomains {
                scheme: format!("{scheme}://"),
                suffix: format!(".{domain}"),
            }),
            Some(_) => Err("a wildcard origin looks like https://*.example.com".to_owned()),
            None if host.contains('*') => {
                Err("* may only stand for the first label: https://*.example.com".to_owned())
            }
            None => Ok(Self::Exact(lower)),
        }
    }

    /// Whether a request's `Origin` header value is allowed by this rule.
    pub(crate) fn allows(&self, origin: &str) -> bool {
        let origin = origin.to_ascii_lowercase();
        match self {
            Self::Exact(allowed) => origin == *allowed,
            Self::Subdomains { scheme, suffix } => origin
                .strip_prefix(scheme.as_str())
                .is_some_and(|host| host.len() > suffix.len() && host.ends_with(suffix.as_str())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_wildcard_origins() {
        let exact = OriginRule::new("https://App.example.com").expect("valid");
        assert!(exact.allows("https://app.example.com"));
        assert!(!exact.allows("http://app.example.com"));
        assert!(!exact.allows("https://app.example.com.evil.test"));
        let wild = OriginRule::new("https://*.example.com").expect("valid");
        assert!(wild.allows("https://a.example.com"));
        assert!(wild.allows("https://a.b.example.com"));
        assert!(!wild.allows("https://example.com"));
        assert!(!wild.allows("https://evilexample.com"));
        assert!(!wild.allows("http://a.example.com"));
    }

    #[test]
    fn bad_origins_say_what_an_origin_looks_like() {
        for bad in [
            "example.com",
            "ftp://x",
            "https://a.com/path",
            "https://a.*.com",
            "https://*.",
        ] {
            assert!(OriginRule::new(bad).is_err(), "{bad}");
        }
    }
}
