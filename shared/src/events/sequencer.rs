//! Orders events of one key by their `sequencer`, as AWS specifies: hexadecimal
//! strings of varying length; right-pad the shorter with zeros and compare as strings.
//! Sequencers only order events of the same key in the same bucket.

use std::cmp::Ordering;

/// Compares two sequencers of the same key. Case does not matter (AWS writes upper
/// case; some providers lower).
pub fn compare(a: &str, b: &str) -> Ordering {
    let width = a.len().max(b.len());
    let pad = |s: &str| {
        let mut out = s.to_ascii_uppercase();
        out.extend(std::iter::repeat_n('0', width - s.len()));
        out
    };
    pad(a).cmp(&pad(b))
}

/// A sequencer as an event carries it: hex digits only, or it cannot be compared.
pub fn is_valid(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorter_sequencers_are_padded_on_the_right() {
        // The example from AWS's notification docs: equal once padded.
        assert_eq!(
            compare("0055AED6DCD90281E5", "0055AED6DCD90281E500"),
            Ordering::Equal
        );
        assert_eq!(
            compare("0055AED6DCD90281E6", "0055AED6DCD90281E500"),
            Ordering::Greater
        );
        // Padding, not numeric value: "1" is "10" here, bigger than "0F".
        assert_eq!(compare("1", "0F"), Ordering::Greater);
        assert_eq!(compare("00A", "00a"), Ordering::Equal);
        assert_eq!(compare("0055", "0056AA"), Ordering::Less);
        assert!(is_valid("0055AED6DCD90281E5") && !is_valid("") && !is_valid("12x"));
    }
}
