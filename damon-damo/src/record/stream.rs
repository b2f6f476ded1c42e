//! Records as streams of snapshots: written as they are made
//! ([`RecordWriter`]) and read one snapshot at a time ([`RecordFile`]),
//! so a recording or a report needs the memory of one snapshot, however
//! long the record.
//!
//! The JSON formats nest every snapshot of a target inside that target's
//! record, while a monitor produces the targets' snapshots interleaved. The
//! writer therefore appends each target's snapshots to a part file beside
//! the output and joins the parts into the output when it finishes (and
//! fsyncs it). `perf_script` text is written straight to the output.
//!
//! The reader parses JSON records with a streaming parser that hands over
//! each snapshot as soon as it is complete. `perf_script` text, whose first
//! snapshot's start is deduced from the whole trace, is read whole.

use super::fast::SnapshotIn;
use super::file::{check_snapshot, is_zlib};
use super::json::{intervals_out, parse_json_snapshot, parse_record_intervals, snapshot_out};
use super::*;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter};
use std::path::{Path, PathBuf};

/// What a record says about itself, without its snapshots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RecordMeta {
    /// Position of the record in its file (or slice).
    pub index: usize,
    /// Index of the kdamond that monitored.
    pub kdamond_idx: u64,
    /// Index of the context in the kdamond.
    pub context_idx: u64,
    /// Intervals, if known.
    pub intervals: Option<RecordIntervals>,
    /// Scheme whose tried regions these are, if any.
    pub scheme_idx: Option<u64>,
    /// The target.
    pub target_id: u64,
}

impl RecordMeta {
    /// The metadata of `r`, at position `index`.
    pub fn of(index: usize, r: &Record) -> Self {
        Self {
            index,
            kdamond_idx: r.kdamond_idx,
            context_idx: r.context_idx,
            intervals: r.intervals,
            scheme_idx: r.scheme_idx,
            target_id: r.target_id,
        }
    }

    fn same_record(&self, o: &RecordMeta) -> bool {
        (
            self.kdamond_idx,
            self.context_idx,
            self.scheme_idx,
            self.target_id,
        ) == (o.kdamond_idx, o.context_idx, o.scheme_idx, o.target_id)
    }
}

/// The callback of [`SnapshotSource::for_each_snapshot`].
pub type SnapshotFn<'a> = dyn FnMut(&RecordMeta, &Snapshot) -> Result<(), DamoError> + 'a;

/// Something that yields a record's snapshots one by one: each record's
/// snapshots in time order (records may interleave). Reports read through
/// it, so they work on records in memory and on files streamed from disk
/// alike; a source can be walked more than once.
pub trait SnapshotSource {
    /// Calls `f` for every snapshot; the first error stops the walk.
    fn for_each_snapshot(&self, f: &mut SnapshotFn<'_>) -> Result<(), DamoError>;
}

impl SnapshotSource for [Record] {
    fn for_each_snapshot(&self, f: &mut SnapshotFn<'_>) -> Result<(), DamoError> {
        for (i, r) in self.iter().enumerate() {
            let meta = RecordMeta::of(i, r);
            for s in &r.snapshots {
                f(&meta, s)?;
            }
        }
        Ok(())
    }
}

impl SnapshotSource for Vec<Record> {
    fn for_each_snapshot(&self, f: &mut SnapshotFn<'_>) -> Result<(), DamoError> {
        self.as_slice().for_each_snapshot(f)
    }
}

/// A record file on disk, read one snapshot at a time (see the module
/// docs); every snapshot is checked as [`parse_record`] checks it.
#[derive(Clone, Debug)]
pub struct RecordFile {
    path: PathBuf,
}

impl RecordFile {
    /// The file at `path` (opened at each walk).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    fn io(&self, e: std::io::Error) -> DamoError {
        DamoError::Io {
            path: self.path.display().to_string(),
            source: e,
        }
    }
}

