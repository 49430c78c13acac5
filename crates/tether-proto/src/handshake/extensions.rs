//! The `Sec-WebSocket-Extensions` grammar (RFC 6455 §9.1):
//! `extension *( "," extension )`, `extension = name *( ";" param )`, `param = token [ "=" value ]`,
//! where a value is a token or a quoted string.

use super::is_token;

/// One extension element: a name and its parameters, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionOffer {
    /// The extension name, such as `permessage-deflate`.
    pub name: String,
    /// Parameters with their (unquoted) values.
    pub params: Vec<(String, Option<String>)>,
}

/// A `Sec-WebSocket-Extensions` value that does not follow the grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedExtensions;

impl std::fmt::Display for MalformedExtensions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("malformed Sec-WebSocket-Extensions")
    }
}

impl std::error::Error for MalformedExtensions {}

/// Parses every `Sec-WebSocket-Extensions` value into its elements. `Err` on syntax errors.
pub fn parse_extensions<'a>(
    values: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<ExtensionOffer>, MalformedExtensions> {
    let mut offers = Vec::new();
    for value in values {
        let value = std::str::from_utf8(value).map_err(|_| MalformedExtensions)?;
        for element in split_outside_quotes(value, ',') {
            let element = element.trim();
            if element.is_empty() {
                continue; // RFC 7230 #rule: empty list elements are allowed and ignored.
            }
            let mut parts = split_outside_quotes(element, ';').into_iter();
            let name = parts.next().unwrap_or_default().trim();
            if !is_token(name) {
                return Err(MalformedExtensions);
            }
            let mut params = Vec::new();
            for part in parts {
                let part = part.trim();
                let (key, value) = match part.split_once('=') {
                    Some((k, v)) => (k.trim(), Some(unquote(v.trim())?)),
                    None => (part, None),
                };
                if !is_token(key) {
                    return Err(MalformedExtensions);
                }
                params.push((key.to_owned(), value));
            }
            offers.push(ExtensionOffer { name: name.to_owned(), params });
        }
    }
    Ok(offers)
}

fn unquote(value: &str) -> Result<String, MalformedExtensions> {
    let unquoted = match value.strip_prefix('"') {
        Some(rest) => rest.strip_suffix('"').ok_or(MalformedExtensions)?.replace('\\', ""),
        None => value.to_owned(),
    };
    if is_token(&unquoted) {
        Ok(unquoted)
    } else {
        Err(MalformedExtensions)
    }
}

fn split_outside_quotes(s: &str, separator: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut in_quotes = false;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            c if c == separator && !in_quotes => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_params_and_quotes() {
        let offers = parse_extensions([
            b"permessage-deflate; client_max_window_bits, permessage-deflate; server_max_window_bits=\"10\"".as_slice(),
            b"foo".as_slice(),
        ])
        .unwrap();
        assert_eq!(offers.len(), 3);
        assert_eq!(offers[0].params, vec![("client_max_window_bits".into(), None)]);
        assert_eq!(offers[1].params, vec![("server_max_window_bits".into(), Some("10".into()))]);
        assert_eq!(offers[2].name, "foo");
    }

    #[test]
    fn rejects_bad_syntax() {
        for bad in ["a b", "x; =1", "x; y=\"open", "x; y=a b", "\u{e9}"] {
            assert!(parse_extensions([bad.as_bytes()]).is_err(), "{bad}");
        }
    }
}
