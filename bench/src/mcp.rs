//! `--mcp N`: what the built-in MCP server costs on top of REST, and what an agent's view of a
//! page weighs. The same operation N times each way on one session (alternating, so the browser's
//! state is the same for both): a read (`session_list` vs `GET /v1/sessions`), a navigation, and a
//! snapshot (`snapshot` vs `POST …/capture {"format": "snapshot"}`); then the sizes of a
//! realistic shop page as HTML, Markdown (`extract`) and snapshot.

use std::time::Instant;

use anyhow::bail;
use serde_json::{Value, json};

use crate::{
    Args,
    report::machine,
    server::{Client, Server},
    stats::{Stats, stats},
};

const HEADLESS_SHELL: &str = "/usr/lib/chromium/chromium-headless-shell";

/// A shop-like page: a header with navigation and search, 60 product cards (image, link, price,
/// quantity select, button), a sidebar of filters and a footer of links.
fn shop_page() -> String {
    let mut html = String::from(
        "<!doctype html><title>Acme Outfitters — Jackets</title><header><a href=/>Acme</a><nav>",
    );
    for i in 0..30 {
        html.push_str(&format!("<a href=/c/{i}>Category {i}</a> "));
    }
    html.push_str(
        "</nav><form role=search><input type=search placeholder='Search the shop' name=q>\
         <button>Search</button></form></header><aside><h2>Filters</h2>",
    );
    for f in [
        "Size S",
        "Size M",
        "Size L",
        "Waterproof",
        "Insulated",
        "On sale",
    ] {
        html.push_str(&format!("<label><input type=checkbox> {f}</label>"));
    }
    html.push_str("</aside><main><h1>Jackets</h1><p>Showing 60 of 240 products.</p><ul>");
    for i in 0..60 {
        html.push_str(&format!(
            "<li class=card><img src=/img/{i}.jpg alt='Jacket model {i}'><h3><a href=/p/{i}>\
             Trail jacket {i}</a></h3><p>Lightweight shell with taped seams, {} g.</p>\
             <p class=price>€{}.00</p><select name=qty{i}><option>1</option><option>2</option>\
             <option>3</option></select><button>Add to cart</button></li>",
            300 + i * 5,
            80 + i
        ));
    }
    html.push_str("</ul></main><footer>");
    for i in 0..40 {
        html.push_str(&format!("<a href=/info/{i}>Info {i}</a> "));
    }
    html.push_str("</footer>");
    html
}

