//! File names that come from pages or clients, made safe to store, show and send back: no path
//! separators, no control or quoting characters, no leading dots, at most 200 bytes.

/// The longest name kept, in bytes (cut on a character boundary, the extension kept).
pub const MAX_NAME_BYTES: usize = 200;

/// A safe version of `raw`; `fallback` when nothing usable is left.
pub fn sanitize(raw: &str, fallback: &str) -> String {
    // Only the last path segment counts: `../../etc/passwd` is `passwd`.
    let last = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = last
        .chars()
        .filter(|c| !is_bidi_control(*c))
        .map(|c| {
            if c.is_control() || matches!(c, '"' | '<' | '>' | '|' | ':' | '*' | '?' | '\u{7f}') {
                '_'
            } else {
                c
            }
        })
        .collect();
    let mut trimmed = cleaned.as_str();
    loop {
        let next = trimmed.trim().trim_start_matches('.');
        if next == trimmed {
            break;
        }
        trimmed = next;
    }
    // Nothing but dots and spaces (`..`, `. .`) is no name.
    if trimmed.chars().all(|c| c == '.' || c.is_whitespace()) {
        return fallback.to_owned();
    }
    cap(trimmed)
}

/// Characters that reorder text (they make `exe.txt` read as `txt.exe`).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Cuts a name to [`MAX_NAME_BYTES`], keeping a short extension.
fn cap(name: &str) -> String {
    if name.len() <= MAX_NAME_BYTES {
        return name.to_owned();
    }
    let (stem, ext) = match name.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() && e.len() <= 16 => (s, format!(".{e}")),
        _ => (name, String::new()),
    };
    let mut end = MAX_NAME_BYTES - ext.len();
    while !stem.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{ext}", &stem[..end])
}

/// A MIME type guessed from the name's extension (common types only).
pub fn mime_type(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "json" => "application/json",
        "csv" => "text/csv",
        "txt" => "text/plain",
        "html" | "htm" => "text/html",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "xml" => "application/xml",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_become_plain_file_names() {
        assert_eq!(sanitize("../../etc/passwd", "x"), "passwd");
        assert_eq!(sanitize("..\\..\\boot.ini", "x"), "boot.ini");
        assert_eq!(sanitize("a\r\nb\0c.txt", "x"), "a__b_c.txt");
        assert_eq!(sanitize("\"quoted\".pdf", "x"), "_quoted_.pdf");
        assert_eq!(sanitize(".hidden", "x"), "hidden");
        assert_eq!(sanitize("..", "download"), "download");
        assert_eq!(sanitize("/", "download"), "download");
        assert_eq!(sanitize(". ..", "download"), "download");
        assert_eq!(sanitize(". .", "download"), "download");
        assert_eq!(sanitize("report\u{202e}txt.exe", "x"), "reporttxt.exe");
        let long = format!("{}.csv", "é".repeat(300));
        let capped = sanitize(&long, "x");
        assert!(
            capped.len() <= MAX_NAME_BYTES && capped.ends_with(".csv"),
            "{capped}"
        );
    }

    #[test]
    fn mime_types_follow_the_extension() {
        assert_eq!(mime_type("report.PDF"), "application/pdf");
        assert_eq!(mime_type("data"), "application/octet-stream");
    }
}
