use proptest::prelude::*;

use super::*;

fn kw() -> Brand {
    Brand::default()
}

#[test]
fn generated_keys_have_the_documented_shape() {
    let key = PlaintextKey::generate(&kw(), CredentialKind::ApiKey).unwrap();
    let text = key.expose_secret();
    assert_eq!(text.len(), 42);
    assert!(text.starts_with("kwk_"));
    assert!(text[4..].bytes().all(|b| b.is_ascii_alphanumeric()));
    assert_eq!(check_format(&kw(), text), Ok(CredentialKind::ApiKey));

    let token = PlaintextKey::generate(&kw(), CredentialKind::ProjectToken).unwrap();
    assert!(token.expose_secret().starts_with("kwp_"));
    assert_eq!(
        check_format(&kw(), token.expose_secret()),
        Ok(CredentialKind::ProjectToken)
    );
    assert_ne!(
        key,
        PlaintextKey::generate(&kw(), CredentialKind::ApiKey).unwrap()
    );
}

#[test]
fn checksum_matches_an_independent_crc32_computation() {
    // Computed with Python's zlib.crc32 and a separate base62 encoder.
    assert_eq!(
        check_format(&kw(), "kwk_00000000000000000000000000000000253BVx"),
        Ok(CredentialKind::ApiKey)
    );
    let onet = Brand::parse("onet").unwrap();
    assert_eq!(
        check_format(&onet, "onetp_abcdefghijABCDEFGHIJ0123456789xy32BHlj"),
        Ok(CredentialKind::ProjectToken)
    );
}

#[test]
fn malformed_keys_are_rejected_with_a_reason() {
    let brand = kw();
    let good = "kwk_00000000000000000000000000000000253BVx";
    assert_eq!(check_format(&brand, ""), Err(KeyFormatError::WrongLength));
    assert_eq!(
        check_format(&brand, &good[1..]),
        Err(KeyFormatError::WrongLength)
    );
    assert_eq!(
        check_format(&brand, &"x".repeat(16 * 1024)),
        Err(KeyFormatError::WrongLength)
    );
    assert_eq!(
        check_format(&brand, &good.replacen("kw", "xx", 1)),
        Err(KeyFormatError::WrongBrand)
    );
    assert_eq!(
        check_format(&brand, &good.replacen("kwk", "kwz", 1)),
        Err(KeyFormatError::UnknownKind)
    );
    assert_eq!(
        check_format(&brand, &good.replacen("kwk_", "kwk-", 1)),
        Err(KeyFormatError::BadCharacter)
    );
    assert_eq!(
        check_format(&brand, &good.replacen("0000", "00_0", 1)),
        Err(KeyFormatError::BadCharacter)
    );
    assert_eq!(
        check_format(&brand, "kwk_00000000000000000000000000000000é53BV"),
        Err(KeyFormatError::BadCharacter)
    );
    assert_eq!(
        check_format(&brand, &good.replacen("253BVx", "253BVy", 1)),
        Err(KeyFormatError::ChecksumMismatch)
    );
    // A checksum field larger than any u32 must not overflow or pass.
    assert_eq!(
        check_format(&brand, "kwk_00000000000000000000000000000000zzzzzz"),
        Err(KeyFormatError::ChecksumMismatch)
    );
    let onet = Brand::parse("onet").unwrap();
    assert_eq!(check_format(&onet, good), Err(KeyFormatError::WrongLength));
}

#[test]
fn brands_are_validated_and_keep_keys_within_one_sha256_block() {
    for ok in ["kw", "onet", "a", "abcdefghij12"] {
        assert!(Brand::parse(ok).is_ok(), "{ok}");
    }
    for bad in ["", "KW", "1kw", "kw_", "kw-", "abcdefghij123", "kwé"] {
        assert_eq!(Brand::parse(bad), Err(BrandError), "{bad:?}");
    }
    let longest = Brand::parse("abcdefghij12").unwrap();
    let key = PlaintextKey::generate(&longest, CredentialKind::ProjectToken).unwrap();
    assert!(key.expose_secret().len() <= 55);
    assert_eq!(
        check_format(&longest, key.expose_secret()),
        Ok(CredentialKind::ProjectToken)
    );
}

