//! What the platform keeps on its own records and gets back when they are used: an external id
//! (the platform's id for a customer, a user or a service account) and `meta`, a small JSON
//! object. Neither is a secret: both are stored and returned as given.

use std::fmt;

use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

use crate::InvalidValue;

/// What the platform keeps on a credential for itself, both optional.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    /// Who or what uses it, in the platform's terms (a user, a service account).
    pub external_id: Option<ExternalId>,
    pub meta: Option<Meta>,
}

impl Metadata {
    pub fn is_empty(&self) -> bool {
        self.external_id.is_none() && self.meta.is_none()
    }
}

/// The platform's own id for something Keyward holds: 1 to 255 printable ASCII characters
/// (space to `~`), not starting or ending with a space, so that it travels unchanged in an
/// HTTP header.
#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct ExternalId(Box<str>);

impl ExternalId {
    pub const MAX_LEN: usize = 255;

    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        if raw.is_empty() || raw.len() > Self::MAX_LEN {
            return Err(InvalidValue("must be 1 to 255 characters"));
        }
        if !raw.bytes().all(|b| (b' '..=b'~').contains(&b)) {
            return Err(InvalidValue(
                "must be printable ASCII characters (space to ~) only",
            ));
        }
        if raw.starts_with(' ') || raw.ends_with(' ') {
            return Err(InvalidValue("must not start or end with a space"));
        }
        Ok(Self(raw.into()))
    }

    /// An id read back from storage, where it was validated on the way in.
    pub fn from_trusted(stored: String) -> Self {
        Self(stored.into_boxed_str())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ExternalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ExternalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// How the API names an organization: by its id (`org_…`) or by the platform's id for it
/// (`ext:<external id>`), in paths and in `Keyward-Organization`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OrganizationRef {
    Id(crate::OrganizationId),
    External(ExternalId),
}

impl OrganizationRef {
    /// `None` for text that is neither.
    pub fn parse(text: &str) -> Option<Self> {
        match text.strip_prefix("ext:") {
            Some(external) => ExternalId::parse(external).ok().map(Self::External),
            None => crate::OrganizationId::parse(text).ok().map(Self::Id),
        }
    }
}

/// A JSON object of at most 1 KiB (written compactly) that the platform keeps on a credential
/// and gets back wherever the credential is checked: a plan, a tier, a region. Kept as its
/// compact JSON text, which is what is stored and sent.
#[derive(Clone, PartialEq, Eq)]
pub struct Meta(Box<str>);

impl Meta {
    pub const MAX_BYTES: usize = 1024;

    /// `value` if it is a JSON object that takes at most 1 KiB written compactly.
    pub fn from_value(value: &serde_json::Value) -> Result<Self, InvalidValue> {
        if !value.is_object() {
            return Err(InvalidValue("must be a JSON object"));
        }
        let text = value.to_string();
        if text.len() > Self::MAX_BYTES {
            return Err(InvalidValue("must take at most 1024 bytes as compact JSON"));
        }
        Ok(Self(text.into_boxed_str()))
    }

    /// Text read back from storage, where it was validated on the way in.
    pub fn from_trusted(stored: String) -> Self {
        Self(stored.into_boxed_str())
    }

    /// The compact JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The object, for those that want to look inside.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(&self.0).unwrap_or(serde_json::Value::Null)
    }
}

impl Serialize for Meta {
    /// As the object itself, not as a string holding it.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let raw: &RawValue = serde_json::from_str(&self.0).map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

impl fmt::Debug for Meta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn organizations_are_named_by_id_or_external_id() {
        let id = crate::OrganizationId::generate();
        assert_eq!(
            OrganizationRef::parse(&id.to_string()),
            Some(OrganizationRef::Id(id))
        );
        assert_eq!(
            OrganizationRef::parse("ext:cus 1"),
            Some(OrganizationRef::External(
                ExternalId::parse("cus 1").unwrap()
            ))
        );
        for nonsense in [
            "",
            "ext:",
            "ext: x",
            "cus_1",
            "key_01m8dz95x5e4w8stdkzcqeqr73",
        ] {
            assert_eq!(OrganizationRef::parse(nonsense), None, "{nonsense:?}");
        }
    }

    #[test]
    fn external_ids_are_printable_ascii_of_1_to_255() {
        for good in ["cus_123", "a", "user 42", "~!@#$%^&*()", &"x".repeat(255)] {
            assert_eq!(ExternalId::parse(good).unwrap().as_str(), good);
        }
        for bad in [
            "",
            &"x".repeat(256),
            " leading",
            "trailing ",
            "tab\there",
            "new\nline",
            "caf\u{e9}",
            "nul\0",
            "del\u{7f}",
        ] {
            assert!(ExternalId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn meta_is_an_object_of_at_most_a_kibibyte_sent_as_itself() {
        let meta = Meta::from_value(&json!({"plan": "pro", "seats": 5})).unwrap();
        assert_eq!(meta.as_str(), r#"{"plan":"pro","seats":5}"#);
        assert_eq!(
            serde_json::to_string(&json!({ "meta": meta })).unwrap(),
            r#"{"meta":{"plan":"pro","seats":5}}"#
        );
        assert_eq!(meta.to_value(), json!({"plan": "pro", "seats": 5}));
        for not_an_object in [json!([1]), json!("text"), json!(3), json!(null)] {
            assert_eq!(
                Meta::from_value(&not_an_object).unwrap_err().0,
                "must be a JSON object"
            );
        }
        // `{"a":"…"}` is 8 bytes around the string.
        let largest = json!({ "a": "x".repeat(Meta::MAX_BYTES - 8) });
        assert_eq!(Meta::from_value(&largest).unwrap().as_str().len(), 1024);
        let over = json!({ "a": "x".repeat(Meta::MAX_BYTES - 7) });
        assert!(Meta::from_value(&over).is_err());
    }
}
