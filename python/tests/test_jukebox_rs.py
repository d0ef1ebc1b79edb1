"""jukebox_rs from Python: sampling equals the CLI byte for byte, encode/decode, parity with the
reference fixture, clear exceptions, the continue/upsample loop, and a fake Hugging Face cache.

Run after installing the wheel (python/README.md); the CLI is `JUKEBOX_BIN` (default
target/release/jukebox)."""

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

import jukebox_rs

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "tests/fixtures/reference/fixtures/model"
FIXTURES = ROOT / "tests/fixtures/reference/fixtures"
AMEN = ROOT / "data/prompts/amen.wav"
CLI = os.environ.get("JUKEBOX_BIN", str(ROOT / "target/release/jukebox"))


@pytest.fixture(scope="module")
def jb():
    return jukebox_rs.Jukebox(str(MODEL))


def test_sampling_equals_the_cli_byte_for_byte(jb, tmp_path):
    seen = []
    takes = jb.sample(tmp_path / "py", 1.5, prompt=AMEN, prompt_seconds=0.5, takes=2, seed=7,
                      levels="top", progress=seen.append)
    assert takes.sample_rate == 44100
    assert takes.takes[2] == [0, 1]
    audio, codes = takes.audio[2], takes.codes[2]
    assert len(audio) == 2 and audio[0].dtype == np.float32
    assert codes[0].dtype == np.int64 and len(codes[0]) == 516  # 1.5 s at hop 128
    assert seen and seen[-1]["tokens"] == seen[-1]["tokens_total"] > 0
    subprocess.run([CLI, "sample", "--model", str(MODEL), "--mode", "primed", "--prompt", str(AMEN),
                    "--prompt-seconds", "0.5", "--seconds", "1.5", "--n-samples", "2", "--seed", "7",
                    "--levels", "top", "-o", str(tmp_path / "cli"), "--quiet"], check=True)
    for f in ["state.safetensors", "level_2/sample_0.wav", "level_2/sample_1.wav"]:
        assert (tmp_path / "py" / f).read_bytes() == (tmp_path / "cli" / f).read_bytes(), f
    wav, _ = jukebox_rs.load_audio(tmp_path / "cli/level_2/sample_1.wav")
    np.testing.assert_allclose(wav, audio[1], atol=1.0 / 32767)


def test_encode_matches_the_reference_and_decode_round_trips(jb):
    io = load_file(str(FIXTURES / "vqvae_io.safetensors"))
    x = np.ascontiguousarray(io["input_audio"][0, :, 0], dtype=np.float32)
    for level in (0, 1, 2):
        codes = jb.encode(x, level)
        want = io[f"codes_level{level}"][0]
        margin = io[f"code_margin_level{level}"][0]
        # Codes may differ only at near-ties of the reference (as `jukebox parity` excuses).
        bad = (codes != want) & (margin >= 1e-5)
        assert not bad.any(), f"level {level}: {bad.sum()} codes differ"
        y = jb.decode(want.astype(np.int64), level)
        assert y.dtype == np.float32 and y.shape == x.shape
        np.testing.assert_allclose(y, io[f"decoded_level{level}"][0, :, 0], atol=1e-4)


def test_q8_weights_equal_the_cli_and_are_recorded(jb, tmp_path):
    jb.sample(tmp_path / "py", 1.0, takes=2, seed=3, levels="top", dtype="q8")
    assert 'weights = "q8"' in (tmp_path / "py/run.toml").read_text()
    subprocess.run([CLI, "sample", "--model", str(MODEL), "--seconds", "1.0", "--n-samples", "2",
                    "--seed", "3", "--levels", "top", "--dtype", "q8", "-o", str(tmp_path / "cli"),
                    "--quiet"], check=True)
    f = "state.safetensors"
    assert (tmp_path / "py" / f).read_bytes() == (tmp_path / "cli" / f).read_bytes()
    with pytest.raises(jukebox_rs.JukeboxError, match="q8"):
        jb.sample(tmp_path / "bad", 1.0, dtype="int4")


