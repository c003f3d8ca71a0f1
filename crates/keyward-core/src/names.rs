//! Validated names and small value types: what crosses the edge of the system as text and is
//! known good once parsed.

use std::fmt;

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

/// Why a name, email or region was refused. The message is shown to the client as is.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub &'static str);

/// Longest name, in characters.
pub const MAX_NAME_CHARS: usize = 100;

/// A human-chosen name (of a key, token, project, instance or organization): at most 100
/// characters, not blank, no control or invisible format characters; kept trimmed and in
/// Unicode normal form C, so that names that look the same are the same.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Name(String);

impl Name {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(InvalidValue("must not be empty"));
        }
        // Counted before trimming too, so that the documented maximum holds for what is sent.
        if raw.chars().count() > MAX_NAME_CHARS {
            return Err(InvalidValue("must be at most 100 characters"));
        }
        if trimmed.chars().any(char::is_control) {
            return Err(InvalidValue("must not contain control characters"));
        }
        refuse_invisible(trimmed)?;
        let normalized: String = trimmed.nfc().collect();
        // Normal form C can lengthen a few rare characters.
        if normalized.chars().count() > MAX_NAME_CHARS {
            return Err(InvalidValue("must be at most 100 characters"));
        }
        Ok(Self(normalized))
    }

    /// A name read back from storage, where it was validated on the way in.
    pub fn from_trusted(stored: String) -> Self {
        Self(stored)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// Unicode's general category Cf (format characters, Unicode 16): invisible, and able to make
/// two names look alike or reorder what a confirmation shows (U+200B, U+202E, U+2066,
/// U+FEFF, …).
const FORMAT_CHARACTERS: &[(u32, u32)] = &[
    (0x00AD, 0x00AD),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
];

/// Characters outside category Cf that show nothing either: Hangul fillers, the Braille blank,
/// the combining grapheme joiner, variation and Mongolian free variation selectors, and the
/// line and paragraph separators. The emoji presentation selectors (U+FE0E, U+FE0F) are
/// allowed after a symbol, where they belong, and nowhere else.
const INVISIBLE_CHARACTERS: &[(u32, u32)] = &[
    (0x034F, 0x034F),
    (0x115F, 0x1160),
    (0x180B, 0x180D),
    (0x180F, 0x180F),
    (0x2028, 0x2029),
    (0x2800, 0x2800),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0D),
    (0xFFA0, 0xFFA0),
    (0xE0100, 0xE01EF),
];

/// Refuses text holding an invisible formatting character: a zero-width space, a direction
/// override or isolate, a BOM, a tag (Unicode's category Cf), or another character that shows
/// nothing ([`INVISIBLE_CHARACTERS`]). Such characters make two texts look alike, or reorder
/// what a page shows around them.
pub fn refuse_invisible(text: &str) -> Result<(), InvalidValue> {
    let mut previous = None;
    for c in text.chars() {
        if is_format_character(c) || is_invisible(c, previous) {
            return Err(InvalidValue(
                "must not contain invisible formatting characters (such as zero-width spaces \
                 or direction overrides)",
            ));
        }
        previous = Some(c);
    }
    Ok(())
}

fn is_invisible(c: char, previous: Option<char>) -> bool {
    if c == '\u{FE0E}' || c == '\u{FE0F}' {
        return !previous.is_some_and(|p| u32::from(p) >= 0x2000 && !p.is_alphanumeric());
    }
    let c = u32::from(c);
    INVISIBLE_CHARACTERS
        .iter()
        .any(|&(first, last)| (first..=last).contains(&c))
}

fn is_format_character(c: char) -> bool {
    let c = u32::from(c);
    FORMAT_CHARACTERS
        .iter()
        .any(|&(first, last)| (first..=last).contains(&c))
}

/// An email address, trimmed and lowercased so that one person has one account.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let email = raw.trim().to_lowercase();
        const SHAPE: &str = "must be an email address such as name@example.com";
        if email.len() > 254 {
            return Err(InvalidValue("must be at most 254 characters"));
        }
        let Some((local, domain)) = email.split_once('@') else {
            return Err(InvalidValue(SHAPE));
        };
        let well_formed = !local.is_empty()
            && local.len() <= 64
            && !domain.is_empty()
            && !domain.contains('@')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !email.chars().any(|c| c.is_whitespace() || c.is_control());
        if well_formed {
            Ok(Self(email))
        } else {
            Err(InvalidValue(SHAPE))
        }
    }

    pub fn from_trusted(stored: String) -> Self {
        Self(stored)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// Where an instance runs: 1–32 lowercase letters, digits and inner hyphens, starting with a
/// letter (`eu-west-1`).
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Region(String);

impl Region {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let bytes = raw.as_bytes();
        let valid = (1..=32).contains(&bytes.len())
            && bytes[0].is_ascii_lowercase()
            && bytes[bytes.len() - 1] != b'-'
            && bytes
                .iter()
                .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidValue(
                "must be 1 to 32 lowercase letters, digits or hyphens, starting with a letter",
            ))
        }
    }

    pub fn from_trusted(stored: String) -> Self {
        Self(stored)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// A free-text description (of a project): trimmed, at most 1000 characters, lines ended by
/// `\n` alone, no control character but newlines and tabs, and no invisible formatting
/// character (as names, see [`refuse_invisible`]). Carriage returns are refused like any
/// other control character; HTML forms, which send every line break as CRLF, are decoded to
/// `\n` before they get here.
#[derive(Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Description(String);

impl Description {
    pub const MAX_CHARS: usize = 1000;

    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let trimmed = raw.trim();
        if trimmed.chars().count() > Self::MAX_CHARS {
            return Err(InvalidValue("must be at most 1000 characters"));
        }
        if trimmed
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            return Err(InvalidValue(
                "must not contain control characters other than newlines and tabs",
            ));
        }
        refuse_invisible(trimmed)?;
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Debug for Description {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// The state of an instance.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceStatus {
    Provisioning,
    #[default]
    Running,
    Stopped,
}

impl InstanceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Provisioning => "provisioning",
            Self::Running => "running",
            Self::Stopped => "stopped",
        }
    }

    /// Every status, in the order they are offered.
    pub const ALL: [Self; 3] = [Self::Provisioning, Self::Running, Self::Stopped];

    pub fn from_storage(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }
}

