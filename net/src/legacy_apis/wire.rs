//! The primitives of Kafka's non-flexible encoding, for the request and response versions
//! decoded and encoded by hand: big-endian integers, `string` (`i16` length, then UTF-8),
//! `nullable string` (length -1 for null), arrays (`i32` count, then the elements; -1 for a
//! null array).
//!
//! [`Reader`] never panics and never allocates from a count alone: an array count is refused
//! unless that many elements of the array's smallest size fit in the bytes left, so a lying
//! count costs nothing. [`Writer`] refuses a string or array too long for its length field.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::StrBytes;

use crate::error::NetError;

/// A cursor over a request body: a read past the end is an error, not a panic. Strings are
/// slices of the body, not copies.
pub struct Reader {
    rest: Bytes,
    api_key: ApiKey,
    version: i16,
}

impl Reader {
    pub fn new(api_key: ApiKey, version: i16, body: Bytes) -> Self {
        Reader {
            rest: body,
            api_key,
            version,
        }
    }

    /// The request version being decoded.
    pub fn version(&self) -> i16 {
        self.version
    }

    pub fn take(&mut self, len: usize) -> Result<Bytes, NetError> {
        if len > self.rest.len() {
            let left = self.rest.len();
            return Err(self.error(format!("truncated: {len} bytes wanted, {left} left")));
        }
        Ok(self.rest.split_to(len))
    }

    pub fn i8(&mut self) -> Result<i8, NetError> {
        Ok(self.take(1)?.get_i8())
    }

    /// A boolean: any byte but 0 is true, as Kafka reads it.
    pub fn bool(&mut self) -> Result<bool, NetError> {
        Ok(self.i8()? != 0)
    }

    pub fn i16(&mut self) -> Result<i16, NetError> {
        Ok(self.take(2)?.get_i16())
    }

    pub fn i32(&mut self) -> Result<i32, NetError> {
        Ok(self.take(4)?.get_i32())
    }

    pub fn i64(&mut self) -> Result<i64, NetError> {
        Ok(self.take(8)?.get_i64())
    }

    /// A non-nullable string.
    pub fn string(&mut self) -> Result<StrBytes, NetError> {
        match self.nullable_string()? {
            Some(s) => Ok(s),
            None => Err(self.error("a null string where the field is not nullable".into())),
        }
    }

    pub fn nullable_string(&mut self) -> Result<Option<StrBytes>, NetError> {
        let len = self.i16()?;
        if len == -1 {
            return Ok(None);
        }
        let Ok(len) = usize::try_from(len) else {
            return Err(self.error(format!("string length {len}")));
        };
        let bytes = self.take(len)?;
        StrBytes::from_utf8(bytes)
            .map(Some)
            .map_err(|_| self.error("a string that is not UTF-8".into()))
    }

    /// A non-nullable array whose elements take at least `element_bytes_min` bytes each,
    /// decoded by `element`.
    pub fn array<T>(
        &mut self,
        element_bytes_min: usize,
        element: impl FnMut(&mut Self) -> Result<T, NetError>,
    ) -> Result<Vec<T>, NetError> {
        match self.nullable_array(element_bytes_min, element)? {
            Some(elements) => Ok(elements),
            None => Err(self.error("a null array where the field is not nullable".into())),
        }
    }

    pub fn nullable_array<T>(
        &mut self,
        element_bytes_min: usize,
        mut element: impl FnMut(&mut Self) -> Result<T, NetError>,
    ) -> Result<Option<Vec<T>>, NetError> {
        assert!(element_bytes_min > 0, "an array element takes bytes");
        let count = self.i32()?;
        if count == -1 {
            return Ok(None);
        }
        let left = self.rest.len();
        let count = match usize::try_from(count) {
            Ok(n) if n <= left / element_bytes_min => n,
            _ => return Err(self.error(format!("array count {count} with {left} bytes left"))),
        };
        let mut elements = Vec::with_capacity(count);
        for _ in 0..count {
            elements.push(element(self)?);
        }
        Ok(Some(elements))
    }

    /// Everything left unread, for a body whose remaining bytes the codec decodes. (Bytes left
    /// after a whole body are ignored, as the codec and Kafka ignore them.)
    pub fn take_rest(&mut self) -> Bytes {
        std::mem::take(&mut self.rest)
    }

    pub fn error(&self, reason: String) -> NetError {
        NetError::Decode {
            what: "request body",
            api_key: self.api_key as i16,
            version: self.version,
            reason,
        }
    }
}

/// A response frame written by hand: `length: i32`, `correlation_id: i32` (response header v0,
/// which every non-flexible version uses), then the body. [`Writer::finish`] sets the length.
pub struct Writer {
    out: BytesMut,
    api_key: ApiKey,
    version: i16,
}

impl Writer {
    pub fn new(api_key: ApiKey, version: i16, correlation_id: i32) -> Self {
        let mut out = BytesMut::with_capacity(256);
        out.put_i32(0); // the length, set by `finish`
        out.put_i32(correlation_id);
        Writer {
            out,
            api_key,
            version,
        }
    }

    /// The response version being encoded.
    pub fn version(&self) -> i16 {
        self.version
    }

    /// The body written so far, for encoders that hand part of it to the codec.
    pub fn buf(&mut self) -> &mut BytesMut {
        &mut self.out
    }

    pub fn i8(&mut self, v: i8) {
        self.out.put_i8(v);
    }

