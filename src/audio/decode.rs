//! symphonia decoding to mono at the source rate, with every failure turned into an error that
//! names the file.

use super::{MAX_CHANNELS, MAX_SECONDS, MAX_SOURCE_RATE, MIN_SOURCE_RATE};
use anyhow::{anyhow, bail, Result};
use std::fs::File;
use std::io::Read;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use symphonia::core::codecs::audio::{AudioDecoder, AudioDecoderOptions};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::packet::Packet;

/// Mono samples at the source rate plus what the caller needs to judge them.
pub(crate) struct Decoded {
    pub mono: Vec<f32>,
    pub rate: u32,
    pub channels: usize,
    /// Largest |sample| seen in any channel before mixing.
    pub peak: f32,
    pub warnings: Vec<String>,
}

const SUPPORTED: &str = "supported: WAV/AIFF (8/16/24/32-bit PCM, 32/64-bit float, A-law, \
                         mu-law, ADPCM), FLAC, MP3, OGG Vorbis";

/// Decode `path` to mono. At most `limit_s` seconds are decoded: when `prefix` is set that is the
/// wanted length (plus a margin for the resampler), otherwise longer audio is an error.
pub(crate) fn decode_file(path: &Path, limit_s: f64, prefix: bool) -> Result<Decoded> {
    let name = path.display().to_string();
    let meta =
        std::fs::metadata(path).map_err(|e| anyhow!("cannot open audio file {name}: {e}"))?;
    if meta.is_dir() {
        bail!("{name} is a directory, not an audio file");
    }
    if meta.len() == 0 {
        bail!("audio file {name} is empty (0 bytes)");
    }
    let mut head = [0u8; 16];
    let head_len = File::open(path)
        .and_then(|mut f| read_up_to(&mut f, &mut head))
        .map_err(|e| anyhow!("cannot read audio file {name}: {e}"))?;
    let head = &head[..head_len];

    // symphonia can panic on hostile input; a panic must never escape as a crash.
    match catch_unwind(AssertUnwindSafe(|| {
        decode_inner(path, &name, head, limit_s, prefix)
    })) {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown".into());
            bail!("{name}: the decoder failed on malformed data (internal panic: {msg}); the file is corrupt or not supported")
        }
    }
}

/// The declared size of a RIFF/WAVE file's `data` chunk, walking at most 64 chunks.
fn wav_data_size(path: &Path) -> Option<u32> {
    use std::io::{Seek, SeekFrom};
    let mut f = File::open(path).ok()?;
    let mut hdr = [0u8; 12];
    if read_up_to(&mut f, &mut hdr).ok()? < 12 || &hdr[..4] != b"RIFF" || &hdr[8..12] != b"WAVE" {
        return None;
    }
    for _ in 0..64 {
        let mut ch = [0u8; 8];
        if read_up_to(&mut f, &mut ch).ok()? < 8 {
            return None;
        }
        let size = u32::from_le_bytes([ch[4], ch[5], ch[6], ch[7]]);
        if &ch[..4] == b"data" {
            return Some(size);
        }
        f.seek(SeekFrom::Current(size as i64 + (size & 1) as i64))
            .ok()?;
    }
    None
}

fn read_up_to(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// The container a file's first bytes announce, if any.
fn sniff(head: &[u8]) -> Option<&'static str> {
    let starts = |m: &[u8]| head.len() >= m.len() && &head[..m.len()] == m;
    if starts(b"RIFF") || starts(b"RIFX") || starts(b"RF64") {
        Some("WAV")
    } else if starts(b"fLaC") {
        Some("FLAC")
    } else if starts(b"OggS") {
        Some("OGG")
    } else if starts(b"ID3") || (head.len() >= 2 && head[0] == 0xFF && head[1] & 0xE0 == 0xE0) {
        Some("MP3")
    } else if starts(b"FORM") {
        Some("AIFF")
    } else if starts(&[0x1A, 0x45, 0xDF, 0xA3]) {
        Some("Matroska/WebM")
    } else if head.len() >= 8 && &head[4..8] == b"ftyp" {
        Some("MP4/M4A")
    } else {
        None
    }
}

fn describe_unknown(head: &[u8]) -> String {
    let texty = !head.is_empty()
        && head.iter().all(|&b| {
            b == b'\n' || b == b'\r' || b == b'\t' || (0x20..0x7F).contains(&b) || b >= 0x80
        });
    if texty {
        "it looks like a text file".to_string()
    } else {
        let hex: Vec<String> = head.iter().take(8).map(|b| format!("{b:02x}")).collect();
        format!("it starts with bytes {}", hex.join(" "))
    }
}

