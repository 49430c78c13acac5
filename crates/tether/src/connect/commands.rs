//! What a prompt line means: a text message, or a `/command` ([`Action`]), parsed and checked
//! before anything is sent, so a typo never reaches the server.
//!
//! Pure functions without I/O (reading a `/file` is the prompt thread's job), tested line by line.

use std::path::PathBuf;

use tether_proto::close::MAX_REASON_BYTES;
use tether_tokio::CloseCode;

/// What the user asked for at the prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Action {
    Text(String),
    Binary(Vec<u8>),
    /// Read by the prompt thread (blocking file I/O belongs there) and sent as [`Action::Binary`].
    File(PathBuf),
    Ping(Vec<u8>),
    Close(CloseCode, String),
    Quit,
}

/// A parsed prompt line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Parsed {
    /// An empty line: sending empty messages by accident helps nobody.
    Nothing,
    Help,
    Do(Action),
}

pub(super) const COMMANDS: &str = "\
commands:
  /ping [DATA]            send a ping
  /close [CODE [REASON]]  close (default 1000) and exit when the server answers
  /binary HEX             send a binary message, e.g. /binary 01 02 ff
  /file PATH              send a file as one binary message
  /quit                   close with 1000 and exit (also Ctrl-D, Ctrl-C)
  //TEXT                  send TEXT starting with one '/'
anything else is sent as a text message";

/// Parses one prompt line. Errors are messages for the user, shown without sending anything.
pub(super) fn parse_line(line: &str) -> Result<Parsed, String> {
    if let Some(rest) = line.strip_prefix("//") {
        return Ok(Parsed::Do(Action::Text(format!("/{rest}"))));
    }
    let Some(command) = line.strip_prefix('/') else {
        return Ok(if line.is_empty() { Parsed::Nothing } else { Parsed::Do(Action::Text(line.to_owned())) });
    };
    let (name, arg) = match command.split_once(char::is_whitespace) {
        Some((name, arg)) => (name, arg.trim()),
        None => (command, ""),
    };
    let action = match name {
        "ping" => {
            if arg.len() > 125 {
                return Err(format!("a ping carries at most 125 bytes, this is {}", arg.len()));
            }
            Action::Ping(arg.as_bytes().to_vec())
        }
        "close" => {
            let (code, reason) = parse_close_args(arg)?;
            Action::Close(code, reason)
        }
        "binary" => {
            if arg.is_empty() {
                return Err("usage: /binary HEX, e.g. /binary 01 02 ff".into());
            }
            Action::Binary(parse_hex(arg)?)
        }
        "file" => {
            if arg.is_empty() {
                return Err("usage: /file PATH".into());
            }
            Action::File(PathBuf::from(arg))
        }
        "quit" | "exit" => Action::Quit,
        "help" | "?" => return Ok(Parsed::Help),
        _ => return Err(format!("unknown command /{name}; /help lists them, //{name} sends the text /{name}")),
    };
    Ok(Parsed::Do(action))
}

/// `[CODE [REASON]]` of `/close`, checked the way the protocol will: only codes that may appear on
/// the wire, and a reason that fits in a control frame.
fn parse_close_args(arg: &str) -> Result<(CloseCode, String), String> {
    if arg.is_empty() {
        return Ok((CloseCode::NORMAL, String::new()));
    }
    let (code, reason) = match arg.split_once(char::is_whitespace) {
        Some((code, reason)) => (code, reason.trim()),
        None => (arg, ""),
    };
    let code: u16 = code.parse().map_err(|_| format!("not a close code: {code:?}"))?;
    let code = CloseCode(code);
    if !code.is_valid_on_wire() {
        return Err(format!("close code {code} may not be sent: use 1000-1003, 1007-1014 or 3000-4999"));
    }
    if reason.len() > MAX_REASON_BYTES {
        return Err(format!("a close reason has at most {MAX_REASON_BYTES} bytes, this one {}", reason.len()));
    }
    Ok((code, reason.to_owned()))
}

/// Parses hex digits, allowing whitespace, `:` and `-` between bytes and an optional `0x`.
fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let text = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")).unwrap_or(text);
    let digits: Vec<char> = text.chars().filter(|c| !(c.is_whitespace() || *c == ':' || *c == '-')).collect();
    if let Some(bad) = digits.iter().find(|c| !c.is_ascii_hexdigit()) {
        return Err(format!("not a hex digit: {bad:?}"));
    }
    if !digits.len().is_multiple_of(2) {
        return Err("an odd number of hex digits: each byte takes two".into());
    }
    digits
        .chunks(2)
        .map(|pair| {
            let byte: String = pair.iter().collect();
            u8::from_str_radix(&byte, 16).map_err(|e| e.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse() {
        assert_eq!(parse_line(""), Ok(Parsed::Nothing));
        assert_eq!(parse_line("hello"), Ok(Parsed::Do(Action::Text("hello".into()))));
        assert_eq!(parse_line("//etc"), Ok(Parsed::Do(Action::Text("/etc".into()))));
        assert_eq!(parse_line("/ping"), Ok(Parsed::Do(Action::Ping(vec![]))));
        assert_eq!(parse_line("/ping are you there"), Ok(Parsed::Do(Action::Ping(b"are you there".to_vec()))));
        assert!(parse_line(&format!("/ping {}", "x".repeat(126))).is_err());
        assert_eq!(parse_line("/close"), Ok(Parsed::Do(Action::Close(CloseCode::NORMAL, String::new()))));
        assert_eq!(parse_line("/close 4000 bye now"), Ok(Parsed::Do(Action::Close(CloseCode(4000), "bye now".into()))));
        assert!(parse_line("/close 1006").is_err(), "1006 never goes on the wire");
        assert!(parse_line("/close abc").is_err());
        assert!(parse_line(&format!("/close 1000 {}", "r".repeat(124))).is_err());
        assert_eq!(parse_line("/binary 01 02 ff"), Ok(Parsed::Do(Action::Binary(vec![1, 2, 255]))));
        assert!(parse_line("/binary").is_err());
        assert_eq!(parse_line("/file /tmp/x y"), Ok(Parsed::Do(Action::File("/tmp/x y".into()))));
        assert!(parse_line("/file").is_err());
        assert_eq!(parse_line("/quit"), Ok(Parsed::Do(Action::Quit)));
        assert_eq!(parse_line("/help"), Ok(Parsed::Help));
        assert!(parse_line("/frobnicate").unwrap_err().contains("//frobnicate"));
    }

    #[test]
    fn hex_parses_with_separators_and_rejects_garbage() {
        assert_eq!(parse_hex("0xDEADbeef"), Ok(vec![0xde, 0xad, 0xbe, 0xef]));
        assert_eq!(parse_hex("de:ad-be ef"), Ok(vec![0xde, 0xad, 0xbe, 0xef]));
        assert!(parse_hex("abc").unwrap_err().contains("odd"));
        assert!(parse_hex("zz").unwrap_err().contains("'z'"));
        assert_eq!(parse_hex("é").unwrap_err(), "not a hex digit: 'é'");
    }
}
