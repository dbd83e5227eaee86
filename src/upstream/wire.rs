//! The batch-query API's JSON as it really arrives, and its tolerant decoding into domain types.
//! No I/O here: bytes in, a [`Page`] or a [`DecodeError`] out, so every quirk is tested on fixtures.
//!
//! The body is read in one streaming pass. Keys the exporter does not use are skipped as they are
//! parsed, never buffered, and a page can hold no more rows than were asked for: what an upstream
//! can make the exporter hold is bounded by the size of the body it sends.

use std::borrow::Cow;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::fmt;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{PrimitiveDateTime, UtcOffset};

use crate::fleet::{Identity, Instance};

/// The keys the decoder reads. The paging fields and the error may sit at the top level (as the
/// reference's example shows) or inside `data` (as its tables say), so both places are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum PageField {
    Data,
    Result,
    PageNo,
    PageSize,
    TotalCount,
    ErrorCode,
    ErrorMsg,
    #[serde(other)]
    Other,
}

#[derive(Debug, Default)]
struct Paging {
    page_no: Option<i64>,
    page_size: Option<i64>,
    total_count: Option<i64>,
    error_code: Option<String>,
    error_msg: Option<String>,
}

impl Paging {
    /// The error this object names: `error_code` present and not `"0"`.
    fn error(&self) -> Option<DecodeError> {
        let code = self.error_code.as_deref().filter(|c| *c != "0")?;
        Some(DecodeError::Api {
            code: code.to_string(),
            message: self.error_msg.clone().unwrap_or_default(),
        })
    }
}

/// Reads an object that holds the paging fields and one more key, `key`, whose value `seed`
/// reads; `null` is an empty object. Written by hand rather than derived: serde's
/// `#[serde(flatten)]` would buffer every unknown key's value, many times its size in the body,
/// where this skips them as it reads.
#[derive(Clone, Copy)]
struct Paged<S> {
    key: PageField,
    seed: S,
}

impl<'de, S: DeserializeSeed<'de> + Copy> DeserializeSeed<'de> for Paged<S> {
    type Value = (Option<S::Value>, Paging);
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, S: DeserializeSeed<'de> + Copy> Visitor<'de> for Paged<S> {
    type Value = (Option<S::Value>, Paging);
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object or null")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut inner = None;
        let mut p = Paging::default();
        while let Some(key) = map.next_key::<PageField>()? {
            match key {
                k if k == self.key => inner = Some(map.next_value_seed(self.seed)?),
                PageField::PageNo => p.page_no = map.next_value::<FlexInt>()?.0,
                PageField::PageSize => p.page_size = map.next_value::<FlexInt>()?.0,
                PageField::TotalCount => p.total_count = map.next_value::<FlexInt>()?.0,
                PageField::ErrorCode => p.error_code = map.next_value::<FlexString>()?.0,
                PageField::ErrorMsg => p.error_msg = map.next_value::<FlexString>()?.0,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok((inner, p))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok((None, Paging::default()))
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.visit_unit()
    }
}

/// The envelope `{"data": {"result": [...], ...}, ...}` with `rows` reading `result`.
fn envelope<S>(rows: S) -> Paged<Paged<S>> {
    Paged {
        key: PageField::Data,
        seed: Paged {
            key: PageField::Result,
            seed: rows,
        },
    }
}

/// The fields of one `result` row read from the body, for either way of reading them. Every
/// field is optional: a row missing a field is still an instance. A value of the wrong kind
/// spoils its own field alone ([`Field`]), never the row or the page.
macro_rules! wire_row {
    ($(#[$doc:meta])* $name:ident, $text:ty, $code:ty) => {
        $(#[$doc])*
        #[derive(Debug, Default, Deserialize)]
        struct $name<'a> {
            #[serde(borrow, default)]
            instance_id: $text,
            #[serde(borrow, default)]
            instance_name: $text,
            #[serde(borrow, default)]
            region: $text,
            #[serde(borrow, default)]
            region_name: $text,
            #[serde(borrow, default)]
            instance_sku: $text,
            #[serde(borrow, default)]
            project_id: $text,
            #[serde(borrow, default)]
            project_name: $text,
            #[serde(borrow, default)]
            phone_id: $text,
            #[serde(borrow, default)]
            billing_mode: $text,
            #[serde(borrow, default)]
            running_status: $code,
            #[serde(borrow, default)]
            frozen_status: $code,
            #[serde(borrow, default)]
            login_status: $code,
            #[serde(borrow, default)]
            assign_status: $code,
            #[serde(borrow, default)]
            backup_status: $code,
            #[serde(borrow, default)]
            backup_time: $text,
            #[serde(borrow, default)]
            restore_status: $code,
            #[serde(borrow, default)]
            restore_time: $text,
        }

        impl<'a> IntoInstance for $name<'a> {
            fn into_instance(self, shared: &mut PageState, time_zone: UtcOffset) -> Instance {
                let instance_id = shared.text(self.instance_id.text(), MAX_INSTANCE_ID_CHARS);
                let instance_name =
                    shared.text(self.instance_name.text(), MAX_INSTANCE_NAME_CHARS);
                let phone_id = shared.text(self.phone_id.text(), MAX_TEXT_CHARS);
                Instance {
                    region: shared.shared(|s| &mut s.region, self.region.text()),
                    region_name: shared.shared(|s| &mut s.region_name, self.region_name.text()),
                    sku: shared.shared(|s| &mut s.sku, self.instance_sku.text()),
                    project_id: shared.shared(|s| &mut s.project_id, self.project_id.text()),
                    project_name: shared.shared(|s| &mut s.project_name, self.project_name.text()),
                    billing_mode: shared.shared(|s| &mut s.billing_mode, self.billing_mode.text()),
                    // Same order as `Dimension::ALL`.
                    status: [
                        shared.code(self.running_status.code()),
                        shared.code(self.frozen_status.code()),
                        shared.code(self.login_status.code()),
                        shared.code(self.assign_status.code()),
                        shared.code(self.backup_status.code()),
                        shared.code(self.restore_status.code()),
                    ],
                    backup_time: shared.time(self.backup_time.text(), time_zone),
                    restore_time: shared.time(self.restore_time.text(), time_zone),
                    identity: Identity::new(&instance_id, &instance_name, &phone_id),
                }
            }
        }
    };
}

wire_row!(
    /// A row read as values, borrowed from the body: the way every page is read first.
    WireInstance,
    Text<'a>,
    Code<'a>
);

wire_row!(
    /// A row kept as raw JSON text, field by field: the way a page is read again when it holds a
    /// number past what a float holds (`1e400`), which the JSON parser refuses to read as a
    /// number. Reading raw text costs a second pass over each value, 35 % more for a page, so it
    /// is kept for those pages alone.
    RawInstance,
    Option<&'a RawValue>,
    Option<&'a RawValue>
);

/// A row made into the exporter's [`Instance`].
trait IntoInstance {
    fn into_instance(self, shared: &mut PageState, time_zone: UtcOffset) -> Instance;
}

/// A field read as text.
trait TextField<'a> {
    fn text(self) -> Field<Cow<'a, str>>;
}

/// A field read as a status code.
trait CodeField {
    fn code(self) -> Field<i64>;
}

impl<'a> TextField<'a> for Text<'a> {
    fn text(self) -> Field<Cow<'a, str>> {
        self.0
    }
}