fn decode_inner(
    path: &Path,
    name: &str,
    head: &[u8],
    limit_s: f64,
    prefix: bool,
) -> Result<Decoded> {
    let kind = sniff(head);
    let mut d = Decoding::open(path, name, head, kind)?;
    // 0xFFFFFFFF is the streaming writers' "length unknown" (ffmpeg to a pipe): not a lie.
    d.streamed = kind == Some("WAV") && wav_data_size(path) == Some(u32::MAX);
    if d.streamed {
        d.warnings.push(format!(
            "{name}: the WAV header gives no length (streamed file); decoded to the end of the data"
        ));
    }
    while let Some(packet) = d.next_packet()? {
        d.decode(&packet)?;
        let limit = (limit_s * d.rate as f64).ceil() as usize;
        if d.mono.len() > limit + d.rate as usize / 10 {
            if prefix {
                // Keep a margin past the wanted length so the resampler's edge stays outside it.
                d.complete = false;
                break;
            }
            bail!(
                "{name} is longer than the {MAX_SECONDS} s limit for a whole-file load; read a prefix instead"
            );
        }
    }
    d.finish()
}

/// One file being decoded: the reader, the decoder, and the mono mix so far.
struct Decoding<'a> {
    name: &'a str,
    format: Box<dyn FormatReader>,
    decoder: Box<dyn AudioDecoder>,
    track_id: u32,
    /// Frames the header declares, when it does.
    declared: Option<u64>,
    /// The WAV header says "length unknown".
    streamed: bool,
    /// 0 until the header or the first packet tells.
    rate: u32,
    channels: usize,
    mono: Vec<f32>,
    scratch: Vec<f32>,
    peak: f32,
    /// First frame and count of frames holding a NaN or infinity.
    nonfinite: Option<(u64, usize)>,
    skipped: usize,
    decoded_packets: usize,
    /// False when decoding stopped early on purpose (a prefix).
    complete: bool,
    warnings: Vec<String>,
}

impl<'a> Decoding<'a> {
    /// Probe the container, find its audio track and make its decoder.
    fn open(path: &Path, name: &'a str, head: &[u8], kind: Option<&str>) -> Result<Self> {
        let file = File::open(path).map_err(|e| anyhow!("cannot open audio file {name}: {e}"))?;
        let mss = MediaSourceStream::new(Box::new(file), Default::default());
        let mut hint = Hint::new();
        if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
            hint.with_extension(ext);
        }
        let format = symphonia::default::get_probe()
            .probe(&hint, mss, FormatOptions::default(), MetadataOptions::default())
            .map_err(|e| match kind {
                None => anyhow!(
                    "{name} is not an audio file ({}); {SUPPORTED}",
                    describe_unknown(head)
                ),
                // A recognised signature that no reader accepts: the header is cut short or broken.
                Some(k) => match e {
                    SymError::Unsupported(w) if w.contains("no suitable format reader") => anyhow!(
                        "{name} starts like a {k} file but its header cannot be read: the file is truncated or malformed"
                    ),
                    e => classify(name, &format!("while reading the {k} header"), e),
                },
            })?;
        let track = format
            .default_track(TrackType::Audio)
            .ok_or_else(|| anyhow!("{name} contains no audio track"))?;
        let (track_id, declared) = (track.id, track.num_frames);
        let params = track
            .codec_params
            .as_ref()
            .and_then(|p| p.audio())
            .ok_or_else(|| anyhow!("{name}: the audio track has no codec parameters; {SUPPORTED}"))?
            .clone();
        let decoder = symphonia::default::get_codecs()
            .make_audio_decoder(&params, &AudioDecoderOptions::default())
            .map_err(|e| {
                anyhow!(
                    "{name}: unsupported codec {:?} ({e}); {SUPPORTED}",
                    params.codec
                )
            })?;
        let rate = params.sample_rate.unwrap_or(0);
        let channels = params.channels.as_ref().map_or(0, |c| c.count());
        if rate != 0 {
            check_rate(name, rate)?;
        }
        if channels != 0 {
            check_channels(name, channels)?;
        }
        Ok(Self {
            name,
            format,
            decoder,
            track_id,
            declared,
            streamed: false,
            rate,
            channels,
            mono: Vec::new(),
            scratch: Vec::new(),
            peak: 0.0,
            nonfinite: None,
            skipped: 0,
            decoded_packets: 0,
            complete: true,
            warnings: Vec::new(),
        })
    }

    /// The next packet of the audio track; `None` at the end of the data (also where the data
    /// stops before the header says, which `finish` reports with both sizes).
    fn next_packet(&mut self) -> Result<Option<Packet>> {
        loop {
            let packet = match self.format.next_packet() {
                Ok(Some(p)) => p,
                Ok(None) => return Ok(None),
                Err(SymError::ResetRequired) => {
                    self.warnings.push(format!(
                        "{}: the stream changes format part-way (chained stream); only the first part was decoded",
                        self.name
                    ));
                    return Ok(None);
                }
                Err(SymError::IoError(io))
                    if io.kind() == std::io::ErrorKind::UnexpectedEof
                        && (self.declared.is_some() || self.streamed) =>
                {
                    return Ok(None)
                }
                Err(e) => return Err(self.error_here(e)),
            };
            if packet.track_id == self.track_id {
                return Ok(Some(packet));
            }
        }
    }

    fn error_here(&self, e: SymError) -> anyhow::Error {
        let at = secs(self.mono.len(), self.rate);
        classify(self.name, &format!("after {at:.3} s of audio"), e)
    }

    /// Decode one packet and mix it to mono; a packet that does not decode is skipped with a
    /// warning, a change of rate or channel count part-way is an error.
    fn decode(&mut self, packet: &Packet) -> Result<()> {
        let name = self.name;
        let buf = match self.decoder.decode(packet) {
            Ok(b) => b,
            Err(SymError::DecodeError(msg)) => {
                self.skipped += 1;
                if self.skipped == 1 {
                    self.warnings.push(format!(
                        "{name}: a packet at {:.3} s could not be decoded ({msg}) and was skipped",
                        secs(self.mono.len(), self.rate)
                    ));
                }
                return Ok(());
            }
            Err(e) => return Err(self.error_here(e)),
        };
        self.decoded_packets += 1;
        let spec = buf.spec();
        let (r, c) = (spec.rate(), spec.channels().count());
        let (rate, channels) = (self.rate, self.channels);
        if rate == 0 {
            check_rate(name, r)?;
            self.rate = r;
        } else if r != rate {
            bail!("{name}: the sample rate changes from {rate} Hz to {r} Hz part-way through; such files are not supported");
        }
        if channels == 0 {
            check_channels(name, c)?;
            self.channels = c;
        } else if c != channels {
            bail!("{name}: the channel count changes from {channels} to {c} part-way through; such files are not supported");
        }
        if buf.frames() == 0 {
            return Ok(());
        }
        buf.copy_to_vec_interleaved(&mut self.scratch);
        for frame in self.scratch.chunks_exact(self.channels) {
            let mut sum = 0f64;
            let mut finite = true;
            for &x in frame {
                finite &= x.is_finite();
                self.peak = self.peak.max(x.abs());
                sum += x as f64;
            }
            if !finite {
                let n = self.nonfinite.get_or_insert((self.mono.len() as u64, 0));
                n.1 += 1;
            }
            self.mono.push((sum / self.channels as f64) as f32);
        }
        Ok(())
    }

    /// What the whole file must satisfy once read: finite samples, some audio, and as many
    /// frames as the header declares (unless decoding stopped early on purpose).
    fn finish(mut self) -> Result<Decoded> {
        let (name, rate) = (self.name, self.rate);
        if let Some((first, count)) = self.nonfinite {
            bail!(
                "{name} contains {count} non-finite (NaN or infinite) sample frame(s), the first at {:.6} s (frame {first}); the file is corrupt",
                secs(first as usize, rate)
            );
        }
        if self.mono.is_empty() {
            if self.skipped > 0 && self.decoded_packets == 0 {
                bail!(
                    "{name}: none of its {} audio packets could be decoded; the file is corrupt",
                    self.skipped
                );
            }
            bail!("{name} contains no audio samples (zero-length audio)");
        }
        if self.skipped > 1 {
            self.warnings.push(format!(
                "{name}: {} packets in total could not be decoded and were skipped",
                self.skipped
            ));
        }
        if let (true, false, Some(n)) = (self.complete, self.streamed, self.declared) {
            if (self.mono.len() as u64) < n {
                bail!(
                    "{name} is truncated or its header lies about its size: the header declares {n} frames ({:.3} s) but only {} ({:.3} s) are in the file",
                    secs(n as usize, rate),
                    self.mono.len(),
                    secs(self.mono.len(), rate)
                );
            }
        }
        Ok(Decoded {
            mono: self.mono,
            rate,
            channels: self.channels,
            peak: self.peak,
            warnings: self.warnings,
        })
    }
}

