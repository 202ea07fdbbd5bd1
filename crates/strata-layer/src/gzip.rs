//! gzip written on several threads, as pigz does: the stream is cut into chunks that worker
//! threads deflate independently, each but the last ending with a sync flush (an empty stored
//! block, so the next chunk's deflate data starts on a byte boundary), and the chunks are
//! written in order between one gzip header and one trailer (the CRC-32 and size of the whole
//! stream, computed as the data comes in). The result is a single ordinary gzip member that any
//! reader takes; each chunk starts without the previous one's 32 KiB window, which costs well
//! under 1% of ratio at 1 MiB chunks.
//!
//! A chunk whose samples do not compress (already compressed files, random data) is written as
//! stored blocks instead of being searched for matches it does not have: zlib's level 6 spends
//! most of its time on exactly such data and wins nothing there (as klauspost's deflate, which
//! skopeo's pgzip uses, gives up early on it too).

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};

use flate2::{Compress, FlushCompress, Status};

/// Bytes of input per chunk.
const CHUNK: usize = 1 << 20;
/// Chunks handed out but not written yet, at most: bounds the memory to about twice this many
/// MiB.
const IN_FLIGHT: u64 = 4;
/// Bytes of each of the samples a chunk is probed with, and how many there are.
const SAMPLE: usize = 8 << 10;
const SAMPLES: usize = 4;
/// A chunk is stored when its samples deflate (at level 1) to more than this share of their
/// size, in 1/1024ths: a few percent is less than the stored blocks' saving in time is worth.
const INCOMPRESSIBLE: usize = 1000;
/// The gzip header: deflate, no name, no mtime, no extra flags, unknown OS.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// A chunk to deflate: its place in the stream, its bytes, and whether it ends the stream.
type Job = (u64, Vec<u8>, bool);

/// A gzip encoder compressing on `workers` threads, writing into `W`.
pub(crate) struct ParallelGzEncoder<W: Write> {
    out: W,
    chunk: Vec<u8>,
    crc: flate2::Crc,
    jobs: Option<Sender<Job>>,
    done: Receiver<(u64, io::Result<Vec<u8>>)>,
    /// Compressed chunks received out of order, by place.
    waiting: BTreeMap<u64, Vec<u8>>,
    sent: u64,
    written: u64,
    header_written: bool,
}

impl<W: Write> ParallelGzEncoder<W> {
    /// An encoder at `level` (0–9) with `workers` threads.
    pub(crate) fn new(out: W, level: u32, workers: usize) -> ParallelGzEncoder<W> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let (results, done) = mpsc::channel();
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..workers.max(1) {
            let (queue, results) = (Arc::clone(&queue), results.clone());
            // Detached: each ends when the encoder (the jobs' sender) is dropped.
            std::thread::spawn(move || {
                loop {
                    let job = queue
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .recv();
                    let Ok((place, input, last)) = job else { break };
                    if results.send((place, deflate(&input, level, last))).is_err() {
                        break;
                    }
                }
            });
        }
        ParallelGzEncoder {
            out,
            chunk: Vec::with_capacity(CHUNK),
            crc: flate2::Crc::new(),
            jobs: Some(jobs),
            done,
            waiting: BTreeMap::new(),
            sent: 0,
            written: 0,
            header_written: false,
        }
    }

    /// Hands the current chunk to the workers, then writes what is done while too many are
    /// in flight.
    fn send(&mut self, last: bool) -> io::Result<()> {
        let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK));
        let jobs = self.jobs.as_ref().expect("no chunk is sent after the last");
        jobs.send((self.sent, chunk, last))
            .map_err(|_| io::Error::other("the gzip workers ended early"))?;
        self.sent += 1;
        while self.sent - self.written > IN_FLIGHT {
            self.write_next()?;
        }
        Ok(())
    }

    /// Waits for the next chunk in order and writes it.
    fn write_next(&mut self) -> io::Result<()> {
        if !self.header_written {
            self.out.write_all(&HEADER)?;
            self.header_written = true;
        }
        let bytes = loop {
            if let Some(bytes) = self.waiting.remove(&self.written) {
                break bytes;
            }
            let (place, result) = self
                .done
                .recv()
                .map_err(|_| io::Error::other("the gzip workers ended early"))?;
            self.waiting.insert(place, result?);
        };
        self.out.write_all(&bytes)?;
        self.written += 1;
        Ok(())
    }

    /// Ends the stream (the last chunk, the trailer) and returns the writer.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        self.send(true)?;
        self.jobs = None;
        while self.written < self.sent {
            self.write_next()?;
        }
        self.out.write_all(&self.crc.sum().to_le_bytes())?;
        self.out.write_all(&self.crc.amount().to_le_bytes())?;
        Ok(self.out)
    }
}

