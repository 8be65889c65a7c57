//! Money: ISO 4217 currencies and decimal amounts with per-currency scale.
//!
//! Amounts are `rust_decimal::Decimal`, never floating point, and all arithmetic on
//! balances is checked: an overflow is a rejection, not a wrap.

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// Why a string is not a valid currency or amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("unknown currency code {0:?} (expected an ISO 4217 code such as USD)")]
    UnknownCurrency(String),
    #[error("must be a decimal string such as \"12.50\"")]
    NotADecimal,
    #[error("must be greater than zero")]
    NotPositive,
    #[error("must not be negative")]
    Negative,
    #[error("{currency} allows at most {scale} decimal places")]
    TooManyDecimals { currency: Currency, scale: u32 },
    #[error("must be at most {max}")]
    TooLarge { max: Decimal },
}

/// An ISO 4217 currency with a defined number of minor units.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency(iso_currency::Currency);

impl Currency {
    /// Parses an upper-case ISO 4217 code. Codes without minor units defined by the
    /// standard (precious metals, testing codes) are refused: they are not money
    /// this engine can settle.
    pub fn parse(code: &str) -> Result<Self, MoneyError> {
        let unknown = || MoneyError::UnknownCurrency(code.to_owned());
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(unknown());
        }
        let currency = iso_currency::Currency::from_code(code).ok_or_else(unknown)?;
        currency.exponent().ok_or_else(unknown)?;
        Ok(Self(currency))
    }

    pub fn code(self) -> &'static str {
        self.0.code()
    }

    /// Every currency `parse` accepts, in the order of their codes.
    pub fn all() -> Vec<Currency> {
        let letters = b'A'..=b'Z';
        letters
            .clone()
            .flat_map(|a| letters.clone().map(move |b| (a, b)))
            .flat_map(|(a, b)| (b'A'..=b'Z').map(move |c| [a, b, c]))
            .filter_map(|code| Currency::parse(std::str::from_utf8(&code).ok()?).ok())
            .collect()
    }

    /// Number of decimal places the currency allows (USD 2, JPY 0, BHD 3).
    pub fn scale(self) -> u32 {
        // `parse` refuses currencies without an exponent, so this cannot fail.
        u32::from(self.0.exponent().expect("currency has an exponent"))
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Currency::parse(&code).map_err(serde::de::Error::custom)
    }
}

/// A strictly positive decimal amount, at most the configured maximum.
///
/// Whether the amount fits a currency's scale is checked separately
/// (`check_scale`), because some requests (deposits) name the currency only
/// through the account, which lives on a shard.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Amount(#[serde(with = "rust_decimal::serde::str")] Decimal);

impl Amount {
    /// Parses a plain decimal string: digits, optionally a point and more digits.
    /// No sign, exponent, spaces or thousands separators.
    pub fn parse(raw: &str, max: Decimal) -> Result<Self, MoneyError> {
        let value = parse_plain_decimal(raw)?;
        Self::from_decimal(value, max)
    }

    pub fn from_decimal(value: Decimal, max: Decimal) -> Result<Self, MoneyError> {
        if value <= Decimal::ZERO {
            return Err(MoneyError::NotPositive);
        }
        if value > max {
            return Err(MoneyError::TooLarge { max });
        }
        Ok(Self(value.normalize()))
    }

    pub fn value(self) -> Decimal {
        self.0
    }

    /// Fails when the amount has more decimal places than `currency` allows.
    /// Trailing zeros do not count: "12.500" is 12.5 and fine in USD.
    pub fn check_scale(self, currency: Currency) -> Result<(), MoneyError> {
        check_scale(self.0, currency)
    }
}

impl fmt::Debug for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Amount({})", self.0)
    }
}

