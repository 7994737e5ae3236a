use super::Invalid;

/// A user's display name: trimmed, 1 to 100 Unicode scalar values, no control or bidi
/// override/isolate characters. No normalisation: what the user typed is what is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserName(String);

impl UserName {
    pub const MAX_CHARS: usize = 100;

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(Invalid("must not be empty"));
        }
        if name.chars().count() > Self::MAX_CHARS {
            return Err(Invalid("must be at most 100 characters"));
        }
        if name.chars().any(|c| c.is_control() || is_bidi_control(c)) {
            return Err(Invalid("must not contain control characters"));
        }
        Ok(Self(name.to_owned()))
    }

    /// A name as stored, which passed [`UserName::parse`] when it was written; today's rules,
    /// if tightened since, are not applied again (a user must stay readable).
    pub(super) fn stored(name: &str) -> Self {
        Self(name.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Bidi embedding/override (U+202A–U+202E) and isolate (U+2066–U+2069) controls, which can
/// make a name display as something else ("Trojan Source").
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn trims_unicode_whitespace_and_keeps_the_rest() {
        let name = UserName::parse("\u{3000} Ada Lovelace\u{a0}\n").expect("valid");
        assert_eq!(name.as_str(), "Ada Lovelace");
    }

    #[test]
    fn counts_scalar_values_not_bytes() {
        assert!(UserName::parse(&"é".repeat(100)).is_ok());
        assert!(UserName::parse(&"🦀".repeat(100)).is_ok());
        assert!(UserName::parse(&"🦀".repeat(101)).is_err());
        assert!(UserName::parse(&"a".repeat(101)).is_err());
    }

    #[test]
    fn rejects_empty_control_and_bidi() {
        for bad in [
            "",
            "   ",
            "\t\n",
            "Ada\u{0}",
            "Ada\u{7}x",
            "a\u{85}b",
            "\u{202E}evil",
            "x\u{2067}y",
        ] {
            assert!(UserName::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn accepts_rtl_emoji_and_zero_width() {
        for ok in ["שלום", "مرحبا", "👩‍💻 Grace", "a\u{200B}b", "Zoë"] {
            assert!(UserName::parse(ok).is_ok(), "{ok:?} refused");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn accepts_exactly_the_names_the_contract_allows(
            raw in prop_oneof![any::<String>(), "\\s{0,2}\\PC{0,105}\\s{0,2}"],
        ) {
            let name = raw.trim();
            let allowed = !name.is_empty()
                && name.chars().count() <= 100
                && !name.chars().any(|c| {
                    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
                });
            let parsed = UserName::parse(&raw);
            prop_assert_eq!(parsed.is_ok(), allowed, "{:?}", raw);
            if let Ok(parsed) = parsed {
                prop_assert_eq!(parsed.as_str(), name);
                prop_assert_eq!(UserName::parse(parsed.as_str()), Ok(parsed.clone()));
            }
        }
    }
}