impl CodeField for Code<'_> {
    fn code(self) -> Field<i64> {
        self.0
    }
}

impl<'a> TextField<'a> for Option<&'a RawValue> {
    fn text(self) -> Field<Cow<'a, str>> {
        text_field(self)
    }
}

impl CodeField for Option<&RawValue> {
    fn code(self) -> Field<i64> {
        int_field(self)
    }
}

/// A status code read as a value: JSON integers, integral floats (`1.0e0`, `-0`) and numeric
/// strings; `null`/`"null"` as absent; anything else (`3.5`, `1e19`, `"NaN"`, `true`, `{}`) is
/// invalid.
#[derive(Debug, Default)]
struct Code<'a>(Field<i64>, PhantomData<&'a ()>);

impl<'de: 'a, 'a> Deserialize<'de> for Code<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Field<i64>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Field::Value(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(i64::try_from(v).map_or(Field::Invalid, Field::Value))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(integral(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(number_text(v))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Field::Invalid)
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Field::Absent)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Field::Absent)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Field::Invalid)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Field::Invalid)
            }
        }
        Ok(Code(d.deserialize_any(V)?, PhantomData))
    }
}

/// A float as a status code, if it is an integer an i64 holds.
fn integral(v: f64) -> Field<i64> {
    // -2^63 is an i64 and 2^63 is not: `i64::MAX as f64` rounds up to 2^63.
    if v.fract() == 0.0 && (-TWO_POW_63..TWO_POW_63).contains(&v) {
        Field::Value(v as i64)
    } else {
        Field::Invalid
    }
}

/// A number written as text (a JSON string's content, or a raw number) as a status code.
fn number_text(text: &str) -> Field<i64> {
    let text = text.trim();
    if is_null_text(text) {
        return Field::Absent;
    }
    if let Ok(v) = text.parse::<i64>() {
        return Field::Value(v);
    }
    text.parse::<f64>().map_or(Field::Invalid, integral)
}

/// The longest `instance_id` and `instance_name` the API's schema allows; longer values are cut
/// to these many characters, since each becomes a label value on several series.
pub const MAX_INSTANCE_ID_CHARS: usize = 32;
pub const MAX_INSTANCE_NAME_CHARS: usize = 128;
/// The longest value of every other text field (region, SKU, project, phone id, billing mode):
/// the reference's own examples are under 100 characters.
pub const MAX_TEXT_CHARS: usize = 128;

/// What one field of a row holds.
#[derive(Debug, Default, PartialEq)]
enum Field<T> {
    #[default]
    Absent,
    Value(T),
    /// A value of the wrong kind or out of range: counted, and read as absent.
    Invalid,
}

/// A text field: JSON strings as they are (borrowed from the body when they hold no escapes),
/// numbers and booleans as their text, `null` and `"null"` as absent; an object or an array is
/// invalid.
#[derive(Debug, Default)]
struct Text<'a>(Field<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text::of(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text::of(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text::of(Cow::Owned(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Text::of(Cow::Owned(v.to_string())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Text::of(Cow::Owned(v.to_string())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Text::of(Cow::Owned(v.to_string())))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Text::of(Cow::Owned(v.to_string())))
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Text(Field::Absent))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Text(Field::Absent))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Text(Field::Invalid))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Text(Field::Invalid))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

impl<'a> Text<'a> {
    fn of(text: Cow<'a, str>) -> Self {
        Text(if is_null_text(&text) {
            Field::Absent
        } else {
            Field::Value(text)
        })
    }
}

/// A raw field read as text: strings as they are, numbers and booleans as written, `null` and
/// `"null"` as absent; an object or an array is invalid.
fn text_field(raw: Option<&RawValue>) -> Field<Cow<'_, str>> {
    let Some(raw) = raw else {
        return Field::Absent;
    };
    let text = raw.get();
    let value = match text.as_bytes().first() {
        Some(b'"') => match unquote(text) {
            Some(s) => s,
            None => return Field::Invalid,
        },
        Some(b'n') => return Field::Absent,
        Some(b'{' | b'[') | None => return Field::Invalid,
        Some(_) => Cow::Borrowed(text),
    };
    if is_null_text(&value) {
        Field::Absent
    } else {
        Field::Value(value)
    }
}