async fn serve_shop() -> anyhow::Result<(String, usize, tokio::task::JoinHandle<()>)> {
    let page = shop_page();
    let size = page.len();
    let app = axum::Router::new().route(
        "/shop",
        axum::routing::get(move || {
            let page = page.clone();
            async move { axum::response::Html(page) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/shop", listener.local_addr()?);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((url, size, task))
}

/// One `tools/call`; its text, or the tool error.
async fn tool(c: &Client, name: &str, arguments: Value) -> anyhow::Result<String> {
    let r: Value = c
        .http
        .post(format!("{}/mcp", c.base))
        .bearer_auth(&c.key)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                      "params": {"name": name, "arguments": arguments}}))
        .send()
        .await?
        .json()
        .await?;
    let result = &r["result"];
    let text = result["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if result["isError"] == true || result.is_null() {
        bail!("{name}: {r}");
    }
    Ok(text)
}

fn ms(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1000.0
}

pub(crate) async fn mcp_bench(args: &Args, n: usize) -> anyhow::Result<String> {
    let (url, html_bytes, _site) = serve_shop().await?;
    let server = Server::start(&args.binary, std::path::Path::new(HEADLESS_SHELL), 1)?;
    let c = Client {
        http: reqwest::Client::new(),
        base: server.base.clone(),
        key: server.key.clone(),
    };
    c.wait_pool(1).await?;
    let id = c.create().await?;
    let sid = json!({"session_id": id});
    // Warm both paths once.
    tool(&c, "navigate", json!({"session_id": id, "url": url})).await?;
    tool(&c, "snapshot", sid.clone()).await?;

    let (mut list_rest, mut list_mcp) = (Vec::new(), Vec::new());
    let (mut nav_rest, mut nav_mcp) = (Vec::new(), Vec::new());
    let (mut snap_rest, mut snap_mcp) = (Vec::new(), Vec::new());
    let mut snapshot = String::new();
    for i in 0..n {
        // Each pair in turn order, so neither side always runs right after a navigation.
        let rest_first = i % 2 == 0;
        for side in [rest_first, !rest_first] {
            if side {
                let t = Instant::now();
                c.get("/v1/sessions?limit=20").await?;
                list_rest.push(ms(t));
            } else {
                let t = Instant::now();
                tool(&c, "session_list", json!({"limit": 20})).await?;
                list_mcp.push(ms(t));
            }
        }
        for side in [rest_first, !rest_first] {
            if side {
                let t = Instant::now();
                c.post(&format!("/v1/sessions/{id}/navigate"), json!({"url": url}))
                    .await?;
                nav_rest.push(ms(t));
            } else {
                let t = Instant::now();
                tool(&c, "navigate", json!({"session_id": id, "url": url})).await?;
                nav_mcp.push(ms(t));
            }
        }
        for side in [rest_first, !rest_first] {
            if side {
                let t = Instant::now();
                c.post(
                    &format!("/v1/sessions/{id}/capture"),
                    json!({"format": "snapshot"}),
                )
                .await?
                .bytes()
                .await?;
                snap_rest.push(ms(t));
            } else {
                let t = Instant::now();
                snapshot = tool(&c, "snapshot", sid.clone()).await?;
                snap_mcp.push(ms(t));
            }
        }
    }
    let t = Instant::now();
    let markdown = tool(
        &c,
        "extract",
        json!({"session_id": id, "max_chars": 200000}),
    )
    .await?;
    let extract_ms = ms(t);
    c.delete(&id).await?;
    server.stop()?;

    let refs = snapshot.matches("] ").count();
    let lines = snapshot.lines().count();
    let date = crate::report::now();
    let row = |name: &str, rest: Vec<f64>, mcp: Vec<f64>| {
        let (r, m): (Stats, Stats) = (stats(rest), stats(mcp));
        format!(
            "| {name} | {:.1} ms | {:.1} ms | {:+.1} ms | {:.1} / {:.1} ms |\n",
            r.p50,
            m.p50,
            m.p50 - r.p50,
            r.p95,
            m.p95
        )
    };
    let mut md = format!(
        "Measured {date} on {} with the release binary, chromium-headless-shell (sandbox on), \
         loopback; {n} calls each way on one session, REST and MCP in turn (the order swapped every round). MCP calls are \
         plain JSON-RPC POSTs to `/mcp` (stateless, JSON answers), as an SDK sends them.\n\n\
         | operation | REST p50 | MCP p50 | MCP overhead (p50) | p95 REST / MCP |\n\
         |---|---|---|---|---|\n",
        machine()
    );
    md.push_str(&row("list sessions", list_rest, list_mcp));
    md.push_str(&row("navigate (shop page)", nav_rest, nav_mcp));
    md.push_str(&row("snapshot (shop page)", snap_rest, snap_mcp));
    md.push_str(&format!(
        "\nThe shop page (60 product cards, navigation, search, filters, footer) as an agent reads \
         it:\n\n| form | size | notes |\n|---|---|---|\n\
         | HTML | {html_bytes} bytes | what the server sent |\n\
         | snapshot | {} bytes, {lines} lines | {refs} elements with refs |\n\
         | Markdown (`extract`) | {} bytes | main content only; {extract_ms:.0} ms |\n",
        snapshot.len(),
        markdown.len()
    ));
    Ok(md)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_shop_page_is_big_enough_to_mean_something() {
        let page = super::shop_page();
        assert!(page.len() > 20_000, "{}", page.len());
        assert_eq!(page.matches("<button>Add to cart</button>").count(), 60);
    }
}
