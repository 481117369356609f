//! Streaming a CSV file out of one database snapshot with constant memory.
//!
//! A producer on a blocking thread opens a connection of its own ([`Database::dedicated_reader`]),
//! begins a read snapshot, reads what the response headers need and hands them to the
//! handler, then writes rows with `csv::Writer` into a buffer and passes it on in chunks of
//! about [`CHUNK_BYTES`] through a channel of [`CHANNEL_CHUNKS`] chunks. A client that reads
//! slowly makes the producer wait; one that goes away makes its next send fail, which stops
//! it. Once the headers are out, a failure can only abort the body: the client then sees a
//! connection closed before the end of the chunked body, never a short file that looks
//! complete, and the cause is logged under the request id.
//!
//! On PostgreSQL a stopped export still reads (and drops) the rest of its query's rows before
//! the connection closes: diesel drains a single-row-mode result. That costs the database at
//! most the rest of the query, never memory here, and [`EXPORT_TIMEOUT`] bounds it.

use std::borrow::Cow;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use actix_web::HttpResponse;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, HeaderName, RETRY_AFTER};
use actix_web::web::Bytes;
use futures_util::stream;
use tokio::sync::{mpsc, oneshot};

use crate::db::{Database, DbConnection, read_snapshot};
use crate::error::{ApiError, ApiResult, ErrorCode};

/// How long one export may take, from opening its connection to its last byte: also
/// PostgreSQL's `statement_timeout` on the export's connection.
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// Bytes written before they are handed to the response.
const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks waiting for the client: with [`CHUNK_BYTES`], the most an export buffers.
const CHANNEL_CHUNKS: usize = 8;
const BOM: &[u8] = "\u{feff}".as_bytes();

/// Spreadsheets take a cell starting with one of these as a formula (CSV injection).
const FORMULA_STARTS: [char; 7] = ['=', '+', '-', '@', '\t', '\r', '\n'];

