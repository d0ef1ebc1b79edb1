//! Regression tests for CLI bugs a new user hit: each failed before its fix.

use std::process::Command;

fn jukebox(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_jukebox"))
        .args(args)
        .output()
        .expect("run jukebox");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `decode -o y.mp3` wrote a RIFF WAV under that name and exited 0.
#[test]
fn decode_refuses_an_extension_it_does_not_write() {
    let dir = tempfile::tempdir().unwrap();
    for ext in ["mp3", "flac", "ogg"] {
        let out = dir.path().join(format!("y.{ext}"));
        let (ok, text) = jukebox(&[
            "decode",
            "missing-codes.safetensors",
            "--level",
            "top",
            "-o",
            out.to_str().unwrap(),
        ]);
        assert!(!ok, "decode -o y.{ext} succeeded: {text}");
        assert!(text.contains("WAV only"), "{text}");
        assert!(text.contains(&format!("`.{ext}`")), "{text}");
        assert!(!out.exists(), "y.{ext} was written");
    }
}

/// `--seconds -1` and `--temperature -1` were "unexpected argument '-1'"; they are numbers out
/// of range and must be reported as such.
#[test]
fn negative_numbers_are_values_not_flags() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = out.to_str().unwrap();
    for args in [
        vec!["sample", "--mode", "ancestral", "--seconds", "-1", "-o", o],
        vec![
            "sample",
            "--mode",
            "ancestral",
            "--seconds",
            "2",
            "--temperature",
            "-1",
            "-o",
            o,
        ],
        vec!["study", "--seconds", "-1", "--dry-run", "-o", o],
    ] {
        let (ok, text) = jukebox(&args);
        assert!(!ok, "{args:?} succeeded");
        assert!(!text.contains("unexpected argument"), "{args:?}: {text}");
        let flag = if args.contains(&"--temperature") {
            "temperature"
        } else {
            "seconds"
        };
        assert!(text.contains(flag), "{args:?}: {text}");
        assert!(!out.exists(), "{args:?} wrote {o} before refusing");
    }
}

/// `study --help` said `--levels [default: top]` while the study samples all levels.
#[test]
fn study_help_states_the_levels_default_the_code_uses() {
    let (ok, text) = jukebox(&["study", "--help"]);
    assert!(ok);
    let line = text
        .lines()
        .skip_while(|l| !l.contains("--levels"))
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    assert!(line.contains("[default: all]"), "{line}");
}

/// Wrong kinds of file get messages that say what they are and what to do.
#[test]
fn wrong_kinds_of_file_are_named() {
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = format!("{root}/README.md");
    let wav = format!("{root}/data/prompts/amen.wav");
    let config = format!("{root}/models/default/config.json");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "sample",
                "--model",
                &readme,
                "--mode",
                "ancestral",
                "--seconds",
                "2",
                "-o",
                d,
            ],
            "is a file, not a model directory",
        ),
        (
            vec!["decode", &wav, "--level", "top", "-o", "x.wav"],
            "WAV audio file: make codes from it with `jukebox encode`",
        ),
        (vec!["inspect", &readme], "(it looks like text)"),
        (vec!["inspect", &config], "(it looks like JSON)"),
        (vec!["encode", &wav, "-o", d], "is a directory"),
    ];
    for (args, want) in cases {
        let (ok, text) = jukebox(&args);
        assert!(!ok, "{args:?} succeeded");
        assert!(text.contains(want), "{args:?}: want `{want}` in: {text}");
        assert!(!text.contains("found bytes"), "{args:?}: {text}");
    }
}