/// The content of a JSON string literal, borrowed when it holds no escape.
fn unquote(literal: &str) -> Option<Cow<'_, str>> {
    let inner = literal.get(1..literal.len().saturating_sub(1))?;
    if inner.contains('\\') {
        serde_json::from_str::<String>(literal).ok().map(Cow::Owned)
    } else {
        Some(Cow::Borrowed(inner))
    }
}

/// A raw field read as a status code (see [`Code`]; here `1e400` is only invalid too).
fn int_field(raw: Option<&RawValue>) -> Field<i64> {
    match text_field(raw) {
        Field::Value(text) => number_text(&text),
        Field::Absent => Field::Absent,
        Field::Invalid => Field::Invalid,
    }
}

/// Shares one copy of a string that repeats across a page (region, SKU, project, ...): a
/// 100,000-instance fleet has a handful of distinct values and would otherwise hold 100,000
/// copies of each. A page holds few distinct values per field, so a short list searched in order
/// beats hashing every value; past [`Interner::MAX`] distinct values, new ones are not shared.
#[derive(Default)]
struct Interner {
    values: Vec<Arc<str>>,
}

impl Interner {
    const MAX: usize = 16;

    fn get(&mut self, value: &str) -> Arc<str> {
        if let Some(shared) = self.values.iter().find(|v| ***v == *value) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(value);
        if self.values.len() < Self::MAX {
            self.values.push(shared.clone());
        }
        shared
    }
}

/// One interner per repeating field of a page, and what the page's fields held that could not
/// be kept as sent.
#[derive(Default)]
struct PageState {
    region: Interner,
    region_name: Interner,
    sku: Interner,
    project_id: Interner,
    project_name: Interner,
    billing_mode: Interner,
    /// Fields of the wrong kind or out of range, and times that do not parse.
    invalid: usize,
    /// Text values cut to their bound.
    truncated: usize,
}

impl PageState {
    /// A text field, cut to `max` characters; an invalid one is counted and empty.
    fn text<'a>(&mut self, field: Field<Cow<'a, str>>, max: usize) -> Cow<'a, str> {
        match field {
            Field::Value(text) => {
                // Bytes bound characters from above: most values need no count at all.
                if text.len() <= max {
                    return text;
                }
                match text.char_indices().nth(max) {
                    None => text,
                    Some((end, _)) => {
                        self.truncated += 1;
                        match text {
                            Cow::Borrowed(t) => Cow::Borrowed(&t[..end]),
                            Cow::Owned(mut t) => {
                                t.truncate(end);
                                Cow::Owned(t)
                            }
                        }
                    }
                }
            }
            Field::Absent => Cow::Borrowed(""),
            Field::Invalid => {
                self.invalid += 1;
                Cow::Borrowed("")
            }
        }
    }

    fn code(&mut self, field: Field<i64>) -> Option<i64> {
        match field {
            Field::Value(v) => Some(v),
            Field::Absent => None,
            Field::Invalid => {
                self.invalid += 1;
                None
            }
        }
    }

    fn time(&mut self, field: Field<Cow<'_, str>>, zone: UtcOffset) -> Option<i64> {
        match field {
            Field::Value(text) => {
                let parsed = parse_time(&text, zone);
                self.invalid += usize::from(parsed.is_none());
                parsed
            }
            Field::Absent => None,
            Field::Invalid => {
                self.invalid += 1;
                None
            }
        }
    }

    fn shared(
        &mut self,
        which: fn(&mut PageState) -> &mut Interner,
        field: Field<Cow<'_, str>>,
    ) -> Arc<str> {
        let text = self.text(field, MAX_TEXT_CHARS);
        which(self).get(&text)
    }
}

/// `result` for the exporter: a JSON array of rows, each made into an [`Instance`] as soon as it
/// is parsed, no more than `max_rows` of them; `null` is no rows. The rows reserved for at once
/// are the previous page's count, so a page's vector is allocated once at its size instead of
/// grown and copied.
#[derive(Clone, Copy)]
struct Rows {
    decoding: Decoding,
    /// Each field kept as raw JSON text ([`RawInstance`]) rather than read as a value.
    raw: bool,
}

/// The rows of a page, with what their fields held that could not be kept as sent.
#[derive(Default)]
struct RowsRead {
    instances: Vec<Instance>,
    invalid: usize,
    truncated: usize,
}

impl<'de> DeserializeSeed<'de> for Rows {
    type Value = RowsRead;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Rows {
    type Value = RowsRead;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of instances or null")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        if self.raw {
            read_rows::<RawInstance<'de>, A>(seq, self.decoding)
        } else {
            read_rows::<WireInstance<'de>, A>(seq, self.decoding)
        }
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(RowsRead::default())
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(RowsRead::default())
    }
}

/// The rows of `seq`, each read as an `R` and made into an [`Instance`] at once.
fn read_rows<'de, R, A>(mut seq: A, decoding: Decoding) -> Result<RowsRead, A::Error>
where
    R: Deserialize<'de> + IntoInstance,
    A: SeqAccess<'de>,
{
    let Decoding {
        max_rows,
        expected_rows,
        time_zone,
    } = decoding;
    let mut shared = PageState::default();
    let mut rows = Vec::with_capacity(expected_rows.min(max_rows));
    while let Some(row) = seq.next_element::<R>()? {
        if rows.len() == max_rows {
            return Err(de::Error::custom(format_args!(
                "the page holds more than the {max_rows} rows page_size asked for"
            )));
        }
        rows.push(row.into_instance(&mut shared, time_zone));
    }
    Ok(RowsRead {
        instances: rows,
        invalid: shared.invalid,
        truncated: shared.truncated,
    })
}