impl SnapshotSource for RecordFile {
    fn for_each_snapshot(&self, f: &mut SnapshotFn<'_>) -> Result<(), DamoError> {
        let file = File::open(&self.path).map_err(|e| self.io(e))?;
        let mut r = BufReader::with_capacity(1 << 16, file);
        let head = r.fill_buf().map_err(|e| self.io(e))?.to_vec();
        if is_zlib(&head) {
            let z = BufReader::with_capacity(1 << 16, flate2::bufread::ZlibDecoder::new(r));
            return stream_json(z, f);
        }
        match head.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'[') => stream_json(r, f),
            // anything else: what the whole-file reader makes of it
            _ => {
                let data = std::fs::read(&self.path).map_err(|e| self.io(e))?;
                parse_record(&data)?.for_each_snapshot(f)
            }
        }
    }
}

/// Walks the JSON record list read from `r`.
fn stream_json(r: impl std::io::Read, f: &mut SnapshotFn<'_>) -> Result<(), DamoError> {
    walk_json(serde_json::Deserializer::from_reader(r), f)
}

/// Walks the JSON record list in `data` (faster than through a reader).
pub(super) fn walk_json_slice(data: &[u8], f: &mut SnapshotFn<'_>) -> Result<(), DamoError> {
    walk_json(serde_json::Deserializer::from_slice(data), f)
}

fn walk_json<'de, R: serde_json::de::Read<'de>>(
    mut de: serde_json::Deserializer<R>,
    f: &mut SnapshotFn<'_>,
) -> Result<(), DamoError> {
    let mut err = None;
    let res = RecordsSeed { f, err: &mut err }.deserialize(&mut de);
    if let Some(e) = err {
        return Err(e);
    }
    res.map_err(|e| DamoError::Syntax(e.to_string()))?;
    de.end().map_err(|e| DamoError::Syntax(e.to_string()))
}

/// Turns a record error into the parser's, keeping the record error.
fn stash<E: de::Error>(err: &mut Option<DamoError>, e: DamoError) -> E {
    let msg = e.to_string();
    *err = Some(e);
    E::custom(msg)
}

struct RecordsSeed<'a, 'f> {
    f: &'a mut SnapshotFn<'f>,
    err: &'a mut Option<DamoError>,
}

impl<'de> DeserializeSeed<'de> for RecordsSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RecordsSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a list of records")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0;
        while seq
            .next_element_seed(RecordSeed {
                index,
                f: &mut *self.f,
                err: &mut *self.err,
            })?
            .is_some()
        {
            index += 1;
        }
        Ok(())
    }
}

struct RecordSeed<'a, 'f> {
    index: usize,
    f: &'a mut SnapshotFn<'f>,
    err: &'a mut Option<DamoError>,
}

