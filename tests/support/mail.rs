//! Reading the mail the server wrote into its file outbox (`$DATA_DIR/outbox/*.eml`), decoding
//! the text part (quoted-printable or base64), and a tiny SMTP sink for the SMTP transport.

use std::{
    path::Path,
    sync::{Arc, Mutex},
};

use base64::Engine;

#[derive(Clone, Debug)]
pub struct Message {
    pub to: String,
    pub subject: String,
    pub text: String,
}

impl Message {
    /// The `token=` query value of the first link in the text.
    pub fn token(&self) -> String {
        let start = self.text.find("token=").expect("a link with a token") + "token=".len();
        self.text[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .collect()
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn decode_qp(s: &str) -> String {
    let joined = s.replace("=\r\n", "").replace("=\n", "");
    let b = joined.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'='
            && let Some(v) = joined
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses one raw message: headers, then the text/plain part.
pub fn parse(raw: &str) -> Message {
    let raw = raw.replace("\r\n", "\n");
    let (head, body) = raw.split_once("\n\n").unwrap_or((&raw, ""));
    let to = header(head, "To").unwrap_or("").to_owned();
    let subject = header(head, "Subject").unwrap_or("").to_owned();
    // The text/plain part of a multipart/alternative body (or the body itself).
    let part = body
        .split("\n--")
        .find(|p| p.to_ascii_lowercase().contains("content-type: text/plain"))
        .unwrap_or(body);
    let (part_head, part_body) = part.split_once("\n\n").unwrap_or(("", part));
    let encoding = header(part_head, "Content-Transfer-Encoding")
        .unwrap_or("7bit")
        .to_ascii_lowercase();
    let text = match encoding.as_str() {
        "base64" => {
            let joined: String = part_body.split_whitespace().collect();
            base64::engine::general_purpose::STANDARD
                .decode(joined)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default()
        }
        "quoted-printable" => decode_qp(part_body),
        _ => part_body.to_owned(),
    };
    Message { to, subject, text }
}

/// Every message in the outbox of a data dir, oldest first.
pub fn outbox(data_dir: &Path) -> Vec<Message> {
    let mut files: Vec<_> = std::fs::read_dir(data_dir.join("outbox"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    files.sort();
    files
        .into_iter()
        .filter_map(|(_, p)| std::fs::read_to_string(p).ok())
        .map(|raw| parse(&raw))
        .collect()
}

/// The messages to `to` (case-insensitive), oldest first.
pub fn to(data_dir: &Path, to: &str) -> Vec<Message> {
    outbox(data_dir)
        .into_iter()
        .filter(|m| m.to.to_lowercase().contains(&to.to_lowercase()))
        .collect()
}

/// A minimal SMTP server on loopback that accepts every message and keeps the raw DATA.
pub struct SmtpSink {
    pub port: u16,
    pub received: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SmtpSink {
    pub async fn start() -> SmtpSink {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind smtp");
        let port = listener.local_addr().expect("addr").port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let store = received.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let store = store.clone();
                tokio::spawn(async move {
                    let (r, mut w) = stream.into_split();
                    let mut lines = BufReader::new(r).lines();
                    let _ = w.write_all(b"220 sink ESMTP\r\n").await;
                    let mut in_data = false;
                    let mut data = String::new();
                    while let Ok(Some(line)) = lines.next_line().await {
                        if in_data {
                            if line == "." {
                                in_data = false;
                                if let Ok(mut s) = store.lock() {
                                    s.push(std::mem::take(&mut data));
                                }
                                let _ = w.write_all(b"250 queued\r\n").await;
                            } else {
                                data.push_str(&line);
                                data.push('\n');
                            }
                            continue;
                        }
                        let upper = line.to_ascii_uppercase();
                        let reply: &[u8] = if upper.starts_with("EHLO") {
                            b"250-sink\r\n250 AUTH PLAIN LOGIN\r\n"
                        } else if upper.starts_with("DATA") {
                            in_data = true;
                            b"354 go on\r\n"
                        } else if upper.starts_with("QUIT") {
                            let _ = w.write_all(b"221 bye\r\n").await;
                            break;
                        } else if upper.starts_with("AUTH") {
                            b"235 ok\r\n"
                        } else {
                            b"250 ok\r\n"
                        };
                        let _ = w.write_all(reply).await;
                    }
                });
            }
        });
        SmtpSink {
            port,
            received,
            task,
        }
    }
}
