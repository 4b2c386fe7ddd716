//! Reading the logs: plain or gzip (any file starting with gzip's magic bytes, also
//! concatenated members as logrotate writes them; `-` is standard input), line by line, each
//! line in whichever format it is in (a JSON object, or Envoy's default text format), merged
//! across files in time order.
//!
//! Logs are nearly in time order: Envoy writes a line when a request ends, so a long request
//! is written after shorter ones that started later. Each file's records pass through a
//! reordering buffer of `REORDER_WINDOW_NS` of log time (at most `REORDER_MAX` records);
//! a record still older than one already replayed is replayed at that later time and counted
//! as out of order. Lines that cannot be read are counted, with the first few kept to show,
//! and never stop the replay.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::record::Record;
use super::{envoy_text, json_line};

/// How far back in log time a record may arrive and still be replayed in order.
pub const REORDER_WINDOW_NS: u64 = 60_000_000_000;

/// Most records held per file for reordering.
pub const REORDER_MAX: usize = 200_000;

/// Unreadable lines kept to show.
pub const EXAMPLES_KEPT: usize = 5;

/// What was read.
#[derive(Clone, Debug, Default)]
pub struct InputStats {
    pub lines: u64,
    pub blank: u64,
    pub envoy_text: u64,
    pub json: u64,
    pub unreadable: u64,
    /// (file, line number, why) of the first unreadable lines.
    pub examples: Vec<(String, u64, String)>,
    /// Records replayed later than their time (more than the reordering window late).
    pub out_of_order: u64,
}

/// A reader that counts the bytes read from the file (compressed bytes for gzip), for the
/// progress bar.
struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

struct Pending {
    time: u64,
    seq: u64,
    record: Box<Record>,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.time, self.seq) == (other.time, other.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.time, self.seq).cmp(&(other.time, other.seq))
    }
}

struct Source {
    name: String,
    reader: Box<dyn BufRead>,
    line_no: u64,
    buf: Vec<u8>,
    heap: BinaryHeap<Reverse<Pending>>,
    newest: u64,
    eof: bool,
}

/// The merged, time-ordered records of all the logs.
pub struct Input {
    sources: Vec<Source>,
    seq: u64,
    last_time: u64,
    pub stats: InputStats,
    /// Bytes read so far, and the total (0 when unknown, e.g. standard input).
    pub bytes_read: Arc<AtomicU64>,
    pub bytes_total: u64,
}

/// Open a log: a path, or `-` for standard input. Err: a one-line reason.
fn open(path: &str, counter: Arc<AtomicU64>) -> Result<(Box<dyn BufRead>, u64), String> {
    let (raw, size): (Box<dyn Read>, u64) = if path == "-" {
        (Box::new(std::io::stdin()), 0)
    } else {
        let f = File::open(path).map_err(|e| format!("cannot open {path}: {e}"))?;
        let size = f.metadata().map(|m| m.len()).unwrap_or(0);
        (Box::new(f), size)
    };
    let mut reader = BufReader::with_capacity(256 * 1024, Counting { inner: raw, read: counter });
    let head = reader.fill_buf().map_err(|e| format!("cannot read {path}: {e}"))?;
    if head.starts_with(&[0x1f, 0x8b]) {
        let gz = flate2::bufread::MultiGzDecoder::new(reader);
        return Ok((Box::new(BufReader::with_capacity(256 * 1024, gz)), size));
    }
    Ok((Box::new(reader), size))
}

impl Input {
    pub fn open(paths: &[String]) -> Result<Input, String> {
        let bytes_read = Arc::new(AtomicU64::new(0));
        let mut sources = Vec::new();
        let mut bytes_total = 0;
        for p in paths {
            let (reader, size) = open(p, bytes_read.clone())?;
            bytes_total += size;
            sources.push(Source {
                name: p.clone(),
                reader,
                line_no: 0,
                buf: Vec::with_capacity(1024),
                heap: BinaryHeap::new(),
                newest: 0,
                eof: false,
            });
        }
        Ok(Input { sources, seq: 0, last_time: 0, stats: InputStats::default(), bytes_read, bytes_total })
    }