/// Parses a non-negative plain decimal string (used for overdraft limits too).
pub(crate) fn parse_plain_decimal(raw: &str) -> Result<Decimal, MoneyError> {
    let (whole, fraction) = match raw.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (raw, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || fraction.is_some_and(|f| !digits(f)) {
        return Err(MoneyError::NotADecimal);
    }
    // rust_decimal holds 28 significant digits; longer input is not money.
    if raw.len() > 40 {
        return Err(MoneyError::NotADecimal);
    }
    Decimal::from_str(raw).map_err(|_| MoneyError::NotADecimal)
}

/// Parses a non-negative amount that may be zero (an overdraft limit), checked
/// against the currency's scale and the maximum.
pub fn parse_non_negative(
    raw: &str,
    currency: Currency,
    max: Decimal,
) -> Result<Decimal, MoneyError> {
    let value = parse_plain_decimal(raw)?;
    if value > max {
        return Err(MoneyError::TooLarge { max });
    }
    check_scale(value, currency)?;
    Ok(value.normalize())
}

fn check_scale(value: Decimal, currency: Currency) -> Result<(), MoneyError> {
    if value.normalize().scale() > currency.scale() {
        return Err(MoneyError::TooManyDecimals {
            currency,
            scale: currency.scale(),
        });
    }
    Ok(())
}

/// Formats a value with exactly the currency's number of decimals ("12.50").
pub fn format_money(value: Decimal, currency: Currency) -> String {
    let mut value = value;
    value.rescale(currency.scale());
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_currency_is_listed_once_with_its_scale() {
        let all = Currency::all();
        assert!(all.len() > 150, "{}", all.len());
        assert!(all.windows(2).all(|pair| pair[0].code() < pair[1].code()));
        for (code, scale) in [("USD", 2), ("JPY", 0), ("BHD", 3)] {
            let currency = all.iter().find(|c| c.code() == code).expect(code);
            assert_eq!(currency.scale(), scale);
        }
        assert!(
            !all.iter().any(|c| c.code() == "XAU"),
            "no minor units: refused"
        );
    }

    fn max() -> Decimal {
        Decimal::from(1_000_000_000u64)
    }

    #[test]
    fn currencies_are_iso_codes_with_minor_units() {
        assert_eq!(Currency::parse("USD").unwrap().scale(), 2);
        assert_eq!(Currency::parse("JPY").unwrap().scale(), 0);
        assert_eq!(Currency::parse("BHD").unwrap().scale(), 3);
        assert!(Currency::parse("usd").is_err());
        assert!(Currency::parse("XAU").is_err());
        assert!(Currency::parse("ZZZ").is_err());
    }

    #[test]
    fn amounts_are_plain_positive_decimals_within_the_maximum() {
        assert_eq!(
            Amount::parse("12.50", max()).unwrap().value(),
            Decimal::new(125, 1)
        );
        for bad in ["", "-1", "+1", "1e3", " 1", "1.", ".5", "1,00", "abc"] {
            assert_eq!(
                Amount::parse(bad, max()),
                Err(MoneyError::NotADecimal),
                "{bad}"
            );
        }
        assert_eq!(Amount::parse("0.00", max()), Err(MoneyError::NotPositive));
        assert!(matches!(
            Amount::parse("1000000001", max()),
            Err(MoneyError::TooLarge { .. })
        ));
    }

    #[test]
    fn the_scale_check_follows_the_currency() {
        let usd = Currency::parse("USD").unwrap();
        let jpy = Currency::parse("JPY").unwrap();
        assert!(Amount::parse("1.25", max())
            .unwrap()
            .check_scale(usd)
            .is_ok());
        assert!(Amount::parse("1.250", max())
            .unwrap()
            .check_scale(usd)
            .is_ok());
        assert!(Amount::parse("1.255", max())
            .unwrap()
            .check_scale(usd)
            .is_err());
        assert!(Amount::parse("1.5", max())
            .unwrap()
            .check_scale(jpy)
            .is_err());
        assert_eq!(format_money(Decimal::new(125, 1), usd), "12.50");
        assert_eq!(format_money(Decimal::from(7), jpy), "7");
    }
}
