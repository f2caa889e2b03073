//! The numbers of `INCRBYFLOAT`, as Redis holds them: C's `long double` on
//! x86-64, the x87 80-bit extended format (a 64-bit mantissa with its
//! integer bit explicit, a 15-bit exponent), read as glibc's `strtold` reads
//! it, summed with round-to-nearest-even, and printed as `%.17Lf` with
//! trailing zeros removed.
//!
//! Rust has no such type, and `f64` gives other digits (`0.1 + 0.2` is
//! `0.3` in Redis, `0.30000000000000004` in `f64`), so each step is done
//! exactly on big integers and rounded once, as the hardware and glibc do.
//! Pure and deterministic: no floating-point instruction is used.

use num_bigint::BigUint;

/// Mantissa bits of the x87 extended format.
const MANTISSA_BITS: u64 = 64;
/// The exponent of a subnormal's (and the least normal's) last mantissa
/// bit: the least normal is 2^-16382.
const EXPONENT_MIN: i64 = -16382 - 63;
/// The exponent of the greatest finite value's last mantissa bit: the
/// greatest is just under 2^16384.
const EXPONENT_MAX: i64 = 16383 - 63;
/// Redis refuses a float argument this long or longer (`string2ld`'s
/// buffer, `MAX_LONG_DOUBLE_CHARS`).
pub const FLOAT_BYTES_MAX: usize = 5 * 1024 - 1;
/// Fraction digits Redis prints (`%.17Lf`).
const FRACTION_DIGITS: usize = 17;
/// Bits of quotient kept when a decimal fraction is divided out: more than
/// the mantissa and its rounding bit, so the remainder is only a sticky bit.
const QUOTIENT_BITS: u64 = 2 * MANTISSA_BITS + 2;

/// A value of the x87 extended format: finite (zero and subnormals
/// included) or infinite. NaN is never held: Redis refuses it on input and
/// as a result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extended {
    negative: bool,
    /// `mantissa × 2^exponent`, with the mantissa's top bit set unless the
    /// exponent is `EXPONENT_MIN` (a subnormal or zero); `None` is infinity.
    finite: Option<(u64, i64)>,
}

impl Extended {
    /// Zero, the value of a missing key.
    pub const ZERO: Extended = Extended {
        negative: false,
        finite: Some((0, EXPONENT_MIN)),
    };

    /// The value's fields, for a format that must carry it exactly (the
    /// cluster's log entries): the sign, and `mantissa × 2^exponent`
    /// (`None` for infinity). [`from_parts`](Self::from_parts) reads them.
    pub fn to_parts(self) -> (bool, Option<(u64, i64)>) {
        (self.negative, self.finite)
    }

    /// The value of [`to_parts`](Self::to_parts)'s fields; `None` for fields
    /// no value has (an unnormalised mantissa, an exponent out of range).
    pub fn from_parts(negative: bool, finite: Option<(u64, i64)>) -> Option<Extended> {
        if let Some((mantissa, exponent)) = finite {
            let normal = mantissa >> (MANTISSA_BITS - 1) == 1;
            let in_range = (EXPONENT_MIN..=EXPONENT_MAX).contains(&exponent);
            if !in_range || (!normal && exponent != EXPONENT_MIN) {
                return None;
            }
        }
        Some(Extended { negative, finite })
    }

    /// Reads `text` as Redis's `string2ld` does: the whole string must be a
    /// number `strtold` reads (decimal, `0x` hexadecimal with an optional
    /// `p` exponent, `inf` or `infinity`, an optional sign), with no leading
    /// space; NaN, and a number too large for the format or so small that
    /// it reads as zero, are refused. So is a NUL byte: Redis checks that
    /// `strtold` read every byte.
    pub fn parse(text: &[u8]) -> Option<Extended> {
        if text.is_empty() || text.len() > FLOAT_BYTES_MAX {
            return None;
        }
        let (negative, body) = match text.split_first() {
            Some((b'-', rest)) => (true, rest),
            Some((b'+', rest)) => (false, rest),
            _ => (false, text),
        };
        let lower = body.to_ascii_lowercase();
        if lower == b"inf" || lower == b"infinity" {
            return Some(Extended {
                negative,
                finite: None,
            });
        }
        let value = match lower.strip_prefix(b"0x") {
            Some(hex) => parse_hexadecimal(hex)?,
            None => parse_decimal(body)?,
        };
        // strtold's ERANGE: an overflow to infinity, or digits that are not
        // zero rounding to zero; Redis refuses both.
        match value {
            Parsed::Zero => Some(Extended::zero(negative)),
            Parsed::Rounded(finite) if finite.0 != 0 => Some(Extended {
                negative,
                finite: Some(finite),
            }),
            Parsed::Rounded(_) | Parsed::OutOfRange => None,
        }
    }

