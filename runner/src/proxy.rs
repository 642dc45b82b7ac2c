//! The egress guard in front of every browser: a forward proxy (HTTP CONNECT and plain HTTP) on a
//! loopback port, one per Chromium process, through which all of that browser's traffic goes.
//!
//! For each request it resolves the host, checks every address against the [`EgressPolicy`]
//! and connects to an address it checked — resolution, check and connection in one step, so DNS
//! rebinding has no window. It refuses the DevTools ports of this runner's browsers even when
//! loopback is allowed, counts the bytes of the session it currently serves, and can chain to the
//! session's own upstream proxy (with Basic credentials) instead of connecting directly.

use std::{
    collections::HashSet,
    net::{IpAddr, SocketAddr},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};
use tracing::Instrument;

use base64::Engine;
use common::egress::{EgressPolicy, Refusal as Policy};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    task::{JoinHandle, JoinSet},
};

use crate::spec::UpstreamProxy;

const MAX_HEAD: usize = 32 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
pub const DENIED_HEADER: &str = "x-driftstack-egress";

/// The DevTools ports of this runner's browsers, never reachable through any proxy.
#[derive(Clone, Default, Debug)]
pub struct DevtoolsPorts(Arc<Mutex<HashSet<u16>>>);

impl DevtoolsPorts {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<u16>> {
        match self.0.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }
    pub fn add(&self, port: u16) {
        self.lock().insert(port);
    }
    pub fn remove(&self, port: u16) {
        self.lock().remove(&port);
    }
    fn contains(&self, port: u16) -> bool {
        self.lock().contains(&port)
    }
}

/// Traffic counters of one session.
#[derive(Debug, Default)]
pub struct EgressCounters {
    pub bytes_received: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub denied: AtomicU64,
    last_denied: Mutex<Option<String>>,
}

impl EgressCounters {
    pub fn last_denied(&self) -> Option<String> {
        self.last_denied.lock().ok().and_then(|g| g.clone())
    }

    fn deny(&self, host: &str) {
        self.denied.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut g) = self.last_denied.lock() {
            *g = Some(host.to_owned());
        }
    }
}

#[derive(Default)]
struct Binding {
    upstream: Option<UpstreamProxy>,
    counters: Arc<EgressCounters>,
}

struct Shared {
    policy: EgressPolicy,
    devtools: DevtoolsPorts,
    binding: Mutex<Binding>,
}

impl Shared {
    fn binding(&self) -> (Option<UpstreamProxy>, Arc<EgressCounters>) {
        match self.binding.lock() {
            Ok(b) => (b.upstream.clone(), b.counters.clone()),
            Err(p) => {
                let b = p.into_inner();
                (b.upstream.clone(), b.counters.clone())
            }
        }
    }
}

/// Why a destination was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Refused by the egress policy, or not resolvable.
    #[error(transparent)]
    Policy(#[from] common::egress::Refusal),
    /// Only a local DevTools port: answered like a closed port, so a page cannot tell the two
    /// apart (no port-scan oracle), and not counted as a denial the tenant could read.
    #[error("connection failed")]
    Unreachable,
}

/// Resolves `host` through the shared egress resolver and drops this runner's DevTools ports;
/// a refusal names the host.
pub async fn resolve_allowed(
    policy: &EgressPolicy,
    devtools: &DevtoolsPorts,
    host: &str,
    port: u16,
) -> Result<Vec<SocketAddr>, Refusal> {
    let allowed = common::egress::resolve(policy, host, port).await?;
    let reachable: Vec<SocketAddr> = allowed
        .into_iter()
        .filter(|a| !(is_this_host(a.ip()) && devtools.contains(a.port())))
        .collect();
    if reachable.is_empty() {
        tracing::info!(
            host,
            port,
            "a browser's DevTools port was asked for; refused"
        );
        return Err(Refusal::Unreachable);
    }
    Ok(reachable)
}

/// Whether `ip`, in any spelling (IPv4-mapped IPv6 included), names this machine: loopback or
/// the unspecified address (a connection to `0.0.0.0` reaches local listeners on Linux).
fn is_this_host(ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    ip.is_loopback() || ip.is_unspecified()
}

