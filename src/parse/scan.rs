//! Byte scanners shared by the line and message parsers: the hot path's
//! building blocks, free of allocation and of per-call setup.

// The distances searched here are a few to a few dozen bytes: a plain loop
// beats memchr's per-call dispatch and setup, and memmem's far more.

/// Position of the first `byte`.
pub fn find(hay: &[u8], byte: u8) -> Option<usize> {
    hay.iter().position(|&b| b == byte)
}

/// Position of the first `first` that is followed by a space (`": "`,
/// `", "`).
pub fn find_then_space(hay: &[u8], first: u8) -> Option<usize> {
    hay.windows(2).position(|w| w[0] == first && w[1] == b' ')
}

/// One or more ASCII digits as a number, and the rest; `None` without a
/// digit or when the value overflows `T`.
pub fn digits<T: TryFrom<u64>>(input: &[u8]) -> Option<(T, &[u8])> {
    let mut value: u64 = 0;
    let mut len = 0;
    for &b in input {
        if !b.is_ascii_digit() {
            break;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
        len += 1;
    }
    if len == 0 {
        return None;
    }
    Some((T::try_from(value).ok()?, &input[len..]))
}

fn is_space(b: &u8) -> bool {
    *b == b' ' || *b == b'\t'
}

/// Spaces and tabs, as many as there are.
pub fn skip_space0(input: &[u8]) -> &[u8] {
    let n = input.iter().take_while(|b| is_space(b)).count();
    &input[n..]
}

/// At least one space or tab.
pub fn skip_space1(input: &[u8]) -> Option<&[u8]> {
    let rest = skip_space0(input);
    (rest.len() < input.len()).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_then_space_skips_lone_separators() {
        assert_eq!(find_then_space(b"a:b: c", b':'), Some(3));
        assert_eq!(find_then_space(b"a:b:", b':'), None);
        assert_eq!(find_then_space(b"1,2, 3", b','), Some(3));
    }

    #[test]
    fn digits_bound_and_overflow() {
        assert_eq!(digits::<u32>(b"42 x"), Some((42, &b" x"[..])));
        assert_eq!(digits::<u32>(b"x"), None);
        assert_eq!(digits::<u32>(b"4294967295"), Some((u32::MAX, &b""[..])));
        assert_eq!(digits::<u32>(b"4294967296"), None);
        assert_eq!(digits::<u8>(b"256"), None);
        assert_eq!(digits::<u64>(b"18446744073709551616"), None);
    }

    #[test]
    fn spaces_and_tabs() {
        assert_eq!(skip_space0(b" \t x"), b"x");
        assert_eq!(skip_space1(b"x"), None);
        assert_eq!(skip_space1(b"\tx"), Some(&b"x"[..]));
    }
}
