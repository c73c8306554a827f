"""Which feature index belongs to a voice, judged by RVC's file names and the index's width.

RVC names the index it trains `added_IVF<n>_Flat_nprobe_<k>_<name>_<version>.index`
(and the centroid-only one `trained_…`, useless for retrieval); voices are saved as
`<name>.pth`, Applio's as `<name>_<epochs>e_<steps>s.pth`. An index can only serve a
voice whose content features have its width (256 for v1, 768 for v2).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..synth.configs import content_dim
from ..synth.index import FeatureIndex, FeatureIndexError

_RVC_INDEX = re.compile(r"(?:added|trained)_IVF\d+_Flat_nprobe_\d+_(?P<name>.+?)_(?P<version>v[12])", re.IGNORECASE)
_EPOCH_SUFFIX = re.compile(r"(?:_\d+e_\d+s|_e\d+_s\d+|_\d+e)$", re.IGNORECASE)


@dataclass(frozen=True)
class IndexChoice:
    best: Path | None  # the index to attach, None when no candidate fits
    others: tuple[Path, ...] = ()  # fitting candidates not chosen, best first
    unfit: tuple[str, ...] = ()  # one line per candidate refused (wrong width, not an index)


def index_voice_name(index: Path) -> tuple[str | None, str | None]:
    """(voice name, version) from an RVC index file name; (None, None) when it is not named RVC's way."""
    match = _RVC_INDEX.fullmatch(index.stem)
    return (match["name"], match["version"].lower()) if match else (None, None)


def _plain(name: str) -> str:
    return re.sub(r"[\s_\-.]+", "", name).lower()


def voice_stem(model: Path) -> str:
    """The voice's name as its index would carry it: the file stem without an epoch/step suffix."""
    return _EPOCH_SUFFIX.sub("", model.stem)


def name_score(model: Path, version: str, index: Path) -> int:
    """Higher is a better match by name: RVC's name equal (6), one name inside the other (4),
    the index merely mentions the voice (2); +1 when the version tag agrees; RVC's `added_` form first."""
    name, tag = index_voice_name(index)
    voice = _plain(voice_stem(model))
    score = 0
    if name is not None:
        theirs = _plain(name)
        score = 6 if theirs == voice else 4 if voice and (voice in theirs or theirs in voice) else 0
        score += 1 if tag == version else 0
    elif voice and voice in _plain(index.stem):
        score = 2
    return score


def pair_index(model: Path, version: str, candidates: Iterable[Path]) -> IndexChoice:
    """Choose among `candidates` the index for `model` (an RVC `version` voice).

    Candidates that are not usable faiss indexes (trained-only ones included) or whose
    width does not fit the voice are listed in `unfit`; of the rest the best match by
    name wins (ties: the larger index), the others are returned for the user to see.
    """

    want = content_dim(version)
    fitting: list[tuple[int, int, Path]] = []
    unfit: list[str] = []
    for path in candidates:
        try:
            index = FeatureIndex.load(path)
        except FeatureIndexError as e:
            unfit.append(str(e))
            continue
        if index.dim != want:
            unfit.append(f"{path.name}: {index.dim}-d features, the {version} voice {model.name} needs {want}-d")
            continue
        fitting.append((name_score(model, version, path), index.size, path))
    fitting.sort(key=lambda t: (-t[0], -t[1], t[2].name))
    paths = [p for _, _, p in fitting]
    return IndexChoice(paths[0] if paths else None, tuple(paths[1:]), tuple(unfit))