/// One browser's proxy.
pub struct EgressProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for EgressProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl EgressProxy {
    pub async fn start(policy: EgressPolicy, devtools: DevtoolsPorts) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            policy,
            devtools,
            binding: Mutex::new(Binding::default()),
        });
        let s = shared.clone();
        let task = tokio::spawn(async move {
            // Connection tasks live in the set, so stopping the proxy stops them all.
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => {
                            let s = s.clone();
                            connections.spawn(async move { serve(s, stream).await });
                        }
                        Err(err) => {
                            tracing::warn!(error = %err, "egress proxy accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    },
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        Ok(EgressProxy { addr, shared, task })
    }

    /// `http://127.0.0.1:PORT`, for Chromium's proxy settings.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Starts serving a new session: its upstream proxy (if any) and fresh counters.
    pub fn bind(&self, upstream: Option<UpstreamProxy>) -> Arc<EgressCounters> {
        let counters = Arc::new(EgressCounters::default());
        let binding = Binding {
            upstream,
            counters: counters.clone(),
        };
        match self.shared.binding.lock() {
            Ok(mut b) => *b = binding,
            Err(p) => *p.into_inner() = binding,
        }
        counters
    }
}

/// A parsed request head.
struct Head {
    method: String,
    target: String,
    version: String,
    headers: Vec<(String, String)>,
}

fn parse_head(bytes: &[u8]) -> Option<Head> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut lines = text.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_owned();
    let target = first.next()?.to_owned();
    let version = first.next()?.to_owned();
    let headers = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        })
        .collect();
    Some(Head {
        method,
        target,
        version,
        headers,
    })
}

/// Reads until the end of a head; returns the head and any bytes read past it.
async fn read_head<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Ok((buf, rest));
        }
        if buf.len() > MAX_HEAD {
            return Err(std::io::Error::other("head too large"));
        }
        let n = r.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Answers the browser. `marker` (`denied` or `unreachable`) is sent in [`DENIED_HEADER`], so a
/// navigation can tell the guard's answers from a site's.
async fn respond<W: AsyncWrite + Unpin>(w: &mut W, status: &str, marker: Option<&str>, body: &str) {
    let marker = marker
        .map(|m| format!("{DENIED_HEADER}: {m}\r\n"))
        .unwrap_or_default();
    let msg = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\n{marker}content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = w.write_all(msg.as_bytes()).await;
    let _ = w.shutdown().await;
}

/// Splits `host:port` (with `[v6]:port`), using `default_port` when none is given.
fn split_host_port(s: &str, default_port: u16) -> Option<(String, u16)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None => default_port,
        };
        return Some((format!("[{host}]"), port));
    }
    match s.rsplit_once(':') {
        Some((h, p)) => Some((h.to_owned(), p.parse().ok()?)),
        None => Some((s.to_owned(), default_port)),
    }
}