impl<'de> DeserializeSeed<'de> for RecordSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RecordSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a record object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let path = format!("records[{}]", self.index);
        let mut meta = RecordMeta {
            index: self.index,
            ..RecordMeta::default()
        };
        let mut target_seen = false;
        let mut done = false;
        let mut buffered: Option<Value> = None;
        while let Some(key) = map.next_key::<String>()? {
            let nr = |v: &Value, k: &str| value::nr(v, &format!("{path}.{k}"));
            match key.as_str() {
                "snapshots" if target_seen => {
                    map.next_value_seed(SnapshotsSeed {
                        meta: &meta,
                        path: &path,
                        f: &mut *self.f,
                        err: &mut *self.err,
                    })?;
                    done = true;
                }
                "snapshots" => buffered = Some(map.next_value()?),
                "intervals" => {
                    let v: Value = map.next_value()?;
                    meta.intervals = match v {
                        Value::Null => None,
                        v => Some(
                            parse_record_intervals(&v, &format!("{path}.intervals"))
                                .map_err(|e| stash(self.err, e))?,
                        ),
                    };
                }
                k @ ("kdamond_idx" | "context_idx" | "scheme_idx" | "target_id") => {
                    let v: Value = map.next_value()?;
                    let n = match v {
                        Value::Null => None,
                        v => Some(nr(&v, k).map_err(|e| stash(self.err, e))?),
                    };
                    match k {
                        "kdamond_idx" => meta.kdamond_idx = n.unwrap_or(0),
                        "context_idx" => meta.context_idx = n.unwrap_or(0),
                        "scheme_idx" => meta.scheme_idx = n,
                        _ => {
                            meta.target_id = n.unwrap_or(0);
                            target_seen = true;
                        }
                    }
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if done {
            return Ok(());
        }
        // snapshots before the record's other keys: walk them now
        let Some(v) = buffered else {
            return Err(stash(self.err, value::err(&path, "missing \"snapshots\"")));
        };
        let snaps_path = format!("{path}.snapshots");
        let items = array(&v, &snaps_path).map_err(|e| stash(self.err, e))?;
        for (i, s) in items.iter().enumerate() {
            let at = format!("{snaps_path}[{i}]");
            snapshot_to(&meta, s, &at, self.f).map_err(|e| stash(self.err, e))?;
        }
        Ok(())
    }
}

/// One snapshot's JSON text: the typed parser, or, when it cannot take
/// it, the `Value` parser for the error that names the key.
fn snapshot_of_text(
    text: &str,
    at: &str,
    intervals: Option<&RecordIntervals>,
) -> Result<Snapshot, DamoError> {
    match serde_json::from_str::<SnapshotIn>(text) {
        Ok(raw) => raw.into_snapshot(at, intervals),
        Err(_) => {
            let v: Value =
                serde_json::from_str(text).map_err(|e| DamoError::Syntax(format!("{at}: {e}")))?;
            parse_json_snapshot(&v, at, intervals)
        }
    }
}

/// Parses, checks and hands over one snapshot.
fn snapshot_to(
    meta: &RecordMeta,
    v: &Value,
    at: &str,
    f: &mut SnapshotFn<'_>,
) -> Result<(), DamoError> {
    let snap = parse_json_snapshot(v, at, meta.intervals.as_ref())?;
    check_snapshot(&snap, at)?;
    f(meta, &snap)
}

struct SnapshotsSeed<'a, 'f> {
    meta: &'a RecordMeta,
    path: &'a str,
    f: &'a mut SnapshotFn<'f>,
    err: &'a mut Option<DamoError>,
}

impl<'de> DeserializeSeed<'de> for SnapshotsSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for SnapshotsSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a list of snapshots")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        while let Some(raw) = seq.next_element::<Box<serde_json::value::RawValue>>()? {
            let at = format!("{}.snapshots[{i}]", self.path);
            let snap = snapshot_of_text(raw.get(), &at, self.meta.intervals.as_ref())
                .and_then(|snap| check_snapshot(&snap, &at).map(|()| snap))
                .map_err(|e| stash(self.err, e))?;
            (self.f)(self.meta, &snap).map_err(|e| stash(self.err, e))?;
            i += 1;
        }
        Ok(())
    }
}

/// One record's snapshots, spilled to a part file until the end.
#[derive(Debug)]
struct Part {
    meta: RecordMeta,
    path: PathBuf,
    /// The spill file (JSON formats only).
    file: Option<BufWriter<File>>,
    nr_snapshots: u64,
    /// (start, end) of the only snapshot, for perf_script's fake one.
    first: (u64, u64),
}

/// What [`RecordWriter::finish`] wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteSummary {
    /// Records (targets) written.
    pub nr_records: usize,
    /// Snapshots of the first record.
    pub nr_snapshots: u64,
}

/// Writes a record file as snapshots arrive (see the module docs): the
/// output is created at once, so a path that cannot be written fails
/// before any monitoring, and [`finish`](RecordWriter::finish) leaves a
/// complete, valid, fsynced record whenever it is called.
#[derive(Debug)]
pub struct RecordWriter {
    path: PathBuf,
    format: RecordFormat,
    out: Option<BufWriter<File>>,
    parts: Vec<Part>,
    line: String,
}

