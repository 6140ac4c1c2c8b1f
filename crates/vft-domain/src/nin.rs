//! Norwegian national identity numbers (fødselsnummer, D-number, H-number): 11 digits whose two
//! last digits are mod-11 check digits. vft must never store one, so events carrying one are
//! refused and the number is masked even in the dead letter that records the refusal.

const K1: [u32; 9] = [3, 7, 6, 1, 8, 9, 4, 5, 2];
const K2: [u32; 10] = [5, 4, 3, 2, 7, 6, 5, 4, 3, 2];

fn check_digit(digits: &[u32], weights: &[u32]) -> Option<u32> {
    let sum: u32 = digits.iter().zip(weights).map(|(d, w)| d * w).sum();
    match 11 - sum % 11 {
        11 => Some(0),
        10 => None,
        k => Some(k),
    }
}

/// True when `s` is exactly 11 ASCII digits with valid check digits.
pub fn is_national_identity_number(s: &str) -> bool {
    is_nin_bytes(s.as_bytes())
}

fn is_nin_bytes(b: &[u8]) -> bool {
    if b.len() != 11 || !b.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let d: Vec<u32> = b.iter().map(|c| u32::from(c - b'0')).collect();
    check_digit(&d[..9], &K1) == Some(d[9]) && check_digit(&d[..10], &K2) == Some(d[10])
}

/// Replaces every run of exactly 11 digits that is a valid national identity number with `*`.
/// Used on raw bytes before they are kept as a dead letter.
pub fn mask_national_identity_numbers(raw: &[u8]) -> (Vec<u8>, usize) {
    let mut out = raw.to_vec();
    let mut masked = 0;
    let mut i = 0;
    while i < raw.len() {
        if raw[i].is_ascii_digit() {
            let start = i;
            while i < raw.len() && raw[i].is_ascii_digit() {
                i += 1;
            }
            if is_nin_bytes(&raw[start..i]) {
                out[start..i].fill(b'*');
                masked += 1;
            }
        } else {
            i += 1;
        }
    }
    (out, masked)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a valid number from nine leading digits (test data only; synthetic).
    pub(crate) fn make_nin(first9: &str) -> Option<String> {
        let d: Vec<u32> = first9.bytes().map(|c| u32::from(c - b'0')).collect();
        let k1 = check_digit(&d, &K1)?;
        let mut d10 = d.clone();
        d10.push(k1);
        let k2 = check_digit(&d10, &K2)?;
        Some(format!("{first9}{k1}{k2}"))
    }

    #[test]
    fn recognises_valid_numbers_and_rejects_near_misses() {
        let n = make_nin("010190123")
            .or_else(|| make_nin("010190124"))
            .expect("a valid number");
        assert!(is_national_identity_number(&n));
        let mut wrong = n.clone().into_bytes();
        wrong[10] = b'0' + (wrong[10] - b'0' + 1) % 10;
        assert!(!is_national_identity_number(
            std::str::from_utf8(&wrong).expect("ascii")
        ));
        assert!(!is_national_identity_number(&n[..10]));
        assert!(!is_national_identity_number(&format!("{n}0")));
    }

    #[test]
    fn masks_only_whole_valid_numbers() {
        let n = make_nin("150585432")
            .or_else(|| make_nin("150585433"))
            .expect("valid");
        let raw = format!(r#"{{"recipient":"{n}","device":"{n}9","x":"a{n}"}}"#);
        let (masked, count) = mask_national_identity_numbers(raw.as_bytes());
        let masked = String::from_utf8(masked).expect("utf8");
        assert_eq!(count, 2);
        assert!(masked.contains(r#""recipient":"***********""#));
        assert!(
            masked.contains(&format!("{n}9")),
            "a 12-digit run is not a number"
        );
    }
}