async fn serve(shared: Arc<Shared>, mut client: TcpStream) {
    let Ok(Ok((head_bytes, rest))) =
        tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut client)).await
    else {
        return;
    };
    let Some(head) = parse_head(&head_bytes) else {
        respond(&mut client, "400 Bad Request", None, "malformed request").await;
        return;
    };
    let (upstream, counters) = shared.binding();
    let connect = head.method.eq_ignore_ascii_case("CONNECT");
    let (host, port, origin_form) = if connect {
        match split_host_port(&head.target, 443) {
            Some((h, p)) => (h, p, None),
            None => {
                respond(&mut client, "400 Bad Request", None, "bad CONNECT target").await;
                return;
            }
        }
    } else {
        let Ok(url) = url::Url::parse(&head.target) else {
            respond(
                &mut client,
                "400 Bad Request",
                None,
                "absolute URL expected",
            )
            .await;
            return;
        };
        if url.scheme() != "http" {
            respond(
                &mut client,
                "403 Forbidden",
                Some("denied"),
                "only http and https are allowed",
            )
            .await;
            counters.deny(url.host_str().unwrap_or(""));
            return;
        }
        // `Host`'s Display writes IPv6 addresses in brackets, as `resolve_allowed` expects.
        let host = match url.host() {
            Some(h) => h.to_string(),
            None => {
                respond(&mut client, "400 Bad Request", None, "no host").await;
                return;
            }
        };
        let path = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        (host, url.port_or_known_default().unwrap_or(80), Some(path))
    };

    let origin = match &upstream {
        Some(proxy) => match tunnel_via(&shared, proxy, &host, port).await {
            Ok(stream) => stream,
            Err(message) => {
                respond(
                    &mut client,
                    "502 Bad Gateway",
                    Some("unreachable"),
                    &message,
                )
                .await;
                return;
            }
        },
        None => match resolve_allowed(&shared.policy, &shared.devtools, &host, port)
            .instrument(common::phase!("proxy.resolve"))
            .await
        {
            Ok(addrs) => match connect_first(&addrs)
                .instrument(common::phase!("proxy.connect"))
                .await
            {
                Some(stream) => stream,
                None => {
                    respond(
                        &mut client,
                        "502 Bad Gateway",
                        Some("unreachable"),
                        "connection failed",
                    )
                    .await;
                    return;
                }
            },
            Err(Refusal::Policy(Policy::Denied { host })) => {
                tracing::info!(%host, port, "egress denied");
                counters.deny(&host);
                let body = format!("Driftstack's egress guard refused {host}");
                respond(&mut client, "403 Forbidden", Some("denied"), &body).await;
                return;
            }
            Err(Refusal::Policy(Policy::Unresolvable { host })) => {
                respond(
                    &mut client,
                    "502 Bad Gateway",
                    Some("unreachable"),
                    &format!("cannot resolve {host}"),
                )
                .await;
                return;
            }
            Err(Refusal::Unreachable) => {
                respond(
                    &mut client,
                    "502 Bad Gateway",
                    Some("unreachable"),
                    "connection failed",
                )
                .await;
                return;
            }
        },
    };
    let mut origin = origin;
    if connect {
        if client
            .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            .await
            .is_err()
        {
            return;
        }
    } else {
        // One request per connection: the origin closes after its answer, and so do we.
        let mut out = format!(
            "{} {} {}\r\n",
            head.method,
            origin_form.unwrap_or_default(),
            head.version
        );
        for (k, v) in &head.headers {
            let lower = k.to_ascii_lowercase();
            if lower == "proxy-connection"
                || lower == "proxy-authorization"
                || lower == "connection"
                || lower == "keep-alive"
            {
                continue;
            }
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("connection: close\r\n\r\n");
        if origin.write_all(out.as_bytes()).await.is_err() {
            return;
        }
        counters
            .bytes_sent
            .fetch_add(out.len() as u64, Ordering::Relaxed);
    }
    if !rest.is_empty() {
        if origin.write_all(&rest).await.is_err() {
            return;
        }
        counters
            .bytes_sent
            .fetch_add(rest.len() as u64, Ordering::Relaxed);
    }
    if let Ok((sent, received)) = tokio::io::copy_bidirectional(&mut client, &mut origin).await {
        counters.bytes_sent.fetch_add(sent, Ordering::Relaxed);
        counters
            .bytes_received
            .fetch_add(received, Ordering::Relaxed);
    }
}

async fn connect_first(addrs: &[SocketAddr]) -> Option<TcpStream> {
    for addr in addrs {
        if let Ok(Ok(stream)) =
            tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await
        {
            let _ = stream.set_nodelay(true);
            return Some(stream);
        }
    }
    None
}

