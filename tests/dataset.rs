//! Corpus metadata, validation (`jukebox dataset check`), vocabulary, audio cache and split.

use jukebox::dataset::{self, metadata, Corpus, Vocab};
use std::path::Path;
use std::process::Command;

fn tone(seconds: f64, freq: f32) -> Vec<f32> {
    let n = (seconds * 44_100.0) as usize;
    (0..n)
        .map(|i| 0.5 * (i as f32 * freq * std::f32::consts::TAU / 44_100.0).sin())
        .collect()
}

/// A tiny corpus: 2 artists, 5 files, one with two genres and quoted lyrics.
fn tiny_corpus(dir: &Path) {
    let files = [
        ("a/one.wav", 2.0, 220.0),
        ("a/two.wav", 1.5, 330.0),
        ("a/three.wav", 1.2, 440.0),
        ("b/x.wav", 3.0, 550.0),
        ("b/y.wav", 1.1, 660.0),
    ];
    for (f, s, hz) in files {
        jukebox::audio::write_wav_i16(&dir.join(f), &tone(s, hz), 44_100).unwrap();
    }
    let csv = "path,artist,genres,lyrics,license,source,author\n\
               a/one.wav,Alice Smith,rock|Blues,\"la, la \"\"la\"\"\nsecond line\",CC0,test,Alice\n\
               a/two.wav,Alice Smith,rock,,CC0,test,Alice\n\
               a/three.wav,Alice Smith,rock,,CC0,test,Alice\n\
               b/x.wav,Bob,Electronic,,CC0,test,Bob\n\
               b/y.wav,Bob,electronic,,CC0,test,Bob\n";
    std::fs::write(dir.join("metadata.csv"), csv).unwrap();
}

#[test]
fn csv_handles_quotes_commas_and_newlines() {
    let text = "title,path,genre,artist\n\"A, \"\"B\"\"\",x.wav,jazz|funk,\"Multi\nLine\"\n\ny.wav_title,y.wav,rock,Z\n";
    let r = metadata::parse_csv(text, "m.csv").unwrap();
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].title, "A, \"B\"");
    assert_eq!(r[0].artist, "Multi\nLine");
    assert_eq!(r[0].genres, ["jazz", "funk"]);
    assert_eq!((r[0].line, r[1].line), (2, 5));
    // Round trip through the canonical writer.
    let again = metadata::parse_csv(&metadata::to_csv(&r), "again.csv").unwrap();
    assert_eq!(again[0].artist, r[0].artist);
    assert_eq!(again[0].title, r[0].title);
    assert_eq!(again[1].genres, ["rock"]);
}

#[test]
fn metadata_errors_name_the_file_line_and_fix() {
    let err = |t: &str| format!("{:#}", metadata::parse_csv(t, "meta.csv").unwrap_err());
    let e = err("path,genres\nx.wav,rock\n");
    assert!(
        e.contains("meta.csv:1") && e.contains("no `artist` column"),
        "{e}"
    );
    let e = err("path,artist,genres\nx.wav,A,rock\ny.wav,B,rock,extra\n");
    assert!(
        e.contains("meta.csv:3") && e.contains("4 fields") && e.contains("header has 3"),
        "{e}"
    );
    let e = err("path,artist,genres\n\"x.wav,A,rock\n");
    assert!(
        e.contains("meta.csv:2") && e.contains("never closed"),
        "{e}"
    );
    let e = err("path,artist,genres,offset_seconds\nx.wav,A,rock,-3\n");
    assert!(
        e.contains("meta.csv:2") && e.contains("offset_seconds"),
        "{e}"
    );
    let e = err("");
    assert!(e.contains("empty file"), "{e}");
    let j = metadata::parse_jsonl(
        "{\"path\":\"a.wav\",\"artist\":\"A\",\"genres\":[\"x\",\"y\"]}\n{\"path\":3}\n",
        "m.jsonl",
    );
    let e = format!("{:#}", j.unwrap_err());
    assert!(
        e.contains("m.jsonl:2") && e.contains("`path` must be a string"),
        "{e}"
    );
    let ok = metadata::parse_jsonl(
        "{\"path\":\"a.wav\",\"artist\":\"A\",\"genre\":\"x|y\",\"song_seconds\":90}\n",
        "m.jsonl",
    )
    .unwrap();
    assert_eq!(ok[0].genres, ["x", "y"]);
    assert_eq!(ok[0].song_seconds, Some(90.0));
}