    /// Read lines of source `i` until its earliest record is safe to replay (nothing earlier
    /// can still come within the reordering window), or the file ends.
    fn fill(&mut self, i: usize) -> Result<(), String> {
        let Input { sources, seq, stats, .. } = self;
        let Some(s) = sources.get_mut(i) else { return Ok(()) };
        loop {
            let ready = s.heap.peek().is_some_and(|Reverse(p)| {
                p.time.saturating_add(REORDER_WINDOW_NS) <= s.newest || s.heap.len() >= REORDER_MAX
            });
            if s.eof || ready {
                return Ok(());
            }
            s.buf.clear();
            let n = s.reader.read_until(b'\n', &mut s.buf).map_err(|e| format!("cannot read {}: {e}", s.name))?;
            if n == 0 {
                s.eof = true;
                return Ok(());
            }
            s.line_no += 1;
            stats.lines += 1;
            let parsed = match std::str::from_utf8(&s.buf) {
                Err(_) => Err("not UTF-8 text".to_string()),
                Ok(line) => {
                    let line = line.trim();
                    if line.is_empty() {
                        stats.blank += 1;
                        continue;
                    }
                    if line.starts_with('{') {
                        stats.json += 1;
                        json_line::parse(line)
                    } else if line.starts_with('[') {
                        stats.envoy_text += 1;
                        envoy_text::parse(line)
                    } else {
                        Err("neither a JSON object nor Envoy's default format".to_string())
                    }
                }
            };
            match parsed {
                Ok(record) => {
                    *seq += 1;
                    s.newest = s.newest.max(record.time_ns);
                    s.heap.push(Reverse(Pending { time: record.time_ns, seq: *seq, record: Box::new(record) }));
                }
                Err(why) => {
                    stats.unreadable += 1;
                    if stats.examples.len() < EXAMPLES_KEPT {
                        stats.examples.push((s.name.clone(), s.line_no, why));
                    }
                }
            }
        }
    }

    /// The next record in time order, or None at the end of every log.
    pub fn next_record(&mut self) -> Result<Option<Record>, String> {
        for i in 0..self.sources.len() {
            self.fill(i)?;
        }
        let earliest = self
            .sources
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.heap.peek().map(|Reverse(p)| (p.time, p.seq, i)))
            .min()
            .map(|(_, _, i)| i);
        let Some(i) = earliest else { return Ok(None) };
        let Some(Reverse(p)) = self.sources.get_mut(i).and_then(|s| s.heap.pop()) else { return Ok(None) };
        let mut record = *p.record;
        if record.time_ns < self.last_time {
            self.stats.out_of_order += 1;
            record.time_ns = self.last_time;
        }
        self.last_time = record.time_ns;
        Ok(Some(record))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::Write;

    fn line(ms: u64, path: &str) -> String {
        format!(r#"{{"time":{},"method":"GET","path":"{path}"}}"#, 1_700_000_000_000u64 + ms)
    }

    fn read_all(paths: &[String]) -> (Vec<(u64, String)>, InputStats) {
        let mut input = Input::open(paths).unwrap();
        let mut out = Vec::new();
        while let Some(r) = input.next_record().unwrap() {
            out.push((r.time_ns / 1_000_000 - 1_700_000_000_000, r.path));
        }
        (out, input.stats)
    }

    #[test]
    fn merges_files_reorders_within_the_window_and_reads_gzip() {
        let dir = std::env::temp_dir().join(format!("tollgate-replay-input-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = dir.join("a.log");
        let text = [
            line(0, "/a0"),
            line(2000, "/a2"),
            line(1000, "/a1"),
            String::new(),
            "garbage".into(),
            line(90_000, "/a90"),
            line(5_000, "/late"),
        ];
        std::fs::write(&a, text.join("\n")).unwrap();
        let b = dir.join("b.log.gz");
        let mut gz = flate2::write::GzEncoder::new(File::create(&b).unwrap(), flate2::Compression::fast());
        gz.write_all(format!("{}\n{}\n", line(1500, "/b1.5"), line(3000, "/b3")).as_bytes()).unwrap();
        gz.finish().unwrap();
        let (records, stats) = read_all(&[a.display().to_string(), b.display().to_string()]);
        let paths: Vec<&str> = records.iter().map(|(_, p)| p.as_str()).collect();
        assert_eq!(paths, ["/a0", "/a1", "/b1.5", "/a2", "/b3", "/late", "/a90"]);
        // /late came after /a90 in its file, but /a90 was still waiting in the reordering
        // buffer then: /late is replayed in its place, before it.
        assert_eq!(stats.lines, 9);
        assert_eq!((stats.blank, stats.unreadable, stats.json), (1, 1, 7));
        assert_eq!(stats.examples[0].1, 5);
        assert!(stats.examples[0].2.contains("neither a JSON object"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn records_later_than_the_window_are_replayed_late_and_counted() {
        let dir = std::env::temp_dir().join(format!("tollgate-replay-late-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = dir.join("a.log");
        let mut lines: Vec<String> = (0..5).map(|i| line(i * 100_000, &format!("/t{i}"))).collect();
        lines.push(line(1000, "/very-late"));
        std::fs::write(&a, lines.join("\n") + "\n").unwrap();
        let (records, stats) = read_all(&[a.display().to_string()]);
        assert_eq!(stats.out_of_order, 1);
        let late = records.iter().find(|(_, p)| p == "/very-late").unwrap();
        assert_eq!(late.0, 300_000, "replayed at the time already reached (/t3's)");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_file_is_an_error() {
        let e = Input::open(&["/nonexistent/x.log".into()]).err().unwrap();
        assert!(e.starts_with("cannot open /nonexistent/x.log"), "{e}");
    }
}
