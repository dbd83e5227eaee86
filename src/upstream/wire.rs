//! The batch-query API's JSON as it really arrives, and its tolerant decoding into domain types.
//! No I/O here: bytes in, a [`Page`] or a [`DecodeError`] out, so every quirk is tested on fixtures.
//!
//! The body is read in one streaming pass, by serde_json alone (so `null` comes as a unit). Keys the exporter does not use are skipped as they are
//! parsed, never buffered, and a page can hold no more rows than were asked for: what an upstream
//! can make the exporter hold is bounded by the size of the body it sends.
//!
//! Every field is read as a [`Scalar`], by one visitor, and then by one of two rules:
//!
//! - **text**: a string as it is, a number or a boolean as written; `null`, `"null"` and `""`
//!   are absent; an object or an array is invalid.
//! - **integer** (the six statuses, `page_no`, `page_size`, `total_count`): a JSON integer, a
//!   float with no fraction, or a string holding either, from -2^63 to 2^63 - 1 (a float from
//!   -2^63 up to, not including, 2^63: the float nearest `i64::MAX` is 2^63); absent as for text;
//!   anything else is invalid.
//!
//! An invalid field of a row is counted and read as absent: one odd value spoils its own field,
//! never the row or the page. An invalid paging or error field makes the page malformed, since
//! its counts cannot be trusted.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use time::UtcOffset;

use crate::fleet::{Identity, Instance};
use crate::upstream::{api_time::parse_time, repair};

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
    ErrorMessage,
    #[serde(other)]
    Other,
}

/// Any JSON value, as the one scalar a field can hold; read into a field by [`Scalar::text`]
/// or [`Scalar::int`].
#[derive(Debug)]
enum Scalar<'a> {
    Absent,
    /// A string (borrowed from the body when it holds no escape), a boolean, or an integer too
    /// large for an `i64`, as written.
    Text(Cow<'a, str>),
    Int(i64),
    Float(f64),
    /// An object or an array.
    Invalid,
}

/// The one visitor of every field: whatever JSON value comes is made a [`Scalar`] and read by
/// the field's rule (`T::from`). Generic over the rule so that each rule compiles to a visitor
/// of its own with no `Scalar` left in between: a page reads 1,700 fields.
struct ScalarVisitor<'a, T>(PhantomData<(&'a (), T)>);

impl<'de: 'a, 'a, T: From<Scalar<'a>>> Visitor<'de> for ScalarVisitor<'a, T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<T, E> {
        Ok(Scalar::text_of(Cow::Borrowed(v)).into())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        Ok(Scalar::text_of(Cow::Owned(v.to_string())).into())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        Ok(Scalar::Int(v).into())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        Ok(i64::try_from(v)
            .map_or_else(|_| Scalar::Text(Cow::Owned(v.to_string())), Scalar::Int)
            .into())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        Ok(Scalar::Float(v).into())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<T, E> {
        Ok(Scalar::Text(Cow::Borrowed(if v { "true" } else { "false" })).into())
    }
    fn visit_unit<E: de::Error>(self) -> Result<T, E> {
        Ok(Scalar::Absent.into())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<T, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Invalid.into())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Invalid.into())
    }
}

/// A field read by the text rule.
#[derive(Debug, Default)]
struct Text<'a>(Field<Cow<'a, str>>);

impl<'a> From<Scalar<'a>> for Text<'a> {
    #[inline(always)]
    fn from(value: Scalar<'a>) -> Self {
        Text(value.text())
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor(PhantomData))
    }
}

/// A field read by the integer rule.
#[derive(Debug, Default)]
struct Int(Field<i64>);

impl From<Scalar<'_>> for Int {
    #[inline(always)]
    fn from(value: Scalar<'_>) -> Self {
        Int(value.int())
    }
}

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor::<'de, Int>(PhantomData))
    }
}

impl<'a> Scalar<'a> {
    /// A string: the API writes absent values as `"null"`.
    #[inline(always)]
    fn text_of(text: Cow<'a, str>) -> Self {
        if is_null_text(&text) {
            Scalar::Absent
        } else {
            Scalar::Text(text)
        }
    }