#[test]
fn corpus_opens_with_ids_lengths_and_cached_audio() {
    let d = tempfile::tempdir().unwrap();
    tiny_corpus(d.path());
    let c = Corpus::open(d.path()).unwrap();
    assert_eq!(c.items.len(), 5);
    assert_eq!(c.vocab.artists, ["unknown", "alice_smith", "bob"]);
    assert_eq!(c.vocab.genres, ["unknown", "blues", "electronic", "rock"]);
    let one = &c.items[0];
    assert_eq!((one.artist.as_str(), one.artist_id), ("alice_smith", 1));
    assert_eq!(one.genres, ["rock", "blues"]);
    assert_eq!(one.genre_ids, [3, 1]);
    assert_eq!(one.lyrics, "la, la \"la\"\nsecond line");
    assert_eq!(one.n_samples, 88_200);
    assert_eq!(c.items[3].genre_ids, [2]);
    assert_eq!(
        c.items[4].genre_ids,
        [2],
        "genre names are normalised (Electronic = electronic)"
    );
    assert_eq!(one.song_samples(), 88_200);
    assert!((c.total_seconds() - 8.8).abs() < 1e-3);
    assert!(!c.vocab_on_disk);

    // Audio comes back as written (16-bit quantisation only), whole or as a padded window.
    let want = tone(2.0, 220.0);
    let got = c.load_audio(one).unwrap();
    assert_eq!(got.len(), want.len());
    let err = got
        .iter()
        .zip(&want)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(err < 1e-4, "{err}");
    let w = c.load_window(one, 88_000, 400).unwrap();
    assert_eq!(w.len(), 400);
    assert_eq!(w[..200], got[88_000..]);
    assert!(w[200..].iter().all(|x| *x == 0.0));

    // A second open uses the cache index instead of decoding again.
    let idx = std::fs::read_to_string(d.path().join(".cache/index.json")).unwrap();
    assert!(idx.contains("a/one.wav") && idx.contains("88200"));
    let again = Corpus::open(d.path()).unwrap();
    assert_eq!(again.items, c.items);
}

#[test]
fn split_is_deterministic_stratified_and_order_free() {
    let d = tempfile::tempdir().unwrap();
    tiny_corpus(d.path());
    let c = Corpus::open(d.path()).unwrap();
    let s = c.split(7, 0.34);
    assert_eq!(s, c.split(7, 0.34));
    assert_eq!(s.train.len() + s.valid.len(), 5);
    // Each artist keeps at least one training file and gives at least one validation file.
    for artist in [1, 2] {
        let v = s
            .valid
            .iter()
            .filter(|&&i| c.items[i].artist_id == artist)
            .count();
        let t = s
            .train
            .iter()
            .filter(|&&i| c.items[i].artist_id == artist)
            .count();
        assert!(v >= 1 && t >= 1, "artist {artist}: {v} valid, {t} train");
    }
    assert!(s.valid.iter().all(|i| !s.train.contains(i)));
    // Reversing the metadata rows does not change which files are held out.
    let valid_paths: Vec<String> = s.valid.iter().map(|&i| c.items[i].rel.clone()).collect();
    let text = std::fs::read_to_string(d.path().join("metadata.csv")).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let header = lines.remove(0);
    // Row 1 spans two lines (quoted newline): keep it in one piece.
    let first = format!("{}\n{}", lines[0], lines[1]);
    let mut rows: Vec<String> = vec![first];
    rows.extend(lines[2..].iter().map(|s| s.to_string()));
    rows.reverse();
    std::fs::write(
        d.path().join("metadata.csv"),
        format!("{header}\n{}\n", rows.join("\n")),
    )
    .unwrap();
    let c2 = Corpus::open(d.path()).unwrap();
    let s2 = c2.split(7, 0.34);
    let mut v2: Vec<String> = s2.valid.iter().map(|&i| c2.items[i].rel.clone()).collect();
    let mut v1 = valid_paths;
    v1.sort();
    v2.sort();
    assert_eq!(v1, v2);
    assert_eq!(c.split(7, 0.0).valid.len(), 0);
}

