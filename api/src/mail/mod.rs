//! Outgoing mail through lettre: over SMTP when `DRIFTSTACK_SMTP_URL` is set, otherwise written
//! as `.eml` files into `$DRIFTSTACK_DATA_DIR/outbox/` (lettre's file transport: the embedded
//! default, and what most tests read). Sending happens off the request path, on a background
//! task; a failure is logged, never shown to the request that caused the mail. What each mail
//! says lives in `templates/` ([`Template`]).

mod templates;

pub use templates::Template;

use std::path::PathBuf;

use lettre::{
    AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::MultiPart, transport::smtp::authentication::Credentials,
};

#[derive(Clone)]
enum Transport {
    File(AsyncFileTransport<Tokio1Executor>),
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

#[derive(Clone)]
pub struct Mailer {
    from: String,
    transport: Transport,
}

/// An SMTP relay from `smtp://[user:password@]host[:port]` (port 25 by default). This build
/// speaks plain SMTP to a relay you run next to the service (which does TLS onwards); `smtps://`
/// and STARTTLS are refused at start rather than silently sent in the clear.
pub fn smtp_relay(url: &str) -> anyhow::Result<AsyncSmtpTransport<Tokio1Executor>> {
    let parsed = url::Url::parse(url).map_err(|_| anyhow::anyhow!("is not a URL"))?;
    if parsed.scheme() != "smtp" {
        anyhow::bail!("must be smtp://[user:password@]host[:port] (TLS is not built in)");
    }
    let host = parsed
        .host_str()
        .ok_or_else(|| anyhow::anyhow!("needs a host"))?;
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(parsed.port().unwrap_or(25));
    if !parsed.username().is_empty() {
        let user = percent_decode(parsed.username());
        let password = percent_decode(parsed.password().unwrap_or(""));
        builder = builder.credentials(Credentials::new(user, password));
    }
    Ok(builder.build())
}

fn percent_decode(s: &str) -> String {
    form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// One message to send.
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl Mailer {
    /// A mailer writing into `dir` (created if missing).
    pub fn file_outbox(dir: PathBuf, from: String) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        Ok(Mailer {
            from,
            transport: Transport::File(AsyncFileTransport::new(dir)),
        })
    }

    /// The configured mailer: SMTP when a URL is given, else the file outbox in `dir`.
    pub fn from_config(smtp_url: Option<&str>, dir: PathBuf, from: String) -> anyhow::Result<Self> {
        match smtp_url {
            Some(url) => Ok(Mailer {
                from,
                transport: Transport::Smtp(
                    smtp_relay(url).map_err(|e| anyhow::anyhow!("DRIFTSTACK_SMTP_URL: {e}"))?,
                ),
            }),
            None => Self::file_outbox(dir, from),
        }
    }

    /// Queues a message; failures are logged, never returned to a request.
    pub fn send(&self, mail: Mail) {
        let me = self.clone();
        tokio::spawn(async move {
            if let Err(err) = me.deliver(mail).await {
                tracing::error!(error = %format!("{err:#}"), "mail could not be sent");
            }
        });
    }

    async fn deliver(&self, mail: Mail) -> anyhow::Result<()> {
        let message = Message::builder()
            .from(self.from.parse()?)
            .to(mail.to.parse()?)
            .subject(mail.subject)
            .multipart(MultiPart::alternative_plain_html(mail.text, mail.html))?;
        match &self.transport {
            Transport::File(t) => {
                t.send(message).await?;
            }
            Transport::Smtp(t) => {
                t.send(message).await?;
            }
        }
        Ok(())
    }
}
