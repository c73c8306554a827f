"""One training run from a folder of recordings to the output files (what `rvclora-train` does)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..errors import MissingAssetError, OutputExistsError, UsageError
from ..library.embedders import content_encoder_path
from ..library.home import Home
from ..library.voice_library import AdapterSlot, VoiceDefaults, VoiceEntry, write_voice_json
from ..lora import extract_adapter, save_adapter
from ..synth.content_encoder import load_content_encoder
from ..synth.device import resolve_device
from ..synth.file_hash import sha256_file
from ..synth.heap import trim
from ..synth.index import build_index
from ..synth.output_file import check_output_path, staged_output
from ..synth.pitch import make_pitch_estimator
from ..synth.pitch_options import F0_METHODS, resolve_f0_method
from ..synth.voice_file import save_voice
from .config import PreprocessConfig, TrainConfig, digest
from .dataset import DataError, SegmentData, split_items
from .discriminators import MultiPeriodDiscriminator, light_training, load_discriminator
from .distributed import World, start, stop, world_from_env
from .feature_cache import FeatureExtractor, build_cache, load_item
from .generator import GeneratorSetup, build_generator, checkpoint_decoder
from .loop import quality_metrics, run
from .mel import SpecConfig
from .memory import discriminator_mode, drop_weight_norm_caches, precision_dtype, uses_checkpointing
from .preprocess import find_audio_files, preprocess_file
from .report import TrainReport, peak_memory_mb, write_preprocess_report
from .run_lock import training_lock

CREATED_BY = "rvclora-train"
VOICE_JSON = "voice.json"


@dataclass(frozen=True)
class TrainOptions:
    data: Path
    base: Path
    out: Path
    base_d: Path | None = None
    work_dir: Path | None = None
    cache_dir: Path | None = None
    f0_method: str = "auto"
    device: str = "auto"
    index: bool = False
    resume: bool = False
    overwrite: bool = False
    hubert: Path | None = None
    rmvpe: Path | None = None
    progress: bool = True
    train: TrainConfig = field(default_factory=TrainConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)

    @property
    def work(self) -> Path:
        return self.work_dir if self.work_dir is not None else self.out.parent / f"{self.out.stem}.train"

    @property
    def cache(self) -> Path:
        return self.cache_dir if self.cache_dir is not None else self.work / "cache"

    @property
    def index_path(self) -> Path:
        return self.out.with_suffix(".index")

    @property
    def voice_json(self) -> Path:
        return self.out.parent / VOICE_JSON


def _bar(enabled: bool):
    if not enabled:
        return None
    return lambda **kw: tqdm(**{"unit": "step", "dynamic_ncols": True, "leave": False, **kw})


def check_options(o: TrainOptions) -> None:
    """Everything that can be refused before any work starts (one-line ValueErrors)."""
    t = o.train
    if not o.data.is_dir():
        raise UsageError(f"{o.data}: not a folder; DATA_DIR must be a folder of recordings")
    if not o.base.is_file():
        raise MissingAssetError(f"{o.base}: base model not found (a pretrained G*.pth or a voice .pth)")
    if o.base_d is not None and not o.base_d.is_file():
        raise MissingAssetError(f"{o.base_d}: discriminator not found (the D*.pth that goes with the base)")
    want = ".pth" if t.full else ".safetensors"
    if o.out.suffix.lower() != want:
        what = "--full writes an RVC voice model" if t.full else "the adapter is a safetensors file"
        raise UsageError(f"--out {o.out}: {what}; use a {want} file name")
    for name, v, lo in (("--rank", t.rank, 1), ("--batch-size", t.batch_size, 1), ("--epochs", t.epochs, 1), ("--save-every", t.save_every, 1), ("--eval-every", t.eval_every, 1), ("--keep-checkpoints", t.keep_checkpoints, 1)):
        if v < lo:
            raise UsageError(f"{name} {v}: must be at least {lo}")
    if t.micro_batch is not None and not 1 <= t.micro_batch <= t.batch_size:
        raise UsageError(f"--micro-batch {t.micro_batch}: must be between 1 and --batch-size ({t.batch_size})")
    if t.max_steps is not None and t.max_steps < 1:
        raise UsageError(f"--max-steps {t.max_steps}: must be at least 1")
    if not (t.generator_lr > 0 and t.lr_d > 0):
        raise UsageError("--lr: must be positive")
    if not 0 < t.val_fraction < 1:
        raise UsageError(f"--val-fraction {t.val_fraction}: must be between 0 and 1")
    if t.patience < 0:
        raise UsageError(f"--patience {t.patience}: must be 0 (off) or more")
    precision_dtype(t, resolve_device(o.device))  # refuses --fp16 on the CPU, unknown names
    discriminator_mode(t, o.base_d is not None)
    if o.f0_method not in F0_METHODS:
        raise UsageError(f"--f0-method {o.f0_method}: choose one of {', '.join(F0_METHODS)}")
    outputs = [o.out, o.voice_json] + ([o.index_path] if o.index else [])
    owned = _owned_outputs(o.work) if o.resume else set()
    for p in outputs:
        mine = o.overwrite or (p.exists() and str(p.resolve()) in owned)
        try:
            check_output_path(p, overwrite=mine, make_folder=True)
        except OutputExistsError:
            raise OutputExistsError(f"{p}: already exists; pass --overwrite to replace it (or choose another --out)") from None
    home = Home.from_env()
    hubert, rmvpe = o.hubert or home.hubert, o.rmvpe or home.rmvpe
    if not hubert.exists():
        raise MissingAssetError(f"content encoder not found at {hubert}; run `rvclora assets download` or pass --hubert PATH")
    if o.f0_method == "rmvpe" and not rmvpe.is_file():
        raise MissingAssetError(f"rmvpe.pt not found at {rmvpe}; run `rvclora assets download`, pass --rmvpe PATH or use --f0-method pm")
    if not find_audio_files(o.data, exclude=o.work):
        raise DataError(f"{o.data}: no audio files (wav, flac, ogg, mp3) in this folder or below")


def _owned_outputs(work: Path) -> set[str]:
    """Outputs an earlier (interrupted or finished) run of this work dir wrote or claimed."""
    try:
        return set(json.loads((work / "run.json").read_text()).get("outputs", []))
    except (OSError, ValueError):
        return set()


def _resolve_f0_method(o: TrainOptions, f0: bool, home: Home) -> str:
    if not f0:
        return "none"
    return resolve_f0_method(o.f0_method, o.rmvpe or home.rmvpe)


@dataclass(frozen=True)
class Hooks:
    """What a caller that watches a run (the panel's training job) hears and can ask."""

    on_preprocessed: Callable[[str], None] | None = None  # the preprocessing report text
    on_step: Callable[[int, int, dict[str, float]], None] | None = None  # step, total, losses
    should_stop: Callable[[], bool] | None = None  # True: checkpoint now and stop (TrainingCancelled)


def train_voice(o: TrainOptions, say=print, world: World | None = None, hooks: Hooks | None = None) -> TrainReport | None:
    """Train; with several processes (torchrun) each calls this, and only rank 0 writes
    files and returns the report (the others return None)."""
    world = world or world_from_env()
    hooks = hooks or Hooks()
    check_options(o)
    device = start(world, resolve_device(o.device))
    try:
        if not world.main:
            return _train_voice(o, lambda _msg: None, world, device, Hooks(should_stop=hooks.should_stop))
        # One writer per output and work dir: a second run into the same place is refused here,
        # before it writes anything (a killed run's lock is taken over).
        with training_lock(o.out, o.work):
            return _train_voice(o, say, world, device, hooks)
    finally:
        stop(world)


def _train_voice(o: TrainOptions, say, world: World, device: torch.device, hooks: Hooks) -> TrainReport | None:
    home = Home.from_env()
    work = o.work
    setup = build_generator(o.base, o.train, device)
    v = setup.voice
    spec = SpecConfig.for_model(v.sr, v.config.spec_channels, v.config.hop)
    hubert = o.hubert or content_encoder_path(home, v.meta.embedder)  # an Applio base's own encoder, else ContentVec
    method = _resolve_f0_method(o, v.f0, home)
    rmvpe = o.rmvpe or home.rmvpe
    # Every check passed: only now does anything appear on disk.
    work.mkdir(parents=True, exist_ok=True)
    o.out.parent.mkdir(parents=True, exist_ok=True)
    if world.main:
        (work / "run.json").write_text(json.dumps({"outputs": [str(p.resolve()) for p in (o.out, o.voice_json, o.index_path)], "base": str(o.base)}))

    # ---- preprocessing and features (cached per file content)
    min_samples = (setup.model.segment_size + 8) * spec.hop  # a training slice plus alignment slack
    hubert_id = sha256_file(hubert) if hubert.is_file() else digest(sorted(str(p) for p in hubert.iterdir()))
    key = digest({"pre": o.preprocess.key(), "sr": v.sr, "version": v.version, "f0": method, "hubert": hubert_id, "spec": spec.__dict__, "min": min_samples})
    files = find_audio_files(o.data, exclude=work)  # not empty: check_options made sure

    def extractor():
        enc = load_content_encoder(hubert, version=v.version, device=device)
        pitch = make_pitch_estimator(method, rmvpe_path=rmvpe, device=device) if v.f0 else None
        return FeatureExtractor(enc, pitch, spec, device=device)

    progress = _bar(o.progress and world.main)
    wrap = (lambda it: progress(iterable=it, desc="preprocessing", unit="file")) if progress else (lambda it: it)

    def prepare(p: Path):
        return preprocess_file(p, v.sr, o.preprocess, min_samples=min_samples)

    if world.distributed:  # each process extracts its share; then all read the filled cache
        build_cache(world.share(files), o.cache, key, prepare, extractor, progress=wrap)
        world.barrier()
    cache = build_cache(files, o.cache, key, prepare, extractor, progress=wrap)
    text = write_preprocess_report(work / "preprocess_report.txt", len(files), cache.skipped, len(cache.items)) if world.main else ""
    if hooks.on_preprocessed is not None:
        hooks.on_preprocessed(text)
    if cache.skipped:
        say(text.rstrip())
    if not cache.items:
        raise DataError(f"{o.data}: no usable audio; all {len(files)} file(s) were skipped (see {work / 'preprocess_report.txt'})")
    say(f"{len(cache.items)} segments from {len(files) - len(cache.skipped)} file(s) ({cache.hits} cached, {cache.misses} processed)")
    train_items, val_items = split_items(cache.items, o.train.val_fraction, o.train.max_val_segments, o.train.seed)
    train_data, val_data = SegmentData(train_items, spec.hop), SegmentData(val_items, spec.hop)

    # ---- discriminator: pretrained when given, else fresh (seeded)
    torch.manual_seed(o.train.seed)
    d = load_discriminator(o.base_d, v.version) if o.base_d else MultiPeriodDiscriminator(v.version)
    if discriminator_mode(o.train, o.base_d is not None) == "light":
        light_training(d)
    if uses_checkpointing(o.train):
        checkpoint_decoder(setup.model)
        d.checkpointing = True
    drop_weight_norm_caches(d)  # D is thrown away: no restore
    restore_g = drop_weight_norm_caches(setup.model)
    trim()  # the checkpoint dicts and the extractor are gone

    amp_dtype = precision_dtype(o.train, device)
    try:
        result = run(setup, d, train_data, val_data, o.train, spec, device, work, resume=o.resume, progress=progress, say=say, world=world, amp_dtype=amp_dtype,
                     on_step=hooks.on_step, should_stop=hooks.should_stop)
    finally:
        restore_g()
    del d  # thrown away: only the generator's adapter is the product
    if not world.main:
        return None

    # ---- outputs
    pitch = None
    if v.f0 and method != "none":
        pitch = make_pitch_estimator(method, rmvpe_path=rmvpe, device=device)
    metrics = quality_metrics(setup, val_data, spec, device, pitch)
    written = _write_model(o, setup)
    index = _write_index(o, train_items + val_items) if o.index else None
    _write_voice_json(o, setup, method, index, training_f0(train_items + val_items))
    report = TrainReport(
        adapter=str(written), adapter_bytes=written.stat().st_size, index=str(index) if index else None,
        voice_json=str(o.voice_json), mode="full" if o.train.full else "lora",
        trainable_parameters=sum(p.numel() for p in setup.trainable().values()), steps=result.steps,
        epochs=result.epochs_done, stopped_early=result.stopped_early, best_step=result.best_step,
        val_mel_start=result.first_val_mel, val_mel_best=result.best_val_mel, steps_per_s=result.steps_per_s,
        peak_memory_mb=peak_memory_mb(device), train_segments=len(train_items), val_segments=len(val_items),
        skipped_files=[{"path": str(s.path), "reason": s.reason} for s in cache.skipped], processes=world.size, **metrics,
    )
    report.write(work / "report.json")
    return report


def _write_model(o: TrainOptions, setup: GeneratorSetup) -> Path:
    # overwrite: the output was checked (or owned by this run) before training started
    with staged_output(o.out, overwrite=True) as tmp:
        if o.train.full:
            v = setup.voice
            save_voice(tmp, setup.model, config=v.config, version=v.version, f0=v.f0, info=f"{CREATED_BY} full fine-tune")
        else:
            adapter = extract_adapter(setup.model, setup.lora, base=setup.base, targets=o.train.targets, extras=o.train.unfreeze, created_by=CREATED_BY)
            save_adapter(tmp, adapter)
    return o.out


def _write_index(o: TrainOptions, items) -> Path:
    """RVC's feature index of the training content features (50 fps, as RVC indexes them)."""
    feats = np.concatenate([load_item(it)["phone"][::2] for it in items])  # undo the x2 repeat
    with staged_output(o.index_path, overwrite=True) as tmp:  # checked before training started
        build_index(feats, tmp)
    return o.index_path


def training_f0(items) -> float:
    """Median f0 (Hz) of the voiced training frames: the voice's typical pitch (0 without pitch)."""
    f0 = [load_item(it).get("pitchf") for it in items]
    voiced = np.concatenate([f[f > 0] for f in f0 if f is not None] or [np.zeros(0)])
    return round(float(np.median(voiced)), 1) if len(voiced) else 0.0


def _write_voice_json(o: TrainOptions, setup: GeneratorSetup, method: str, index: Path | None,
                      typical_f0: float = 0.0) -> None:
    """The voice library's `voice.json` beside the output: per-voice defaults for `rvclora convert`,
    `rvclora run` and the panel; the folder can be copied into RVCLORA_HOME/voices as it is."""
    full = o.train.full
    defaults = VoiceDefaults(
        pitch=0.0,  # the adapter learned the voice at the pitch it was recorded
        f0_method=method if method != "none" else "auto",
        index_rate=0.75 if index else 0.0,  # RVC's default blend when there is an index
        protect=0.33,
        typical_f0=typical_f0,
    )
    write_voice_json(VoiceEntry(
        name=o.out.stem,
        folder=o.voice_json.parent,
        model=o.out.name if full else None,
        base=None if full else str(o.base.resolve()),
        index=index.name if index else None,
        adapters=() if full else (AdapterSlot(o.out.name, 1.0, True),),
        defaults=defaults,
    ))