#[test]
fn hint_is_prefix_and_last_four() {
    let onet = Brand::parse("onet").unwrap();
    let key = PlaintextKey::generate(&onet, CredentialKind::ApiKey).unwrap();
    let text = key.expose_secret();
    assert_eq!(key.hint(), format!("onetk_…{}", &text[text.len() - 4..]));
}

#[test]
fn debug_and_display_never_show_the_secret() {
    let key = PlaintextKey::generate(&kw(), CredentialKind::ApiKey).unwrap();
    let random_part = &key.expose_secret()[4..36];
    for shown in [
        format!("{key:?}"),
        format!("{key}"),
        format!("{:?}", key.digest()),
    ] {
        assert!(!shown.contains(random_part), "{shown}");
    }
}

#[test]
fn digest_is_sha256_of_the_whole_key() {
    // SHA-256("abc") from FIPS 180-2, appendix B.1.
    let expected = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    let hex: String = KeyDigest::of("abc")
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(hex, expected);
}

fn any_key() -> impl Strategy<Value = String> {
    (any::<bool>(), "[0-9A-Za-z]{32}").prop_map(|(project, random)| {
        let kind = if project { 'p' } else { 'k' };
        let mut key = format!("kw{kind}_{random}");
        push_checksum(&mut key);
        key
    })
}

proptest! {
    #[test]
    fn every_well_formed_key_passes(key in any_key()) {
        prop_assert!(check_format(&kw(), &key).is_ok());
    }

    #[test]
    fn any_single_character_change_is_detected(
        key in any_key(),
        position in 0usize..42,
        replacement in "[0-9A-Za-z_]",
    ) {
        let replacement = replacement.as_bytes()[0];
        let mut bytes = key.into_bytes();
        prop_assume!(bytes[position] != replacement);
        bytes[position] = replacement;
        let changed = String::from_utf8(bytes).unwrap();
        prop_assert!(check_format(&kw(), &changed).is_err(), "{changed}");
    }

    #[test]
    fn any_adjacent_swap_is_detected(key in any_key(), position in 4usize..41) {
        let mut bytes = key.into_bytes();
        prop_assume!(bytes[position] != bytes[position + 1]);
        bytes.swap(position, position + 1);
        let changed = String::from_utf8(bytes).unwrap();
        prop_assert!(check_format(&kw(), &changed).is_err(), "{changed}");
    }
}

#[test]
fn revocation_and_rotation_win_over_expiry() {
    use crate::Timestamp;
    let at = Timestamp::from_unix_seconds;
    let now = at(1_000);
    let status = |expires, revoked, rotation_ends| {
        Lifetime::new(expires, revoked, rotation_ends).status(now)
    };
    use CredentialStatus::{Active, Expired, Revoked};
    assert_eq!(status(None, None, None), Active);
    assert_eq!(status(Some(at(1_001)), None, None), Active);
    assert_eq!(status(Some(now), None, None), Expired);
    assert_eq!(status(Some(at(999)), None, None), Expired);
    assert_eq!(status(Some(at(999)), Some(now), None), Revoked);
    assert_eq!(status(None, Some(now), None), Revoked);
    // Revoked whatever the time: another node's clock may be ahead of this one's.
    assert_eq!(status(None, Some(at(2_000)), None), Revoked);
    // Rotated: active through the overlap, refused from its end, even before an expiry.
    assert_eq!(status(Some(at(5_000)), None, Some(at(1_001))), Active);
    assert_eq!(status(Some(at(5_000)), None, Some(now)), Revoked);
    assert_eq!(status(Some(at(999)), None, Some(at(5_000))), Expired);

    let rotating = Lifetime::new(Some(at(5_000)), None, Some(at(1_500)));
    assert_eq!(rotating.expires_at(), Some(at(5_000)));
    assert_eq!(rotating.usable_until(), Some(at(1_500)));
    assert_eq!(
        Lifetime::new(Some(at(5_000)), None, None).usable_until(),
        Some(at(5_000))
    );
    assert_eq!(Lifetime::new(None, None, None).usable_until(), None);
    assert_eq!(
        Lifetime::new(None, Some(now), None).usable_until(),
        Some(at(0))
    );
}