impl<W: Write> Write for ParallelGzEncoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(CHUNK - self.chunk.len());
        self.chunk.extend_from_slice(&buf[..n]);
        self.crc.update(&buf[..n]);
        if self.chunk.len() == CHUNK {
            self.send(false)?;
        }
        Ok(n)
    }

    /// Writes what is compressed so far; the chunk being filled waits for more input.
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Raw deflate of one chunk: ended by a sync flush, or for the last chunk by the final block;
/// stored blocks when the chunk does not compress.
fn deflate(input: &[u8], level: u32, last: bool) -> io::Result<Vec<u8>> {
    let level = match level > 0 && incompressible(input) {
        true => 0,
        false => level,
    };
    let mut compress = Compress::new(flate2::Compression::new(level), false);
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(input.len() + input.len() / 16 + 64);
    loop {
        let consumed = compress.total_in() as usize;
        let status = compress
            .compress_vec(&input[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        let room_left = out.len() < out.capacity();
        let all_in = compress.total_in() as usize == input.len();
        match status {
            Status::StreamEnd => return Ok(out),
            // A sync flush is complete once all input is in and the output did not fill up.
            _ if !last && all_in && room_left => return Ok(out),
            _ => out.reserve(out.capacity() / 2 + 64),
        }
    }
}

/// Whether samples spread over `input` deflate (fast) to barely less than their size.
fn incompressible(input: &[u8]) -> bool {
    if input.len() < SAMPLE * SAMPLES {
        return false;
    }
    let step = input.len() / SAMPLES;
    let mut out = Vec::with_capacity(SAMPLE + SAMPLE / 8 + 64);
    let mut compressed = 0;
    for i in 0..SAMPLES {
        let sample = &input[i * step..i * step + SAMPLE];
        let mut compress = Compress::new(flate2::Compression::fast(), false);
        out.clear();
        match compress.compress_vec(sample, &mut out, FlushCompress::Finish) {
            // Output that fills its room is at least as large as the sample: incompressible.
            Ok(Status::StreamEnd) => compressed += out.len(),
            _ => compressed += out.capacity(),
        }
    }
    compressed * 1024 > SAMPLE * SAMPLES * INCOMPRESSIBLE
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gzip(data: &[u8], workers: usize) -> Vec<u8> {
        let mut enc = ParallelGzEncoder::new(Vec::new(), 6, workers);
        // Odd write sizes, so chunks are cut inside writes.
        for piece in data.chunks(77_777) {
            enc.write_all(piece).unwrap();
        }
        enc.finish().unwrap()
    }

    #[test]
    fn one_gzip_member_that_any_reader_takes() {
        let mut data: Vec<u8> = (0..3_500_000u32).map(|i| (i % 253) as u8).collect();
        // Incompressible stretches too.
        let mut x = 1u32;
        for b in data.iter_mut().skip(1_000_000).take(1_500_000) {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            *b = (x >> 24) as u8;
        }
        for workers in [1, 2, 3] {
            let blob = gzip(&data, workers);
            // A single member: the reader that stops after the first one reads everything.
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(blob.as_slice())
                .read_to_end(&mut back)
                .unwrap();
            assert!(back == data, "{workers} workers");
            // And the reference tool agrees (CRC and size included).
            let mut gunzip = std::process::Command::new("gzip")
                .args(["-dc"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let mut stdin = gunzip.stdin.take().unwrap();
            let writer = std::thread::spawn(move || stdin.write_all(&blob).unwrap());
            let out = gunzip.wait_with_output().unwrap();
            writer.join().unwrap();
            assert!(out.status.success());
            assert!(out.stdout == data);
        }
    }

    /// Pseudo-random bytes: what no deflate can shrink.
    fn noise(len: usize) -> Vec<u8> {
        let mut x = 7u64;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn incompressible_chunks_are_stored_and_the_others_compressed() {
        let random = noise(3 * CHUNK);
        assert!(incompressible(&random[..CHUNK]));
        let blob = gzip(&random, 2);
        // Stored: 5 bytes a 64 KiB block, the header, the trailer, the flush blocks.
        assert!(blob.len() < random.len() + random.len() / 1000 + 64);
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(blob.as_slice())
            .read_to_end(&mut back)
            .unwrap();
        assert!(back == random);

        // Text-like data still compresses at the level asked for.
        let text: Vec<u8> = (0..CHUNK as u32)
            .flat_map(|i| format!("line {} of a log\n", i % 1000).into_bytes())
            .take(CHUNK)
            .collect();
        assert!(!incompressible(&text));
        assert!(gzip(&text, 2).len() < text.len() / 10);
    }

    #[test]
    fn empty_and_exact_chunk_streams() {
        for len in [0, CHUNK, 2 * CHUNK] {
            let data = vec![9u8; len];
            let blob = gzip(&data, 2);
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(blob.as_slice())
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back.len(), len);
            assert!(back == data);
        }
    }
}
