//! `--live-input N`: the interactive live view's input-to-frame latency on loopback — a
//! controller sends a keystroke over the live WebSocket into a focused input whose text is large
//! and whose caret does not blink, and the time until the next JPEG frame arrives is one sample.
//! Before each keystroke the socket is drained until no frame came for 150 ms, so a frame
//! counted is the one the key caused.

use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};

use crate::{
    Args,
    report::machine,
    server::{Client, Server},
    stats::stats,
};

const HEADLESS_SHELL: &str = "/usr/lib/chromium/chromium-headless-shell";

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn send(ws: &mut Socket, v: Value) -> anyhow::Result<()> {
    ws.send(Message::Text(v.to_string().into())).await?;
    Ok(())
}

/// Waits for a text message `want` accepts.
async fn until_text(ws: &mut Socket, want: impl Fn(&Value) -> bool) -> anyhow::Result<()> {
    tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(msg) = ws.next().await {
            if let Message::Text(t) = msg?
                && serde_json::from_str::<Value>(t.as_str()).is_ok_and(|v| want(&v))
            {
                return Ok(());
            }
        }
        anyhow::bail!("the live socket closed")
    })
    .await
    .context("no answer from the live socket within 15 s")?
}

/// Reads until no frame arrived for `quiet`.
async fn drain(ws: &mut Socket, quiet: Duration) -> anyhow::Result<()> {
    while let Ok(msg) = tokio::time::timeout(quiet, ws.next()).await {
        msg.context("the live socket closed")??;
    }
    Ok(())
}

async fn next_frame(ws: &mut Socket) -> anyhow::Result<()> {
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(msg) = ws.next().await {
            if let Message::Binary(_) = msg? {
                return Ok(());
            }
        }
        anyhow::bail!("the live socket closed")
    })
    .await
    .context("no frame within 10 s of a keystroke")?
}

pub(crate) async fn live_input_bench(
    args: &Args,
    url: &str,
    keys: usize,
) -> anyhow::Result<String> {
    let server = Server::start_with(&args.binary, std::path::Path::new(HEADLESS_SHELL), 1, &[])?;
    let c = Client {
        http: reqwest::Client::new(),
        base: server.base.clone(),
        key: server.key.clone(),
    };
    c.wait_pool(1).await?;
    let id = c.create_with(json!({})).await?;
    c.post(&format!("/v1/sessions/{id}/navigate"), json!({"url": url}))
        .await?;
    let page = "document.body.innerHTML = '<input id=i autocomplete=off style=\"caret-color:transparent;font-size:48px;width:90%\">'";
    c.post(
        &format!("/v1/sessions/{id}/actions"),
        json!({"actions": [{"type": "evaluate", "expression": page}, {"type": "click", "selector": "#i"}]}),
    )
    .await?;
    let live = format!(
        "{}/v1/sessions/{id}/live",
        c.base.replacen("http://", "ws://", 1)
    );
    let mut req = live.into_client_request()?;
    req.headers_mut()
        .insert("authorization", format!("Bearer {}", c.key).parse()?);
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await?;
    send(&mut ws, json!({"type": "control", "action": "request"})).await?;
    until_text(&mut ws, |v| {
        v["type"] == "control" && v["controller"]["you"] == true
    })
    .await?;
    let mut samples = Vec::with_capacity(keys);
    for i in 0..keys {
        drain(&mut ws, Duration::from_millis(150)).await?;
        let ch = char::from(b'a' + (i % 26) as u8).to_string();
        let started = Instant::now();
        send(
            &mut ws,
            json!({"type": "key", "event": "down", "key": ch, "text": ch}),
        )
        .await?;
        next_frame(&mut ws).await?;
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
        send(&mut ws, json!({"type": "key", "event": "up", "key": ch})).await?;
    }
    let _ = ws.close(None).await;
    c.delete(&id).await?;
    server.stop()?;
    let s = stats(samples);
    let date = crate::report::now();
    Ok(format!(
        "Measured {date} on {} with the release binary, chromium-headless-shell (sandbox on), \
         loopback, JPEG quality 60, frames up to 1280×800: {keys} keystrokes, each sent over the \
         live WebSocket by the controller after the view was quiet for 150 ms.\n\n\
         | metric | p50 | p95 | p99 |\n|---|---|---|---|\n\
         | keystroke → next frame on the viewer's socket | {:.1} ms | {:.1} ms | {:.1} ms |\n",
        machine(),
        s.p50,
        s.p95,
        s.p99
    ))
}