    pub fn bool(&mut self, v: bool) {
        self.out.put_u8(u8::from(v));
    }

    pub fn i16(&mut self, v: i16) {
        self.out.put_i16(v);
    }

    pub fn i32(&mut self, v: i32) {
        self.out.put_i32(v);
    }

    pub fn i64(&mut self, v: i64) {
        self.out.put_i64(v);
    }

    pub fn string(&mut self, s: &str) -> Result<(), NetError> {
        let len = i16::try_from(s.len()).map_err(|_| self.error(s.len(), "string"))?;
        self.out.put_i16(len);
        self.out.extend_from_slice(s.as_bytes());
        Ok(())
    }

    pub fn nullable_string(&mut self, s: Option<&str>) -> Result<(), NetError> {
        match s {
            Some(s) => self.string(s),
            None => {
                self.out.put_i16(-1);
                Ok(())
            }
        }
    }

    /// An array of `elements`, each written by `element`.
    pub fn array<T>(
        &mut self,
        elements: &[T],
        mut element: impl FnMut(&mut Self, &T) -> Result<(), NetError>,
    ) -> Result<(), NetError> {
        let count =
            i32::try_from(elements.len()).map_err(|_| self.error(elements.len(), "array"))?;
        self.out.put_i32(count);
        elements.iter().try_for_each(|e| element(self, e))
    }

    /// The finished frame, its length set.
    pub fn finish(mut self) -> Result<Bytes, NetError> {
        let len = self.out.len() - 4;
        let len = i32::try_from(len).map_err(|_| NetError::ResponseTooLarge { len })?;
        self.out[..4].copy_from_slice(&len.to_be_bytes());
        Ok(self.out.freeze())
    }

    pub fn error_reason(&self, reason: String) -> NetError {
        NetError::Encode {
            api_key: self.api_key as i16,
            version: self.version,
            reason,
        }
    }

    fn error(&self, len: usize, what: &str) -> NetError {
        self.error_reason(format!(
            "a {what} of length {len} does not fit its length field"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(bytes: &'static [u8]) -> Reader {
        Reader::new(ApiKey::CreateTopics, 0, Bytes::from_static(bytes))
    }

    #[test]
    fn reads_integers_strings_and_arrays() {
        let mut r = reader(&[
            0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x03, 0, 0, 0, 0, 0, 0, 0,
            4, // i8 i16 i32 i64
            0x00, 0x02, b'a', b'b', 0xff, 0xff, // "ab", null
            0, 0, 0, 2, 0, 0, 0, 5, 0, 0, 0, 6, 0xff, 0xff, 0xff, 0xff, // [5, 6], null array
        ]);
        assert_eq!(r.i8().expect("i8"), 1);
        assert_eq!(r.i16().expect("i16"), 2);
        assert_eq!(r.i32().expect("i32"), 3);
        assert_eq!(r.i64().expect("i64"), 4);
        assert_eq!(r.string().expect("string").as_str(), "ab");
        assert_eq!(r.nullable_string().expect("null"), None);
        assert_eq!(r.array(4, Reader::i32).expect("array"), vec![5, 6]);
        assert_eq!(r.nullable_array(4, Reader::i32).expect("null array"), None);
        assert!(r.take_rest().is_empty());
    }

    #[test]
    fn refuses_what_it_cannot_use() {
        let cases: [(&str, &'static [u8]); 6] = [
            ("null where not nullable", &[0xff, 0xff]),
            ("negative length", &[0xff, 0xfe]),
            ("past the end", &[0x00, 0x03, b'a']),
            ("not UTF-8", &[0x00, 0x02, 0xc3, 0x28]),
            ("empty", &[]),
            ("one byte", &[0x00]),
        ];
        for (case, bytes) in cases {
            assert!(reader(bytes).string().is_err(), "{case}");
        }
        // A count that the bytes left cannot hold is refused before any element is read.
        let mut lying = reader(&[0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0, 2]);
        let error = lying
            .array(4, Reader::i32)
            .expect_err("3 elements in 8 bytes");
        assert!(error.to_string().contains("array count 3"), "{error}");
        let mut negative = reader(&[0xff, 0xff, 0xff, 0xfe]);
        assert!(negative.nullable_array(4, Reader::i32).is_err());
        let mut null = reader(&[0xff, 0xff, 0xff, 0xff]);
        assert!(null.array(4, Reader::i32).is_err());
    }

    #[test]
    fn writes_a_frame_with_its_length() {
        let mut w = Writer::new(ApiKey::CreateTopics, 0, 7);
        w.i16(1);
        w.string("ab").expect("string");
        w.nullable_string(None).expect("null");
        w.array(&[5i32], |w, v| {
            w.i32(*v);
            Ok(())
        })
        .expect("array");
        w.bool(true);
        let frame = w.finish().expect("frame");
        let expected: &[u8] = &[
            0, 0, 0, 21, 0, 0, 0, 7, // length, correlation id
            0, 1, 0, 2, b'a', b'b', 0xff, 0xff, 0, 0, 0, 1, 0, 0, 0, 5, 1,
        ];
        assert_eq!(&frame[..], expected);
    }

    #[test]
    fn refuses_a_string_too_long_for_its_length() {
        let mut w = Writer::new(ApiKey::CreateTopics, 0, 7);
        let long = "x".repeat(usize::from(u16::MAX));
        assert!(matches!(
            w.string(&long),
            Err(NetError::Encode {
                api_key: 19,
                version: 0,
                ..
            })
        ));
    }
}
