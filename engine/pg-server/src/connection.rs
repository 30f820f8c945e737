//! One client connection: the startup phase under a timeout, then every
//! frontend message read, validated ([`crate::frame`]) and only then
//! decoded by pgwire and dispatched to the handlers. Replaces pgwire's own
//! connection loop, which buffers messages of any size and decodes
//! unchecked lengths.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use futures::{FutureExt, SinkExt};
use pgwire::api::{ClientInfo, DefaultClient, NoopHandler, PgWireConnectionState};
use pgwire::error::{ErrorInfo, PgWireError};
use pgwire::tokio::server::{MaybeTls, PgWireMessageServerCodec, process_error, process_message};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::{Decoder, Framed};

use crate::frame::{self, FrameError, Header, Startup};
use crate::handler::{HoloHandlers, Prepared};

type Socket = Framed<MaybeTls, PgWireMessageServerCodec<Prepared>>;

/// Read-buffer capacity kept between messages; a larger buffer (after a
/// large message) is released.
const KEPT_BUFFER: usize = 1 << 20;

/// Bytes skipped per read when an oversized message is discarded.
const SKIP_CHUNK: usize = 64 << 10;

/// How a connection ended early.
#[derive(Debug)]
pub enum Ended {
    /// The client went away or the socket failed.
    Io(std::io::Error),
    /// The startup phase did not finish in time.
    StartupTimeout,
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ended::Io(e) => write!(f, "{e}"),
            Ended::StartupTimeout => f.write_str("startup did not finish in time"),
        }
    }
}

impl From<std::io::Error> for Ended {
    fn from(e: std::io::Error) -> Self {
        Ended::Io(e)
    }
}

/// What the accept loop lends a connection.
pub struct Admission {
    /// Called once a valid StartupMessage arrived: a connection slot, or
    /// `None` when the server is full (the client gets FATAL 53300).
    pub acquire: Box<dyn FnOnce() -> Option<Box<dyn Send>> + Send>,
    /// Startup phase time limit.
    pub startup_timeout: Duration,
    /// Resolves when the accept loop evicts this connection's handshake
    /// (too many handshakes are pending).
    pub evicted: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>,
    /// Called when the startup phase is over (either way).
    pub started: Box<dyn FnOnce() + Send>,
}

fn user_error(e: &FrameError) -> PgWireError {
    let severity = if e.fatal { "FATAL" } else { "ERROR" };
    PgWireError::UserError(Box::new(ErrorInfo::new(
        severity.to_string(),
        e.code.to_string(),
        e.message.clone(),
    )))
}

/// Sends the answer to a rejected frame; `Err` when the connection must
/// close.
async fn reject(socket: &mut Socket, e: &FrameError, extended: bool) -> Result<(), Ended> {
    process_error(socket, user_error(e), extended && !e.fatal).await?;
    if e.fatal {
        return Err(Ended::Io(std::io::Error::other(e.message.clone())));
    }
    Ok(())
}