impl std::str::FromStr for InstanceStatus {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, InvalidValue> {
        Self::from_storage(s).ok_or(InvalidValue(
            "must be one of provisioning, running, stopped",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(
            Name::parse("  CI/CD Pipeline ").unwrap().as_str(),
            "CI/CD Pipeline"
        );
        assert!(Name::parse("   ").is_err());
        assert!(Name::parse("").is_err());
        assert!(Name::parse(&"é".repeat(100)).is_ok());
        assert!(Name::parse(&"é".repeat(101)).is_err());
        assert!(
            Name::parse(&format!(" {}", "é".repeat(100))).is_err(),
            "the limit is on what is sent"
        );
        assert!(Name::parse("tab\tinside").is_err());
        assert!(Name::parse("new\nline").is_err());
    }

    #[test]
    fn invisible_and_direction_characters_are_refused_and_names_are_nfc() {
        for spoof in [
            "P1\u{200b}",
            "\u{feff}P1",
            "key \u{202e}txt.exe",
            "a\u{2066}b\u{2069}",
            "soft\u{ad}hyphen",
            "tag\u{e0041}",
            "P1\u{3164}",
            "P1\u{fe0f}",
            "P\u{34f}1",
            "a\u{2028}b",
            "\u{2800}P1",
        ] {
            let refused = Name::parse(spoof).unwrap_err();
            assert!(refused.0.contains("invisible"), "{spoof:?}: {refused}");
            let refused = Description::parse(spoof).unwrap_err();
            assert!(refused.0.contains("invisible"), "{spoof:?}: {refused}");
        }
        assert!(Description::parse("Déploiement 🚀\n\tdeuxième ligne").is_ok());
        // "é" as e + combining acute is stored as the single code point, so the two
        // spellings are one name.
        let decomposed = Name::parse("Caf\u{65}\u{301}").unwrap();
        assert_eq!(decomposed.as_str(), "Caf\u{e9}");
        assert_eq!(decomposed, Name::parse("Caf\u{e9}").unwrap());
        // Visible scripts and emoji are fine, with their presentation selector too.
        assert!(Name::parse("Déploiement 🚀 деплой 配置").is_ok());
        assert!(Name::parse("Prod \u{2764}\u{fe0f}").is_ok());
    }

    #[test]
    fn emails_are_normalized() {
        assert_eq!(
            Email::parse(" Ada@Example.COM ").unwrap().as_str(),
            "ada@example.com"
        );
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@",
            "ada@@x",
            "a da@x.com",
            "ada@.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn descriptions_keep_newlines_and_tabs_only() {
        assert_eq!(
            Description::parse("  Line one\n\tLine two  ")
                .unwrap()
                .as_str(),
            "Line one\n\tLine two"
        );
        assert_eq!(Description::parse("").unwrap().as_str(), "");
        for bad in ["a\r\nb", "a\rb", "bell\u{7}", "nul\u{0}", "c\u{85}1"] {
            assert!(Description::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Description::parse(&"é".repeat(1000)).is_ok());
        assert!(Description::parse(&"é".repeat(1001)).is_err());
    }

    #[test]
    fn instance_statuses_parse_from_their_names() {
        for status in InstanceStatus::ALL {
            assert_eq!(status.as_str().parse::<InstanceStatus>(), Ok(status));
        }
        let refused = "Running".parse::<InstanceStatus>().unwrap_err();
        assert_eq!(
            refused.to_string(),
            "must be one of provisioning, running, stopped"
        );
    }

    #[test]
    fn regions_are_slugs() {
        assert!(Region::parse("eu-west-1").is_ok());
        for bad in ["", "EU", "1eu", "eu-", "eu_west", &"a".repeat(33)] {
            assert!(Region::parse(bad).is_err(), "{bad:?}");
        }
    }
}