impl RecordWriter {
    /// Creates (truncates) `path` for a record in `format`.
    pub fn create(path: impl Into<PathBuf>, format: RecordFormat) -> Result<Self, DamoError> {
        let path = path.into();
        let file = File::create(&path).map_err(|e| io_err(&path, e))?;
        Ok(Self {
            path,
            format,
            out: Some(BufWriter::with_capacity(1 << 16, file)),
            parts: Vec::new(),
            line: String::new(),
        })
    }

    /// The output's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Snapshots written so far, of the first record.
    pub fn nr_snapshots(&self) -> u64 {
        self.parts.first().map_or(0, |p| p.nr_snapshots)
    }

    fn part_path(&self, n: usize) -> PathBuf {
        let name = self
            .path
            .file_name()
            .map_or_else(|| "record".into(), |n| n.to_string_lossy().into_owned());
        self.path
            .with_file_name(format!(".{name}.part{n}.{}", std::process::id()))
    }

    /// Appends `snap` to the record `meta` names (its `index` is ignored:
    /// records are told apart by kdamond, context, scheme and target).
    pub fn push(&mut self, meta: &RecordMeta, snap: &Snapshot) -> Result<(), DamoError> {
        let pi = match self.parts.iter().position(|p| p.meta.same_record(meta)) {
            Some(i) => i,
            None => {
                let n = self.parts.len();
                let path = self.part_path(n);
                // perf_script goes straight to the output
                let file = match self.format {
                    RecordFormat::PerfScript => None,
                    _ => Some(BufWriter::with_capacity(
                        1 << 16,
                        File::create(&path).map_err(|e| io_err(&path, e))?,
                    )),
                };
                self.parts.push(Part {
                    meta: RecordMeta { index: n, ..*meta },
                    path,
                    file,
                    nr_snapshots: 0,
                    first: (snap.start_time, snap.end_time),
                });
                n
            }
        };
        let part = &mut self.parts[pi];
        match part.file.as_mut() {
            None => {
                let out = self.out.as_mut().ok_or_else(finished)?;
                self.line.clear();
                perf_script::snapshot_lines(&mut self.line, &part.meta, snap);
                out.write_all(self.line.as_bytes())
                    .map_err(|e| io_err(&self.path, e))?;
            }
            Some(file) => {
                if part.nr_snapshots > 0 {
                    file.write_all(b",").map_err(|e| io_err(&part.path, e))?;
                }
                serde_json::to_writer(&mut *file, &snapshot_out(snap))
                    .map_err(|e| io_err(&part.path, std::io::Error::other(e)))?;
            }
        }
        part.nr_snapshots += 1;
        Ok(())
    }

    /// Joins the parts into the output, fsyncs it and removes the parts.
    pub fn finish(mut self) -> Result<WriteSummary, DamoError> {
        let out = self.out.take().ok_or_else(finished)?;
        let summary = WriteSummary {
            nr_records: self.parts.len(),
            nr_snapshots: self.nr_snapshots(),
        };
        let file = match self.format {
            RecordFormat::PerfScript => {
                let mut out = out;
                for p in self.parts.iter().filter(|p| p.nr_snapshots == 1) {
                    self.line.clear();
                    perf_script::fake_last_line(&mut self.line, &p.meta, p.first);
                    out.write_all(self.line.as_bytes())
                        .map_err(|e| io_err(&self.path, e))?;
                }
                out.into_inner()
                    .map_err(|e| io_err(&self.path, e.into_error()))?
            }
            RecordFormat::Json => {
                let mut out = out;
                self.join_parts(&mut out)?;
                out.into_inner()
                    .map_err(|e| io_err(&self.path, e.into_error()))?
            }
            RecordFormat::JsonCompressed => {
                let mut z = flate2::write::ZlibEncoder::new(out, flate2::Compression::default());
                self.join_parts(&mut z)?;
                let out = z.finish().map_err(|e| io_err(&self.path, e))?;
                out.into_inner()
                    .map_err(|e| io_err(&self.path, e.into_error()))?
            }
        };
        file.sync_all().map_err(|e| io_err(&self.path, e))?;
        self.remove_parts();
        Ok(summary)
    }