#[test]
fn scan_reports_every_problem() {
    let d = tempfile::tempdir().unwrap();
    jukebox::audio::write_wav_i16(&d.path().join("ok.wav"), &tone(1.5, 200.0), 44_100).unwrap();
    jukebox::audio::write_wav_i16(&d.path().join("short.wav"), &tone(0.2, 200.0), 44_100).unwrap();
    std::fs::write(d.path().join("junk.wav"), b"RIFF not really a wav").unwrap();
    let csv = "path,artist,genres,offset_seconds,song_seconds\n\
               ok.wav,A,rock,,\n\
               missing.wav,A,rock,,\n\
               junk.wav,A,rock,,\n\
               short.wav,A,rock,,\n\
               ok.wav,A,rock,,\n\
               x.wav,,rock,,\n\
               y.wav,B,,,\n\
               z.wav,unknown,rock,,\n\
               ok2.wav,A,a|b|c|d|e|f,,\n";
    std::fs::write(d.path().join("metadata.csv"), csv).unwrap();
    let s = dataset::scan(d.path()).unwrap();
    let all: Vec<String> = s.problems.iter().map(|p| p.to_string()).collect();
    let has = |at: &str, msg: &str| all.iter().any(|p| p.starts_with(at) && p.contains(msg));
    assert!(has("missing.wav", "file not found"), "{all:#?}");
    assert!(has("junk.wav", "unreadable"), "{all:#?}");
    assert!(has("short.wav", "at least 1 s"), "{all:#?}");
    assert!(
        has("metadata.csv:6", "listed twice (also on line 2)"),
        "{all:#?}"
    );
    assert!(has("metadata.csv:7", "missing artist"), "{all:#?}");
    assert!(has("metadata.csv:8", "missing genre"), "{all:#?}");
    assert!(has("metadata.csv:9", "id 0 is reserved"), "{all:#?}");
    assert!(has("metadata.csv:10", "6 genres"), "{all:#?}");
    assert_eq!(s.problems.len(), 8, "{all:#?}");
    assert_eq!(s.corpus.items.len(), 1);
    let e = format!("{:#}", Corpus::open(d.path()).unwrap_err());
    assert!(
        e.contains("8 problem(s)") && e.contains("jukebox dataset check"),
        "{e}"
    );
}

#[test]
fn vocab_keeps_existing_ids_and_reserves_unknown() {
    let d = tempfile::tempdir().unwrap();
    tiny_corpus(d.path());
    let labels = d.path().join("labels");
    // A vocabulary from an earlier corpus: bob first, plus a name no longer used.
    std::fs::create_dir_all(&labels).unwrap();
    std::fs::write(
        labels.join("artists.txt"),
        "unknown;0\nbob;1\nold_artist;2\n",
    )
    .unwrap();
    std::fs::write(labels.join("genres.txt"), "unknown;0\nrock;1\n").unwrap();
    let c = Corpus::open(d.path()).unwrap();
    assert_eq!(
        c.vocab.artists,
        ["unknown", "bob", "old_artist", "alice_smith"]
    );
    assert_eq!(c.vocab.genres, ["unknown", "rock", "blues", "electronic"]);
    assert_eq!(c.items[0].artist_id, 3);
    assert_eq!(c.items[3].artist_id, 1);
    c.vocab.write(&labels).unwrap();
    assert_eq!(
        std::fs::read_to_string(labels.join("genres.txt")).unwrap(),
        "unknown;0\nrock;1\nblues;2\nelectronic;3\n"
    );
    assert_eq!(Vocab::read(&labels).unwrap().unwrap(), c.vocab);
    // The labels module reads the same files.
    let ids = jukebox::labels::IdSet::custom(&labels, None, None).unwrap();
    assert_eq!(ids.artist_id("Alice Smith"), 3);
    assert_eq!(ids.genre_ids("Electronic"), [3]);

    std::fs::write(labels.join("artists.txt"), "bob;0\n").unwrap();
    let e = format!("{:#}", Corpus::open(d.path()).unwrap_err());
    assert!(
        e.contains("artists.txt") && e.contains("id 0 must be `unknown`"),
        "{e}"
    );
}

