//! A TCP proxy that cuts one connection at a chosen moment: put between a service and Postgres,
//! it makes the connection break while a write is on its way, or after the server has done the
//! write but before its answer is back, which no server restart can time exactly. Held down, it
//! is a network link that fails and comes back (between two NATS servers, say); delayed, a link
//! that is slow one way (a service on a machine too busy to send promptly).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Where the armed connection is cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    /// The bytes that complete the markers are never forwarded: the server never sees them.
    BeforeRequest,
    /// They are forwarded; the server's next answer is dropped and the connection closed.
    AfterRequest,
}

#[derive(Default)]
struct Trap {
    /// Bumped by every `arm`, so a connection forgets what it matched of an earlier trap.
    generation: u64,
    armed: Option<(Vec<Vec<u8>>, Cut)>,
    fired: bool,
}

/// A proxy to `upstream` on a free local port. Connections pass through untouched until
/// [`CutProxy::arm`]; then the first connection whose client sends the markers is cut. While
/// [`CutProxy::hold_down`] holds, no connection passes at all.
pub struct CutProxy {
    pub port: u16,
    trap: Arc<Mutex<Trap>>,
    down: watch::Sender<bool>,
    delay: watch::Sender<Duration>,
    task: tokio::task::JoinHandle<()>,
}

impl CutProxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("a local port");
        let port = listener.local_addr().expect("bound").port();
        let trap = Arc::new(Mutex::new(Trap::default()));
        let down = watch::Sender::new(false);
        let delay = watch::Sender::new(Duration::ZERO);
        let task = tokio::spawn({
            let trap = trap.clone();
            let down = down.clone();
            let delay = delay.subscribe();
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    if *down.borrow() {
                        continue;
                    }
                    let pipe = pipe(client, upstream, trap.clone(), delay.clone());
                    let mut down = down.subscribe();
                    tokio::spawn(async move {
                        tokio::select! {
                            () = pipe => {}
                            _ = down.wait_for(|down| *down) => {}
                        }
                    });
                }
            }
        });
        Self {
            port,
            trap,
            down,
            delay,
            task,
        }
    }

    /// Holds what clients send for `delay` before passing it on (what the server sends back is
    /// not delayed): from now on, on every connection through the proxy.
    pub fn delay_upstream(&self, delay: Duration) {
        self.delay.send_replace(delay);
    }

    /// Closes every connection through the proxy and refuses new ones (`true`), or lets them
    /// through again (`false`): a network link that goes down and comes back.
    pub fn hold_down(&self, down: bool) {
        self.down.send_replace(down);
    }

    /// `url` with its host and port replaced by the proxy's.
    pub fn url(&self, url: &str) -> String {
        let mut url = reqwest::Url::parse(url).expect("a URL");
        url.set_host(Some("127.0.0.1")).expect("a host");
        url.set_port(Some(self.port)).expect("a port");
        url.to_string()
    }

    /// Cuts the next connection whose client sends each of `markers`, in this order, at `cut`.
    pub fn arm(&self, markers: &[&[u8]], cut: Cut) {
        let mut trap = self.trap.lock().unwrap_or_else(|e| e.into_inner());
        trap.generation += 1;
        trap.armed = Some((markers.iter().map(|m| m.to_vec()).collect(), cut));
        trap.fired = false;
    }

    /// Whether the armed cut has happened.
    pub fn fired(&self) -> bool {
        self.trap.lock().unwrap_or_else(|e| e.into_inner()).fired
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What one connection has matched of the armed markers.
struct Progress {
    generation: u64,
    matched: usize,
    /// The end of what the client sent, long enough to find a marker split across reads.
    window: Vec<u8>,
}

impl Progress {
    /// Takes `chunk` from the client: the cut to make if it completes the markers.
    fn feed(&mut self, trap: &Mutex<Trap>, chunk: &[u8]) -> Option<Cut> {
        let mut trap = trap.lock().unwrap_or_else(|e| e.into_inner());
        if trap.generation != self.generation {
            *self = Self {
                generation: trap.generation,
                matched: 0,
                window: Vec::new(),
            };
        }
        let (markers, cut) = trap.armed.as_ref()?;
        self.window.extend_from_slice(chunk);
        while let Some(marker) = markers.get(self.matched) {
            let Some(at) = find(&self.window, marker) else {
                break;
            };
            self.window.drain(..at + marker.len());
            self.matched += 1;
        }
        if self.matched < markers.len() {
            let longest = markers.iter().map(Vec::len).max().unwrap_or(0);
            let keep = self.window.len().min(longest);
            self.window.drain(..self.window.len() - keep);
            return None;
        }
        let cut = *cut;
        trap.armed = None;
        trap.fired = true;
        Some(cut)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

async fn pipe(
    client: TcpStream,
    upstream: SocketAddr,
    trap: Arc<Mutex<Trap>>,
    delay: watch::Receiver<Duration>,
) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut server_rx, mut server_tx) = server.into_split();
    let drop_answer = AtomicBool::new(false);
    let answer_dropped = &drop_answer;
    // What the client sent, each chunk with the moment it may go on and whether it completes
    // an `AfterRequest` trap (the server's answers are dropped once it has gone on).
    let (sent, mut to_send) =
        tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>, bool)>();
    let forward = async move {
        while let Some((at, chunk, completes_trap)) = to_send.recv().await {
            tokio::time::sleep_until(at).await;
            if server_tx.write_all(&chunk).await.is_err() {
                return;
            }
            if completes_trap {
                answer_dropped.store(true, Ordering::SeqCst);
            }
        }
    };
    let read = async move {
        let mut progress = Progress {
            generation: 0,
            matched: 0,
            window: Vec::new(),
        };
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match client_rx.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let completes_trap = match progress.feed(&trap, &buf[..n]) {
                Some(Cut::BeforeRequest) => return,
                Some(Cut::AfterRequest) => true,
                None => false,
            };
            let at = tokio::time::Instant::now() + *delay.borrow();
            if sent.send((at, buf[..n].to_vec(), completes_trap)).is_err() {
                return;
            }
        }
    };
    // A cut before the request drops the reader, so what it queued earlier still goes on.
    let up = async {
        tokio::join!(read, forward);
    };
    let down = async {
        let mut buf = vec![0u8; 64 * 1024];
        let mut client_gone = false;
        loop {
            let n = match server_rx.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if drop_answer.load(Ordering::SeqCst) {
                return;
            }
            if client_gone {
                continue;
            }
            // A client that has gone has not taken back what it sent: that still reaches the
            // server (through `up`), as the kernel delivers what a closed socket had written.
            client_gone = client_tx.write_all(&buf[..n]).await.is_err();
        }
    };
    // Whichever side ends first ends the connection: every half is dropped, so both sockets close.
    tokio::select! {
        () = up => {}
        () = down => {}
    }
}