    fn join_parts(&mut self, out: &mut dyn Write) -> Result<(), DamoError> {
        let p = self.path.clone();
        let w = |out: &mut dyn Write, b: &[u8]| out.write_all(b).map_err(|e| io_err(&p, e));
        w(out, b"[")?;
        for (i, part) in self.parts.iter_mut().enumerate() {
            if let Some(f) = part.file.as_mut() {
                f.flush().map_err(|e| io_err(&part.path, e))?;
            }
            let m = &part.meta;
            let iv = serde_json::to_string(&m.intervals.map(|i| intervals_out(&i)))
                .unwrap_or_else(|_| "null".into());
            let scheme = m.scheme_idx.map_or("null".into(), |s| s.to_string());
            let head = format!(
                "{}{{\"kdamond_idx\":{},\"context_idx\":{},\"intervals\":{iv},\"scheme_idx\":{scheme},\"target_id\":{},\"scheme_filters\":[],\"snapshots\":[",
                if i > 0 { "," } else { "" },
                m.kdamond_idx,
                m.context_idx,
                m.target_id,
            );
            w(out, head.as_bytes())?;
            let mut f = File::open(&part.path).map_err(|e| io_err(&part.path, e))?;
            std::io::copy(&mut f, out).map_err(|e| io_err(&part.path, e))?;
            w(out, b"],\"data_source\":\"unknown\"}")?;
        }
        w(out, b"]\n")
    }

    fn remove_parts(&mut self) {
        for p in &self.parts {
            let _ = std::fs::remove_file(&p.path);
        }
    }
}

impl Drop for RecordWriter {
    fn drop(&mut self) {
        if self.format != RecordFormat::PerfScript {
            self.remove_parts();
        }
    }
}

fn finished() -> DamoError {
    DamoError::Report("the record writer has already finished".into())
}

fn io_err(path: &Path, e: std::io::Error) -> DamoError {
    DamoError::Io {
        path: path.display().to_string(),
        source: e,
    }
}

/// A source walked many times that parses its inner source once: the
/// first walk also writes every snapshot, compactly, to an unlinked
/// temporary file, and later walks read that file back (a fraction of the
/// cost of parsing JSON again). Memory: one snapshot.
pub struct Spooled<'a, S: SnapshotSource + ?Sized> {
    inner: &'a S,
    spool: std::cell::RefCell<Option<File>>,
}

impl<'a, S: SnapshotSource + ?Sized> Spooled<'a, S> {
    /// Spools `inner` at its first walk.
    pub fn new(inner: &'a S) -> Self {
        Self {
            inner,
            spool: std::cell::RefCell::new(None),
        }
    }
}

impl<S: SnapshotSource + ?Sized> std::fmt::Debug for Spooled<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spooled").finish_non_exhaustive()
    }
}

fn spool_io(e: std::io::Error) -> DamoError {
    DamoError::Io {
        path: "(temporary spool file)".into(),
        source: e,
    }
}

fn put(w: &mut impl Write, words: &[u64]) -> std::io::Result<()> {
    for x in words {
        w.write_all(&x.to_le_bytes())?;
    }
    Ok(())
}

fn take(r: &mut impl std::io::Read) -> std::io::Result<Option<u64>> {
    let mut b = [0u8; 8];
    match r.read_exact(&mut b) {
        Ok(()) => Ok(Some(u64::from_le_bytes(b))),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e),
    }
}

