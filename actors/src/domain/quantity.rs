//! Quantities of stock: positive integers within a configured bound.

use serde::{Deserialize, Serialize};

/// Why a number is not a valid quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("must be a positive integer")]
    NotPositive,
    #[error("must be at most {max}")]
    TooLarge { max: u32 },
}

/// A positive count of units, at most the configured `quantity_max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Quantity(u32);

impl Quantity {
    pub fn parse(raw: u64, max: u32) -> Result<Self, QuantityError> {
        if raw == 0 {
            return Err(QuantityError::NotPositive);
        }
        if raw > u64::from(max) {
            return Err(QuantityError::TooLarge { max });
        }
        // The bound check above guarantees that the value fits in u32.
        Ok(Self(raw as u32))
    }

    pub fn get(self) -> u32 {
        self.0
    }
}