    fn zero(negative: bool) -> Extended {
        Extended {
            negative,
            ..Extended::ZERO
        }
    }

    /// The sum, rounded to nearest even; `None` when it is infinite or NaN
    /// (an infinite operand makes it so).
    pub fn checked_add(self, other: Extended) -> Option<Extended> {
        let ((ma, ea), (mb, eb)) = (self.finite?, other.finite?);
        let exponent = ea.min(eb);
        let a = BigUint::from(ma) << (ea - exponent) as usize;
        let b = BigUint::from(mb) << (eb - exponent) as usize;
        let (negative, magnitude) = if self.negative == other.negative {
            (self.negative, a + b)
        } else if a >= b {
            (self.negative, a - b)
        } else {
            (other.negative, b - a)
        };
        if magnitude.bits() == 0 {
            // x + -x is +0 when rounding to nearest; -0 + -0 is -0.
            return Some(Extended::zero(self.negative && other.negative));
        }
        let finite = round(&magnitude, exponent, false)?;
        Some(Extended {
            negative,
            finite: Some(finite),
        })
    }

    /// As Redis prints an `INCRBYFLOAT` result: `%.17Lf`, trailing zeros
    /// and a trailing point removed, `-0` as `0`. `None` for infinity.
    pub fn to_redis_string(self) -> Option<String> {
        let (mantissa, exponent) = self.finite?;
        let scaled = BigUint::from(mantissa) * BigUint::from(10u64).pow(FRACTION_DIGITS as u32);
        let fixed = if exponent >= 0 {
            scaled << exponent as usize
        } else {
            shift_right_to_even(&scaled, exponent.unsigned_abs())
        };
        let digits = format!("{fixed:0>width$}", width = FRACTION_DIGITS + 1);
        let (whole, fraction) = digits.split_at(digits.len() - FRACTION_DIGITS);
        let fraction = fraction.trim_end_matches('0');
        let mut text = String::with_capacity(digits.len() + 2);
        if self.negative && fixed.bits() != 0 {
            text.push('-');
        }
        text.push_str(whole);
        if !fraction.is_empty() {
            text.push('.');
            text.push_str(fraction);
        }
        Some(text)
    }
}

/// What the digits of a finite number read as.
enum Parsed {
    /// Zero digits only: zero, no range error.
    Zero,
    /// The digits rounded to the format (a zero mantissa: they underflowed).
    Rounded((u64, i64)),
    /// Too large for the format, or malformed exponent arithmetic.
    OutOfRange,
}

/// `digits [. digits] [(e|E) [+|-] digits]`, at least one digit before the
/// exponent.
fn parse_decimal(text: &[u8]) -> Option<Parsed> {
    let (mantissa, exponent_part) = split_exponent(text, b'e')?;
    let (digits, fraction_len) = mantissa_digits(mantissa, 10)?;
    let exponent = match exponent_part {
        Some(e) => parse_exponent(e)?,
        None => 0,
    };
    let exponent = exponent - fraction_len as i64;
    let significant = digits.trim_start_matches('0');
    if significant.is_empty() {
        return Some(Parsed::Zero);
    }
    // The value is below 10^magnitude and at least 10^(magnitude - 1).
    let magnitude = exponent + significant.len() as i64;
    if magnitude > 4934 {
        return Some(Parsed::OutOfRange);
    }
    if magnitude < -4952 {
        // Below half the least subnormal (about 3.6e-4951): zero.
        return Some(Parsed::Rounded((0, EXPONENT_MIN)));
    }
    let value: BigUint = significant.parse().ok()?;
    let ten = BigUint::from(10u64);
    if exponent >= 0 {
        let value = value * ten.pow(exponent as u32);
        return Some(round(&value, 0, false).map_or(Parsed::OutOfRange, Parsed::Rounded));
    }
    let divisor = ten.pow(exponent.unsigned_abs() as u32);
    let shift = (QUOTIENT_BITS + divisor.bits()).saturating_sub(value.bits());
    let scaled = value << shift as usize;
    let (quotient, remainder) = (&scaled / &divisor, &scaled % &divisor);
    let sticky = remainder.bits() != 0;
    Some(round(&quotient, -(shift as i64), sticky).map_or(Parsed::OutOfRange, Parsed::Rounded))
}

