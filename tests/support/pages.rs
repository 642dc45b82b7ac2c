//! A loopback web server with the pages the browser tests visit, counting hits per path so
//! tests can prove what the browser did (or did not) fetch.

#![allow(dead_code)]

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    extract::{Path, State},
    http::{HeaderMap, Uri, header},
    response::{Html, IntoResponse, Redirect, Response},
    routing::get,
};

#[derive(Clone, Default)]
pub struct Hits(Arc<Mutex<HashMap<String, u64>>>);

impl Hits {
    pub fn count(&self, path: &str) -> u64 {
        self.0
            .lock()
            .map(|m| m.get(path).copied().unwrap_or(0))
            .unwrap_or(0)
    }
    fn record(&self, path: &str) {
        if let Ok(mut m) = self.0.lock() {
            *m.entry(path.to_owned()).or_default() += 1;
        }
    }
}

pub struct Site {
    pub addr: SocketAddr,
    pub hits: Hits,
    task: tokio::task::JoinHandle<()>,
}

impl Site {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const INDEX: &str = r#"<!doctype html><html><head><title>Index</title></head><body>
<h1 id="title">Driftstack test page</h1>
<a id="next" href="/two">to page two</a>
<input id="name" autocomplete="off">
<select id="color"><option value="red">Red</option><option value="blue">Blue</option></select>
<button id="hide" onclick="document.getElementById('title').style.display='none'">hide</button>
<div id="hovered">no</div>
<script>
  document.getElementById('hovered').addEventListener('mouseover', () => {
    document.getElementById('hovered').textContent = 'yes';
  });
  document.getElementById('name').addEventListener('keydown', (e) => {
    if (e.key === 'Enter') document.title = 'entered:' + e.target.value;
  });
  setTimeout(() => {
    const late = document.createElement('p');
    late.id = 'late';
    late.textContent = 'late';
    document.body.appendChild(late);
  }, 300);
</script>
<div style="height: 3000px">tall</div>
</body></html>"#;

pub async fn start() -> Site {
    start_with(Vec::new()).await
}

/// The site, with extra pages (path → HTML) and redirects (`/go?to=URL`).
pub async fn start_with(extra: Vec<(&'static str, String)>) -> Site {
    let hits = Hits::default();
    let mut app = Router::new();
    for (path, html) in extra {
        app = app.route(path, get(move || async move { Html(html) }));
    }
    let app = app
        .route("/", get(|| async { Html(INDEX) }))
        .route("/two", get(|| async { Html("<title>Two</title><p id=\"second\">second page</p>") }))
        .route("/headers", get(echo_headers))
        .route(
            "/with-image",
            get(|| async { Html("<title>img</title><img id=\"pic\" src=\"/img.png\"><link rel=\"stylesheet\" href=\"/style.css\">") }),
        )
        .route("/img.png", get(png))
        .route("/style.css", get(|| async { ([(header::CONTENT_TYPE, "text/css")], "body{color:red}") }))
        .route("/slow/{ms}", get(slow))
        .route("/redirect", get(|| async { Redirect::temporary("/two") }))
        .route("/go", get(go))
        .route(
            "/busy",
            get(|| async {
                Html("<title>busy</title><script>setTimeout(() => fetch('/slow/700'), 50)</script>")
            }),
        )
        .route("/status/{code}", get(status))
        .route(
            "/endless/{name}",
            get(|Path(name): Path<String>| async move {
                // 64 KiB every 20 ms, never ending: only a cancellation stops it.
                let chunks = futures::stream::unfold((), |()| async {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    Some((Ok::<_, std::io::Error>(axum::body::Bytes::from(vec![b'x'; 64 << 10])), ()))
                });
                (
                    [
                        (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
                        (
                            header::CONTENT_DISPOSITION,
                            format!("attachment; filename=\"{name}\""),
                        ),
                    ],
                    axum::body::Body::from_stream(chunks),
                )
            }),
        )
        .route(
            "/bytes/{n}/{name}",
            get(|Path((n, name)): Path<(usize, String)>| async move {
                (
                    [
                        (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
                        (
                            header::CONTENT_DISPOSITION,
                            format!("attachment; filename=\"{name}\""),
                        ),
                    ],
                    bytes_of(n),
                )
            }),
        )
        .route(
            "/set-cookie/{value}",
            get(|Path(value): Path<String>| async move {
                (
                    [(
                        header::SET_COOKIE,
                        format!("sid={value}; HttpOnly; SameSite=Lax; Path=/; Max-Age=86400"),
                    )],
                    Html("<title>cookie set</title>"),
                )
            }),
        )
        .fallback(|| async { (axum::http::StatusCode::NOT_FOUND, "not here") })
        .layer(axum::middleware::from_fn_with_state(hits.clone(), count))
        .with_state(hits.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind site");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Site { addr, hits, task }
}

async fn count(
    State(hits): State<Hits>,
    uri: Uri,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    hits.record(uri.path());
    next.run(req).await
}

#[derive(serde::Deserialize)]
struct GoTo {
    to: String,
}

async fn go(axum::extract::Query(q): axum::extract::Query<GoTo>) -> Redirect {
    Redirect::temporary(&q.to)
}

async fn echo_headers(headers: HeaderMap) -> Html<String> {
    let map: HashMap<String, String> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let json = serde_json::to_string(&map).unwrap_or_default();
    Html(format!(
        "<title>headers</title><pre id=\"h\">{}</pre>",
        json.replace('<', "&lt;")
    ))
}

async fn slow(Path(ms): Path<u64>) -> Html<String> {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Html(format!("<title>slow {ms}</title>"))
}

async fn status(Path(code): Path<u16>) -> Response {
    let code = axum::http::StatusCode::from_u16(code).unwrap_or(axum::http::StatusCode::OK);
    (code, Html("<title>status</title>")).into_response()
}

/// A 1×1 PNG.
async fn png() -> impl IntoResponse {
    const PIXEL: &[u8] = &[
        0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44,
        0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f,
        0x15, 0xc4, 0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x00,
        0x01, 0x00, 0x00, 0x05, 0x00, 0x01, 0x0d, 0x0a, 0x2d, 0xb4, 0x00, 0x00, 0x00, 0x00, 0x49,
        0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
    ];
    ([(header::CONTENT_TYPE, "image/png")], PIXEL)
}

/// A TCP server that counts every connection it accepts (any protocol) and answers a tiny
/// HTTP response: the "private service" the egress guard must keep browsers away from.
pub struct Trap {
    pub addr: SocketAddr,
    pub connections: Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Trap {
    pub async fn bind(addr: &str) -> Trap {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("bind trap");
        let addr = listener.local_addr().expect("addr");
        let connections = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let count = connections.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    let _ = stream.read(&mut buf).await;
                    let _ = stream
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nsecret")
                        .await;
                });
            }
        });
        Trap {
            addr,
            connections,
            task,
        }
    }

    pub fn hits(&self) -> u64 {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for Trap {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Width and height from a PNG's IHDR chunk.
pub fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let be = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    (be(16), be(20))
}

/// The `n` bytes `/bytes/{n}/{name}` serves (not all alike, so a wrong offset shows).
pub fn bytes_of(n: usize) -> Vec<u8> {
    (0..n).map(|i| ((i * 31 + 7) % 251) as u8).collect()
}
