//! Outgoing mail through lettre. Messages are written as `.eml` files into
//! `$DRIFTSTACK_DATA_DIR/outbox/` (lettre's file transport): the embedded default, and what the
//! tests read. Sending happens off the request path, on a background task.

use std::path::PathBuf;

use lettre::{AsyncFileTransport, AsyncTransport, Message, Tokio1Executor, message::MultiPart};

#[derive(Clone)]
pub struct Mailer {
    from: String,
    transport: AsyncFileTransport<Tokio1Executor>,
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
            transport: AsyncFileTransport::new(dir),
        })
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
        self.transport.send(message).await?;
        Ok(())
    }
}