/// After `0x`: `hexdigits [. hexdigits] [(p|P) [+|-] digits]`, at least
/// one hexadecimal digit.
fn parse_hexadecimal(text: &[u8]) -> Option<Parsed> {
    let (mantissa, exponent_part) = split_exponent(text, b'p')?;
    let (digits, fraction_len) = mantissa_digits(mantissa, 16)?;
    let exponent = match exponent_part {
        Some(e) => parse_exponent(e)?,
        None => 0,
    };
    let significant = digits.trim_start_matches('0');
    if significant.is_empty() {
        return Some(Parsed::Zero);
    }
    let value = BigUint::parse_bytes(significant.as_bytes(), 16)?;
    let exponent = exponent - 4 * fraction_len as i64;
    Some(round(&value, exponent, false).map_or(Parsed::OutOfRange, Parsed::Rounded))
}

/// Splits at the exponent marker (either case), if any.
fn split_exponent(text: &[u8], marker: u8) -> Option<(&[u8], Option<&[u8]>)> {
    match text.iter().position(|b| b.to_ascii_lowercase() == marker) {
        Some(at) => Some((&text[..at], Some(&text[at + 1..]))),
        None => Some((text, None)),
    }
}

/// The digits of `digits [. digits]` in `radix`, without the point, and
/// how many followed it; `None` unless there is at least one digit and
/// nothing else.
fn mantissa_digits(text: &[u8], radix: u32) -> Option<(String, usize)> {
    let (whole, fraction) = match text.iter().position(|&b| b == b'.') {
        Some(at) => (&text[..at], &text[at + 1..]),
        None => (text, &[][..]),
    };
    let valid = |part: &[u8]| part.iter().all(|&b| (b as char).is_digit(radix));
    if whole.len() + fraction.len() == 0 || !valid(whole) || !valid(fraction) {
        return None;
    }
    let mut digits = String::with_capacity(whole.len() + fraction.len());
    digits.extend(whole.iter().chain(fraction).map(|&b| b as char));
    Some((digits, fraction.len()))
}

/// An exponent's decimal digits with an optional sign, saturated far past
/// the format's range (so no arithmetic on it overflows).
fn parse_exponent(text: &[u8]) -> Option<i64> {
    const SATURATED: i64 = 1 << 40;
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let magnitude = digits
        .iter()
        .fold(0i64, |n, &d| (n * 10 + i64::from(d - b'0')).min(SATURATED));
    Some(if negative { -magnitude } else { magnitude })
}

/// Rounds `value × 2^exponent` (plus less than one unit of its last bit
/// when `sticky`) to the format, to nearest even; subnormal below the
/// least normal exponent, `None` past the greatest finite value.
fn round(value: &BigUint, exponent: i64, sticky: bool) -> Option<(u64, i64)> {
    let bits = value.bits() as i64;
    debug_assert!(bits > 0, "round of zero");
    let mut shift = bits - MANTISSA_BITS as i64;
    if exponent + shift < EXPONENT_MIN {
        shift = EXPONENT_MIN - exponent;
    }
    let mut result_exponent = exponent + shift;
    let mut mantissa = if shift > 0 {
        let kept = value >> shift as usize;
        let half = value.bit(shift as u64 - 1);
        let below = sticky || value.trailing_zeros().is_some_and(|z| z < shift as u64 - 1);
        let kept = low_u64(&kept);
        let up = half && (below || kept & 1 == 1);
        u128::from(kept) + u128::from(up)
    } else {
        debug_assert!(!sticky, "sticky bits below an exact mantissa");
        u128::from(low_u64(value)) << shift.unsigned_abs()
    };
    if mantissa >> MANTISSA_BITS != 0 {
        mantissa >>= 1;
        result_exponent += 1;
    }
    if result_exponent > EXPONENT_MAX {
        return None;
    }
    Some((mantissa as u64, result_exponent))
}

/// The low 64 bits (the whole value, where this is used).
fn low_u64(value: &BigUint) -> u64 {
    value.iter_u64_digits().next().unwrap_or(0)
}

