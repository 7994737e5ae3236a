use super::Invalid;

/// An email address valid under the WHATWG HTML `type=email` grammar, trimmed, case kept.
/// Two emails are the same user when their ASCII-lowercased forms are equal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

/// Whether `email` is a "valid email address" of the HTML standard:
/// `[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+ "@" label ("." label)*`, where a label is 1 to 63 ASCII
/// letters, digits and hyphens that neither starts nor ends with a hyphen. Matched by hand, not
/// by a regular expression: every create, change and read of a user checks an email, and a
/// backtracking-free regex engine costs several times this on each.
fn whatwg_valid(email: &str) -> bool {
    const LOCAL_SYMBOLS: &[u8] = b".!#$%&'*+/=?^_`{|}~-";
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || LOCAL_SYMBOLS.contains(&b));
    local_ok && domain.split('.').all(label_valid)
}

fn label_valid(label: &str) -> bool {
    let bytes = label.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            bytes.len() <= 63
                && first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        }
        _ => false,
    }
}

impl Email {
    pub const MAX_LEN: usize = 254;
    pub const MAX_LOCAL_LEN: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let email = raw.trim();
        if email.len() > Self::MAX_LEN {
            return Err(Invalid("must be at most 254 bytes"));
        }
        let local_len = email.find('@').unwrap_or(email.len());
        if local_len > Self::MAX_LOCAL_LEN {
            return Err(Invalid("local part must be at most 64 bytes"));
        }
        if !whatwg_valid(email) {
            return Err(Invalid("not a valid address"));
        }
        Ok(Self(email.to_owned()))
    }

    /// An email as stored, which passed [`Email::parse`] when it was written; today's rules, if
    /// tightened since, are not applied again (a user must stay readable).
    pub(super) fn stored(email: &str) -> Self {
        Self(email.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form uniqueness is enforced on.
    pub fn canonical(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keeps_case_and_trims() {
        let email = Email::parse("  Ada@Example.COM ").expect("valid");
        assert_eq!(email.as_str(), "Ada@Example.COM");
        assert_eq!(email.canonical(), "ada@example.com");
    }

    #[test]
    fn follows_the_whatwg_grammar() {
        for ok in [
            "a@b",
            "a.b+c@x-y.example",
            "x..y@example.com",
            ".a@b.c",
            "o'neil@example.ie",
            "a@localhost",
        ] {
            assert!(Email::parse(ok).is_ok(), "{ok:?} refused");
        }
        for bad in [
            "",
            "a",
            "@b.c",
            "a@",
            "a@@b",
            "a b@c.d",
            "a@b..c",
            "a@-b.c",
            "a@b-.c",
            "a@b_c.d",
            "\"q\"@b.c",
            "a@[127.0.0.1]",
            "ä@b.c",
            "a@bü.c",
            "a@b.c\u{0}",
            "a@b.c.",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn enforces_length_limits_at_the_edge() {
        let local64 = "l".repeat(64);
        assert!(Email::parse(&format!("{local64}@example.com")).is_ok());
        assert!(Email::parse(&format!("{local64}l@example.com")).is_err());

        let label = "d".repeat(63);
        let domain = format!("{label}.{label}.{label}.{}", "d".repeat(59));
        let at_limit = format!("ab@{domain}");
        assert_eq!(at_limit.len(), 254);
        assert!(Email::parse(&at_limit).is_ok());
        assert!(Email::parse(&format!("abc@{domain}")).is_err());
        assert!(Email::parse(&format!("a@{}.com", "d".repeat(64))).is_err());
    }

    /// The "valid email address" grammar of the HTML standard, verbatim.
    static WHATWG_EMAIL: std::sync::LazyLock<regex_lite::Regex> = std::sync::LazyLock::new(|| {
        regex_lite::Regex::new(
            r"^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$",
        )
        .expect("the WHATWG email pattern compiles")
    });

    const LOCAL: &str = "[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]{1,80}";
    const LABEL: &str = "[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?";

    proptest! {
        #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn accepts_only_short_ascii_addresses_with_one_at(
            raw in prop_oneof![any::<String>(), "\\s?[ -~]{0,30}@[ -~]{0,30}\\s?"],
        ) {
            if let Ok(email) = Email::parse(&raw) {
                let text = email.as_str();
                prop_assert_eq!(text, raw.trim());
                prop_assert!(text.is_ascii() && text.len() <= 254, "{:?}", text);
                let (local, domain) = text.split_once('@').expect("an @");
                prop_assert!(local.len() <= 64 && !domain.contains('@'), "{:?}", text);
                prop_assert_eq!(email.canonical(), text.to_ascii_lowercase());
                prop_assert_eq!(Email::parse(text), Ok(email.clone()));
            }
        }

        /// The matcher accepts exactly what the standard's own pattern does.
        #[test]
        fn matches_as_the_whatwg_pattern_does(
            raw in prop_oneof![
                any::<String>(),
                "[ -~]{0,12}@[ -~]{0,12}",
                "[a-z.+-]{0,6}@[a-zA-Z0-9.-]{0,20}",
            ],
        ) {
            prop_assert_eq!(whatwg_valid(&raw), WHATWG_EMAIL.is_match(&raw), "{:?}", raw);
        }

        #[test]
        fn refuses_grammatical_addresses_only_for_their_length(
            local in LOCAL,
            labels in prop::collection::vec(LABEL, 1..6),
        ) {
            let email = format!("{local}@{}", labels.join("."));
            let short_enough = local.len() <= 64 && email.len() <= 254;
            prop_assert_eq!(Email::parse(&email).is_ok(), short_enough, "{:?}", email);
        }
    }
}
