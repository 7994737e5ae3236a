use std::fmt;
use std::time::SystemTime;

use ulid::Ulid;

use super::Invalid;

/// A ULID in its canonical form: 26 uppercase Crockford base32 characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UserId(Ulid);

impl UserId {
    /// A fresh id for `at`, with its own random part (never a monotonic increment), so ids
    /// cannot be guessed by counting.
    pub fn generate(at: SystemTime) -> Self {
        Self(Ulid::from_datetime(at))
    }

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        // The first character carries only 3 bits: above 7 the value overflows 128 bits.
        let canonical = raw.len() == ulid::ULID_LEN
            && raw.as_bytes()[0] <= b'7'
            && raw
                .bytes()
                .all(|b| b.is_ascii_digit() || (b.is_ascii_uppercase() && !b"ILOU".contains(&b)));
        if !canonical {
            return Err(Invalid("not a valid user id"));
        }
        Ulid::from_string(raw)
            .map(Self)
            .map_err(|_| Invalid("not a valid user id"))
    }

    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(Ulid::from_bytes(bytes))
    }

    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_bytes()
    }

    pub fn timestamp(self) -> SystemTime {
        self.0.datetime()
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trips_its_canonical_form() {
        let id = UserId::generate(SystemTime::now());
        let text = id.to_string();
        assert_eq!(text.len(), 26);
        assert_eq!(UserId::parse(&text), Ok(id));
        assert_eq!(UserId::from_bytes(id.to_bytes()), id);
    }

    #[test]
    fn ids_of_the_same_instant_differ() {
        let now = SystemTime::now();
        assert_ne!(UserId::generate(now), UserId::generate(now));
    }

    #[test]
    fn rejects_anything_not_canonical() {
        for bad in [
            "",
            "01JD3F5Q8K2X7V9M4T6B1N0C8",
            "01JD3F5Q8K2X7V9M4T6B1N0C8RR",
            "01jd3f5q8k2x7v9m4t6b1n0c8r",
            "01JD3F5Q8K2X7V9M4T6B1N0C8I",
            "01JD3F5Q8K2X7V9M4T6B1N0CUR",
            "81JD3F5Q8K2X7V9M4T6B1N0C8R",
            "../../../../etc/passwd%2F00",
            "01JD3F5Q8K2X7V9M4T6B1N0C8Ŕ",
        ] {
            assert!(UserId::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(UserId::parse("01JD3F5Q8K2X7V9M4T6B1N0C8R").is_ok());
        assert!(UserId::parse("7ZZZZZZZZZZZZZZZZZZZZZZZZZ").is_ok());
    }

    const CROCKFORD: &str = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

    proptest! {
        #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn accepts_exactly_26_uppercase_crockford_characters_within_128_bits(
            raw in prop_oneof![any::<String>(), "[0-9A-Za-z]{25,27}", "[0-9A-Z]{26}"],
        ) {
            let canonical = raw.len() == 26
                && raw.starts_with(|c| ('0'..='7').contains(&c))
                && raw.chars().all(|c| CROCKFORD.contains(c));
            let parsed = UserId::parse(&raw);
            prop_assert_eq!(parsed.is_ok(), canonical, "{:?}", raw);
            if let Ok(id) = parsed {
                prop_assert_eq!(id.to_string(), raw);
            }
        }

        #[test]
        fn every_id_round_trips_through_text_and_bytes(bytes in any::<[u8; 16]>()) {
            let id = UserId::from_bytes(bytes);
            prop_assert_eq!(UserId::parse(&id.to_string()), Ok(id));
            prop_assert_eq!(id.to_bytes(), bytes);
        }
    }
}
