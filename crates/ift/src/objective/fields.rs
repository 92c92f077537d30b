//! TOML tables → typed structs with errors that name the key at fault.
//!
//! serde's messages for a bad value (`unknown variant `adam`, expected one of
//! …`) do not say which key held it. Every config struct here has a default for
//! each field, so when a whole table fails, deserialising its keys one at a time
//! finds the culprit.

use serde::de::DeserializeOwned;

/// A config error: the full key (`train.optimizer`) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Deserialises `table` (the keys of `[section]`) into `T`, naming the key of
/// the first unknown key or bad value.
pub fn from_table<T: DeserializeOwned>(
    table: &toml::Table,
    section: &str,
) -> Result<T, FieldError> {
    let whole = match toml::Value::Table(table.clone()).try_into::<T>() {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    for (key, value) in table {
        let one = toml::Table::from_iter([(key.clone(), value.clone())]);
        if let Err(e) = toml::Value::Table(one).try_into::<T>() {
            return Err(FieldError::new(format!("{section}.{key}"), e.message()));
        }
    }
    Err(FieldError::new(section, whole.message()))
}

/// `value` must be finite and within `[lo, hi]` (`hi = ∞` for no upper bound);
/// `open_lo` excludes `lo` itself.
pub fn check_range(
    key: &str,
    value: f64,
    lo: f64,
    hi: f64,
    open_lo: bool,
) -> Result<(), FieldError> {
    let ok = value.is_finite() && (value > lo || (!open_lo && value == lo)) && value <= hi;
    if ok {
        return Ok(());
    }
    let range = match (open_lo, hi.is_infinite()) {
        (true, true) => format!("> {lo}"),
        (false, true) => format!(">= {lo}"),
        (true, false) => format!("in ({lo}, {hi}]"),
        (false, false) => format!("in [{lo}, {hi}]"),
    };
    Err(FieldError::new(
        format!("objective.{key}"),
        format!("{value} is out of range: must be {range}"),
    ))
}
