//! Serving a sandbox: an axum router on `127.0.0.1:0`, with connections that
//! can be cut without sending a single response byte.
//!
//! Every accepted socket is wrapped in a [`KillableStream`]. The router sees
//! the stream's kill switch through [`ConnInfo`] (axum connect info), so the
//! fault layer can decide, per request, to drop the connection: it flips the
//! switch, after which every read and write on the socket fails, hyper gives
//! up on the connection and the socket is closed. A client (reqwest) sees a
//! transport error ("connection closed before message completed" or a reset),
//! never an HTTP status.

use axum::Router;
use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A sandbox could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Binding `127.0.0.1:0` failed.
    #[error("binding 127.0.0.1:0 for the {sandbox} sandbox: {source}")]
    Bind {
        /// Which sandbox.
        sandbox: &'static str,
        /// The socket error.
        #[source]
        source: io::Error,
    },
    /// The configuration is not usable.
    #[error("{sandbox} sandbox configuration: {message}")]
    Config {
        /// Which sandbox.
        sandbox: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// A TCP stream whose reads and writes start failing once its kill switch is
/// set, so hyper abandons the connection without writing a response.
#[derive(Debug)]
pub struct KillableStream {
    inner: TcpStream,
    killed: Arc<AtomicBool>,
}

impl KillableStream {
    fn new(inner: TcpStream) -> Self {
        Self {
            inner,
            killed: Arc::new(AtomicBool::new(false)),
        }
    }

    fn dead(&self) -> bool {
        self.killed.load(Ordering::SeqCst)
    }
}

fn aborted() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "sandbox dropped the connection",
    )
}

impl AsyncRead for KillableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.dead() {
            return Poll::Ready(Err(aborted()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.dead() {
            return Poll::Ready(Err(aborted()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.dead() {
            return Poll::Ready(Err(aborted()));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.dead() {
            return Poll::Ready(Err(aborted()));
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A loopback listener handing out [`KillableStream`]s.
#[derive(Debug)]
pub struct SandboxListener {
    inner: TcpListener,
}

impl Listener for SandboxListener {
    type Io = KillableStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    // Latency is simulated on purpose; Nagle would add its own.
                    let _ = stream.set_nodelay(true);
                    return (KillableStream::new(stream), addr);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "sandbox accept failed; retrying");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// What a handler knows about its connection: the peer and the kill switch.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The client's address.
    pub remote: SocketAddr,
    killed: Arc<AtomicBool>,
}

impl ConnInfo {
    /// Cuts the connection: nothing more is read or written on it.
    pub fn kill(&self) {
        self.killed.store(true, Ordering::SeqCst);
    }

    /// The kill switch of the connection a request came on.
    fn killed_flag(ext: &axum::http::Extensions) -> Option<Arc<AtomicBool>> {
        ext.get::<axum::extract::ConnectInfo<ConnInfo>>()
            .map(|c| c.0.killed.clone())
    }
}

impl Connected<IncomingStream<'_, SandboxListener>> for ConnInfo {
    fn connect_info(stream: IncomingStream<'_, SandboxListener>) -> Self {
        ConnInfo {
            remote: *stream.remote_addr(),
            killed: stream.io().killed.clone(),
        }
    }
}

/// A running server. Dropping it stops accepting connections and closes idle
/// ones (graceful shutdown); [`ServerHandle::shutdown`] also waits for that.
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl ServerHandle {
    /// Binds `127.0.0.1:0` and serves `router` on it (recording every
    /// exchange when `HUB_SANDBOX_RECORD` is set: [`super::record`]).
    pub async fn start(sandbox: &'static str, router: Router) -> Result<Self, StartError> {
        let router = super::record::wrap(sandbox, ConnInfo::killed_flag, router);
        let inner = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|source| StartError::Bind { sandbox, source })?;
        let addr = inner
            .local_addr()
            .map_err(|source| StartError::Bind { sandbox, source })?;
        let (stop, stopped) = oneshot::channel::<()>();
        let serve = axum::serve(
            SandboxListener { inner },
            router.into_make_service_with_connect_info::<ConnInfo>(),
        )
        .with_graceful_shutdown(async move {
            let _ = stopped.await;
        });
        let task = tokio::spawn(async move {
            if let Err(e) = serve.await {
                tracing::warn!(sandbox, error = %e, "sandbox server ended with an error");
            }
        });
        tracing::debug!(sandbox, %addr, "sandbox listening");
        Ok(Self {
            addr,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the server and waits (up to 5 s) for open connections to finish.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take()
            && tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
        {
            tracing::warn!(addr = %self.addr, "sandbox connections still open after 5 s");
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
