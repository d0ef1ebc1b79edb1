"""OpenAI Jukebox in Rust, from Python.

    import jukebox_rs
    jb = jukebox_rs.Jukebox("models/default")          # or a hub id from the HF cache
    takes = jb.sample("runs/amen", 8.0, prompt="data/prompts/amen.wav",
                      prompt_seconds=3.504, genre="breakbeat", takes=2, levels="top")
    takes.audio[2][0]                                   # float32 samples of take 0, top level

Every call that samples writes a run directory the `jukebox` CLI understands
(`jukebox sample --resume/--continue`, `jukebox upsample`), and the other way round.

Errors are `JukeboxError`, or one of its subclasses where a program may want to handle the case:
`UnknownLabelError` (its `nearest` lists the closest names the model knows), `CheckpointError`,
`AudioError` and `RunInterrupted` (the run is saved and resumes).
"""

from ._native import (
    AudioError,
    CheckpointError,
    Jukebox,
    JukeboxError,
    RunInterrupted,
    Takes,
    UnknownLabelError,
    __version__,
    load_audio,
)

__all__ = [
    "Jukebox",
    "JukeboxError",
    "UnknownLabelError",
    "CheckpointError",
    "AudioError",
    "RunInterrupted",
    "Takes",
    "load_audio",
    "__version__",
]