/// Reads until `buf` holds `n` bytes.
async fn fill<R: AsyncRead + Unpin>(io: &mut R, buf: &mut BytesMut, n: usize) -> Result<(), Ended> {
    while buf.len() < n {
        buf.reserve(n - buf.len());
        if io.read_buf(buf).await? == 0 {
            return Err(Ended::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
    }
    Ok(())
}

/// Discards `n` bytes of the stream (some may already be in `buf`).
async fn skip<R: AsyncRead + Unpin>(
    io: &mut R,
    buf: &mut BytesMut,
    mut n: usize,
) -> Result<(), Ended> {
    let have = buf.len().min(n);
    buf.advance(have);
    n -= have;
    let mut chunk = vec![0u8; SKIP_CHUNK.min(n.max(1))];
    while n > 0 {
        let want = chunk.len().min(n);
        let got = io.read(&mut chunk[..want]).await?;
        if got == 0 {
            return Err(Ended::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        n -= got;
    }
    Ok(())
}

/// Hands one validated frame to pgwire's decoder and handlers; a panic in
/// them is answered with XX000 and the connection continues.
async fn dispatch(
    socket: &mut Socket,
    handlers: &HoloHandlers,
    mut frame: BytesMut,
    extended: bool,
) -> Result<(), Ended> {
    let total = frame.len();
    let message = match socket.codec_mut().decode(&mut frame) {
        Ok(Some(message)) if frame.is_empty() => message,
        Ok(_) => {
            let e = FrameError {
                code: holo_sql::sqlstate::PROTOCOL_VIOLATION,
                message: format!("invalid message of {total} bytes"),
                fatal: false,
            };
            return reject(socket, &e, extended).await;
        }
        Err(e) => {
            let e = FrameError {
                code: holo_sql::sqlstate::PROTOCOL_VIOLATION,
                message: format!("invalid message: {e}"),
                fatal: false,
            };
            return reject(socket, &e, extended).await;
        }
    };
    let extended = match socket.state() {
        PgWireConnectionState::CopyInProgress(e) => e,
        _ => message.is_extended_query(),
    };
    let run = process_message(
        message,
        socket,
        handlers.startup.clone(),
        handlers.query.clone(),
        handlers.query.clone(),
        Arc::new(NoopHandler),
        handlers.cancel.clone(),
    );
    let result = match AssertUnwindSafe(run).catch_unwind().await {
        Ok(result) => result,
        Err(payload) => {
            let msg = holo_sql::planner::panic_message(payload.as_ref());
            tracing::error!(panic = %msg, "panic while handling a client message");
            Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                "ERROR".into(),
                holo_sql::sqlstate::INTERNAL_ERROR.into(),
                format!("internal error: {msg}"),
            ))))
        }
    };
    if let Err(e) = result {
        process_error(socket, e, extended).await?;
    }
    Ok(())
}

/// Reads and handles startup-phase packets until the session is ready.
/// Returns the connection slot (if the client is a session, not a cancel
/// request) and the bytes already read past the startup packet.
async fn startup(
    socket: &mut Socket,
    handlers: &HoloHandlers,
    buf: &mut BytesMut,
    acquire: Box<dyn FnOnce() -> Option<Box<dyn Send>> + Send>,
) -> Result<Option<Box<dyn Send>>, Ended> {
    let mut acquire = Some(acquire);
    let mut slot = None;
    let mut encryption_requests = 0;
    loop {
        socket.flush().await?;
        match socket.state() {
            PgWireConnectionState::AwaitingStartup => {
                fill(socket.get_mut(), buf, 4).await?;
                let len = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
                let body = match frame::check_startup_len(len) {
                    Ok(b) => b,
                    Err(e) => return reject(socket, &e, false).await.map(|_| None),
                };
                fill(socket.get_mut(), buf, 4 + body).await?;
                let kind = match frame::check_startup(&buf[4..4 + body]) {
                    Ok(kind) => kind,
                    Err(e) => return reject(socket, &e, false).await.map(|_| None),
                };
                if kind == Startup::Encryption {
                    // No TLS or GSSAPI encryption here: refuse, and the
                    // client goes on in plain text (at most SSL then GSS).
                    encryption_requests += 1;
                    if encryption_requests > 2 {
                        let e = FrameError {
                            code: holo_sql::sqlstate::PROTOCOL_VIOLATION,
                            message: "too many encryption requests".into(),
                            fatal: true,
                        };
                        return reject(socket, &e, false).await.map(|_| None);
                    }
                    buf.advance(4 + body);
                    socket.get_mut().write_all(b"N").await?;
                    continue;
                }
                if kind == Startup::Start {
                    let Some(acquire) = acquire.take() else {
                        return Ok(None);
                    };
                    match acquire() {
                        Some(s) => slot = Some(s),
                        None => {
                            let e = FrameError {
                                code: holo_sql::sqlstate::TOO_MANY_CONNECTIONS,
                                message: "sorry, too many clients already".into(),
                                fatal: true,
                            };
                            return reject(socket, &e, false).await.map(|_| None);
                        }
                    }
                }
                let packet = buf.split_to(4 + body);
                dispatch(socket, handlers, packet, false).await?;
                if kind == Startup::Cancel {
                    return Ok(None);
                }
            }
            PgWireConnectionState::AuthenticationInProgress => {
                let Some(packet) = next_frame(socket, buf).await? else {
                    continue;
                };
                dispatch(socket, handlers, packet, false).await?;
            }
            _ => return Ok(slot),
        }
    }
}

