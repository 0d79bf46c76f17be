//! Rows read with `COPY (query) TO STDOUT (FORMAT binary)`: for the summary's hundreds of
//! thousands of sessions, sqlx's row path (a stream item, a decoded `DataRow`, a typed `try_get`
//! per column, chrono's calendar arithmetic per timestamp) cost three quarters of the summary's
//! time (profiled with `perf`); the binary format is read here straight off the bytes.
//!
//! The format (PostgreSQL, "COPY: Binary Format"): an 11-byte signature, a 32-bit flags field and
//! a header extension of a 32-bit length; then each tuple as a 16-bit field count and, per field,
//! a 32-bit length (-1 for NULL) and that many bytes; a field count of -1 ends the data. Integers
//! are big-endian; a `date` is days and a `timestamptz` microseconds since 2000-01-01 (UTC).

use bytes::{Buf, BytesMut};
use chrono::{DateTime, Datelike, NaiveDate, Utc};

const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// Days from 0001-01-01 (chrono's day 1) to 2000-01-01, PostgreSQL's epoch.
const PG_EPOCH_DAYS_FROM_CE: i32 = 730_120;
/// Seconds from 1970-01-01 to 2000-01-01.
const PG_EPOCH_UNIX_SECONDS: i64 = 946_684_800;

/// Reads tuples of `N` fields out of the COPY data as it arrives, whatever its chunking.
pub struct Reader<const N: usize> {
    buf: BytesMut,
    header: bool,
    done: bool,
}

/// A tuple's fields: `None` for NULL.
pub type Fields<'a, const N: usize> = [Option<&'a [u8]>; N];

#[derive(Debug, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

impl<const N: usize> Default for Reader<N> {
    fn default() -> Self {
        Self {
            buf: BytesMut::new(),
            header: false,
            done: false,
        }
    }
}

impl<const N: usize> Reader<N> {
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// True once the trailer has been read.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Hands each complete tuple in the buffer to `each`; keeps an incomplete one for the next
    /// chunk.
    pub fn each(
        &mut self,
        mut each: impl FnMut(Fields<'_, N>) -> Result<(), Malformed>,
    ) -> Result<(), Malformed> {
        if !self.header {
            if self.buf.len() < SIGNATURE.len() + 8 {
                return Ok(());
            }
            if &self.buf[..SIGNATURE.len()] != SIGNATURE {
                return Err(Malformed("not binary COPY data"));
            }
            let ext = u32::from_be_bytes(read4(&self.buf[SIGNATURE.len() + 4..])) as usize;
            let len = SIGNATURE.len() + 8 + ext;
            if self.buf.len() < len {
                return Ok(());
            }
            self.buf.advance(len);
            self.header = true;
        }
        loop {
            if self.done || self.buf.len() < 2 {
                return Ok(());
            }
            let count = i16::from_be_bytes([self.buf[0], self.buf[1]]);
            if count == -1 {
                self.done = true;
                self.buf.advance(2);
                return Ok(());
            }
            if count as usize != N {
                return Err(Malformed("unexpected field count"));
            }
            let mut fields: Fields<'_, N> = [None; N];
            let mut at = 2;
            let mut complete = true;
            for field in &mut fields {
                let Some(len) = self.buf.get(at..at + 4) else {
                    complete = false;
                    break;
                };
                let len = i32::from_be_bytes(read4(len));
                at += 4;
                if len < 0 {
                    continue;
                }
                let end = at + len as usize;
                let Some(bytes) = self.buf.get(at..end) else {
                    complete = false;
                    break;
                };
                *field = Some(bytes);
                at = end;
            }
            if !complete {
                return Ok(());
            }
            each(fields)?;
            self.buf.advance(at);
        }
    }
}

fn read4(b: &[u8]) -> [u8; 4] {
    [b[0], b[1], b[2], b[3]]
}

fn fixed<const W: usize>(field: Option<&[u8]>) -> Result<Option<[u8; W]>, Malformed> {
    field
        .map(|b| {
            b.try_into()
                .map_err(|_| Malformed("field of the wrong width"))
        })
        .transpose()
}

/// A `bigint`.
pub fn int8(field: Option<&[u8]>) -> Result<Option<i64>, Malformed> {
    Ok(fixed::<8>(field)?.map(i64::from_be_bytes))
}

/// A `timestamptz`, to the microsecond.
pub fn timestamptz(field: Option<&[u8]>) -> Result<Option<DateTime<Utc>>, Malformed> {
    fixed::<8>(field)?
        .map(|b| {
            let micros = i64::from_be_bytes(b);
            let secs = micros.div_euclid(1_000_000) + PG_EPOCH_UNIX_SECONDS;
            let nanos = (micros.rem_euclid(1_000_000) * 1000) as u32;
            DateTime::from_timestamp(secs, nanos).ok_or(Malformed("timestamp out of range"))
        })
        .transpose()
}

/// One live session as `employee_months.sessions` holds it (29 bytes, see its migration).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MonthSession {
    /// Days since 2000-01-01.
    pub day: i32,
    pub clock_in: DateTime<Utc>,
    pub clock_out: Option<DateTime<Utc>>,
    pub net_seconds: i64,
    pub auto_closed: bool,
}

const MONTH_SESSION: usize = 29;