#[test]
fn dataset_check_cli_writes_the_vocabulary() {
    let d = tempfile::tempdir().unwrap();
    tiny_corpus(d.path());
    let out = Command::new(env!("CARGO_BIN_EXE_jukebox"))
        .args(["dataset", "check"])
        .arg(d.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("5 usable file(s)"), "{stdout}");
    assert!(
        stdout.contains("alice_smith") && stdout.contains("OK"),
        "{stdout}"
    );
    let labels = d.path().join("labels");
    assert_eq!(
        std::fs::read_to_string(labels.join("artists.txt")).unwrap(),
        "unknown;0\nalice_smith;1\nbob;2\n"
    );
    assert_eq!(
        std::fs::read_to_string(labels.join("genres.txt")).unwrap(),
        "unknown;0\nblues;1\nelectronic;2\nrock;3\n"
    );

    // A broken corpus fails with the problems listed and leaves labels/ alone.
    std::fs::write(
        d.path().join("metadata.csv"),
        "path,artist,genres\nnope.wav,Zed,jazz\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_jukebox"))
        .args(["dataset", "check"])
        .arg(d.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("nope.wav") && stderr.contains("file not found"),
        "{stderr}"
    );
    assert!(!std::fs::read_to_string(labels.join("artists.txt"))
        .unwrap()
        .contains("zed"));
}

#[test]
fn render_breaks_cli_adds_labelled_rows() {
    let kit = Path::new(jukebox::drums::COLOMBO);
    if !kit.join("drumkit.xml").is_file() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI must install hydrogen-drumkits"
        );
        eprintln!("skipping: hydrogen-drumkits is not installed");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    tiny_corpus(d.path());
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_jukebox"))
            .args([
                "dataset",
                "render-breaks",
                "--patterns",
                "amen,rock",
                "--seconds",
                "4",
                "--kit",
            ])
            .arg(kit)
            .arg("-o")
            .arg(d.path())
            .output()
            .unwrap()
    };
    let out = run();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Running twice replaces rows instead of duplicating them.
    assert!(run().status.success());
    let recs = metadata::read(&d.path().join("metadata.csv")).unwrap();
    assert_eq!(recs.len(), 5 + 6);
    let amen = recs
        .iter()
        .find(|r| r.path == "breaks/colombo-acoustic-drumkit/amen-137bpm.wav")
        .unwrap();
    assert_eq!(amen.artist, "Colombo Acoustic Drumkit");
    assert_eq!(amen.genres, ["breakbeat"]);
    assert_eq!(amen.source, "hydrogen-drumkits");
    assert_eq!(amen.license, "GPL-2+ with composition exception");
    let c = Corpus::open(d.path()).unwrap();
    let item = c.items.iter().find(|i| i.rel == amen.path).unwrap();
    // 4 s → one 4-bar loop at 137 BPM (309022 samples) + the default 0.25 s tail.
    assert_eq!(item.n_samples, 309_022 + 11_025);
    let rock = recs
        .iter()
        .find(|r| r.path.starts_with("breaks/colombo-acoustic-drumkit/rock-"))
        .unwrap();
    assert_eq!(
        rock.genres,
        ["rock"],
        "each pattern is labelled with its style"
    );

    // Corpus v2 options: tempos picked per kit × pattern, swing per file, one genre for all.
    let d2 = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_jukebox"))
        .args(["dataset", "render-breaks", "--patterns", "amen,rock,think"])
        .args(["--seconds", "2", "--tempos", "80,100,120,140,160"])
        .args([
            "--tempos-per-pattern",
            "2",
            "--swing",
            "0,0.2",
            "--genre",
            "drums",
        ])
        .arg("--kit")
        .arg(kit)
        .arg("-o")
        .arg(d2.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let recs = metadata::read(&d2.path().join("metadata.csv")).unwrap();
    assert_eq!(recs.len(), 3 * 2);
    let allowed = ["80", "100", "120", "140", "160"];
    for r in &recs {
        assert_eq!(r.genres, ["drums"]);
        let bpm = r
            .path
            .rsplit('-')
            .next()
            .unwrap()
            .trim_end_matches("bpm.wav");
        assert!(allowed.contains(&bpm), "{}", r.path);
        assert!(d2.path().join(&r.path).is_file());
    }
    // Two distinct tempos per pattern: six distinct files.
    let mut paths: Vec<&str> = recs.iter().map(|r| r.path.as_str()).collect();
    paths.sort_unstable();
    paths.dedup();
    assert_eq!(paths.len(), 6);
    let bad = Command::new(env!("CARGO_BIN_EXE_jukebox"))
        .args(["dataset", "render-breaks", "--swing", "1.5", "--kit"])
        .arg(kit)
        .arg("-o")
        .arg(d2.path())
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--swing: 1.5"));
}
