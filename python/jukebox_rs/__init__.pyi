from os import PathLike
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

__version__: str

Path = Union[str, PathLike]
Progress = Callable[[Dict[str, int]], None]
"""Called as tokens are sampled with {level, window, windows, tokens, tokens_total}."""

class JukeboxError(Exception):
    """A clear error from jukebox-rs (bad input, a missing file, a model that does not fit)."""

class UnknownLabelError(JukeboxError):
    """An artist or genre the model does not know."""
    name: str
    nearest: List[str]
    """The closest names the model knows, best first (empty for a model with numeric ids only)."""

class CheckpointError(JukeboxError):
    """A checkpoint whose tensors do not match the model (every key is named in the message)."""

class AudioError(JukeboxError):
    """Audio that cannot be decoded or used: corrupt, unsupported, empty or unreadable."""

class RunInterrupted(JukeboxError):
    """A run stopped before it finished; what it did is saved and resumes."""

class Takes:
    run_dir: str
    sample_rate: int
    audio: Dict[int, List[npt.NDArray[np.float32]]]
    """level -> one float32 array per take sampled at that level."""
    codes: Dict[int, List[npt.NDArray[np.int64]]]
    """level -> one int64 array of codes per take."""
    takes: Dict[int, List[int]]
    """level -> which takes (indices into the run's items) the rows are."""

class Jukebox:
    sample_rate: int
    model_dir: str
    def __init__(self, model: Path) -> None: ...
    def sample(
        self,
        run_dir: Path,
        seconds: float,
        *,
        prompt: Optional[Path] = None,
        prompt_seconds: Optional[float] = None,
        genre: Union[None, str, Sequence[str]] = None,
        artist: str = "unknown",
        takes: int = 1,
        seed: int = 0,
        temperature: float = 0.99,
        top_k: int = 0,
        top_p: float = 0.0,
        levels: str = "all",
        total_seconds: Optional[float] = None,
        dtype: str = "f32",
        progress: Optional[Progress] = None,
    ) -> Takes:
        """`dtype`: how the priors hold their dense weights (f32, f16, bf16, or q8: int8 with a
        scale per output, a quarter of the memory), as `jukebox sample --dtype`."""
        ...
    def resume(self, run_dir: Path, *, progress: Optional[Progress] = None) -> Takes: ...
    def continue_take(
        self,
        run_dir: Path,
        take: int,
        seconds: float,
        dst: Path,
        *,
        takes: int = 1,
        seed: int = 0,
        progress: Optional[Progress] = None,
    ) -> Takes: ...
    def upsample(
        self,
        run_dir: Path,
        takes: Sequence[int],
        *,
        levels: Optional[Sequence[int]] = None,
        progress: Optional[Progress] = None,
    ) -> Takes: ...
    def study(
        self,
        out: Path,
        *,
        genres: Sequence[str],
        artists: Sequence[str],
        seeds: int = 2,
        seed: int = 0,
        prompt: Optional[Path] = None,
        prompt_seconds: Optional[float] = None,
        seconds: Optional[float] = None,
        levels: Optional[str] = None,
        temperature: Optional[float] = None,
        controls: bool = True,
        rank: bool = True,
        dtype: Optional[str] = None,
    ) -> Dict[str, object]:
        """A genre x artist x seed study (as `jukebox study`): {dir, report, groups_run, groups_skipped}."""
        ...
    def encode(self, audio: npt.NDArray[np.float32], level: int = 2) -> npt.NDArray[np.int64]: ...
    def decode(self, codes: npt.NDArray[np.int64], level: int = 2) -> npt.NDArray[np.float32]: ...
    def rank_labels(
        self, prompt: Path, *, prompt_seconds: Optional[float] = None, artists: bool = False
    ) -> Dict[str, object]: ...

def load_audio(path: Path) -> Tuple[npt.NDArray[np.float32], List[str]]: ...
