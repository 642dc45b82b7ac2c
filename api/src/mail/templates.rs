//! The mails the service sends, as text files under `templates/`: the first line is the subject,
//! the rest after a blank line the plain-text body. `{{name}}` marks a value. The HTML part is the
//! text, escaped, in one shared layout; values are never markup.

use super::Mail;

/// One kind of mail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Template {
    /// A sign-up with an address that already has an account (values: `public_url`).
    SignupExisting,
    /// The first verification mail, after sign-up (values: `link`).
    VerifyWelcome,
    /// A verification mail asked for again (values: `link`).
    Verify,
    /// A magic sign-in link (values: `link`).
    MagicLink,
    /// A password reset link (values: `link`).
    PasswordReset,
    /// The notice that a reset link changed the password.
    PasswordChanged,
    /// An invitation to an account (values: `account`, `role`, `link`).
    Invite,
    /// A webhook endpoint the dispatcher disabled (values: `endpoint_id`, `url`, `reason`).
    EndpointDisabled,
}

impl Template {
    fn source(self) -> &'static str {
        match self {
            Template::SignupExisting => include_str!("templates/signup_existing.txt"),
            Template::VerifyWelcome => include_str!("templates/verify_welcome.txt"),
            Template::Verify => include_str!("templates/verify.txt"),
            Template::MagicLink => include_str!("templates/magic_link.txt"),
            Template::PasswordReset => include_str!("templates/password_reset.txt"),
            Template::PasswordChanged => include_str!("templates/password_changed.txt"),
            Template::Invite => include_str!("templates/invite.txt"),
            Template::EndpointDisabled => include_str!("templates/endpoint_disabled.txt"),
        }
    }

    /// The mail to `to`, with `values` filled in.
    pub fn render(self, to: &str, values: &[(&str, &str)]) -> Mail {
        let (subject, text) = self
            .source()
            .split_once("\n\n")
            .unwrap_or((self.source(), ""));
        let text = fill(text, values);
        let escaped = text
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        Mail {
            to: to.to_owned(),
            // A value cannot add header lines.
            subject: fill(subject, values).replace(['\r', '\n'], " "),
            html: include_str!("templates/layout.html")
                .trim_end()
                .replace("{{body}}", &escaped),
            text,
        }
    }
}

/// Replaces each `{{name}}` with its value, in one pass (a value is never read as a marker).
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                let name = &after[..end];
                match values.iter().find(|(n, _)| *n == name) {
                    Some((_, value)) => out.push_str(value),
                    None => out.push_str(&rest[start..start + 4 + end]),
                }
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_has_a_subject_and_a_body_and_fills_its_values() {
        let all = [
            Template::SignupExisting,
            Template::VerifyWelcome,
            Template::Verify,
            Template::MagicLink,
            Template::PasswordReset,
            Template::PasswordChanged,
            Template::Invite,
            Template::EndpointDisabled,
        ];
        let values = [
            ("public_url", "http://x"),
            ("link", "http://x/l?token=t"),
            ("account", "Acme"),
            ("role", "admin"),
            ("endpoint_id", "whe_1"),
            ("url", "http://r"),
            ("reason", "it failed"),
        ];
        for t in all {
            let mail = t.render("a@example.com", &values);
            assert!(!mail.subject.is_empty() && !mail.text.is_empty(), "{t:?}");
            assert!(!mail.text.contains("{{"), "{t:?}: {}", mail.text);
            assert!(!mail.subject.contains("{{"), "{t:?}: {}", mail.subject);
        }
    }

    #[test]
    fn values_are_escaped_in_html_and_cannot_break_the_subject() {
        let mail = Template::Invite.render(
            "a@example.com",
            &[
                ("account", "<b>Evil</b>\r\nBcc: x@y"),
                ("role", "{{link}}"),
                ("link", "L"),
            ],
        );
        assert!(!mail.subject.contains('\n') && !mail.subject.contains('\r'));
        assert!(mail.html.contains("&lt;b&gt;Evil"), "{}", mail.html);
        // A value is not read as a marker.
        assert!(mail.text.contains("as {{link}}"), "{}", mail.text);
    }
}
