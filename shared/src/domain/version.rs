//! A user's version, the `etag` derived from it, and `if-match` preconditions on it.

/// Counts a user's changes: 1 when created, one more for every change. It never goes back, so
/// the `etag` derived from it never repeats for that user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(u64);

impl Version {
    pub const FIRST: Self = Self(1);

    pub fn new(version: u64) -> Self {
        Self(version)
    }

    pub fn get(self) -> u64 {
        self.0
    }

    #[must_use]
    pub fn next(self) -> Self {
        Self(self.0.saturating_add(1))
    }

    /// The strong entity tag of this version, quotes included.
    pub fn etag(self) -> String {
        format!("\"v{}\"", self.0)
    }

    /// The version a strong entity tag (quotes included) names, if it is one of ours.
    fn from_etag(tag: &str) -> Option<Self> {
        let digits = tag.strip_prefix("\"v")?.strip_suffix('"')?;
        let canonical = !digits.is_empty()
            && !digits.starts_with('0')
            && digits.bytes().all(|b| b.is_ascii_digit());
        canonical.then(|| digits.parse().ok().map(Self)).flatten()
    }
}

/// An `if-match` header (RFC 9110, 13.1.1): `*`, or a list of entity tags compared strongly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precondition {
    /// `*`: any current version.
    Any,
    /// The versions the strong tags of the list name; a weak tag, a tag that is not ours and a
    /// malformed header name none, so they never match.
    OneOf(Vec<Version>),
}

impl Precondition {
    /// Parses the header's values (a repeated header is one list); never fails, since a
    /// malformed value is a precondition that no version meets.
    pub fn parse(raw: &str) -> Self {
        if raw.trim() == "*" {
            return Self::Any;
        }
        let mut versions = Vec::new();
        let mut rest = raw;
        loop {
            rest = rest.trim_start_matches([' ', '\t', ',']);
            if rest.is_empty() {
                return Self::OneOf(versions);
            }
            let weak = rest.starts_with("W/");
            let tagged = if weak { &rest[2..] } else { rest };
            let Some(end) = entity_tag_len(tagged) else {
                return Self::OneOf(Vec::new());
            };
            let (tag, after) = tagged.split_at(end);
            let after = after.trim_start_matches([' ', '\t']);
            if !(after.is_empty() || after.starts_with(',')) {
                return Self::OneOf(Vec::new());
            }
            if !weak && let Some(version) = Version::from_etag(tag) {
                versions.push(version);
            }
            rest = after;
        }
    }

    /// Whether a user at `version` meets this precondition.
    pub fn holds_for(&self, version: Version) -> bool {
        match self {
            Self::Any => true,
            Self::OneOf(versions) => versions.contains(&version),
        }
    }
}

/// The length of the quoted entity tag `text` starts with: `"` etagc* `"`, where etagc is any
/// visible character but `"`, or obs-text.
fn entity_tag_len(text: &str) -> Option<usize> {
    let inner = text.strip_prefix('"')?;
    let end = inner.find('"')?;
    let valid = inner[..end]
        .bytes()
        .all(|b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80);
    valid.then_some(end + 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(n: u64) -> Version {
        Version::new(n)
    }

    #[test]
    fn etags_name_their_version_and_only_it() {
        assert_eq!(v(1).etag(), "\"v1\"");
        assert_eq!(Version::from_etag(&v(42).etag()), Some(v(42)));
        for foreign in [
            "\"1\"", "\"v01\"", "\"v\"", "\"v1x\"", "v1", "\"V1\"", "\"v-1\"",
        ] {
            assert_eq!(Version::from_etag(foreign), None, "{foreign}");
        }
        assert!(v(1).next() > v(1));
    }

    #[test]
    fn if_match_lists_are_compared_strongly() {
        assert_eq!(Precondition::parse("*"), Precondition::Any);
        assert_eq!(Precondition::parse(" * "), Precondition::Any);
        assert_eq!(
            Precondition::parse("\"v3\""),
            Precondition::OneOf(vec![v(3)])
        );
        assert_eq!(
            Precondition::parse("\"x\", \"v2\" ,W/\"v3\",, \"v4\""),
            Precondition::OneOf(vec![v(2), v(4)])
        );
        assert!(!Precondition::parse("W/\"v3\"").holds_for(v(3)));
        assert!(Precondition::parse("\"v3\", \"v9\"").holds_for(v(9)));
        assert!(Precondition::Any.holds_for(v(7)));
    }

    #[test]
    fn a_malformed_if_match_matches_nothing() {
        for raw in [
            "",
            "v1",
            "\"v1",
            "\"v1\" \"v2\"",
            "*, \"v1\"",
            "\"v1\"x",
            "W/v1",
            "\"v\u{1}1\"",
            "\"v 1\"",
        ] {
            let precondition = Precondition::parse(raw);
            for n in 0..3 {
                assert!(!precondition.holds_for(v(n)), "{raw:?} matched v{n}");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn any_header_parses_and_only_names_tags_it_holds(raw in prop_oneof![
            any::<String>(),
            "((W/)?\"v[0-9]{1,3}\"[ ,]{0,2}){0,4}",
        ]) {
            if let Precondition::OneOf(versions) = Precondition::parse(&raw) {
                for version in versions {
                    prop_assert!(raw.contains(&version.etag()), "{:?}", raw);
                }
            }
        }
    }
}