/// The sessions of an `employee_months.sessions` value, in its order.
pub fn month_sessions(value: &[u8]) -> impl Iterator<Item = Result<MonthSession, Malformed>> + '_ {
    let whole = value.len().is_multiple_of(MONTH_SESSION);
    let bad = (!whole).then_some(Err(Malformed("employee_months value of a wrong length")));
    bad.into_iter().chain(
        value
            .chunks_exact(MONTH_SESSION)
            .filter(move |_| whole)
            .map(|r| {
                let day = i32::from_be_bytes(read4(r));
                let clock_in = timestamptz(Some(&r[4..12]))?.ok_or(Malformed("no clock_in"))?;
                let out = &r[12..20];
                let clock_out = if out == i64::MIN.to_be_bytes() {
                    None
                } else {
                    timestamptz(Some(out))?
                };
                Ok(MonthSession {
                    day,
                    clock_in,
                    clock_out,
                    net_seconds: int8(Some(&r[20..28]))?.unwrap_or(0),
                    auto_closed: r[28] != 0,
                })
            }),
    )
}

/// The day count since 2000-01-01 of a date.
pub fn day_of_date(date: NaiveDate) -> i32 {
    date.num_days_from_ce() - PG_EPOCH_DAYS_FROM_CE
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Vec<u8> {
        let mut b = SIGNATURE.to_vec();
        b.extend_from_slice(&0u32.to_be_bytes());
        b.extend_from_slice(&0u32.to_be_bytes());
        b
    }

    fn field(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
        match bytes {
            Some(b) => {
                out.extend_from_slice(&(b.len() as i32).to_be_bytes());
                out.extend_from_slice(b);
            }
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }

    #[test]
    fn tuples_are_read_whatever_the_chunking() {
        let mut data = header();
        for (id, out) in [(7i64, Some(5i64)), (-2, None)] {
            data.extend_from_slice(&2i16.to_be_bytes());
            field(&mut data, Some(&id.to_be_bytes()));
            field(
                &mut data,
                out.map(i64::to_be_bytes).as_ref().map(|b| &b[..]),
            );
        }
        data.extend_from_slice(&(-1i16).to_be_bytes());
        for size in [1, 3, 7, data.len()] {
            let mut reader = Reader::<2>::default();
            let mut rows = Vec::new();
            for chunk in data.chunks(size) {
                reader.push(chunk);
                reader
                    .each(|[a, b]| {
                        rows.push((int8(a)?, int8(b)?));
                        Ok(())
                    })
                    .unwrap();
            }
            assert!(reader.is_done());
            assert_eq!(
                rows,
                [(Some(7), Some(5)), (Some(-2), None)],
                "chunks of {size}"
            );
        }
    }

    #[test]
    fn dates_and_times_count_from_2000() {
        let date = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        assert_eq!(day_of_date(date(2000, 1, 1)), 0);
        assert_eq!(day_of_date(date(1999, 12, 31)), -1);
        assert_eq!(day_of_date(date(2026, 1, 1)), 9497);
        let t = timestamptz(Some(&(86_400_000_000i64 + 1).to_be_bytes())).unwrap();
        assert_eq!(
            t.unwrap()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "2000-01-02T00:00:00.000001Z"
        );
        let before = timestamptz(Some(&(-1i64).to_be_bytes())).unwrap();
        assert_eq!(
            before
                .unwrap()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "1999-12-31T23:59:59.999999Z"
        );
        assert_eq!(
            int8(Some(&[1, 2])),
            Err(Malformed("field of the wrong width"))
        );
    }

    #[test]
    fn month_sessions_are_29_bytes_each() {
        let mut value = Vec::new();
        for (day, out, auto) in [(9500i32, Some(3_600_000_000i64), false), (9501, None, true)] {
            value.extend_from_slice(&day.to_be_bytes());
            value.extend_from_slice(&0i64.to_be_bytes());
            value.extend_from_slice(&out.unwrap_or(i64::MIN).to_be_bytes());
            value.extend_from_slice(&out.map_or(0, |o| o / 1_000_000).to_be_bytes());
            value.push(u8::from(auto));
        }
        let read: Vec<MonthSession> = month_sessions(&value).collect::<Result<_, _>>().unwrap();
        let midnight = DateTime::from_timestamp(PG_EPOCH_UNIX_SECONDS, 0).unwrap();
        assert_eq!(
            read,
            [
                MonthSession {
                    day: 9500,
                    clock_in: midnight,
                    clock_out: Some(midnight + chrono::Duration::hours(1)),
                    net_seconds: 3600,
                    auto_closed: false,
                },
                MonthSession {
                    day: 9501,
                    clock_in: midnight,
                    clock_out: None,
                    net_seconds: 0,
                    auto_closed: true,
                }
            ]
        );
        assert_eq!(
            month_sessions(&value[1..]).next(),
            Some(Err(Malformed("employee_months value of a wrong length")))
        );
        assert_eq!(month_sessions(&[]).count(), 0);
    }

    #[test]
    fn other_data_is_refused() {
        let mut reader = Reader::<1>::default();
        reader.push(b"id,name\n1,Ann\n2,Ben\n");
        assert_eq!(
            reader.each(|_| Ok(())),
            Err(Malformed("not binary COPY data"))
        );
    }
}
