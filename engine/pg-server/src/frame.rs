//! Frontend message framing and validation, before pgwire decodes anything.
//!
//! pgwire 0.41 trusts the counts and lengths inside a message (a Parse
//! claiming 65535 parameter types, a Bind value longer than the message)
//! and panics or reads into the next message when they lie, and it buffers
//! any message up to 1 GiB. Every frame is therefore checked here first:
//! its type, its length against a per-type limit, and its body against the
//! message's layout, so that what reaches pgwire is always well formed.
//! The answers follow PostgreSQL: a broken frame (bad length, unknown type)
//! is FATAL 08P01 and closes the connection (the stream cannot be
//! resynchronized); a well-framed message with an inconsistent body is
//! ERROR 08P01 and the session continues; text that is not UTF-8 is 22021.

use holo_sql::sqlstate;

/// Most bytes of a startup packet, as in PostgreSQL.
pub const MAX_STARTUP_BYTES: usize = 10_000;

/// Most bytes of a message other than Query, Parse, Bind, CopyData.
pub const MAX_SMALL_MESSAGE_BYTES: usize = 10_000;

/// Most bytes of a Query, Parse, Bind or CopyData message (54000 above it,
/// after the message is skipped unread).
pub const MAX_LARGE_MESSAGE_BYTES: usize = 64 << 20;

/// Protocol 3.0 in a startup packet.
pub const PROTOCOL_3: u32 = 3 << 16;
/// The code of a CancelRequest packet.
pub const CANCEL_REQUEST_CODE: u32 = 80_877_102;
/// The code of an SSLRequest packet.
pub const SSL_REQUEST_CODE: u32 = 80_877_103;
/// The code of a GSSENCRequest packet.
pub const GSSENC_REQUEST_CODE: u32 = 80_877_104;

/// A rejected frame: SQLSTATE, message, and whether the connection must be
/// closed (the framing itself is broken).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    /// SQLSTATE of the answer.
    pub code: &'static str,
    /// Message of the answer.
    pub message: String,
    /// Whether the connection is closed after the answer.
    pub fatal: bool,
}

impl FrameError {
    fn error(code: &'static str, message: impl Into<String>) -> FrameError {
        FrameError {
            code,
            message: message.into(),
            fatal: false,
        }
    }

    fn fatal(message: impl Into<String>) -> FrameError {
        FrameError {
            code: sqlstate::PROTOCOL_VIOLATION,
            message: message.into(),
            fatal: true,
        }
    }

    fn malformed(what: &str) -> FrameError {
        FrameError::error(
            sqlstate::PROTOCOL_VIOLATION,
            format!("invalid {what} message format"),
        )
    }
}

/// Whether `kind` is a message type a client may send after startup.
pub fn is_known_type(kind: u8) -> bool {
    matches!(
        kind,
        b'Q' | b'P' | b'B' | b'E' | b'D' | b'C' | b'S' | b'H' | b'X' | b'd' | b'c' | b'f' | b'p'
    )
}

/// Whether messages of `kind` may be large (then an oversized one is
/// skipped and answered with 54000 instead of closing the connection).
pub fn is_large_type(kind: u8) -> bool {
    matches!(kind, b'Q' | b'P' | b'B' | b'd')
}

/// Whether `kind` belongs to the extended protocol (an error then waits
/// for Sync).
pub fn is_extended_type(kind: u8) -> bool {
    matches!(kind, b'P' | b'B' | b'E' | b'D' | b'C')
}

/// What to do with a frame header (`kind`, length including itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Header {
    /// Read the body of this many bytes.
    Read(usize),
    /// Skip this many body bytes unread, then answer 54000.
    Skip(usize),
}