/// A study started outside the checkout wrote into the source tree's `studies/default` when one
/// existed: the output default now resolves against the current directory only.
#[test]
fn study_output_default_is_the_current_directory() {
    let src_studies = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("studies/default");
    std::fs::create_dir_all(&src_studies).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_jukebox"))
        .args(["study", "--dry-run"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("output:"))
        .unwrap_or_default();
    assert_eq!(line.trim(), "output: studies/default", "{text}");
}

/// `--device gpu` was taken as cuda; unknown devices are refused with the list.
#[test]
fn device_names_are_checked() {
    for dev in ["gpu", "cuda:x", "tpu"] {
        let (ok, text) = jukebox(&["logits", "--device", dev, "--codes", "missing.safetensors"]);
        assert!(!ok);
        assert!(
            text.contains(&format!("unknown device `{dev}`")) && text.contains("cuda:N"),
            "{dev}: {text}"
        );
    }
}

/// The same ideas have the same flags across commands (docs/CLI.md).
#[test]
fn consistent_flag_names() {
    let (_, help) = jukebox(&["rank-labels", "--help"]);
    assert!(
        help.contains("--max-batch") && help.contains("--device"),
        "{help}"
    );
    let (_, help) = jukebox(&["train", "assemble", "--help"]);
    assert!(help.contains("--dtype"), "{help}");
    for cmd in [["study", "--help"], ["quality", "--help"]] {
        let (_, help) = jukebox(&cmd);
        assert!(help.contains("--quiet"), "{cmd:?}: {help}");
    }
}

/// docs/CLI.md's flag table is exactly what `jukebox flags` generates from the clap definitions.
#[test]
fn cli_doc_lists_every_flag() {
    let (ok, table) = jukebox(&["flags"]);
    assert!(ok && table.lines().count() > 100, "{table}");
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/CLI.md")).unwrap();
    let (_, rest) = doc
        .split_once("<!-- flags:begin -->\n")
        .expect("begin marker");
    let (listed, _) = rest.split_once("<!-- flags:end -->").expect("end marker");
    assert!(
        listed == table,
        "docs/CLI.md is out of date: run `jukebox flags` and paste the table between the markers"
    );
}

/// Completions and man pages come from the same definitions.
#[test]
fn completions_and_man_pages() {
    let (ok, bash) = jukebox(&["completions", "bash"]);
    assert!(
        ok && bash.contains("rank-labels") && bash.contains("--max-batch"),
        "{bash}"
    );
    let dir = tempfile::tempdir().unwrap();
    let (ok, text) = jukebox(&["man", "-o", dir.path().to_str().unwrap()]);
    assert!(ok, "{text}");
    let page = std::fs::read_to_string(dir.path().join("jukebox-sample.1")).unwrap();
    assert!(
        page.contains(".TH") && page.contains("n\\-samples"),
        "{}",
        &page[..400.min(page.len())]
    );
}

/// One word, one meaning: the plural label flags are switches in every command, the singular
/// ones take values, and every `--temperature` has the same default (read from `jukebox flags`,
/// the table generated from the clap definitions).
#[test]
fn label_flags_and_temperature_agree_across_commands() {
    let (ok, table) = jukebox(&["flags"]);
    assert!(ok, "{table}");
    let rows: Vec<Vec<String>> = table
        .lines()
        .filter(|l| l.starts_with("| `jukebox"))
        .map(|l| {
            l.split(" | ")
                .map(|c| c.trim_matches(['|', ' ']).to_string())
                .collect()
        })
        .collect();
    let flag_rows = |flag: &str| -> Vec<&Vec<String>> {
        rows.iter()
            .filter(|r| r[1] == format!("`{flag}`"))
            .collect()
    };
    let plural = [flag_rows("--artists"), flag_rows("--genres")].concat();
    assert!(plural.len() >= 3, "{plural:?}");
    for r in plural {
        assert!(r[2].is_empty(), "a plural label flag takes a value: {r:?}");
    }
    let genre = flag_rows("--genre");
    assert!(genre.len() >= 5, "{genre:?}");
    for r in genre {
        assert!(!r[2].is_empty(), "--genre without a value: {r:?}");
    }
    let temps = flag_rows("--temperature");
    assert!(temps.len() >= 3, "{temps:?}");
    for r in &temps {
        let default = if r[3].is_empty() {
            r[4].split("[default: ")
                .nth(1)
                .unwrap_or("")
                .split([',', ']'])
                .next()
                .unwrap()
                .to_string()
        } else {
            r[3].trim_matches('`').to_string()
        };
        assert_eq!(default, "0.99", "{r:?}");
    }
}

/// Every flag of every command says what it does (the last column of `jukebox flags`, which is
/// generated from the clap definitions; a doc comment above two fields documents only the first).
#[test]
fn every_flag_has_help_text() {
    let (ok, table) = jukebox(&["flags"]);
    assert!(ok, "{table}");
    let bare: Vec<&str> = table
        .lines()
        .filter(|l| l.starts_with("| `jukebox"))
        .filter(|l| {
            let cells: Vec<&str> = l.trim_end_matches('|').split(" | ").collect();
            cells.last().map(|c| c.trim().is_empty()).unwrap_or(true)
        })
        .collect();
    assert!(bare.is_empty(), "flags without help:\n{}", bare.join("\n"));
}

/// `--amx-split` runs where the CPU has AMX and is refused, by name, where it has not or where
/// the run is not on the CPU.
#[test]
fn amx_split_is_refused_without_amx() {
    let (ok, text) = jukebox(&[
        "train",
        "vqvae",
        "--preset",
        "tiny",
        "--print-config",
        "--amx-split",
    ]);
    if jukebox::ops::amx_split::supported() {
        assert!(
            ok && text.contains("--amx-split") && text.contains("[model]"),
            "{text}"
        );
    } else {
        assert!(
            !ok && text.contains("--amx-split needs a CPU with AMX-BF16"),
            "{text}"
        );
    }
    // It has no meaning off the CPU, and says so rather than being ignored.
    let (ok, text) = jukebox(&[
        "train",
        "vqvae",
        "--preset",
        "tiny",
        "--print-config",
        "--amx-split",
        "--device",
        "cuda",
    ]);
    assert!(
        !ok && text.contains("--amx-split is for training on the CPU"),
        "{text}"
    );
}
