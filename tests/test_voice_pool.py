"""Voice pool and live voice switching: shared models, LRU, and a switch that leaves no gap.

Tiny real-format models (two bases, two adapters on the first); the engine runs
through its file driver, so the switch lands between two blocks of a real stream.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from rvclora.realtime import block_converter, voice_pool
from rvclora.realtime.engine import BlockProcessor, Engine
from rvclora.realtime.settings import EngineSettings
from rvclora.realtime.voice_pool import PoolConfig, VoicePool, VoiceSpec, VoiceSwitcher
from rvclora.synth import content_encoder
from tests.conftest import speech_path
from tests.hubert_fixtures import tiny_hubert_config, write_hubert_file
from tests.rvc_fixtures import make_adapter_file, make_voice_file

SETTINGS = EngineSettings(f0_method="pm", context_ms=300, noise_scale=0.0, block_ms=80)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("pool")
    base = make_voice_file(d, version="v1", sr=40000, f0=True, seed=0, name="base.pth")
    return {
        "dir": d,
        "base": base,
        "copy": _copy(base, d / "copy_of_base.pth"),
        "other": make_voice_file(d, version="v1", sr=40000, f0=True, seed=1, name="other.pth"),
        "third": make_voice_file(d, version="v1", sr=40000, f0=True, seed=2, name="third.pth"),
        "a1": make_adapter_file(base, d / "a1.safetensors", seed=3),
        "a2": make_adapter_file(base, d / "a2.safetensors", seed=4),
        "hubert": write_hubert_file(d / "hubert_v1.pt", tiny_hubert_config("v1")),
    }


def _copy(src, dst):
    dst.write_bytes(src.read_bytes())
    return dst


def _pool(files, capacity=3) -> VoicePool:
    return VoicePool(PoolConfig(hubert=str(files["hubert"]), rmvpe=str(files["dir"] / "absent.pt"), capacity=capacity))


def _spec(files, model="base", *adapters, name=None) -> VoiceSpec:
    return VoiceSpec(model=str(files[model]), adapters=tuple((str(files[a]), 1.0) for a in adapters), name=name or model)


@pytest.fixture
def no_random_noise(monkeypatch):
    # Deterministic synthesis, so a run can be compared sample for sample with another.
    monkeypatch.setattr(torch, "randn_like", lambda x, *a, **k: torch.zeros_like(x))
    monkeypatch.setattr(torch, "rand", lambda *s, **k: torch.zeros(*s, **{a: b for a, b in k.items() if a in ("device", "dtype")}))


@pytest.fixture
def counted_loads(monkeypatch):
    """Counts reads of synthesizer and content-encoder files, whoever asks for them."""
    counts = {"synth": 0, "encoder": 0}
    real_synth, real_enc = block_converter._load_torch_synth, None
    real_enc = content_encoder.load_content_encoder

    def synth(*a, **k):
        counts["synth"] += 1
        return real_synth(*a, **k)

    def enc(*a, **k):
        counts["encoder"] += 1
        return real_enc(*a, **k)

    monkeypatch.setattr(block_converter, "_load_torch_synth", synth)
    # every place the pool loads an encoder from: the count is what the pool shares
    monkeypatch.setattr(voice_pool, "load_content_encoder", enc)
    monkeypatch.setattr(block_converter, "load_content_encoder", enc)
    return counts


# --------------------------------------------------------------------------- the pool


def test_same_base_voices_share_one_model_and_encoder(files, counted_loads):
    pool = _pool(files)
    a = pool.source(_spec(files, "base", "a1"))
    w_a1 = a.synth.dec.conv_pre.weight.detach().clone()
    b = pool.source(_spec(files, "copy", "a2"))  # a copy of the same base file is the same base
    assert b is a and counted_loads == {"synth": 1, "encoder": 1}
    assert [x.source for x, _ in b.adapters] == ["a2.safetensors"]
    assert not torch.equal(w_a1, b.synth.dec.conv_pre.weight)  # the other adapter is merged now
    c = pool.source(_spec(files, "other"))
    assert c is not a and c.encoder is a.encoder and c._estimators is a._estimators
    assert counted_loads == {"synth": 2, "encoder": 1}  # another base: its synthesizer only


def test_lru_keeps_the_recent_voices_and_reloads_an_evicted_one(files, counted_loads):
    pool = _pool(files, capacity=2)
    base = pool.source(_spec(files, "base"))
    pool.source(_spec(files, "other"))
    pool.source(_spec(files, "base"))  # touch: now the most recent
    pool.source(_spec(files, "third"))  # evicts "other", the least recent
    assert counted_loads["synth"] == 3
    assert pool.source(_spec(files, "base")) is base and counted_loads["synth"] == 3
    pool.source(_spec(files, "other"))
    assert counted_loads == {"synth": 4, "encoder": 1}


def test_bad_adapter_is_a_one_line_error_before_anything_changes(files, tmp_path):
    pool = _pool(files)
    wrong = make_adapter_file(files["other"], tmp_path / "for_other.safetensors", seed=5)
    source = pool.source(_spec(files, "base", "a1"))
    engine = Engine(source, SETTINGS)
    switcher = VoiceSwitcher(pool, report=lambda *a: None, current=source)
    with pytest.raises(ValueError) as err:
        switcher.switch(engine, VoiceSpec(model=str(files["base"]), adapters=((str(wrong), 1.0),)))
    assert "\n" not in str(err.value)
    assert [x.source for x, _ in source.adapters] == ["a1.safetensors"]


# --------------------------------------------------------------------------- switching a running engine


def _zero_run_ms(x, sr):
    silent = np.concatenate([[0], (np.abs(x) < 1e-7).astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(silent))
    runs = edges[1::2] - edges[::2]
    return 1000.0 * (runs.max() if len(runs) else 0) / sr


def _matches_shifted(x, ref, *, start, block, shift=SETTINGS.search_ms * 40 + 1):
    """The worst, over blocks from `start`, of the best normalised correlation with `ref` within ±shift."""
    worst, compared = 1.0, 0
    for i in range(start, len(x) - block - shift, block):
        compared += 1
        seg = x[i : i + block].astype(np.float64)
        ref_seg = ref[i - shift : i + block + shift].astype(np.float64)
        num = np.correlate(ref_seg, seg, mode="valid")
        energy = np.convolve(ref_seg**2, np.ones(block), mode="valid")
        worst = min(worst, float(np.max(num / np.sqrt(energy * np.sum(seg**2) + 1e-12))))
    assert compared >= 2, f"only {compared} block(s) after sample {start} to compare: the switch came too late"
    return worst


def _run_with_switch(files, pool, first: VoiceSpec, second: VoiceSpec, after_blocks=12, hold_s=0.0):
    """Convert the speech file, switching voice once the engine has made `after_blocks` blocks."""
    source = pool.source(first)
    engine = Engine(source, SETTINGS)
    events = []
    switcher = VoiceSwitcher(pool, report=lambda k, m: events.append((k, m)), current=source)
    kinds = []

    def switch():
        while engine.stats.blocks < after_blocks:
            time.sleep(0.001)
        if hold_s:
            time.sleep(hold_s)
        kinds.append(switcher.switch(engine, second))
        kinds.append(engine.stats.blocks)

    t = threading.Thread(target=switch)
    t.start()
    out = engine.process_file(speech_path())
    t.join()
    switcher.wait()
    _run_with_switch.last = (source, engine)
    return out, kinds, [e for e in engine.drain_events() if e.kind == "voice"], events


def _alone(files, spec):
    return Engine(_pool(files).source(spec), SETTINGS).process_file(speech_path())


def test_adapter_switch_on_one_base_is_seamless(files, counted_loads, no_random_noise, monkeypatch):
    # The file driver feeds faster than real time; slowing each block a little keeps the
    # switch well inside the file on a fast machine.
    _slow_blocks(monkeypatch, 0.004)
    a, b = _alone(files, _spec(files, "base", "a1")), _alone(files, _spec(files, "base", "a2"))
    loads_before = dict(counted_loads)
    pool = _pool(files)
    out, kinds, voice_events, problems = _run_with_switch(files, pool, _spec(files, "base", "a1"), _spec(files, "base", "a2"))
    assert kinds[0] == "adapters" and len(voice_events) == 1 and not problems
    assert counted_loads["synth"] - loads_before["synth"] == 1  # the pool's one load; the switch loaded nothing
    assert counted_loads["encoder"] - loads_before["encoder"] == 1
    # Nothing changed in place under the worker: the first voice's model still has its adapter,
    # the engine plays a re-adapted copy that shares the content encoder.
    first, engine = _run_with_switch.last
    playing = engine.source
    assert playing is not first and [x.source for x, _ in first.adapters] == ["a1.safetensors"]
    assert playing.encoder is first.encoder and playing.synth is not first.synth
    assert [x.source for x, _ in playing.adapters] == ["a2.safetensors"]
    sr, block = 40000, SETTINGS.block_ms * 40
    # Before the seam the output is voice a1's, sample for sample; from the next block on
    # it is voice a2's (SOLA may have settled on another alignment at the seam: up to
    # `search` samples of shift). No gap, no restart.
    first_diff = int(np.flatnonzero(np.abs(out - a) > 1e-6)[0])
    assert 5 * block < first_diff < len(out) - 5 * block, (first_diff, len(out))
    # (≥ 0.96, not 1: SOLA may realign once, crossfading two shifted copies; 0.966 seen with the
    # seam at 1.48 s, where an adapter swap without a warm-up lands.)
    assert _matches_shifted(out, b, start=first_diff + block, block=block) > 0.96
    assert _matches_shifted(out, a, start=first_diff + block, block=block) < 0.9  # a2 really differs
    speech = slice(sr // 4, len(out) - sr // 4)
    assert _zero_run_ms(out[speech], sr) < 10 and np.isfinite(out).all()


def test_base_switch_loads_in_background_and_old_voice_plays_until_ready(files, no_random_noise, monkeypatch):
    # The file lasts ≈ 1.8 s of wall time: the 0.5 s load lands well inside it, on a busy machine too.
    _slow_blocks(monkeypatch, 0.05)
    old, new = _spec(files, "base", "a1"), _spec(files, "other")
    a, b = _alone(files, old), _alone(files, new)
    pool = _pool(files)
    # Loading the new base takes a while: the old voice must keep converting meanwhile.
    real_source = pool.source

    def slow_source(spec):
        if spec.model == new.model:
            time.sleep(0.5)
        return real_source(spec)

    monkeypatch.setattr(pool, "source", slow_source)
    out, kinds, voice_events, problems = _run_with_switch(files, pool, old, new, after_blocks=5)
    assert kinds[0] == "loading" and len(voice_events) == 1 and not problems
    sr, block = 40000, SETTINGS.block_ms * 40
    first_diff = int(np.flatnonzero(np.abs(out - a) > 1e-6)[0])
    # The old voice went on through the load (0.5 s of wall time: many blocks, even on a busy machine).
    assert first_diff > (kinds[1] + 3) * block, (first_diff, kinds)
    # From the block after the seam the new voice sounds as it does alone (up to SOLA's
    # alignment): it took over the old voice's input window and pitch, so no cold start.
    # (≥ 0.97, not 1: SOLA may realign once, crossfading two shifted copies.)
    assert _matches_shifted(out, b, start=first_diff + block, block=block) > 0.97
    assert _matches_shifted(out, a, start=first_diff + block, block=block) < 0.9
    speech = slice(sr // 4, len(out) - sr // 4)
    assert _zero_run_ms(out[speech], sr) < 10 and np.isfinite(out).all()


def test_failed_background_load_keeps_the_current_voice(files, tmp_path):
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"not a checkpoint" * 100)
    pool = _pool(files)
    out, kinds, voice_events, problems = _run_with_switch(files, pool, _spec(files, "base"), VoiceSpec(model=str(broken), name="broken"), after_blocks=3)
    assert kinds[0] == "loading" and voice_events == []
    assert len(problems) == 1 and problems[0][0] == "warning" and "broken" in problems[0][1] and "\n" not in problems[0][1]
    assert np.sqrt(np.mean(out**2)) > 1e-3


def test_new_voice_takes_over_the_input_history(files):
    """A switched-in voice starts from the running window, pitch cache and SOLA tail, not from silence."""
    pool = _pool(files)
    old = BlockProcessor(pool.source(_spec(files, "base")), SETTINGS)
    rng = np.random.default_rng(0)
    for _ in range(4):
        old.process(rng.standard_normal(old.block_in).astype(np.float32) * 0.1)
    new = BlockProcessor(pool.source(_spec(files, "other")), SETTINGS)
    assert float(new.converter.window.abs().max()) == 0.0
    new.continue_from(old)
    assert torch.equal(new.converter.window, old.converter.window) and float(new.converter.window.abs().max()) > 0
    np.testing.assert_array_equal(new.converter._cache.latest(100), old.converter._cache.latest(100))
    assert new._sola is old._sola


def _slow_blocks(monkeypatch, seconds):
    real = block_converter.RVCBlockConverter.convert

    def convert(self, block, settings):
        time.sleep(seconds)
        return real(self, block, settings)

    monkeypatch.setattr(block_converter.RVCBlockConverter, "convert", convert)


def test_spec_is_one_kind_of_voice():
    with pytest.raises(ValueError):
        VoiceSpec()
    with pytest.raises(ValueError):
        VoiceSpec(builtin="deep", model="x.pth")
    assert voice_pool.load_voice(VoiceSpec(builtin="deep")).name == "deep"


def test_live_set_folders_are_keyed_by_their_manifest(files, tmp_path):
    # An exported live set is a folder: the pool keys it by its manifest (which holds every
    # file's hash), so two copies of one set are one voice and a changed set is another.
    manifest = '{"name": "v", "files": {"synth": {"sha256": "%s"}}}'
    a, b, c = (tmp_path / n for n in "abc")
    for folder, digest in ((a, "1" * 64), (b, "1" * 64), (c, "2" * 64)):
        folder.mkdir()
        (folder / "live.json").write_text(manifest % digest)
    pool = _pool(files)
    key = pool.key(VoiceSpec(model=str(a)))
    assert key is not None
    assert pool.key(VoiceSpec(model=str(b))) == key
    assert pool.key(VoiceSpec(model=str(a / "live.json"))) == key
    assert pool.key(VoiceSpec(model=str(c))) != key