fn write_spooled(w: &mut impl Write, m: &RecordMeta, s: &Snapshot) -> std::io::Result<()> {
    let iv = m.intervals;
    let g = iv.map(|i| i.goal).unwrap_or_default();
    put(
        w,
        &[
            m.index as u64,
            m.kdamond_idx,
            m.context_idx,
            u64::from(iv.is_some()),
            iv.map_or(0, |i| i.sample_us),
            iv.map_or(0, |i| i.aggr_us),
            iv.map_or(0, |i| i.ops_update_us),
            g.access_bp,
            g.aggrs,
            g.min_sample_us,
            g.max_sample_us,
            u64::from(m.scheme_idx.is_some()),
            m.scheme_idx.unwrap_or(0),
            m.target_id,
            s.start_time,
            s.end_time,
            u64::from(s.sample_interval_us.is_some()),
            s.sample_interval_us.unwrap_or(0),
            s.regions.len() as u64,
        ],
    )?;
    for r in &s.regions {
        put(
            w,
            &[
                r.start,
                r.end,
                u64::from(r.nr_accesses) << 32 | u64::from(r.age),
            ],
        )?;
    }
    Ok(())
}

/// Reads one spooled snapshot into `m` and `s`; false at the end.
fn read_spooled(
    r: &mut impl std::io::Read,
    m: &mut RecordMeta,
    s: &mut Snapshot,
) -> std::io::Result<bool> {
    let mut h = [0u64; 19];
    for (i, x) in h.iter_mut().enumerate() {
        match take(r)? {
            Some(v) => *x = v,
            None if i == 0 => return Ok(false),
            None => return Err(std::io::ErrorKind::UnexpectedEof.into()),
        }
    }
    *m = RecordMeta {
        index: h[0] as usize,
        kdamond_idx: h[1],
        context_idx: h[2],
        intervals: (h[3] != 0).then_some(RecordIntervals {
            sample_us: h[4],
            aggr_us: h[5],
            ops_update_us: h[6],
            goal: IntervalsGoal {
                access_bp: h[7],
                aggrs: h[8],
                min_sample_us: h[9],
                max_sample_us: h[10],
            },
        }),
        scheme_idx: (h[11] != 0).then_some(h[12]),
        target_id: h[13],
    };
    s.start_time = h[14];
    s.end_time = h[15];
    s.sample_interval_us = (h[16] != 0).then_some(h[17]);
    s.regions.clear();
    let eof = || std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
    for _ in 0..h[18] {
        let start = take(r)?.ok_or_else(eof)?;
        let end = take(r)?.ok_or_else(eof)?;
        let na = take(r)?.ok_or_else(eof)?;
        s.regions.push(RecordRegion {
            start,
            end,
            nr_accesses: (na >> 32) as u32,
            age: na as u32,
        });
    }
    Ok(true)
}

impl<S: SnapshotSource + ?Sized> SnapshotSource for Spooled<'_, S> {
    fn for_each_snapshot(&self, f: &mut SnapshotFn<'_>) -> Result<(), DamoError> {
        let spooled = self.spool.borrow().as_ref().map(File::try_clone);
        if let Some(file) = spooled {
            let mut file = file.map_err(spool_io)?;
            std::io::Seek::rewind(&mut file).map_err(spool_io)?;
            let mut r = BufReader::with_capacity(1 << 16, file);
            let (mut m, mut s) = (
                RecordMeta::default(),
                Snapshot {
                    start_time: 0,
                    end_time: 0,
                    regions: Vec::new(),
                    sample_interval_us: None,
                },
            );
            while read_spooled(&mut r, &mut m, &mut s).map_err(spool_io)? {
                f(&m, &s)?;
            }
            return Ok(());
        }
        static SPOOLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = SPOOLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(".udamon-spool-{}-{n}", std::process::id()));
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(spool_io)?;
        // unlinked at once: nothing is left behind, whatever happens
        let _ = std::fs::remove_file(&path);
        let mut w = BufWriter::with_capacity(1 << 16, file.try_clone().map_err(spool_io)?);
        self.inner.for_each_snapshot(&mut |m, s| {
            write_spooled(&mut w, m, s).map_err(spool_io)?;
            f(m, s)
        })?;
        w.flush().map_err(spool_io)?;
        *self.spool.borrow_mut() = Some(file);
        Ok(())
    }
}
