//! Human sentences for the messages serde writes when a body or query does not fit its type
//! ("invalid value: integer `-5`, expected u32" becomes "must be a whole number from 0 to
//! 4294967295, not -5"). Messages this module does not recognise (a type's own `Deserialize`
//! error, already written for people) pass through unchanged.

/// The sentence for a serde message about one field (the field itself is named elsewhere).
pub fn humanize(message: &str) -> String {
    let expecting = |prefix: &str| {
        message
            .strip_prefix(prefix)
            .and_then(|rest| rest.split_once(", expected "))
    };
    if let Some((got, expected)) =
        expecting("invalid type: ").or_else(|| expecting("invalid value: "))
    {
        return format!(
            "must be {}, not {}",
            expected_words(expected),
            got_words(got)
        );
    }
    if let Some((len, expected)) = expecting("invalid length ") {
        let expected = expected_words(expected);
        if expected == "an object" {
            // serde would read an object from a list of its fields; the API takes objects.
            return "must be an object, not a list".to_owned();
        }
        return format!("has {len} items; it must be {expected}");
    }
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        let (got, allowed) = rest.split_once(", ").unwrap_or((rest, ""));
        return match allowed.strip_prefix("expected one of ") {
            Some(list) => format!("must be one of {}, not {got}", names(list)),
            None => match allowed.strip_prefix("expected ") {
                Some(one) => format!("must be {one}, not {got}"),
                None => format!("does not accept {got}"),
            },
        };
    }
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let (got, allowed) = rest.split_once(", ").unwrap_or((rest, ""));
        return match allowed
            .strip_prefix("expected one of ")
            .or_else(|| allowed.strip_prefix("expected "))
        {
            Some(list) => format!("{got} is not a field here; the fields are {}", names(list)),
            None => format!("{got} is not a field here; this object takes no fields"),
        };
    }
    if let Some(name) = message.strip_prefix("missing field ") {
        return format!("{name} is required");
    }
    if let Some(name) = message.strip_prefix("duplicate field ") {
        return format!("{name} is given more than once");
    }
    message.to_owned()
}

/// "`a`, `b`" stays as it is (backticks mark names); a trailing list reads "`a`, `b` or `c`".
fn names(list: &str) -> String {
    match list.rsplit_once(", ") {
        Some((head, last)) => format!("{head} or {last}"),
        None => list.to_owned(),
    }
}

/// What serde expected, as words.
fn expected_words(expected: &str) -> String {
    let range = |max: &str| format!("a whole number from 0 to {max}");
    match expected {
        "u8" => range("255"),
        "u16" => range("65535"),
        "u32" => range("4294967295"),
        "u64" | "usize" => range("18446744073709551615"),
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number".to_owned(),
        "f32" | "f64" => "a number".to_owned(),
        "a string" | "a borrowed string" | "string" | "a string or bytes" => "a string".to_owned(),
        "a boolean" | "bool" => "true or false".to_owned(),
        "a sequence" | "a vector" | "sequence" => "a list".to_owned(),
        "a map" | "map" => "an object".to_owned(),
        "a character" | "char" => "a single character".to_owned(),
        other if other.starts_with("struct ") => "an object".to_owned(),
        other if other.starts_with("enum ") || other == "variant identifier" => {
            "one of the documented values".to_owned()
        }
        other if other.starts_with("a tuple of size ") || other.starts_with("tuple struct ") => {
            "a list of a fixed length".to_owned()
        }
        other => other.to_owned(),
    }
}

/// What the request held, as words ("integer `-5`" is -5, "map" is an object).
fn got_words(got: &str) -> String {
    let quoted = |s: &str| s.trim_matches('`').to_owned();
    for prefix in ["integer ", "floating point ", "boolean ", "character "] {
        if let Some(v) = got.strip_prefix(prefix) {
            return quoted(v);
        }
    }
    if let Some(v) = got.strip_prefix("string ") {
        return v.to_owned();
    }
    match got {
        "map" => "an object".to_owned(),
        "sequence" => "a list".to_owned(),
        "unit value" | "null" => "null".to_owned(),
        other => other.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::humanize;

    #[test]
    fn serde_messages_become_sentences() {
        let cases = [
            (
                "invalid value: integer `-5`, expected u32",
                "must be a whole number from 0 to 4294967295, not -5",
            ),
            (
                "invalid type: string \"abc\", expected u64",
                "must be a whole number from 0 to 18446744073709551615, not \"abc\"",
            ),
            (
                "invalid type: integer `5`, expected a string",
                "must be a string, not 5",
            ),
            (
                "invalid type: map, expected a sequence",
                "must be a list, not an object",
            ),
            (
                "invalid type: null, expected struct Fingerprint",
                "must be an object, not null",
            ),
            (
                "invalid type: floating point `1.5`, expected i64",
                "must be a whole number, not 1.5",
            ),
            (
                "invalid type: string \"yes\", expected a boolean",
                "must be true or false, not \"yes\"",
            ),
            (
                "unknown variant `pdf2`, expected one of `png`, `jpeg`, `pdf`",
                "must be one of `png`, `jpeg` or `pdf`, not `pdf2`",
            ),
            (
                "unknown variant `x`, expected `png`",
                "must be `png`, not `x`",
            ),
            (
                "unknown field `urll`, expected one of `url`, `wait_until`",
                "`urll` is not a field here; the fields are `url` or `wait_until`",
            ),
            (
                "unknown field `a`, there are no fields",
                "`a` is not a field here; this object takes no fields",
            ),
            ("missing field `url`", "`url` is required"),
            ("duplicate field `url`", "`url` is given more than once"),
            (
                "invalid length 3, expected a tuple of size 2",
                "has 3 items; it must be a list of a fixed length",
            ),
            (
                "invalid length 0, expected struct Viewport with 2 elements",
                "must be an object, not a list",
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(humanize(raw), want, "{raw}");
        }
        // A type's own message is already a sentence.
        assert_eq!(
            humanize("is not a valid IANA time zone"),
            "is not a valid IANA time zone"
        );
    }

    #[test]
    fn no_serde_jargon_is_left_in_the_common_messages() {
        for raw in [
            "invalid value: integer `-1`, expected u16",
            "invalid type: sequence, expected a map",
            "invalid type: boolean `true`, expected f64",
        ] {
            let text = humanize(raw);
            for jargon in [
                "invalid value",
                "invalid type",
                "expected u",
                "map",
                "sequence",
            ] {
                assert!(!text.contains(jargon), "{raw} → {text}");
            }
        }
    }
}