    /// The field by the text rule (see the module's documentation).
    #[inline(always)]
    fn text(self) -> Field<Cow<'a, str>> {
        match self {
            Scalar::Absent => Field::Absent,
            Scalar::Text(text) => Field::Value(text),
            Scalar::Int(v) => Field::Value(Cow::Owned(v.to_string())),
            Scalar::Float(v) => Field::Value(Cow::Owned(v.to_string())),
            Scalar::Invalid => Field::Invalid,
        }
    }

    /// The field by the integer rule (see the module's documentation).
    #[inline(always)]
    fn int(self) -> Field<i64> {
        match self {
            Scalar::Absent => Field::Absent,
            Scalar::Int(v) => Field::Value(v),
            Scalar::Float(v) => integral(v),
            Scalar::Text(text) => {
                let text = text.trim();
                if is_null_text(text) {
                    Field::Absent
                } else if let Ok(v) = text.parse::<i64>() {
                    Field::Value(v)
                } else {
                    text.parse::<f64>().map_or(Field::Invalid, integral)
                }
            }
            Scalar::Invalid => Field::Invalid,
        }
    }
}

/// Whether a string the API sent means "no value": it writes absent values as `"null"`.
fn is_null_text(s: &str) -> bool {
    s.is_empty() || s == "null"
}

/// 2^63, the first float past `i64::MAX`.
const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;

/// A float as an integer, if it is one an `i64` holds.
fn integral(v: f64) -> Field<i64> {
    if v.fract() == 0.0 && (-TWO_POW_63..TWO_POW_63).contains(&v) {
        Field::Value(v as i64)
    } else {
        Field::Invalid
    }
}

/// What one field holds.
#[derive(Debug, Default, PartialEq)]
enum Field<T> {
    #[default]
    Absent,
    Value(T),
    /// A value of the wrong kind or out of range.
    Invalid,
}

impl<T> Field<T> {
    /// The value of a field the page cannot do without a valid value of, named `name`.
    fn trusted<E: de::Error>(self, name: &str) -> Result<Option<T>, E> {
        match self {
            Field::Value(v) => Ok(Some(v)),
            Field::Absent => Ok(None),
            Field::Invalid => Err(E::custom(format_args!(
                "{name} holds a value of the wrong kind"
            ))),
        }
    }
}

/// The paging and error fields of one object (the top level, or `data`).
#[derive(Debug, Default)]
struct Paging {
    page_no: Option<i64>,
    page_size: Option<i64>,
    total_count: Option<i64>,
    error_code: Option<String>,
    error_msg: Option<String>,
}