/// Opens a tunnel to `host:port` through the session's upstream proxy. The upstream proxy's own
/// address must pass the egress policy; the destination is resolved by the upstream.
async fn tunnel_via(
    shared: &Shared,
    proxy: &UpstreamProxy,
    host: &str,
    port: u16,
) -> Result<TcpStream, String> {
    let url = url::Url::parse(&proxy.server).map_err(|_| "bad upstream proxy URL".to_owned())?;
    let proxy_host = url
        .host_str()
        .ok_or("upstream proxy has no host")?
        .to_owned();
    let proxy_port = url.port_or_known_default().unwrap_or(8080);
    let addrs = resolve_allowed(&shared.policy, &shared.devtools, &proxy_host, proxy_port)
        .await
        .map_err(|r| format!("upstream proxy refused: {r}"))?;
    let mut stream = connect_first(&addrs)
        .await
        .ok_or("cannot reach the upstream proxy")?;
    let mut req = format!("CONNECT {host}:{port} HTTP/1.1\r\nhost: {host}:{port}\r\n");
    if let Some(user) = &proxy.username {
        let pass = proxy.password.as_deref().unwrap_or("");
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        req.push_str(&format!("proxy-authorization: Basic {token}\r\n"));
    }
    req.push_str("\r\n");
    stream
        .write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let (head, _) = tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut stream))
        .await
        .map_err(|_| "upstream proxy timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    let status_ok = std::str::from_utf8(&head)
        .ok()
        .and_then(|h| h.split(' ').nth(1))
        .is_some_and(|code| code == "200");
    if !status_ok {
        return Err("the upstream proxy refused the tunnel".into());
    }
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_forms() {
        assert_eq!(
            split_host_port("example.com:443", 1),
            Some(("example.com".into(), 443))
        );
        assert_eq!(
            split_host_port("[::1]:8080", 1),
            Some(("[::1]".into(), 8080))
        );
        assert_eq!(split_host_port("[::1]", 80), Some(("[::1]".into(), 80)));
        assert_eq!(
            split_host_port("example.com", 80),
            Some(("example.com".into(), 80))
        );
        assert_eq!(split_host_port("example.com:http", 80), None);
    }

    #[tokio::test]
    async fn odd_spellings_of_loopback_are_refused() {
        let policy = EgressPolicy::default();
        let ports = DevtoolsPorts::default();
        for host in [
            "127.0.0.1",
            "2130706433",
            "0x7f000001",
            "017700000001",
            "[::ffff:127.0.0.1]",
            "[::1]",
            "localhost",
            "localhost.",
            "169.254.169.254",
        ] {
            let r = resolve_allowed(&policy, &ports, host, 80).await;
            assert!(matches!(r, Err(Refusal::Policy(_))), "{host}: {r:?}");
        }
    }

    #[tokio::test]
    async fn devtools_ports_are_refused_even_when_loopback_is_allowed() {
        let policy = EgressPolicy::new(vec![
            common::egress::Network::parse("127.0.0.0/8").expect("net"),
        ]);
        let ports = DevtoolsPorts::default();
        ports.add(9222);
        assert!(
            resolve_allowed(&policy, &ports, "127.0.0.1", 8080)
                .await
                .is_ok()
        );
        for host in [
            "127.0.0.1",
            "[::ffff:127.0.0.1]",
            "[::ffff:7f00:1]",
            "2130706433",
            "0x7f000001",
            "localhost",
        ] {
            assert_eq!(
                resolve_allowed(&policy, &ports, host, 9222).await,
                Err(Refusal::Unreachable),
                "{host}"
            );
        }
        // The unspecified address reaches local listeners too, when an operator allows it.
        let open = EgressPolicy::new(vec![
            common::egress::Network::parse("0.0.0.0/0").expect("net"),
            common::egress::Network::parse("::/0").expect("net"),
        ]);
        for host in ["0.0.0.0", "[::]", "[::ffff:0.0.0.0]", "[::1]"] {
            assert_eq!(
                resolve_allowed(&open, &ports, host, 9222).await,
                Err(Refusal::Unreachable),
                "{host}"
            );
        }
    }

    /// A DevTools port and a closed port get byte-identical answers from the proxy.
    #[tokio::test]
    async fn a_devtools_port_looks_like_a_closed_port() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let policy = EgressPolicy::new(vec![
            common::egress::Network::parse("127.0.0.0/8").expect("net"),
        ]);
        let ports = DevtoolsPorts::default();
        let devtools = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let devtools_port = devtools.local_addr().expect("addr").port();
        ports.add(devtools_port);
        let closed_port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let proxy = EgressProxy::start(policy, ports).await.expect("proxy");
        let addr = proxy.url().trim_start_matches("http://").to_owned();
        let mut answers = Vec::new();
        for (host, port) in [
            ("[::ffff:127.0.0.1]", devtools_port),
            ("127.0.0.1", devtools_port),
            ("127.0.0.1", closed_port),
        ] {
            let mut c = TcpStream::connect(&addr).await.expect("connect");
            let req = format!(
                "GET http://{host}:{port}/json/list HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n"
            );
            c.write_all(req.as_bytes()).await.expect("write");
            let mut answer = String::new();
            c.read_to_string(&mut answer).await.expect("read");
            answers.push(answer);
        }
        assert!(answers[0].starts_with("HTTP/1.1 502"), "{}", answers[0]);
        assert_eq!(answers[0], answers[2]);
        assert_eq!(answers[1], answers[2]);
    }
}
