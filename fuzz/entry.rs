// Entry points shared by the fuzz targets (`fuzz/fuzz_targets/*.rs`) and by
// `tests/fuzz_corpus_replay.rs`, which `include!` this file: CI replays every corpus file
// through exactly the code that was fuzzed. Each function must return without panicking
// whatever the bytes are; errors are the expected outcome for most inputs.

#[allow(unused_imports)]
use std::sync::Arc;

/// Materialise every tensor a store accepted (the bytes were checked against the file).
#[allow(dead_code)]
fn touch_store(s: &jukebox::checkpoint::Store) {
    for e in s.entries.values() {
        if e.numel() <= 1 << 20 {
            let _ = e.load(candle_core::DType::F32, &candle_core::Device::Cpu);
        }
    }
    let _ = s.n_elements_unique();
    let _ = s.dtype_counts();
}

/// Audio decode → resample. The first byte picks the file extension (a hint to the prober);
/// the rest is the file. Also drives `resample` directly with a rate taken from the input.
#[allow(dead_code)]
pub fn fuzz_audio(data: &[u8]) {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let ext = ["wav", "flac", "mp3", "ogg", "aiff", "bin"][sel as usize % 6];
    let dir = std::env::temp_dir();
    let path = dir.join(format!(
        "jukebox-fuzz-{}-{:?}.{ext}",
        std::process::id(),
        std::thread::current().id()
    ));
    if std::fs::write(&path, body).is_ok() {
        if let Ok(a) = jukebox::audio::load_prefix(&path, 0.25) {
            assert!(a.samples.iter().all(|x| x.is_finite() && x.abs() <= 1.0));
            assert_eq!(a.sample_rate, jukebox::audio::SAMPLE_RATE);
        }
        let _ = std::fs::remove_file(&path);
    }
    // resample(): rate from two bytes, samples (finite or not) from the rest, capped.
    if body.len() >= 2 {
        let from = 8_000 + (u16::from_le_bytes([body[0], body[1]]) as u32 % 376_001);
        let xs: Vec<f32> = body[2..]
            .chunks_exact(4)
            .take(4096)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let _ = jukebox::audio::resample(&xs, from, jukebox::audio::SAMPLE_RATE);
    }
}

/// The pickle VM alone, then the legacy (pre-1.6) torch reader on the same bytes.
#[allow(dead_code)]
pub fn fuzz_legacy_pickle(data: &[u8]) {
    if let Ok(p) = jukebox::checkpoint::pickle::parse(data) {
        let _ = jukebox::checkpoint::pickle::state_dict_entries(&p.value);
        let _ = p.value.type_name();
    }
    let buf = Arc::new(jukebox::checkpoint::store::Buf::Owned(data.to_vec()));
    if let Ok(s) =
        jukebox::checkpoint::torch::open_legacy(std::path::Path::new("fuzz.pth.tar"), buf)
    {
        touch_store(&s);
    }
}

/// The torch zip container reader (zip → data.pkl → data/N storages).
#[allow(dead_code)]
pub fn fuzz_zip_pickle(data: &[u8]) {
    let buf = Arc::new(jukebox::checkpoint::store::Buf::Owned(data.to_vec()));
    if let Ok(s) = jukebox::checkpoint::torch::open_zip(std::path::Path::new("fuzz.pth"), buf) {
        touch_store(&s);
    }
}

/// Safetensors (even first byte) or an HF `config.json` (odd first byte).
#[allow(dead_code)]
pub fn fuzz_safetensors_config(data: &[u8]) {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    if sel % 2 == 0 {
        let buf = Arc::new(jukebox::checkpoint::store::Buf::Owned(body.to_vec()));
        let p = std::path::Path::new("fuzz.safetensors");
        if let Ok(s) = jukebox::checkpoint::safetensors_io::open(p, buf) {
            touch_store(&s);
        }
    } else {
        let text = String::from_utf8_lossy(body);
        if let Ok(c) = jukebox::config::JukeboxConfig::from_hf_json(&text) {
            let _ = c.validate();
            let _ = c.to_hf_value();
        }
    }
}

/// Label lookup (official and strict, with suggestions) and the lyric tokenizer and window.
/// The input is split at the first two 0xff bytes into artist, genre and lyrics.
#[allow(dead_code)]
pub fn fuzz_labels_lyrics(data: &[u8]) {
    use jukebox::labels::{relevant_lyric_tokens, to_ascii, Arith, Field, IdSet, LyricVocab};
    let mut parts = data.splitn(3, |&b| b == 0xff);
    let artist = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let genre = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let lyrics_bytes = parts.next().unwrap_or_default();
    let lyrics = String::from_utf8_lossy(lyrics_bytes).into_owned();
    // Strict lookups compute an edit distance against every name (thousands of artists) for
    // their suggestions: only for short names, so the fuzzer keeps its speed.
    let short = |s: &str| s.chars().count() <= 12;
    for ids in [IdSet::v2(), IdSet::v3()] {
        let (a, _) = ids.artist_lookup(&artist);
        let _ = ids.name_of(Field::Artist, a);
        let (g, _) = ids.genre_lookup(&genre);
        for id in g {
            let _ = ids.name_of(Field::Genre, id);
        }
        if short(&genre) {
            let _ = ids.genre_ids_strict(&genre);
        }
    }
    if short(&artist) {
        let _ = IdSet::v2().artist_id_strict(&artist);
    }
    let _ = to_ascii(&lyrics);
    for v in [LyricVocab::V2, LyricVocab::V3] {
        let toks = v.tokenize(&lyrics);
        assert!(toks.iter().all(|&t| t >= 0 && (t as usize) < v.n_vocab()));
        let _ = v.decode(&toks);
        // Window parameters from the first bytes of the lyrics part.
        let b = |i: usize| lyrics_bytes.get(i).copied().unwrap_or(0) as i64;
        let n_tokens = (b(0) as usize) * 4;
        let total = b(1) * 1000 - 500;
        let offset = b(2) * 997 - 300;
        let duration = b(3) * 500;
        for arith in [Arith::F32, Arith::F64] {
            if let Ok(w) = relevant_lyric_tokens(&toks, n_tokens, total, offset, duration, arith) {
                assert_eq!(w.tokens.len(), w.indices.len());
            }
        }
    }
}