/// `value / 2^shift`, rounded to nearest even (as glibc's `printf` rounds).
fn shift_right_to_even(value: &BigUint, shift: u64) -> BigUint {
    let quotient = value >> shift as usize;
    if shift == 0 || !value.bit(shift - 1) {
        return quotient;
    }
    let below = value.trailing_zeros().is_some_and(|z| z < shift - 1);
    if below || quotient.bit(0) {
        quotient + 1u32
    } else {
        quotient
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(a: &str, b: &str) -> String {
        let (a, b) = (Extended::parse(a.as_bytes()), Extended::parse(b.as_bytes()));
        let total = a.unwrap().checked_add(b.unwrap()).unwrap();
        total.to_redis_string().unwrap()
    }

    /// Each checked against redis-server 7.0 (INCRBYFLOAT on a key holding
    /// the first number).
    #[test]
    fn sums_print_as_redis_prints_them() {
        assert_eq!(sum("0.1", "0.2"), "0.3");
        assert_eq!(sum("0", "0.1"), "0.1");
        assert_eq!(sum("0.1", "1e20"), "100000000000000000000");
        assert_eq!(sum("3.0e3", "1.5"), "3001.5");
        assert_eq!(sum("10", "0.1"), "10.1");
        assert_eq!(sum("0", "1e-20"), "0");
        assert_eq!(sum("0", "1e-18"), "0");
        assert_eq!(sum("0", "-0.0"), "0");
        assert_eq!(sum("5", "0x10"), "21");
        assert_eq!(sum("0", "+5"), "5");
        assert_eq!(
            sum("0", "1.7976931348623157e308")[..40],
            *"1797693134862315699959210467741044340483"
        );
        assert!(sum("0", "1e4000").starts_with("9999999999999999999965463873"));
    }

    #[test]
    fn invalid_floats_are_refused_as_redis_refuses_them() {
        for bad in [
            "", " 1", "1 ", "abc", "nan", "NaN(1)", "1e", "1e+", ".", "0x", "0xp1", "0x1p",
            "1e5000", "-1e5000", "1e-5000", "--1", "+-1", "1.2.3",
        ] {
            assert_eq!(Extended::parse(bad.as_bytes()), None, "{bad:?}");
        }
        for good in [
            "inf",
            "-Infinity",
            "1.",
            ".5",
            "0x.8",
            "0X1P-3",
            "1E3",
            "0e99999999",
        ] {
            assert!(Extended::parse(good.as_bytes()).is_some(), "{good:?}");
        }
        assert_eq!(Extended::parse(b"12\0"), None);
        assert_eq!(Extended::parse(&[b'1'; FLOAT_BYTES_MAX + 1]), None);
    }

    #[test]
    fn infinity_and_overflow_are_not_finite_sums() {
        let inf = Extended::parse(b"inf").unwrap();
        assert_eq!(inf.checked_add(Extended::ZERO), None);
        let big = Extended::parse(b"1e4932").unwrap();
        assert_eq!(big.checked_add(big), None);
    }

    #[test]
    fn ties_round_to_even() {
        // 2^64 + 1 needs 65 bits: the tie goes to the even mantissa.
        let value = (BigUint::from(1u64) << 64usize) + 1u32;
        assert_eq!(round(&value, 0, false), Some((1 << 63, 1)));
        assert_eq!(round(&value, 0, true), Some(((1 << 63) + 1, 1)));
        // 2^-18 has 18 fraction digits; the 17-digit tie goes to even (...38).
        let tiny = Extended::parse(b"0x1p-18").unwrap();
        assert_eq!(tiny.to_redis_string().unwrap(), "0.00000381469726562");
    }

    #[test]
    fn parts_round_trip_and_refuse_what_no_value_has() {
        for text in ["0", "-0", "1.5", "-3e4000", "1e-4940", "inf", "-inf", "0.1"] {
            let x = Extended::parse(text.as_bytes()).unwrap();
            let (negative, finite) = x.to_parts();
            assert_eq!(Extended::from_parts(negative, finite), Some(x), "{text}");
        }
        assert_eq!(Extended::from_parts(false, Some((1, 0))), None);
        assert_eq!(
            Extended::from_parts(false, Some((1 << 63, EXPONENT_MAX + 1))),
            None
        );
        assert_eq!(
            Extended::from_parts(false, Some((1 << 63, EXPONENT_MIN - 1))),
            None
        );
    }
}