/// Reads the next validated frame after startup. `None`: the frame was
/// rejected and answered (the caller reads the next one).
async fn next_frame(socket: &mut Socket, buf: &mut BytesMut) -> Result<Option<BytesMut>, Ended> {
    fill(socket.get_mut(), buf, 5).await?;
    let kind = buf[0];
    let len = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
    let extended = frame::is_extended_type(kind);
    match frame::check_header(kind, len) {
        Err(e) => reject(socket, &e, extended).await.map(|_| None),
        Ok(Header::Skip(body)) => {
            buf.advance(5);
            skip(socket.get_mut(), buf, body).await?;
            reject(socket, &frame::oversized(kind, body + 4), extended)
                .await
                .map(|_| None)
        }
        Ok(Header::Read(body)) => {
            fill(socket.get_mut(), buf, 5 + body).await?;
            if let Err(e) = frame::check_body(kind, &buf[5..5 + body]) {
                buf.advance(5 + body);
                return reject(socket, &e, extended).await.map(|_| None);
            }
            Ok(Some(buf.split_to(5 + body)))
        }
    }
}

/// Serves one accepted connection until it ends.
pub async fn serve(tcp: TcpStream, handlers: Arc<HoloHandlers>, admission: Admission) {
    let Admission {
        acquire,
        startup_timeout,
        evicted,
        started,
    } = admission;
    let handshake = async {
        let peer = tcp.peer_addr()?;
        tcp.set_nodelay(true)?;
        let mut socket = Framed::new(
            MaybeTls::Plain(tcp),
            PgWireMessageServerCodec::new(DefaultClient::new(peer, false)),
        );
        socket.set_state(PgWireConnectionState::AwaitingStartup);
        let mut buf = BytesMut::new();
        let slot = startup(&mut socket, &handlers, &mut buf, acquire).await?;
        Ok::<_, Ended>(slot.map(|slot| (socket, buf, slot)))
    };
    let outcome = tokio::select! {
        r = handshake => r,
        _ = tokio::time::sleep(startup_timeout) => Err(Ended::StartupTimeout),
        _ = evicted => Err(Ended::StartupTimeout),
    };
    started();
    let (mut socket, mut buf, _slot) = match outcome {
        Ok(Some(ready)) => ready,
        Ok(None) => return,
        Err(e) => {
            tracing::debug!(error = %e, "connection ended during startup");
            return;
        }
    };
    if let Err(e) = serve_messages(&mut socket, &handlers, &mut buf).await {
        tracing::debug!(error = %e, "connection ended");
    }
}

async fn serve_messages(
    socket: &mut Socket,
    handlers: &HoloHandlers,
    buf: &mut BytesMut,
) -> Result<(), Ended> {
    loop {
        socket.flush().await?;
        if buf.is_empty() && buf.capacity() > KEPT_BUFFER {
            *buf = BytesMut::new();
        }
        let Some(packet) = next_frame(socket, buf).await? else {
            continue;
        };
        let kind = packet[0];
        if kind == b'X' {
            return Ok(());
        }
        dispatch(socket, handlers, packet, frame::is_extended_type(kind)).await?;
    }
}