def test_bad_input_raises_clear_errors(jb, tmp_path):
    with pytest.raises(jukebox_rs.JukeboxError, match="does not exist"):
        jukebox_rs.Jukebox(str(tmp_path / "nowhere"))
    with pytest.raises(jukebox_rs.JukeboxError, match="must be shorter"):
        jb.sample(tmp_path / "r", 1.0, prompt=AMEN, prompt_seconds=2.0)
    with pytest.raises(jukebox_rs.UnknownLabelError, match="rokc") as e:
        jukebox_rs.Jukebox(str(ROOT / "models/default")).sample(tmp_path / "r2", 1.0, genre="rokc")
    assert "rock" in e.value.nearest, e.value.nearest
    assert e.value.name == "rokc"
    assert issubclass(jukebox_rs.UnknownLabelError, jukebox_rs.JukeboxError)
    with pytest.raises(jukebox_rs.JukeboxError, match="outside this model's codebook"):
        jb.decode(np.array([5, 99999], dtype=np.int64), 2)
    with pytest.raises(jukebox_rs.JukeboxError, match="non-finite"):
        jb.encode(np.array([0.0, np.nan] * 600, dtype=np.float32), 2)
    with pytest.raises(jukebox_rs.AudioError, match="is not an audio file"):
        bad = tmp_path / "bad.wav"
        bad.write_bytes(b"this is not audio")
        jukebox_rs.load_audio(bad)
    with pytest.raises(TypeError):
        jb.encode([0.0, 1.0], 2)  # not a float32 array


def test_continue_and_upsample_make_runs_the_cli_understands(jb, tmp_path):
    jb.sample(tmp_path / "a", 1.0, prompt=AMEN, prompt_seconds=0.5, takes=2, seed=1, levels="top")
    child = jb.continue_take(tmp_path / "a", 1, 1.5, tmp_path / "b", takes=2, seed=9)
    assert [len(c) for c in child.codes[2]] == [516, 516]
    parent_codes = jukebox_rs.Jukebox(str(MODEL)).resume(tmp_path / "a").codes[2][1]
    assert (child.codes[2][0][: len(parent_codes)] == parent_codes).all()
    up = jb.upsample(tmp_path / "a", [1])
    assert up.takes[0] == [1] and len(up.audio[0]) == 1
    subprocess.run([CLI, "sample", "--continue", str(tmp_path / "b"), "--seconds", "1.9", "--quiet"],
                   check=True)
    assert len(jb.resume(tmp_path / "b").codes[2][0]) == 1.9 * 44100 // 128


def test_models_resolve_from_a_hugging_face_cache(tmp_path, monkeypatch):
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub/models--test--tiny"
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs/main").write_text(commit)
    (repo / "blobs").mkdir()
    for i, f in enumerate(["config.json", "model.safetensors"]):
        shutil.copy(MODEL / f, repo / f"blobs/b{i}")
        (snap / f).symlink_to(f"../../blobs/b{i}")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    jb = jukebox_rs.Jukebox("test/tiny")
    assert jb.model_dir.endswith(commit)
    x = np.zeros(4096, dtype=np.float32)
    assert len(jb.encode(x, 2)) == 32
    with pytest.raises(jukebox_rs.JukeboxError, match="huggingface-cli download test/absent"):
        jukebox_rs.Jukebox("test/absent")


def test_the_gil_is_released_while_the_model_computes(jb, tmp_path):
    import threading
    import time

    ticks = []
    stop = threading.Event()

    def tick():
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    t = threading.Thread(target=tick)
    t.start()
    t0 = time.perf_counter()
    jb.sample(tmp_path / "g", 1.9, takes=2, seed=3, levels="all")
    busy = time.perf_counter() - t0
    stop.set()
    t.join()
    # A thread that needs the GIL kept ticking through most of the sampling.
    assert busy > 0.2
    assert len(ticks) > busy * 200, (len(ticks), busy)


def test_a_study_from_python_writes_the_cli_report(tmp_path):
    jb = jukebox_rs.Jukebox(str(ROOT / "models/default"))
    s = jb.study(tmp_path / "st", genres=["breakbeat"], artists=["unknown"], seeds=1,
                 prompt_seconds=1.0, seconds=1.5, levels="top", controls=False)
    assert s["report"] and Path(s["report"]).is_file()
    assert s["groups_run"] >= 1 and s["groups_skipped"] == 0
    for f in ["plan.toml", "metrics.csv", "claims.csv", "label_ranking.csv"]:
        assert (tmp_path / "st" / f).is_file(), f
    # Again: everything is done, nothing reruns.
    again = jb.study(tmp_path / "st", genres=["breakbeat"], artists=["unknown"], seeds=1,
                     prompt_seconds=1.0, seconds=1.5, levels="top", controls=False)
    assert again["groups_run"] == 0