/// Checks a frame header after startup.
pub fn check_header(kind: u8, len: i32) -> Result<Header, FrameError> {
    if !is_known_type(kind) {
        return Err(FrameError::fatal(format!(
            "invalid frontend message type {kind}"
        )));
    }
    let Some(body) = usize::try_from(len).ok().and_then(|l| l.checked_sub(4)) else {
        return Err(FrameError::fatal(format!("invalid message length {len}")));
    };
    let limit = if is_large_type(kind) {
        MAX_LARGE_MESSAGE_BYTES
    } else {
        MAX_SMALL_MESSAGE_BYTES
    };
    if body + 4 <= limit {
        Ok(Header::Read(body))
    } else if is_large_type(kind) {
        Ok(Header::Skip(body))
    } else {
        Err(FrameError::fatal(format!("invalid message length {len}")))
    }
}

/// The answer to a skipped oversized message.
pub fn oversized(kind: u8, len: usize) -> FrameError {
    let what = match kind {
        b'Q' => "query",
        b'P' => "Parse",
        b'B' => "Bind",
        _ => "CopyData",
    };
    FrameError::error(
        sqlstate::PROGRAM_LIMIT_EXCEEDED,
        format!(
            "{what} message of {len} bytes exceeds the limit of {MAX_LARGE_MESSAGE_BYTES} bytes"
        ),
    )
}

/// Reads a message body field by field.
struct Body<'a> {
    rest: &'a [u8],
    what: &'static str,
}