fn secs(frames: usize, rate: u32) -> f64 {
    if rate == 0 {
        0.0
    } else {
        frames as f64 / rate as f64
    }
}

fn check_rate(name: &str, rate: u32) -> Result<()> {
    if !(MIN_SOURCE_RATE..=MAX_SOURCE_RATE).contains(&rate) {
        bail!(
            "{name}: sample rate {rate} Hz is outside the supported range {MIN_SOURCE_RATE}..={MAX_SOURCE_RATE} Hz"
        );
    }
    Ok(())
}

fn check_channels(name: &str, channels: usize) -> Result<()> {
    if channels == 0 || channels > MAX_CHANNELS {
        bail!("{name}: {channels} channels is outside the supported range 1..={MAX_CHANNELS}");
    }
    Ok(())
}

/// Turn a symphonia error into a message that says what is wrong with the file.
fn classify(name: &str, when: &str, e: SymError) -> anyhow::Error {
    match e {
        SymError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            anyhow!("{name} is truncated: the data ends early ({when})")
        }
        SymError::IoError(io) => anyhow!("{name}: read error {when}: {io}"),
        SymError::Unsupported(what) => {
            anyhow!("{name}: unsupported audio format or codec ({what}); {SUPPORTED}")
        }
        SymError::DecodeError(msg) => {
            anyhow!("{name} is malformed or truncated ({when}): {msg}")
        }
        SymError::LimitError(what) => anyhow!("{name}: a safety limit was reached {when}: {what}"),
        other => anyhow!("{name}: cannot decode ({when}): {other}"),
    }
}