/// Makes a text cell inert in spreadsheets: one `'` goes before a value that starts like a
/// formula, and before one that already starts with `'`, so that removing one leading `'`
/// from every text cell that has one gives back the stored value exactly.
pub fn neutralise(text: &str) -> Cow<'_, str> {
    if text.starts_with(FORMULA_STARTS) || text.starts_with('\'') {
        Cow::Owned(format!("'{text}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// One cell of a row: text is neutralised, numbers are written as plain integers.
pub enum Cell<'a> {
    Text(&'a str),
    Number(i64),
}

impl<'a> Cell<'a> {
    /// An absent value is an empty cell.
    pub fn optional(text: Option<&'a str>) -> Self {
        Cell::Text(text.unwrap_or_default())
    }
}

/// Why a stream stopped early.
#[derive(Debug)]
pub enum StreamError {
    /// The export was refused before its response began; the client got the problem.
    Refused,
    /// The client went away: nothing to report.
    ClientGone,
    TimedOut,
    Database(diesel::result::Error),
    Csv(csv::Error),
    /// The data contradicts itself (a bug, or tampering): better no file than a wrong one.
    Inconsistent(String),
}

impl From<diesel::result::Error> for StreamError {
    fn from(err: diesel::result::Error) -> Self {
        StreamError::Database(err)
    }
}

impl From<csv::Error> for StreamError {
    fn from(err: csv::Error) -> Self {
        match err.kind() {
            csv::ErrorKind::Io(io) => StreamError::from(io.kind()),
            _ => StreamError::Csv(err),
        }
    }
}

impl From<io::ErrorKind> for StreamError {
    /// [`ChunkSink`] reports how the body ended as an I/O error kind.
    fn from(kind: io::ErrorKind) -> Self {
        match kind {
            io::ErrorKind::TimedOut => StreamError::TimedOut,
            _ => StreamError::ClientGone,
        }
    }
}

/// Where a producer writes its rows.
pub struct CsvOut {
    writer: csv::Writer<ChunkSink>,
}

impl CsvOut {
    pub fn row(&mut self, cells: &[Cell<'_>]) -> Result<(), StreamError> {
        for cell in cells {
            match cell {
                Cell::Text(text) => self.writer.write_field(neutralise(text).as_bytes())?,
                Cell::Number(number) => self.writer.write_field(number.to_string())?,
            }
        }
        Ok(self.writer.write_record(std::iter::empty::<&[u8]>())?)
    }

    /// Sends what is left.
    fn finish(&mut self) -> Result<(), StreamError> {
        self.writer.flush().map_err(|err| StreamError::from(err.kind()))
    }
}

/// Collects what the CSV writer writes and hands it to the response in chunks.
struct ChunkSink {
    buffer: Vec<u8>,
    chunks: mpsc::Sender<Bytes>,
    runtime: tokio::runtime::Handle,
    deadline: Instant,
}

impl ChunkSink {
    fn send(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK_BYTES)));
        // Waits while the client is slower than the database; a client that stopped reading
        // altogether keeps the connection and its snapshot only until the deadline.
        self.runtime.block_on(self.chunks.send_timeout(chunk, left)).map_err(|err| match err {
            mpsc::error::SendTimeoutError::Timeout(_) => io::ErrorKind::TimedOut.into(),
            mpsc::error::SendTimeoutError::Closed(_) => io::ErrorKind::BrokenPipe.into(),
        })
    }
}

impl io::Write for ChunkSink {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= CHUNK_BYTES {
            self.send()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// What a response needs besides its body.
pub struct CsvFile {
    pub filename: String,
    pub bom: bool,
    pub columns: &'static [&'static str],
}

/// Streams a CSV file read in one snapshot on a connection of its own.
///
/// `prepare` runs first, inside the snapshot: it returns what `rows` needs and the extra
/// response headers; an error from it is answered as a problem. `rows` then writes the rows.
pub async fn respond<P, Prepare, Rows>(
    db: &Database,
    file: CsvFile,
    prepare: Prepare,
    rows: Rows,
) -> ApiResult<HttpResponse>
where
    P: Send + 'static,
    Prepare: FnOnce(&mut DbConnection) -> ApiResult<(P, Vec<(HeaderName, String)>)> + Send + 'static,
    Rows: FnOnce(&mut DbConnection, P, &mut CsvOut) -> Result<(), StreamError> + Send + 'static,
{
    let deadline = Instant::now() + EXPORT_TIMEOUT;
    let (ready_tx, ready_rx) = oneshot::channel::<ApiResult<Vec<(HeaderName, String)>>>();
    let (chunks, received) = mpsc::channel::<Bytes>(CHANNEL_CHUNKS);
    let finished = Arc::new(AtomicBool::new(false));
    let producer = Producer {
        db: db.clone(),
        out: CsvOut {
            writer: csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(ChunkSink {
                buffer: if file.bom { BOM.to_vec() } else { Vec::new() },
                chunks,
                runtime: tokio::runtime::Handle::current(),
                deadline,
            }),
        },
        finished: finished.clone(),
        span: tracing::Span::current(),
    };
    let columns = file.columns;
    let permit = db.reserve_long_read().ok_or_else(|| {
        ApiError::new(ErrorCode::ServiceUnavailable, "too many exports are running; retry in a minute")
            .with_header(RETRY_AFTER, "60")
    })?;
    actix_web::rt::task::spawn_blocking(move || {
        let _running = permit;
        producer.run(ready_tx, columns, prepare, rows)
    });

    let headers = ready_rx.await.map_err(|_| ApiError::internal("the export stopped before its response"))??;
    let body = stream::unfold(Some((received, finished)), |state| async move {
        let (mut received, finished) = state?;
        match received.recv().await {
            Some(chunk) => Some((Ok(chunk), Some((received, finished)))),
            None if finished.load(Ordering::Acquire) => None,
            None => Some((Err(std::io::Error::other("the export was aborted; see the server log")), None)),
        }
    });
    let mut response = HttpResponse::Ok();
    response
        .content_type("text/csv; charset=utf-8")
        .insert_header((CONTENT_DISPOSITION, format!("attachment; filename=\"{}\"", file.filename)))
        .insert_header((CACHE_CONTROL, "no-store"));
    for header in headers {
        response.insert_header(header);
    }
    Ok(response.streaming(body))
}

/// The blocking half of an export.
struct Producer {
    db: Database,
    out: CsvOut,
    /// Set once the last chunk is sent: the body ends normally only then.
    finished: Arc<AtomicBool>,
    /// The request's span, so that what the producer logs carries the request id.
    span: tracing::Span,
}

impl Producer {
    fn run<P, Prepare, Rows>(
        mut self,
        ready: oneshot::Sender<ApiResult<Vec<(HeaderName, String)>>>,
        columns: &[&str],
        prepare: Prepare,
        rows: Rows,
    ) where
        Prepare: FnOnce(&mut DbConnection) -> ApiResult<(P, Vec<(HeaderName, String)>)>,
        Rows: FnOnce(&mut DbConnection, P, &mut CsvOut) -> Result<(), StreamError>,
    {
        let span = self.span.clone();
        let _entered = span.enter();
        let started = Instant::now();
        let mut conn = match self.db.dedicated_reader(EXPORT_TIMEOUT) {
            Ok(conn) => conn,
            Err(err) => {
                let _ = ready.send(Err(ApiError::pool_timeout(err)));
                return;
            }
        };
        let out = &mut self.out;
        let streamed = read_snapshot(&mut conn, |conn| {
            let (plan, headers) = match prepare(conn) {
                Ok(prepared) => prepared,
                Err(err) => {
                    let _ = ready.send(Err(err));
                    return Err(StreamError::Refused);
                }
            };
            ready.send(Ok(headers)).map_err(|_| StreamError::ClientGone)?;
            out.writer.write_record(columns)?;
            rows(conn, plan, out)?;
            out.finish()
        });
        match streamed {
            Ok(()) => {
                self.finished.store(true, Ordering::Release);
                tracing::info!(elapsed_ms = started.elapsed().as_millis(), "export streamed");
            }
            Err(StreamError::Refused) => {}
            Err(StreamError::ClientGone) => tracing::info!("export stopped: the client went away"),
            Err(StreamError::TimedOut) => {
                tracing::error!(timeout_s = EXPORT_TIMEOUT.as_secs(), "export aborted: it took too long")
            }
            Err(StreamError::Database(err)) => tracing::error!(error = %err, "export aborted by a database error"),
            Err(StreamError::Csv(err)) => tracing::error!(error = %err, "export aborted: writing CSV failed"),
            Err(StreamError::Inconsistent(what)) => tracing::error!(error = %what, "export aborted: inconsistent data"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_starts_get_one_quote_and_everything_else_stays() {
        for (text, cell) in [
            ("=HYPERLINK(\"http://x\",\"y\")", "'=HYPERLINK(\"http://x\",\"y\")"),
            ("+1", "'+1"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tcmd", "'\tcmd"),
            ("\r=1", "'\r=1"),
            ("\n=1", "'\n=1"),
            ("'=1", "''=1"),
            ("'", "''"),
            ("a,b\"c\nd", "a,b\"c\nd"),
            ("张阿姨 =1", "张阿姨 =1"),
            ("", ""),
        ] {
            assert_eq!(neutralise(text), cell, "{text:?}");
            // Reversible: taking one leading quote off any cell that has one gives the text back.
            assert_eq!(cell.strip_prefix('\'').unwrap_or(cell), text);
        }
    }
}
