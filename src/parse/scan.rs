//! Byte scanners and nom parsers shared by the line and message parsers:
//! the hot path's building blocks, free of allocation and of per-call setup.
//! nom's own `u32` and `space0` go through its generic input traits; these
//! are plain loops with the same contract, composed by nom's combinators.

use nom::error::{Error, ErrorKind};
use nom::IResult;

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

/// nom parser: one or more ASCII digits as a number; an error without a
/// digit or when the value overflows `T`.
pub fn dec<T: TryFrom<u64>>(input: &[u8]) -> IResult<&[u8], T> {
    let fail = || nom::Err::Error(Error::new(input, ErrorKind::Digit));
    let mut value: u64 = 0;
    let mut len = 0;
    for &b in input {
        if !b.is_ascii_digit() {
            break;
        }
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
            .ok_or_else(fail)?;
        len += 1;
    }
    if len == 0 {
        return Err(fail());
    }
    let value = T::try_from(value).map_err(|_| fail())?;
    Ok((&input[len..], value))
}

fn is_space(b: &u8) -> bool {
    *b == b' ' || *b == b'\t'
}

/// nom parser: spaces and tabs, as many as there are.
pub fn spaces0(input: &[u8]) -> IResult<&[u8], ()> {
    let n = input.iter().take_while(|b| is_space(b)).count();
    Ok((&input[n..], ()))
}

/// nom parser: at least one space or tab.
pub fn spaces1(input: &[u8]) -> IResult<&[u8], ()> {
    let (rest, ()) = spaces0(input)?;
    if rest.len() == input.len() {
        return Err(nom::Err::Error(Error::new(input, ErrorKind::Space)));
    }
    Ok((rest, ()))
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
    fn dec_bound_and_overflow() {
        assert_eq!(dec::<u32>(b"42 x"), Ok((&b" x"[..], 42)));
        assert!(dec::<u32>(b"x").is_err());
        assert_eq!(dec::<u32>(b"4294967295"), Ok((&b""[..], u32::MAX)));
        assert!(dec::<u32>(b"4294967296").is_err());
        assert!(dec::<u8>(b"256").is_err());
        assert!(dec::<u64>(b"18446744073709551616").is_err());
    }

    #[test]
    fn spaces_and_tabs() {
        assert_eq!(spaces0(b" \t x"), Ok((&b"x"[..], ())));
        assert!(spaces1(b"x").is_err());
        assert_eq!(spaces1(b"\tx"), Ok((&b"x"[..], ())));
    }
}
