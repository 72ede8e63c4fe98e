//! Kubernetes uids in 16 bytes. The API server gives every object a UUID in its canonical text
//! (8-4-4-4-12 lowercase hex digits, 36 bytes); where uids are kept by the hundred thousand
//! (the recorder's known events, the events table) such a uid is kept as its bytes, and any
//! other text as it came. The canonical text and the 16 bytes map one to one, so two different
//! uids never share a key.

/// The 16 bytes of a UUID written as 8-4-4-4-12 lowercase hex digits; None for anything else.
pub fn canonical_uuid(text: &str) -> Option<[u8; 16]> {
    let text = text.as_bytes();
    if text.len() != 36 {
        return None;
    }
    let mut out = [0u8; 16];
    let mut nibbles = 0;
    for (i, &c) in text.iter().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            if c != b'-' {
                return None;
            }
            continue;
        }
        let digit = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        out[nibbles / 2] |= digit << (4 * (1 - nibbles % 2));
        nibbles += 1;
    }
    Some(out)
}

/// The canonical text of a UUID's 16 bytes: the inverse of [`canonical_uuid`].
pub fn uuid_text(bytes: &[u8; 16]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(36);
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_uuids_are_their_bytes_and_nothing_else_is() {
        let uid = "0a1b2c3d-4e5f-4789-8abc-def012345678";
        let bytes = [
            0x0a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f, 0x47, 0x89, 0x8a, 0xbc, 0xde, 0xf0, 0x12, 0x34,
            0x56, 0x78,
        ];
        assert_eq!(canonical_uuid(uid), Some(bytes));
        assert_eq!(uuid_text(&bytes), uid);
        // Not canonical: upper case, no dashes, a dash out of place, too short, not hex.
        for other in [
            "0A1B2C3D-4E5F-4789-8ABC-DEF012345678",
            "0a1b2c3d4e5f47898abcdef012345678",
            "0a1b2c3d-4e5f4-789-8abc-def012345678",
            "0a1b2c3d-4e5f-4789-8abc-def01234567",
            "0a1b2c3d-4e5f-4789-8abc-def01234567g",
            "",
        ] {
            assert_eq!(canonical_uuid(other), None, "{other}");
        }
        for edge in [[0u8; 16], [0xff; 16]] {
            assert_eq!(canonical_uuid(&uuid_text(&edge)), Some(edge));
        }
    }
}