/// `result` for the benchmark's floor: the rows parsed into plain wire structs, borrowing every
/// string, and counted (see [`parse_floor`]).
#[derive(Clone, Copy)]
struct WireRows;

impl<'de> DeserializeSeed<'de> for WireRows {
    type Value = usize;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        let rows = Option::<Vec<WireInstance<'de>>>::deserialize(d)?;
        Ok(rows.map_or(0, |r| r.len()))
    }
}

/// How a page is read: how many rows it may hold, how many to reserve for, and the zone of
/// its times.
#[derive(Debug, Clone, Copy)]
pub struct Decoding {
    /// The page_size asked for: a page with more rows is refused.
    pub max_rows: usize,
    /// Most likely the count of the page before.
    pub expected_rows: usize,
    /// The zone `backup_time` and `restore_time` are written in: the reference gives none for
    /// them (it says UTC only for the query's times).
    pub time_zone: UtcOffset,
}

/// One decoded page of the list.
#[derive(Debug, Default)]
pub struct Page {
    pub instances: Vec<Instance>,
    pub page_no: Option<u64>,
    pub page_size: Option<u64>,
    pub total_count: Option<u64>,
    /// Invalid UTF-8 sequences and lone UTF-16 surrogates in the body, each read as U+FFFD.
    pub replaced_text: usize,
    /// Fields of the wrong kind or out of range, and times that do not parse: each read as
    /// absent (a status then counts as undocumented).
    pub invalid_values: usize,
    /// Text values longer than their bound, cut to it.
    pub truncated_values: usize,
}

/// What a response body said when it was not a page.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    /// The body names an error (`error_code` present and not `"0"`).
    #[error("API error {code}: {message}")]
    Api { code: String, message: String },
    /// The body is not the JSON the reference describes.
    #[error("undecodable response body: {0}")]
    Malformed(String),
}

/// The error a body names, if any: `error_code` present and not `"0"`, at the top level or in `data`.
/// Used on every response, including non-2xx ones whose body is often this same JSON.
pub fn api_error(body: &[u8]) -> Option<(String, String)> {
    match parse(body, envelope(PhantomData::<IgnoredAny>)) {
        Err(DecodeError::Api { code, message }) => Some((code, message)),
        _ => None,
    }
}

/// A parsed envelope: the rows, and the paging fields inside `data` and at the top level.
struct Parsed<T> {
    rows: Option<T>,
    inner: Paging,
    top: Paging,
    replaced_text: usize,
}

/// Parses a body with `seed`, or returns the error it names (`error_code` present and not `"0"`,
/// at the top level or in `data`).
fn parse<S, T>(body: &[u8], seed: Paged<Paged<S>>) -> Result<Parsed<T>, DecodeError>
where
    S: for<'de> DeserializeSeed<'de, Value = T> + Copy,
{
    let (text, replaced_text) = clean_text(body);
    let mut json = serde_json::Deserializer::from_str(&text);
    let (data, top) = seed
        .deserialize(&mut json)
        .and_then(|v| json.end().map(|()| v))
        .map_err(|e| DecodeError::Malformed(e.to_string()))?;
    let (rows, inner) = data.unwrap_or_default();
    if let Some(error) = top.error().or_else(|| inner.error()) {
        return Err(error);
    }
    Ok(Parsed {
        rows,
        inner,
        top,
        replaced_text,
    })
}

/// Decodes a 2xx response body into a page, or the error it carries.
pub fn decode_page(body: &[u8], decoding: Decoding) -> Result<Page, DecodeError> {
    let read = |raw| parse(body, envelope(Rows { decoding, raw }));
    let parsed = match read(false) {
        // A number past what a float holds: read again with every field as raw text, where it
        // spoils only its own field.
        Err(DecodeError::Malformed(m)) if m.starts_with("number out of range") => read(true),
        parsed => parsed,
    };
    let Parsed {
        rows,
        inner,
        top,
        replaced_text,
    } = parsed?;
    let rows = rows.unwrap_or_default();
    Ok(Page {
        instances: rows.instances,
        invalid_values: rows.invalid,
        truncated_values: rows.truncated,
        page_no: non_negative(inner.page_no.or(top.page_no)),
        page_size: non_negative(inner.page_size.or(top.page_size)),
        total_count: non_negative(inner.total_count.or(top.total_count)),
        replaced_text,
    })
}

/// The benchmark's floor (`benches/scrape.rs`): parses a body into the wire structs, borrowing
/// every string, and keeps nothing; returns the number of rows. Not used by the exporter.
#[doc(hidden)]
pub fn parse_floor(body: &[u8]) -> Result<usize, DecodeError> {
    Ok(parse(body, envelope(WireRows))?.rows.unwrap_or(0))
}

/// A negative count carries no information; treat it as absent rather than fail the page.
fn non_negative(v: Option<i64>) -> Option<u64> {
    v.and_then(|v| u64::try_from(v).ok())
}

