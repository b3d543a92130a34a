//! Write coalescing for the gRPC connections: a flush waits one turn of the
//! scheduler before it reaches the socket, so that every stream task already
//! woken by the same event (a fan-out to a thousand subscribers, a burst of
//! Ingest answers) adds its frames first and they leave in one `write`.
//!
//! Why: hyper runs each HTTP/2 stream as its own task and the connection as
//! another. When one event wakes many stream tasks, tokio's LIFO slot runs
//! the connection task right after each of them, so h2 flushed a frame or
//! two at a time — about one `writev` per two deliveries in the fan-out
//! profile (BENCHMARKS.md, S5), and one per answer for Ingest. Here a flush
//! first re-schedules the connection task (a self-wake puts it at the back
//! of the run queue), then writes everything that arrived meanwhile. Under
//! no load the queue is empty and the flush happens on the very next poll.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

/// Pending bytes above which a write or flush goes to the socket without
/// waiting a turn: bounds the memory per connection and keeps bulk streams
/// (replay) at full speed.
const MAX_PENDING: usize = 64 * 1024;

/// A connection whose writes are gathered until a flush, and whose flushes
/// are deferred by one scheduler turn (see the module docs).
pub struct Coalescing<IO> {
    io: IO,
    pending: Vec<u8>,
    /// How much of `pending` the socket took already.
    written: usize,
    /// The current flush already yielded its turn.
    yielded: bool,
}

impl<IO> Coalescing<IO> {
    /// Wraps an accepted connection.
    pub fn new(io: IO) -> Self {
        Coalescing { io, pending: Vec::new(), written: 0, yielded: false }
    }
}

impl<IO: AsyncWrite + Unpin> Coalescing<IO> {
    /// Writes every pending byte to the socket.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.pending[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.pending.clear();
        self.written = 0;
        if self.pending.capacity() > MAX_PENDING * 2 {
            self.pending.shrink_to(MAX_PENDING);
        }
        Poll::Ready(Ok(()))
    }

    /// Makes room before taking `len` more bytes.
    fn poll_room(&mut self, cx: &mut Context<'_>, len: usize) -> Poll<io::Result<()>> {
        if self.pending.len() + len > MAX_PENDING && !self.pending.is_empty() {
            ready!(self.poll_drain(cx))?;
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Coalescing<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Coalescing<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        ready!(this.poll_room(cx, buf.len()))?;
        if this.pending.is_empty() && buf.len() >= MAX_PENDING {
            return Pin::new(&mut this.io).poll_write(cx, buf);
        }
        this.pending.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        ready!(this.poll_room(cx, len))?;
        if this.pending.is_empty() && len >= MAX_PENDING {
            return Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        }
        this.pending.reserve(len);
        for b in bufs {
            this.pending.extend_from_slice(b);
        }
        Poll::Ready(Ok(len))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.pending.is_empty() {
            return Pin::new(&mut this.io).poll_flush(cx);
        }
        if !this.yielded && this.pending.len() < MAX_PENDING {
            // A self-wake during a poll re-queues the task at the back of
            // the run queue (tokio treats it as a yield), behind the stream
            // tasks that are about to add their frames.
            this.yielded = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        ready!(this.poll_drain(cx))?;
        this.yielded = false;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

impl<IO: Connected> Connected for Coalescing<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn bytes_arrive_in_order_after_a_flush() {
        let (client, server) = tokio::io::duplex(1 << 20);
        let mut w = Coalescing::new(client);
        w.write_all(b"hello ").await.unwrap();
        let n = w.write_vectored(&[IoSlice::new(b"wor"), IoSlice::new(b"ld")]).await.unwrap();
        assert_eq!(n, 5, "every slice is taken whole");
        // Nothing reaches the peer before the flush.
        assert_eq!(w.pending, b"hello world");
        w.flush().await.unwrap();
        assert!(w.pending.is_empty());
        let big = vec![7u8; MAX_PENDING * 3];
        w.write_all(&big).await.unwrap();
        w.write_all(b"!").await.unwrap();
        w.shutdown().await.unwrap();
        let mut got = Vec::new();
        let mut r = server;
        r.read_to_end(&mut got).await.unwrap();
        assert_eq!(&got[..11], b"hello world");
        assert_eq!(got.len(), 11 + big.len() + 1);
        assert_eq!(got.last(), Some(&b'!'));
    }

    #[tokio::test]
    async fn a_flush_yields_once_then_writes() {
        let (client, mut server) = tokio::io::duplex(1 << 16);
        let mut w = Coalescing::new(client);
        w.write_all(b"abc").await.unwrap();
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut w).poll_flush(&mut cx).is_pending(), "the first poll gives the turn away");
        assert!(Pin::new(&mut w).poll_flush(&mut cx).is_ready(), "the second writes");
        let mut got = [0u8; 3];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"abc");
    }
}