impl<'a> Body<'a> {
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        if n > self.rest.len() {
            return Err(FrameError::error(
                sqlstate::PROTOCOL_VIOLATION,
                format!("insufficient data left in {} message", self.what),
            ));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn i16(&mut self) -> Result<i16, FrameError> {
        let b = self.bytes(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> Result<i32, FrameError> {
        let b = self.bytes(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A 16-bit count (unsigned, as in PostgreSQL: up to 65535).
    fn count(&mut self) -> Result<usize, FrameError> {
        Ok(usize::from(self.i16()? as u16))
    }

    /// A NUL-terminated UTF-8 string.
    fn cstring(&mut self) -> Result<&'a str, FrameError> {
        let Some(end) = self.rest.iter().position(|b| *b == 0) else {
            return Err(FrameError::error(
                sqlstate::PROTOCOL_VIOLATION,
                format!("invalid string in {} message", self.what),
            ));
        };
        let s = self.bytes(end + 1)?;
        utf8(&s[..end])
    }

    fn end(&self) -> Result<(), FrameError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(FrameError::malformed(self.what))
        }
    }
}

fn utf8(bytes: &[u8]) -> Result<&str, FrameError> {
    std::str::from_utf8(bytes).map_err(|e| {
        let at = e.valid_up_to();
        let shown: Vec<String> = bytes[at..]
            .iter()
            .take(2)
            .map(|b| format!("0x{b:02x}"))
            .collect();
        FrameError::error(
            sqlstate::CHARACTER_NOT_IN_REPERTOIRE,
            format!(
                "invalid byte sequence for encoding \"UTF8\": {}",
                shown.join(" ")
            ),
        )
    })
}

fn format_code(code: i16, what: &'static str) -> Result<(), FrameError> {
    if code == 0 || code == 1 {
        Ok(())
    } else {
        Err(FrameError::error(
            sqlstate::PROTOCOL_VIOLATION,
            format!("unsupported format code {code} in {what} message"),
        ))
    }
}

fn check_bind(body: &mut Body<'_>) -> Result<(), FrameError> {
    body.cstring()?;
    body.cstring()?;
    let nformats = body.count()?;
    let mut formats = Vec::with_capacity(nformats.min(body.rest.len() / 2));
    for _ in 0..nformats {
        let code = body.i16()?;
        format_code(code, "Bind")?;
        formats.push(code);
    }
    let nvalues = body.count()?;
    if nformats > 1 && nformats != nvalues {
        return Err(FrameError::error(
            sqlstate::PROTOCOL_VIOLATION,
            format!("bind message has {nformats} parameter formats but {nvalues} parameters"),
        ));
    }
    for i in 0..nvalues {
        let len = body.i32()?;
        if len == -1 {
            continue;
        }
        let len = usize::try_from(len).map_err(|_| FrameError::malformed("Bind"))?;
        let value = body.bytes(len)?;
        let text = match formats.as_slice() {
            [] => true,
            [one] => *one == 0,
            many => many[i] == 0,
        };
        if text {
            utf8(value)?;
        }
    }
    let nresults = body.count()?;
    for _ in 0..nresults {
        format_code(body.i16()?, "Bind")?;
    }
    Ok(())
}

/// Checks a message body against the layout of its type.
pub fn check_body(kind: u8, body: &[u8]) -> Result<(), FrameError> {
    let what = match kind {
        b'Q' => "Query",
        b'P' => "Parse",
        b'B' => "Bind",
        b'E' => "Execute",
        b'D' => "Describe",
        b'C' => "Close",
        b'S' => "Sync",
        b'H' => "Flush",
        b'X' => "Terminate",
        b'd' => "CopyData",
        b'c' => "CopyDone",
        b'f' => "CopyFail",
        _ => "password",
    };
    let mut b = Body { rest: body, what };
    match kind {
        b'Q' | b'f' => {
            b.cstring()?;
        }
        b'P' => {
            b.cstring()?;
            b.cstring()?;
            let n = b.count()?;
            b.bytes(n.saturating_mul(4))?;
        }
        b'B' => check_bind(&mut b)?,
        b'E' => {
            b.cstring()?;
            b.i32()?;
        }
        b'D' | b'C' => {
            let target = b.bytes(1)?[0];
            if target != b'S' && target != b'P' {
                return Err(FrameError::error(
                    sqlstate::PROTOCOL_VIOLATION,
                    format!("invalid {what} message subtype {target}"),
                ));
            }
            b.cstring()?;
        }
        b'd' | b'p' => {
            b.rest = &[];
        }
        _ => {}
    }
    b.end()
}

/// A checked startup-phase packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Startup {
    /// A StartupMessage (protocol 3.x).
    Start,
    /// A CancelRequest.
    Cancel,
    /// An SSLRequest or GSSENCRequest (answered `N`: no encryption).
    Encryption,
}

/// Checks a startup-phase length (including itself).
pub fn check_startup_len(len: i32) -> Result<usize, FrameError> {
    match usize::try_from(len) {
        Ok(l) if (8..=MAX_STARTUP_BYTES).contains(&l) => Ok(l - 4),
        _ => Err(FrameError::fatal(format!(
            "invalid length of startup packet {len}"
        ))),
    }
}

/// Checks a startup-phase packet body (after its length).
pub fn check_startup(body: &[u8]) -> Result<Startup, FrameError> {
    if body.len() < 4 {
        return Err(FrameError::fatal("invalid length of startup packet"));
    }
    let code = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
    if code == CANCEL_REQUEST_CODE {
        return if body.len() == 12 {
            Ok(Startup::Cancel)
        } else {
            Err(FrameError::fatal("invalid length of cancel request packet"))
        };
    }
    if code == SSL_REQUEST_CODE || code == GSSENC_REQUEST_CODE {
        return if body.len() == 4 {
            Ok(Startup::Encryption)
        } else {
            Err(FrameError::fatal(
                "invalid length of encryption request packet",
            ))
        };
    }
    if code >> 16 != PROTOCOL_3 >> 16 {
        return Err(FrameError::fatal(format!(
            "unsupported frontend protocol {}.{}: server supports 3.0",
            code >> 16,
            code & 0xffff
        )));
    }
    // Name/value pairs, then a final NUL as the last byte.
    let mut b = Body {
        rest: &body[4..],
        what: "startup",
    };
    let layout =
        || FrameError::fatal("invalid startup packet layout: expected terminator as last byte");
    loop {
        match b.rest {
            [0] => return Ok(Startup::Start),
            [] => return Err(layout()),
            _ => {
                let name = b.cstring().map_err(|_| layout())?;
                if name.is_empty() {
                    return Err(layout());
                }
                b.cstring().map_err(|_| layout())?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn bind(values: &[Option<&[u8]>], formats: &[i16]) -> Vec<u8> {
        let mut b = b"\0\0".to_vec();
        b.extend((formats.len() as i16).to_be_bytes());
        for f in formats {
            b.extend(f.to_be_bytes());
        }
        b.extend((values.len() as i16).to_be_bytes());
        for v in values {
            match v {
                None => b.extend((-1i32).to_be_bytes()),
                Some(v) => {
                    b.extend((v.len() as i32).to_be_bytes());
                    b.extend(*v);
                }
            }
        }
        b.extend(0i16.to_be_bytes());
        b
    }

    #[test]
    fn headers_are_bounded_per_type() {
        assert_eq!(check_header(b'Q', 9), Ok(Header::Read(5)));
        assert!(check_header(b'Q', 3).unwrap_err().fatal);
        assert!(check_header(b'Q', -1).unwrap_err().fatal);
        assert!(check_header(b'z', 8).unwrap_err().fatal);
        assert_eq!(
            check_header(b'Q', i32::MAX),
            Ok(Header::Skip(i32::MAX as usize - 4))
        );
        assert!(check_header(b'S', 10_001).unwrap_err().fatal);
    }

    #[test]
    fn lying_counts_and_lengths_are_errors() {
        // Parse claiming 65535 parameter types, none sent.
        let mut parse = b"\0SELECT 1\0".to_vec();
        parse.extend((-1i16).to_be_bytes());
        assert!(!check_body(b'P', &parse).unwrap_err().fatal);
        let mut parse = b"\0SELECT 1\0".to_vec();
        parse.extend(2i16.to_be_bytes());
        parse.extend([0; 8]);
        assert!(check_body(b'P', &parse).is_ok());
        let mut parse = b"\0SELECT 1\0".to_vec();
        parse.extend(3i16.to_be_bytes());
        parse.extend([0; 8]);
        assert_eq!(
            check_body(b'P', &parse).unwrap_err().code,
            sqlstate::PROTOCOL_VIOLATION
        );
        // A Bind value longer than the message.
        let mut b = bind(&[Some(b"12")], &[]);
        b[7] = 0x7f;
        assert!(check_body(b'B', &b).is_err());
        assert!(check_body(b'B', &bind(&[Some(b"12"), None], &[0, 1])).is_ok());
        assert!(check_body(b'B', &bind(&[Some(b"12")], &[2])).is_err());
        assert!(check_body(b'B', &bind(&[Some(b"1"), None], &[0, 1, 0])).is_err());
        // Bytes after the layout.
        assert!(check_body(b'S', b"x").is_err());
        assert!(check_body(b'E', b"\0\0\0\0\0").is_ok());
        assert!(check_body(b'E', b"\0\0\0").is_err());
        assert!(check_body(b'D', b"Q\0").is_err());
    }

    #[test]
    fn text_must_be_utf8() {
        let e = check_body(b'Q', b"SELECT '\xff'\0").unwrap_err();
        assert_eq!(e.code, sqlstate::CHARACTER_NOT_IN_REPERTOIRE);
        let e = check_body(b'B', &bind(&[Some(b"\xc3")], &[])).unwrap_err();
        assert_eq!(e.code, sqlstate::CHARACTER_NOT_IN_REPERTOIRE);
        assert!(check_body(b'B', &bind(&[Some(b"\xc3")], &[1])).is_ok());
    }

    #[test]
    fn startup_packets() {
        let mut ok = PROTOCOL_3.to_be_bytes().to_vec();
        ok.extend(b"user\0holo\0\0");
        assert_eq!(check_startup(&ok), Ok(Startup::Start));
        let mut bad = PROTOCOL_3.to_be_bytes().to_vec();
        bad.extend(b"user\0holo");
        assert!(check_startup(&bad).unwrap_err().fatal);
        let mut cancel = CANCEL_REQUEST_CODE.to_be_bytes().to_vec();
        cancel.extend([0; 8]);
        assert_eq!(check_startup(&cancel), Ok(Startup::Cancel));
        assert!(check_startup(&(2u32 << 16).to_be_bytes()).is_err());
        assert!(check_startup_len(10_001).is_err());
        assert!(check_startup_len(7).is_err());
        assert_eq!(check_startup_len(8), Ok(4));
    }
}