/// The body as text, with each invalid UTF-8 sequence and each lone UTF-16 surrogate escape
/// (`\ud83d` without its pair, which serde_json refuses) made U+FFFD, and how many there were.
/// One bad byte in one instance's name must not hide the whole fleet. Valid bodies, the rule,
/// are borrowed as they are: one UTF-8 check, and a scan for backslashes.
fn clean_text(body: &[u8]) -> (Cow<'_, str>, usize) {
    let mut replaced = 0;
    let mut text = match std::str::from_utf8(body) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => {
            let mut text = String::with_capacity(body.len());
            for chunk in body.utf8_chunks() {
                text.push_str(chunk.valid());
                if !chunk.invalid().is_empty() {
                    text.push(char::REPLACEMENT_CHARACTER);
                    replaced += 1;
                }
            }
            Cow::Owned(text)
        }
    };
    let mut from = 0;
    while let Some(at) = text
        .as_bytes()
        .get(from..)
        .and_then(|rest| memchr::memchr(b'\\', rest))
    {
        let at = from + at;
        let escape = text.as_bytes().get(at + 1).copied();
        from = at + 2;
        if escape != Some(b'u') {
            continue;
        }
        let Some(unit) = hex_unit(text.as_bytes(), at + 2) else {
            continue; // not four hex digits: serde_json reports it
        };
        from = at + 6;
        let paired = (0xD800..0xDC00).contains(&unit)
            && text.as_bytes().get(at + 6..at + 8) == Some(&b"\\u"[..])
            && hex_unit(text.as_bytes(), at + 8).is_some_and(|low| (0xDC00..0xE000).contains(&low));
        if paired {
            from = at + 12;
        } else if (0xD800..0xE000).contains(&unit) {
            // The same length as what it replaces: nothing after it moves.
            text.to_mut().replace_range(at..at + 6, "\\uFFFD");
            replaced += 1;
        }
    }
    (text, replaced)
}

/// The four hex digits of a `\u` escape starting at `at`.
fn hex_unit(b: &[u8], at: usize) -> Option<u16> {
    let digits = std::str::from_utf8(b.get(at..at + 4)?).ok()?;
    if !digits.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    u16::from_str_radix(digits, 16).ok()
}

/// How the API writes times: `2024-05-24 17:34:58` (results and query filters alike).
pub const API_TIME_FORMAT: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");

/// Parses the API's times, written in `zone`, into Unix seconds; RFC 3339 is accepted too (with
/// its own offset).
pub fn parse_time(s: &str, zone: UtcOffset) -> Option<i64> {
    let s = s.trim();
    if let Some(t) = api_time(s).or_else(|| PrimitiveDateTime::parse(s, API_TIME_FORMAT).ok()) {
        return Some(t.assume_offset(zone).unix_timestamp());
    }
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

/// [`API_TIME_FORMAT`] read by position: two times per instance made the generic format parser
/// a visible part of a 100,000-instance scrape. The `time` crate still checks the date and time.
fn api_time(s: &str) -> Option<PrimitiveDateTime> {
    let b = s.as_bytes();
    if b.len() != 19 || [b[4], b[7], b[10], b[13], b[16]] != *b"-- ::" {
        return None;
    }
    let number = |from: usize, to: usize| {
        b[from..to].iter().try_fold(0u16, |n, c| {
            c.is_ascii_digit().then(|| n * 10 + u16::from(c - b'0'))
        })
    };
    let small = |from, to| number(from, to).and_then(|n| u8::try_from(n).ok());
    let month = time::Month::try_from(small(5, 7)?).ok()?;
    let date = time::Date::from_calendar_date(i32::from(number(0, 4)?), month, small(8, 10)?);
    let time = time::Time::from_hms(small(11, 13)?, small(14, 16)?, small(17, 19)?);
    Some(PrimitiveDateTime::new(date.ok()?, time.ok()?))
}

/// A field read with [`flex_int`].
struct FlexInt(Option<i64>);

impl<'de> Deserialize<'de> for FlexInt {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        flex_int(d).map(FlexInt)
    }
}

/// A field read with [`flex_string`].
struct FlexString(Option<String>);

impl<'de> Deserialize<'de> for FlexString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        flex_string(d).map(FlexString)
    }
}

/// Whether a string the API sent means "no value": it writes absent values as `"null"`.
fn is_null_text(s: &str) -> bool {
    s.is_empty() || s == "null"
}

/// A string field as an owned string (see [`flex_str`]).
fn flex_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(flex_str(d)?.map(Cow::into_owned))
}

/// A string field: JSON strings as they are (borrowed from the body when they hold no escapes),
/// numbers as their text, `null` and `"null"` as absent.
fn flex_str<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<Cow<'de, str>>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string, a number or null")
        }
        fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok((!is_null_text(v)).then_some(Cow::Borrowed(v)))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok((!is_null_text(v)).then(|| Cow::Owned(v.to_string())))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok((!is_null_text(&v)).then_some(Cow::Owned(v)))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v.to_string())))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v.to_string())))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v.to_string())))
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v.to_string())))
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(V)
}

/// 2^63, the first float past `i64::MAX`.
const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;

