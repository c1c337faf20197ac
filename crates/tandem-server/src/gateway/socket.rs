//! The TCP socket under a WebSocket, to end it promptly once the close handshake is done.
//!
//! When a client closes (it sends Close, the session answers Close), nothing more may come
//! from it, and RFC 6455 (7.1.1) wants the server to close the TCP connection promptly. The
//! HTTP layer does not read WebSocket frames: after the response it goes on reading and
//! discarding until the client closes its side, which a client waiting for the server never
//! does, or until its disconnect timeout. Ending the socket's read side makes the next read
//! return end-of-file, so the HTTP layer finishes writing (the session's Close included) and
//! closes at once.
//!
//! A client that stops reading (its receive window stays shut) would keep the connection, and
//! what the node has queued for it in the kernel, for ever once its session is gone: the HTTP
//! layer waits to flush it before closing. Every accepted socket therefore gets a TCP user
//! timeout: data the client has not acknowledged for that long (the heartbeat timeout) makes
//! the kernel abort the connection.
//!
//! When it is the node that closes first, it keeps the HTTP layer's lingering: what the
//! client still sends (its Close answering ours) is read and discarded for up to the
//! disconnect timeout, so that the connection ends with a FIN, not a reset that could
//! destroy the Close frame before the client reads it.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Kept in the connection's data from its accept to its end: while it lives, the descriptor
/// is this connection's.
#[derive(Debug)]
pub struct Accepted(Socket);

impl Accepted {
    /// The socket of a connection just accepted, which the kernel aborts once what it sent
    /// has gone unacknowledged for `unacknowledged`.
    pub fn new(tcp: &impl AsRawFd, unacknowledged: Duration) -> Self {
        let fd = tcp.as_raw_fd();
        let millis =
            libc::c_uint::try_from(unacknowledged.as_millis()).unwrap_or(libc::c_uint::MAX);
        // SAFETY: the descriptor is the connection being accepted (borrowed from its stream),
        // and the option's value is a c_uint that outlives the call.
        let result = unsafe {
            libc::setsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_USER_TIMEOUT,
                std::ptr::from_ref(&millis).cast(),
                std::mem::size_of::<libc::c_uint>() as libc::socklen_t,
            )
        };
        if result != 0 {
            tracing::debug!(
                error = %std::io::Error::last_os_error(),
                "could not set TCP_USER_TIMEOUT"
            );
        }
        Self(Socket {
            fd,
            open: Arc::new(AtomicBool::new(true)),
        })
    }

    /// A handle for the connection's session.
    pub fn socket(&self) -> Socket {
        self.0.clone()
    }
}

impl Drop for Accepted {
    fn drop(&mut self) {
        self.0.open.store(false, Ordering::Release);
    }
}

/// A connection's socket, as long as the connection lives.
#[derive(Clone, Debug)]
pub struct Socket {
    fd: RawFd,
    /// False once the connection (and with it the descriptor) is gone.
    open: Arc<AtomicBool>,
}

impl Socket {
    /// Ends reading: the connection closes as soon as what is queued for the client has
    /// been written. Nothing when the connection is already gone.
    ///
    /// Called on the worker thread that runs the connection (where its session runs), so the
    /// connection cannot end, and its descriptor be reused, between the check and the call.
    pub fn stop_reading(&self) {
        if !self.open.load(Ordering::Acquire) {
            return;
        }
        // SAFETY: shutdown(2) has no memory effects; the descriptor is this connection's
        // (checked above, on the connection's own thread).
        let result = unsafe { libc::shutdown(self.fd, libc::SHUT_RD) };
        if result != 0 {
            tracing::debug!(
                error = %std::io::Error::last_os_error(),
                "could not end reading a closed websocket"
            );
        }
    }
}
