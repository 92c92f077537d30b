//! TOML tables → typed structs with errors that name the key at fault.
//!
//! serde's messages for a bad value (`unknown variant `adam`, expected one of
//! …`) do not say which key held it. Every config struct here has a default for
//! each field, so when a whole table fails, deserialising its keys one at a time
//! finds the culprit.

use serde::de::{self, DeserializeOwned, Visitor};

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

/// The keys a config struct `T` accepts: the field names its `Deserialize`
/// declares (serde passes them to `deserialize_struct`), so a list of keys
/// is never kept by hand next to the struct.
pub fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut names: &'static [&'static str] = &[];
    let _ = T::deserialize(FieldNames(&mut names));
    names
}

/// A deserializer that only records the field names of the struct asked for.
struct FieldNames<'a>(&'a mut &'static [&'static str]);

#[derive(Debug)]
struct Recorded;

impl std::fmt::Display for Recorded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("field names recorded")
    }
}

impl std::error::Error for Recorded {}

impl de::Error for Recorded {
    fn custom<M: std::fmt::Display>(_: M) -> Self {
        Recorded
    }
}

impl<'de> de::Deserializer<'de> for FieldNames<'_> {
    type Error = Recorded;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Recorded> {
        *self.0 = fields;
        Err(Recorded)
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Recorded> {
        Err(Recorded)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}