impl Paging {
    /// Reads the value of the paging or error field `key`; false for any other key.
    fn read<'de, A: MapAccess<'de>>(
        &mut self,
        key: PageField,
        map: &mut A,
    ) -> Result<bool, A::Error> {
        // What a row would count as invalid fails the page here: its counts cannot be trusted.
        let int = |field: Int, name| field.0.trusted(name);
        let text = |field: Text, name| Ok(field.0.trusted(name)?.map(Cow::into_owned));
        match key {
            PageField::PageNo => self.page_no = int(map.next_value()?, "page_no")?,
            PageField::PageSize => self.page_size = int(map.next_value()?, "page_size")?,
            PageField::TotalCount => self.total_count = int(map.next_value()?, "total_count")?,
            PageField::ErrorCode => self.error_code = text(map.next_value()?, "error_code")?,
            PageField::ErrorMsg => self.error_msg = text(map.next_value()?, "error_msg")?,
            // Other Huawei services name the message so.
            PageField::ErrorMessage if self.error_msg.is_none() => {
                self.error_msg = text(map.next_value()?, "error_message")?
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

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
        let mut paging = Paging::default();
        while let Some(key) = map.next_key::<PageField>()? {
            if key == self.key {
                inner = Some(map.next_value_seed(self.seed)?);
            } else if !paging.read(key, &mut map)? {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok((inner, paging))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok((None, Paging::default()))
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

/// The fields of one `result` row the exporter reads, each converted by its rule as it is
/// parsed. Every field is optional: a row missing a field is still an instance.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Row<'a> {
    #[serde(borrow)]
    instance_id: Text<'a>,
    #[serde(borrow)]
    instance_name: Text<'a>,
    #[serde(borrow)]
    region: Text<'a>,
    #[serde(borrow)]
    region_name: Text<'a>,
    #[serde(borrow)]
    instance_sku: Text<'a>,
    #[serde(borrow)]
    project_id: Text<'a>,
    #[serde(borrow)]
    project_name: Text<'a>,
    #[serde(borrow)]
    phone_id: Text<'a>,
    #[serde(borrow)]
    billing_mode: Text<'a>,
    running_status: Int,
    frozen_status: Int,
    login_status: Int,
    assign_status: Int,
    backup_status: Int,
    #[serde(borrow)]
    backup_time: Text<'a>,
    restore_status: Int,
    #[serde(borrow)]
    restore_time: Text<'a>,
}

impl Row<'_> {
    fn into_instance(self, page: &mut PageState, time_zone: UtcOffset) -> Instance {
        let instance_id = page.text(self.instance_id.0, MAX_INSTANCE_ID_CHARS);
        let instance_name = page.text(self.instance_name.0, MAX_INSTANCE_NAME_CHARS);
        let phone_id = page.text(self.phone_id.0, MAX_TEXT_CHARS);
        Instance {
            region: page.shared(|s| &mut s.region, self.region.0),
            region_name: page.shared(|s| &mut s.region_name, self.region_name.0),
            sku: page.shared(|s| &mut s.sku, self.instance_sku.0),
            project_id: page.shared(|s| &mut s.project_id, self.project_id.0),
            project_name: page.shared(|s| &mut s.project_name, self.project_name.0),
            billing_mode: page.shared(|s| &mut s.billing_mode, self.billing_mode.0),
            // Same order as `Dimension::ALL`.
            status: [
                page.value(self.running_status.0),
                page.value(self.frozen_status.0),
                page.value(self.login_status.0),
                page.value(self.assign_status.0),
                page.value(self.backup_status.0),
                page.value(self.restore_status.0),
            ],
            backup_time: page.time(self.backup_time.0, time_zone),
            restore_time: page.time(self.restore_time.0, time_zone),
            identity: Identity::new(&instance_id, &instance_name, &phone_id),
        }
    }
}

/// The longest `instance_id` and `instance_name` the API's schema allows; longer values are cut
/// to these many characters, since each becomes a label value on several series.
pub const MAX_INSTANCE_ID_CHARS: usize = 32;
pub const MAX_INSTANCE_NAME_CHARS: usize = 128;
/// The longest value of every other text field (region, SKU, project, phone id, billing mode):
/// the reference's own examples are under 100 characters.
pub const MAX_TEXT_CHARS: usize = 128;

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
    /// A text field, cut to `max` characters, its control characters spaces
    /// ([`repair::controls_as_spaces`]); an invalid one is counted and empty.
    fn text<'a>(&mut self, field: Field<Cow<'a, str>>, max: usize) -> Cow<'a, str> {
        let Some(text) = self.value(field).map(repair::controls_as_spaces) else {
            return Cow::Borrowed("");
        };
        // Bytes bound characters from above: most values need no count at all.
        if text.len() <= max {
            return text;
        }
        let Some((end, _)) = text.char_indices().nth(max) else {
            return text;
        };
        self.truncated += 1;
        match text {
            Cow::Borrowed(t) => Cow::Borrowed(&t[..end]),
            Cow::Owned(mut t) => {
                t.truncate(end);
                Cow::Owned(t)
            }
        }
    }

    fn time(&mut self, field: Field<Cow<'_, str>>, zone: UtcOffset) -> Option<i64> {
        let parsed = parse_time(&self.value(field)?, zone);
        self.invalid += usize::from(parsed.is_none());
        parsed
    }

    /// The field's value; an invalid one is counted.
    fn value<T>(&mut self, field: Field<T>) -> Option<T> {
        match field {
            Field::Value(v) => Some(v),
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

/// `result`: a JSON array of rows, each made into an [`Instance`] as soon as it is parsed, no
/// more than `max_rows` of them; `null` is no rows. The rows reserved for at once are the
/// previous page's count, so a page's vector is allocated once at its size instead of grown and
/// copied.
#[derive(Clone, Copy)]
struct Rows(Decoding);

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
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let Decoding {
            max_rows,
            expected_rows,
            time_zone,
        } = self.0;
        let mut page = PageState::default();
        let mut rows = Vec::with_capacity(expected_rows.min(max_rows));
        while let Some(row) = seq.next_element::<Row>()? {
            if rows.len() == max_rows {
                return Err(de::Error::custom(format_args!(
                    "the page holds more than the {max_rows} rows page_size asked for"
                )));
            }
            rows.push(row.into_instance(&mut page, time_zone));
        }
        Ok(RowsRead {
            instances: rows,
            invalid: page.invalid,
            truncated: page.truncated,
        })
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(RowsRead::default())
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

/// A parsed envelope: the rows, and the paging fields inside `data` and at the top level.
struct Parsed<T> {
    rows: Option<T>,
    inner: Paging,
    top: Paging,
    replaced_text: usize,
}

/// Parses a body with `seed`, or returns the error it names (`error_code` present and not `"0"`,
/// at the top level or in `data`).
///
/// serde_json refuses a number past what a float holds (`1e400`) as it parses, before any
/// visitor sees it. So a body that does not parse is looked at once more: its numbers a float
/// cannot hold are written as strings, which the rules read like any other numeric string
/// (invalid as integers, kept as written as text), and it is parsed again. Bodies that parse,
/// the rule, pay nothing for it.
fn parse<S, T>(body: &[u8], seed: Paged<Paged<S>>) -> Result<Parsed<T>, DecodeError>
where
    S: for<'de> DeserializeSeed<'de, Value = T> + Copy,
{
    let (text, replaced_text) = repair::clean_text(body);
    let read = |text: &str| {
        let mut json = serde_json::Deserializer::from_str(text);
        seed.deserialize(&mut json)
            .and_then(|v| json.end().map(|()| v))
            .map_err(|e| DecodeError::Malformed(e.to_string()))
    };
    let (data, top) = match read(&text) {
        Err(error) => match repair::quote_huge_numbers(&text) {
            Some(quoted) => read(&quoted)?,
            None => return Err(error),
        },
        Ok(parsed) => parsed,
    };
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
    let Parsed {
        rows,
        inner,
        top,
        replaced_text,
    } = parse(body, envelope(Rows(decoding)))?;
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

/// A negative count carries no information; treat it as absent rather than fail the page.
fn non_negative(v: Option<i64>) -> Option<u64> {
    v.and_then(|v| u64::try_from(v).ok())
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
        // A number past what a float holds, in any field, spoils that field alone.
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
    fn an_error_message_under_another_name_is_read_too() {
        let body = r#"{"error_code":"APIG.0308","error_message":"The throttling threshold has been reached"}"#;
        assert_eq!(
            decode(body.as_bytes()).unwrap_err(),
            DecodeError::Api {
                code: "APIG.0308".into(),
                message: "The throttling threshold has been reached".into()
            }
        );
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
    fn control_characters_in_text_become_spaces() {
        let body = r#"{"data":{"result":[
            {"instance_id":"a\u0000b","instance_name":"phone\nname\r\t\u007f\u0085x","region":"cn\u001bnorth","instance_sku":"é £ ©"},
            {"instance_id":"c","instance_name":"plain \" name"}]}}"#;
        let page = decode(body.as_bytes()).unwrap();
        let a = &page.instances[0];
        assert_eq!(a.instance_id(), "a b");
        assert_eq!(a.instance_name(), "phone name    x");
        assert_eq!(&*a.region, "cn north");
        assert_eq!(&*a.sku, "é £ ©", "printable characters stay");
        assert_eq!(page.instances[1].instance_name(), "plain \" name");
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

    #[test]
    fn every_integer_field_reads_by_one_rule() {
        let body = r#"{"data":{"result":[{"running_status":"1.0e2"}],"total_count":"1.0e2","page_size":" 100 ","page_no":1.0}}"#;
        let page = decode(body.as_bytes()).unwrap();
        assert_eq!(page.instances[0].status(Dimension::Running), Some(100));
        assert_eq!(
            (page.page_no, page.page_size, page.total_count),
            (Some(1), Some(100), Some(100))
        );
        // What a status reads as invalid makes a paging field, which the counts rest on, fail
        // the page.
        for odd in ["3.5", "1e19", "\"two\"", "true", "{}", "[1]", "1e400"] {
            let body = format!(r#"{{"data":{{"result":[]}},"total_count":{odd}}}"#);
            let error = decode(body.as_bytes()).unwrap_err();
            assert!(
                matches!(&error, DecodeError::Malformed(m) if m.contains("total_count holds a value of the wrong kind")),
                "{odd}: {error:?}"
            );
        }
        let body = r#"{"error_code":{"code":1}}"#;
        assert!(
            matches!(decode(body.as_bytes()), Err(DecodeError::Malformed(m)) if m.contains("error_code holds a value of the wrong kind"))
        );
    }
}
