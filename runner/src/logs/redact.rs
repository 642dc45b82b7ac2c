//! What never reaches a log or a HAR: the values of credential headers (`Authorization`,
//! `Cookie`, `Set-Cookie`, `Proxy-Authorization`) and of URL query parameters whose names look
//! like secrets (`token`, `key`, `sig`, `password`, …). Names stay, so a reader still sees that
//! a value was sent.

use serde_json::{Map, Value};

pub const REDACTED: &str = "[redacted]";

const SECRET_HEADERS: [&str; 4] = [
    "authorization",
    "cookie",
    "set-cookie",
    "proxy-authorization",
];

/// Parts of a query parameter's name that make its value a secret.
const SECRET_NAMES: [&str; 12] = [
    "token",
    "key",
    "sig",
    "password",
    "passwd",
    "pwd",
    "secret",
    "auth",
    "credential",
    "session",
    "jwt",
    "code",
];

/// Headers whose values are URLs (redacted as URLs).
const URL_HEADERS: [&str; 3] = ["location", "referer", "content-location"];

/// A header map (a CDP `Headers` object) with credential values replaced: the credential
/// headers, any header whose name looks like a secret (`X-Api-Key`, `X-Auth-Token`, …), and the
/// secrets inside URL-valued headers.
pub fn headers(raw: &Value) -> Map<String, Value> {
    let Some(object) = raw.as_object() else {
        return Map::new();
    };
    object
        .iter()
        .map(|(name, value)| {
            let lower = name.to_ascii_lowercase();
            let text = value.as_str().unwrap_or_default();
            let value = if SECRET_HEADERS.contains(&lower.as_str()) || is_secret_name(&lower) {
                Value::from(REDACTED)
            } else if URL_HEADERS.contains(&lower.as_str()) {
                Value::from(url(text))
            } else {
                Value::from(text)
            };
            (name.clone(), value)
        })
        .collect()
}

/// Whether a query parameter of this name carries a secret.
pub fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_NAMES.iter().any(|s| name.contains(s))
}

/// `url` with the values of secret-looking query parameters replaced (the fragment is dropped:
/// it never leaves the browser and can hold tokens too).
pub fn url(url: &str) -> String {
    let url = url.split_once('#').map_or(url, |(u, _)| u);
    let url = &without_userinfo(url);
    let Some((base, query)) = url.split_once('?') else {
        return url.to_owned();
    };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if is_secret_name(&decode(name)) => format!("{name}={REDACTED}"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{base}?{}", query.join("&"))
}

/// Free text (a console line, an error message) with every `http(s)://` URL in it redacted as
/// [`url`] does. A URL ends at whitespace or at a quote or bracket.
pub fn text(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    while let Some(found) = ["http://", "https://"]
        .iter()
        .filter_map(|scheme| lower[rest..].find(scheme))
        .min()
    {
        let start = rest + found;
        let len = text[start..]
            .find(|c: char| c.is_whitespace() || "\"'<>()[]{}`".contains(c))
            .unwrap_or(text.len() - start);
        out.push_str(&text[rest..start]);
        out.push_str(&url(&text[start..start + len]));
        rest = start + len;
    }
    out.push_str(&text[rest..]);
    out
}

/// `scheme://user:pass@host…` without its `user:pass@`.
fn without_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

/// A query component, percent- and plus-decoded (lossy; a broken escape stays as it is).
pub fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%'
            && let Some(v) = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(if b == b'+' { b' ' } else { b });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_headers_lose_their_values_and_keep_their_names() {
        let h = headers(&serde_json::json!({
            "Authorization": "Bearer abc", "cookie": "a=b", "Set-Cookie": "s=1",
            "Proxy-Authorization": "Basic x", "Accept": "text/html"
        }));
        for name in [
            "Authorization",
            "cookie",
            "Set-Cookie",
            "Proxy-Authorization",
        ] {
            assert_eq!(h[name], REDACTED, "{name}");
        }
        assert_eq!(h["Accept"], "text/html");
        let h = headers(&serde_json::json!({
            "X-Api-Key": "k", "x-csrf-token": "t", "Referer": "https://a.test/p?token=abc",
            "Location": "https://u:p@b.test/next?sig=s"
        }));
        assert_eq!(h["X-Api-Key"], REDACTED);
        assert_eq!(h["x-csrf-token"], REDACTED);
        assert_eq!(h["Referer"], "https://a.test/p?token=[redacted]");
        assert_eq!(h["Location"], "https://b.test/next?sig=[redacted]");
    }

    #[test]
    fn urls_inside_text_are_redacted() {
        assert_eq!(
            text("went to https://a.test/cb?page=1&token=abc#t then (http://u:p@b.test/?key=k)"),
            "went to https://a.test/cb?page=1&token=[redacted] then (http://b.test/?key=[redacted])"
        );
        assert_eq!(text("no url here ✓"), "no url here ✓");
        assert_eq!(
            text("HTTPS://X.test/?password=1"),
            "HTTPS://X.test/?password=[redacted]"
        );
    }

    #[test]
    fn credentials_in_urls_are_dropped() {
        assert_eq!(url("https://user:pw@a.test/x?q=1"), "https://a.test/x?q=1");
        assert_eq!(url("https://a.test/p@home"), "https://a.test/p@home");
        assert_eq!(url("data:text/plain,a@b"), "data:text/plain,a@b");
    }

    #[test]
    fn secret_query_values_are_replaced_and_others_kept() {
        assert_eq!(
            url("https://a.test/p?q=shoes&access_token=abc&API%5FKey=k&x-amz-signature=s#frag"),
            "https://a.test/p?q=shoes&access_token=[redacted]&API%5FKey=[redacted]&x-amz-signature=[redacted]"
        );
        assert_eq!(url("https://a.test/p"), "https://a.test/p");
        assert_eq!(url("https://a.test/p?flag"), "https://a.test/p?flag");
        assert_eq!(
            url("https://a.test/?password=hunter2"),
            "https://a.test/?password=[redacted]"
        );
    }

    #[test]
    fn decoding_handles_broken_escapes() {
        assert_eq!(decode("a%20b+c"), "a b c");
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz"), "%zz");
    }
}