/// An integer field: JSON integers, integral floats and numeric strings; `null`/`"null"` as absent.
fn flex_int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<i64>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an integer, a numeric string or null")
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            i64::try_from(v)
                .map(Some)
                .map_err(|_| E::custom(format!("integer {v} is out of range")))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            // -2^63 is an i64 and 2^63 is not: `i64::MAX as f64` rounds up to 2^63.
            if v.fract() == 0.0 && (-TWO_POW_63..TWO_POW_63).contains(&v) {
                Ok(Some(v as i64))
            } else {
                Err(E::custom(format!("{v} is not an integer")))
            }
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            let v = v.trim();
            if is_null_text(v) {
                return Ok(None);
            }
            v.parse()
                .map(Some)
                .map_err(|_| E::custom(format!("{v:?} is not an integer")))
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(V)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::Dimension;

    fn decode(body: &[u8]) -> Result<Page, DecodeError> {
        decode_page(
            body,
            Decoding {
                max_rows: 100,
                expected_rows: 0,
                time_zone: UtcOffset::UTC,
            },
        )
    }

    /// The "Example Responses" body of the reference, verbatim.
    const REFERENCE_EXAMPLE: &str = r#"{
  "data" : {
    "result" : [ {
      "instance_id" : "5srn5hL8",
      "instance_name" : "CCTEST-00001",
      "region" : "cn-north-7",
      "instance_sku" : "Professional edition | 8 vCPUs | 16 GB | 10 GB storage | Maximum resolution: 720p",
      "frozen_status" : 0,
      "running_status" : 1,
      "login_status" : 0,
      "assign_status" : 1,
      "assign_user" : "1008600000097131912",
      "billing_mode" : "1",
      "project_id" : "9d71ec45aef04d84a991c12250227b5c",
      "project_name" : "cn-north-7",
      "phone_id" : "null",
      "member_name" : "test",
      "account_name" : "hhh@cs02.huaweiapaas.com",
      "region_name" : "CN North-Ulanqab-2003",
      "region_name_en" : "CN North-Ulanqab203",
      "backup_status" : 0,
      "backup_time" : "2024-05-24 17:34:58",
      "restore_status" : 0,
      "restore_time" : "2024-05-24 20:34:58"
    } ]
  },
  "page_no" : 1,
  "page_size" : 100,
  "total_count" : 72,
  "error_code" : "0",
  "error_msg" : "OK"
}"#;

    #[test]
    fn the_reference_example_decodes() {
        let page = decode(REFERENCE_EXAMPLE.as_bytes()).unwrap();
        assert_eq!(page.page_no, Some(1));
        assert_eq!(page.page_size, Some(100));
        assert_eq!(page.total_count, Some(72));
        assert_eq!(page.instances.len(), 1);
        let i = &page.instances[0];
        assert_eq!(i.instance_id(), "5srn5hL8");
        assert_eq!(i.instance_name(), "CCTEST-00001");
        assert_eq!(&*i.region, "cn-north-7");
        assert_eq!(&*i.region_name, "CN North-Ulanqab-2003");
        assert_eq!(
            &*i.sku,
            "Professional edition | 8 vCPUs | 16 GB | 10 GB storage | Maximum resolution: 720p"
        );
        assert_eq!(&*i.project_id, "9d71ec45aef04d84a991c12250227b5c");
        assert_eq!(&*i.project_name, "cn-north-7");
        assert_eq!(i.phone_id(), "", "the string \"null\" means no value");
        assert_eq!(&*i.billing_mode, "1");
        assert_eq!(i.status(Dimension::Running), Some(1));
        assert_eq!(i.status(Dimension::Frozen), Some(0));
        assert_eq!(i.status(Dimension::Login), Some(0));
        assert_eq!(i.status(Dimension::Assign), Some(1));
        assert_eq!(i.status(Dimension::Backup), Some(0));
        assert_eq!(i.status(Dimension::Restore), Some(0));
        assert_eq!(i.backup_time, Some(1_716_572_098));
        assert_eq!(i.restore_time, Some(1_716_582_898));
    }

    #[test]
    fn paging_fields_inside_data_are_read() {
        let body = r#"{"data":{"result":[{"instance_id":"a"}],"page_no":"2","page_size":50,"total_count":120,"error_code":"0"}}"#;
        let page = decode(body.as_bytes()).unwrap();
        assert_eq!(
            (page.page_no, page.page_size, page.total_count),
            (Some(2), Some(50), Some(120))
        );
    }

    #[test]
    fn paging_fields_inside_data_win_over_the_top_level() {
        let body = r#"{"data":{"result":[],"total_count":7},"total_count":9}"#;
        assert_eq!(decode(body.as_bytes()).unwrap().total_count, Some(7));
    }

    #[test]
    fn unknown_fields_missing_fields_and_nulls_are_accepted() {
        let body = r#"{"data":{"result":[{"instance_id":"a","brand_new_field":{"x":[1,2]},
            "running_status":null,"frozen_status":"1","login_status":"null","backup_time":"",
            "restore_time":"null","region":null}],"extra":true},"total_count":1,"error_code":null}"#;
        let page = decode(body.as_bytes()).unwrap();
        let i = &page.instances[0];
        assert_eq!(i.instance_id(), "a");
        assert_eq!(&*i.region, "");
        assert_eq!(i.status(Dimension::Running), None);
        assert_eq!(i.status(Dimension::Frozen), Some(1));
        assert_eq!(i.status(Dimension::Login), None);
        assert_eq!(i.status(Dimension::Assign), None);
        assert_eq!((i.backup_time, i.restore_time), (None, None));
    }

    #[test]
    fn undocumented_status_codes_are_kept() {
        let body =
            r#"{"data":{"result":[{"instance_id":"a","running_status":17,"backup_status":-2}]}}"#;
        let i = &decode(body.as_bytes()).unwrap().instances[0];
        assert_eq!(i.status(Dimension::Running), Some(17));
        assert_eq!(i.status(Dimension::Backup), Some(-2));
    }

    #[test]
    fn null_data_and_null_result_are_an_empty_page() {
        for body in [
            r#"{"data":null,"total_count":0}"#,
            r#"{"data":{"result":null}}"#,
            "{}",
        ] {
            assert!(
                decode(body.as_bytes()).unwrap().instances.is_empty(),
                "{body}"
            );
        }
    }

    #[test]
    fn http_200_with_an_error_code_is_an_error() {
        let body = r#"{"error_code":"KOOPHONE.API.1001","error_msg":"Insufficient instance permissions."}"#;
        assert_eq!(
            decode(body.as_bytes()).unwrap_err(),
            DecodeError::Api {
                code: "KOOPHONE.API.1001".into(),
                message: "Insufficient instance permissions.".into()
            }
        );
        let inside = r#"{"data":{"error_code":"KOOPHONE.API.9999","error_msg":"x","result":[]}}"#;
        assert!(
            matches!(decode(inside.as_bytes()), Err(DecodeError::Api { code, .. }) if code == "KOOPHONE.API.9999")
        );
    }

    #[test]
    fn error_code_zero_is_success_in_any_spelling() {
        for body in [
            r#"{"error_code":"0"}"#,
            r#"{"error_code":0}"#,
            r#"{"error_code":""}"#,
        ] {
            assert!(decode(body.as_bytes()).is_ok(), "{body}");
        }
    }

    #[test]
    fn truncated_and_wrongly_typed_bodies_are_malformed() {
        let truncated = &REFERENCE_EXAMPLE.as_bytes()[..200];
        assert!(matches!(decode(truncated), Err(DecodeError::Malformed(_))));
        assert!(matches!(decode(b"<html>"), Err(DecodeError::Malformed(_))));
        let bad = r#"{"data":{"result":{"running_status":2}}}"#;
        assert!(matches!(
            decode(bad.as_bytes()),
            Err(DecodeError::Malformed(_))
        ));
    }

    /// Fifty rows, the 26th with `value` as its running status.
    fn fifty_with_running_status(value: &str) -> String {
        let rows: Vec<String> = (0..50)
            .map(|n| {
                let status = if n == 25 { value } else { "2" };
                format!(r#"{{"instance_id":"i-{n}","running_status":{status},"frozen_status":0}}"#)
            })
            .collect();
        format!(r#"{{"data":{{"result":[{}]}}}}"#, rows.join(","))
    }

    #[test]
    fn one_odd_status_spoils_only_its_own_field() {
        for odd in [
            "1e400",
            "1e19",
            "3.5",
            "\"NaN\"",
            "\"two\"",
            "true",
            "{}",
            "[1]",
            "{\"a\":[1,{}]}",
            "\"inf\"",
        ] {
            let body = fifty_with_running_status(odd);
            let page = decode_page(
                body.as_bytes(),
                Decoding {
                    max_rows: 100,
                    expected_rows: 0,
                    time_zone: UtcOffset::UTC,
                },
            )
            .unwrap_or_else(|e| panic!("{odd}: {e}"));
            assert_eq!(page.instances.len(), 50, "{odd}");
            assert_eq!(page.invalid_values, 1, "{odd}");
            let odd_one = &page.instances[25];
            assert_eq!(odd_one.status(Dimension::Running), None, "{odd}");
            assert_eq!(
                odd_one.status(Dimension::Frozen),
                Some(0),
                "the rest of the row stays"
            );
            assert_eq!(page.instances[24].status(Dimension::Running), Some(2));
        }
        for (fine, code) in [
            ("-9223372036854775809", i64::MIN),
            ("-0", 0),
            ("1.0e0", 1),
            ("\"3\"", 3),
            ("\" 4 \"", 4),
        ] {
            let page = decode(fifty_with_running_status(fine).as_bytes()).unwrap();
            assert_eq!(page.invalid_values, 0, "{fine}");
            assert_eq!(
                page.instances[25].status(Dimension::Running),
                Some(code),
                "{fine}"
            );
        }
        let page = decode(fifty_with_running_status("null").as_bytes()).unwrap();
        assert_eq!(page.invalid_values, 0, "null is absent, not invalid");
    }

    #[test]
    fn times_that_do_not_parse_and_texts_of_the_wrong_kind_are_counted_and_absent() {
        let body = r#"{"data":{"result":[
            {"instance_id":"a","backup_time":"yesterday","restore_time":{"at":1},"region":[1,2]},
            {"instance_id":"b","backup_time":"2024-05-24 17:34:58","region":"r"}
        ]}}"#;
        let page = decode(body.as_bytes()).unwrap();
        assert_eq!(page.instances.len(), 2);
        assert_eq!(page.invalid_values, 3);
        assert_eq!(page.instances[0].backup_time, None);
        assert_eq!(&*page.instances[0].region, "");
        assert!(page.instances[1].backup_time.is_some());
        // A number past what a float holds, in any field, sends the page the raw way.
        let body = r#"{"data":{"result":[
            {"instance_id":"a","region":1e400,"backup_time":-1e999,"running_status":2},
            {"instance_id":"b","region":"r","running_status":1e400,"frozen_status":0}
        ]}}"#;
        let page = decode(body.as_bytes()).unwrap();
        assert_eq!(page.instances.len(), 2);
        assert_eq!(
            page.invalid_values, 2,
            "1e400 and -1e999 as text are no time and no code"
        );
        assert_eq!(
            &*page.instances[0].region, "1e400",
            "a number as written, in a text field"
        );
        assert_eq!(page.instances[0].status(Dimension::Running), Some(2));
        assert_eq!(page.instances[1].status(Dimension::Running), None);
        assert_eq!(page.instances[1].status(Dimension::Frozen), Some(0));
    }

    #[test]
    fn long_texts_are_cut_to_their_bound_and_counted() {
        let id = "i".repeat(40);
        let name = "名".repeat(1_000);
        let sku = "s".repeat(MAX_TEXT_CHARS);
        let body = format!(
            r#"{{"data":{{"result":[{{"instance_id":"{id}","instance_name":"{name}","instance_sku":"{sku}"}}]}}}}"#
        );
        let page = decode(body.as_bytes()).unwrap();
        let instance = &page.instances[0];
        assert_eq!(instance.instance_id(), "i".repeat(MAX_INSTANCE_ID_CHARS));
        assert_eq!(
            instance.instance_name(),
            "名".repeat(MAX_INSTANCE_NAME_CHARS)
        );
        assert_eq!(&*instance.sku, sku, "a value at its bound is kept whole");
        assert_eq!(page.truncated_values, 2);
    }

    #[test]
    fn negative_counts_are_treated_as_absent() {
        let page = decode(br#"{"total_count":-5,"page_size":-1}"#).unwrap();
        assert_eq!((page.total_count, page.page_size), (None, None));
    }

    #[test]
    fn the_fast_time_path_agrees_with_the_format_parser() {
        for s in [
            "2024-05-24 17:34:58",
            "1970-01-01 00:00:00",
            "2024-02-29 23:59:59",
            "2023-02-29 10:00:00",
            "2024-13-01 10:00:00",
            "2024-05-24 24:00:00",
            "2024-05-24 17:34:5x",
            "2024-05-24T17:34:58",
            "+024-05-24 17:34:58",
            "2024-05-24 17:34:580",
        ] {
            assert_eq!(
                api_time(s),
                PrimitiveDateTime::parse(s, API_TIME_FORMAT).ok(),
                "{s}"
            );
        }
    }

    #[test]
    fn the_floor_parses_what_decoding_reads() {
        assert_eq!(parse_floor(REFERENCE_EXAMPLE.as_bytes()), Ok(1));
        let refused = r#"{"error_code":"APIGW.0307","error_msg":"token expired"}"#;
        assert!(matches!(
            parse_floor(refused.as_bytes()),
            Err(DecodeError::Api { .. })
        ));
    }

    #[test]
    fn times_parse_in_the_given_zone_and_garbage_is_absent() {
        let utc = UtcOffset::UTC;
        let beijing = time::macros::offset!(+8);
        assert_eq!(parse_time("1970-01-01 00:00:00", utc), Some(0));
        assert_eq!(parse_time("1970-01-01 08:00:00", beijing), Some(0));
        // RFC 3339 says its own offset, whatever the zone.
        assert_eq!(
            parse_time("2024-05-24T17:34:58+08:00", utc),
            Some(1_716_543_298)
        );
        assert_eq!(
            parse_time("2024-05-24T17:34:58+08:00", beijing),
            Some(1_716_543_298)
        );
        assert_eq!(parse_time("yesterday", utc), None);
        assert_eq!(parse_time("2024-13-45 99:00:00", utc), None);
    }

    #[test]
    fn api_error_reads_non_2xx_bodies() {
        assert_eq!(
            api_error(br#"{"error_code":"APIGW.0307","error_msg":"The token must be updated."}"#),
            Some(("APIGW.0307".into(), "The token must be updated.".into()))
        );
        assert_eq!(api_error(b"Bad Gateway"), None);
    }

    #[test]
    fn unknown_keys_are_skipped_wherever_they_are() {
        let body = r#"{"extra":[1,{"a":"b"}],"data":{"junk":{"x":[null]},"result":[{"instance_id":"a","more":[1,2]}],"total_count":"1"},"error_code":"0","page_no":1,"tail":"x"}"#;
        let page = decode(body.as_bytes()).unwrap();
        assert_eq!(page.instances.len(), 1);
        assert_eq!((page.total_count, page.page_no), (Some(1), Some(1)));
    }

    #[test]
    fn a_page_with_more_rows_than_asked_for_is_refused() {
        let rows = vec![r#"{"instance_id":"x"}"#; 101].join(",");
        let body = format!(r#"{{"data":{{"result":[{rows}]}}}}"#);
        let error = decode(body.as_bytes()).unwrap_err();
        assert!(
            matches!(&error, DecodeError::Malformed(m) if m.contains("more than the 100 rows page_size asked for")),
            "{error:?}"
        );
        let rows = vec!["{}"; 100].join(",");
        let body = format!(r#"{{"data":{{"result":[{rows}]}}}}"#);
        assert_eq!(decode(body.as_bytes()).unwrap().instances.len(), 100);
    }

    #[test]
    fn an_invalid_utf8_byte_in_a_name_is_replaced_and_counted() {
        let mut body = br#"{"data":{"result":[{"instance_id":"a","instance_name":"ph"#.to_vec();
        body.extend_from_slice(b"\xff\xfeone");
        body.extend_from_slice(br#""},{"instance_id":"b","instance_name":"fine"}]}}"#);
        let page = decode(&body).unwrap();
        assert_eq!(page.instances[0].instance_name(), "ph\u{FFFD}\u{FFFD}one");
        assert_eq!(page.instances[1].instance_name(), "fine");
        assert_eq!(page.replaced_text, 2);
    }

    #[test]
    fn lone_surrogate_escapes_are_replaced_and_pairs_kept() {
        let body = r#"{"data":{"result":[
            {"instance_id":"a","instance_name":"x\ud83dy"},
            {"instance_id":"b","instance_name":"\ude00\ud83d"},
            {"instance_id":"c","instance_name":"\ud83d\ude00 \\ud83d \u0041"}]}}"#;
        let page = decode(body.as_bytes()).unwrap();
        let names: Vec<_> = page.instances.iter().map(|i| i.instance_name()).collect();
        assert_eq!(
            names,
            ["x\u{FFFD}y", "\u{FFFD}\u{FFFD}", "\u{1F600} \\ud83d A"]
        );
        assert_eq!(page.replaced_text, 3);
    }

    #[test]
    fn a_valid_body_is_not_counted_as_replaced() {
        assert_eq!(
            decode(REFERENCE_EXAMPLE.as_bytes()).unwrap().replaced_text,
            0
        );
    }

    #[test]
    fn floats_at_and_past_two_to_the_63_are_refused() {
        for (value, ok) in [
            ("9223372036854775808.0", false),
            ("9.3e18", false),
            ("18446744073709551616.0", false),
            ("-9223372036854775808.0", true),
            ("9223372036854774784.0", true),
            ("2.0", true),
        ] {
            let body = format!(r#"{{"data":{{"result":[{{"running_status":{value}}}]}}}}"#);
            let page = decode(body.as_bytes()).unwrap();
            let status = page.instances[0].status(Dimension::Running);
            assert_eq!(status.is_some(), ok, "{value}");
            assert_eq!(page.invalid_values, usize::from(!ok), "{value}");
        }
    }
}
