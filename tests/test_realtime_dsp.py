"""Pure DSP of the live engine: ring buffer, SOLA, gate, pitch cache, resampler, loudness."""

import threading
import time

import numpy as np
import pytest
import soxr

from rvclora.realtime.gate import NoiseGate
from rvclora.realtime.latency import chirp, find_delay
from rvclora.realtime.loudness import rms_mix
from rvclora.realtime.pitch_cache import PitchCache
from rvclora.realtime.resample import StreamResampler
from rvclora.realtime.ring_buffer import RingBuffer
from rvclora.realtime.sola import SolaConfig, SolaCrossfader, fade_windows, find_offset
from rvclora.synth.levels import framed_rms

SR = 48000
ZC = SR // 100  # 10 ms


# -- ring buffer ---------------------------------------------------------------------

def test_ring_buffer_wraparound_keeps_order():
    rb = RingBuffer(10)
    out = np.empty(4, np.float32)
    seq = np.arange(100, dtype=np.float32)
    pos = got = 0
    collected = []
    for _ in range(20):  # write 3, read 4 alternately: indices wrap many times
        pos += rb.write(seq[pos:pos + 3])
        n = rb.read_into(out)
        collected.extend(out[:n])
        got += n
    assert collected == list(seq[:got])
    assert rb.overflows == 0


def test_ring_buffer_overflow_and_underflow_are_counted():
    rb = RingBuffer(8, channels=2)
    assert rb.write(np.ones((5, 2), np.float32)) == 5
    assert rb.write(2 * np.ones((6, 2), np.float32)) == 3
    assert rb.overflows == 3 and rb.available == 8 and rb.space == 0
    out = np.full((10, 2), 7.0, np.float32)
    assert rb.read_into(out) == 8
    assert rb.underflows == 2
    np.testing.assert_array_equal(out[:5], 1)
    np.testing.assert_array_equal(out[5:8], 2)
    np.testing.assert_array_equal(out[8:], 0)  # missing frames are silence, not stale data
    rb.write(np.ones((3, 2), np.float32))
    rb.clear()
    assert rb.available == 0 and rb.space == 8


def test_ring_buffer_rejects_wrong_shapes():
    with pytest.raises(ValueError):
        RingBuffer(8, channels=2).write(np.zeros(4, np.float32))
    with pytest.raises(ValueError):
        RingBuffer(8).write(np.zeros((4, 3), np.float32))


def test_ring_buffer_across_threads_delivers_every_frame_in_order():
    total = 100_000
    src = np.arange(total, dtype=np.float64) % 1_000_003
    received = np.empty(total)
    done = threading.Event()

    def producer():
        pos = 0
        while pos < total:
            k = min(rb.space, 97, total - pos)
            if k == 0:
                time.sleep(1e-4)  # a real producer is paced by the audio clock
                continue
            pos += rb.write(src[pos:pos + k])
        done.set()

    rb = RingBuffer(256, dtype=np.float64)
    t = threading.Thread(target=producer)
    t.start()
    got = 0
    buf = np.empty(61)
    while got < total:
        k = min(rb.available, 61, total - got)
        if k == 0:
            time.sleep(1e-4)
            continue
        n = rb.read_into(buf[:k])
        received[got:got + n] = buf[:n]
        got += n
    t.join()
    np.testing.assert_array_equal(received, src)
    assert rb.underflows == 0


# -- SOLA ---------------------------------------------------------------------------

def test_fade_in_is_a_rising_sin2():
    fi, _ = fade_windows(480)
    assert fi[0] == 0 and fi[-1] == pytest.approx(1.0) and np.all(np.diff(fi) >= 0)
    np.testing.assert_allclose(fi[240], np.sin(0.5 * np.pi * 240 / 479) ** 2, rtol=1e-6)


def test_sola_joins_an_exact_continuation_without_changing_a_sample():
    # Each call's window continues the same noise exactly, as a perfect model's would:
    # the crossfade then blends a sample with itself, so the joined stream must be the
    # input, sample for sample. A fade pair that does not sum to one, or a tail kept
    # from the wrong place, or an offset search that misses the exact match, shows here.
    block, cf, search = 3 * ZC, 2 * ZC, ZC
    x = np.random.default_rng(3).standard_normal(12 * block + cf + search).astype(np.float32)
    sola = SolaCrossfader(SolaConfig(cf, search))
    y = np.concatenate([sola.process(x[k * block: (k + 1) * block + cf + search], block) for k in range(12)])
    np.testing.assert_allclose(y, x[: 12 * block], atol=1e-6)


def test_find_offset_matches_brute_force_normalised_correlation():
    rng = np.random.default_rng(1)
    head = rng.standard_normal(600).astype(np.float32)
    tail = head[137:137 + 400] * 0.3 + 0.01 * rng.standard_normal(400).astype(np.float32)
    search = 200
    scores = [np.dot(head[k:k + 400], tail) / np.sqrt(np.dot(head[k:k + 400], head[k:k + 400]) + 1e-8)
              for k in range(search + 1)]
    assert find_offset(head, tail, search) == int(np.argmax(scores)) == 137


def _stream_through_sola(sig_fn, block, cf, search, jitter, rng, blocks=40, use_sola=True):
    """Simulate RVC's loop: each call's inference covers [cf | search | block] and starts
    up to ``search`` samples early (fractional: inference jitter), like a real model's
    window; returns the joined output and the ideal continuous signal."""
    sola = SolaCrossfader(SolaConfig(cf, search if use_sola else 0))
    out = []
    pos = 0.0  # time (samples) of the next output sample
    for _ in range(blocks):
        d = rng.uniform(0, search) if jitter else 0.0
        t = pos - d + np.arange(block + cf + search)
        out.append(sola.process(sig_fn(t).astype(np.float32), block))
        pos += block
    return np.concatenate(out)


def test_sola_rejoins_a_jittered_sine_without_seams():
    f, a = 220.0, 0.5
    block, cf, search = 3 * ZC, 2 * ZC, ZC

    def sine(t):
        return a * np.sin(2 * np.pi * f * t / SR)

    y = _stream_through_sola(sine, block, cf, search, True, np.random.default_rng(0))
    max_slope = 2 * np.pi * f * a / SR  # largest sample-to-sample change of the sine
    jumps = np.abs(np.diff(y))
    # Stated bound: no seam steps more than 1.2× the sine's own steepest step.
    assert jumps.max() <= 1.2 * max_slope
    # And the output keeps the sine's frequency: zero-crossing count over 40 blocks.
    zc = np.count_nonzero((y[:-1] < 0) & (y[1:] >= 0))
    assert abs(zc - f * len(y) / SR) <= 1

    # Nor does the level dip: crossfading two copies out of phase would cancel them.
    assert _min_local_peak(y, SR / f) >= 0.98 * a

    # Control: without the offset search the same jitter crossfades misaligned copies;
    # the sin² fade hides the step, but the partial cancellation shows as dips.
    y0 = _stream_through_sola(sine, block, cf, search, True, np.random.default_rng(0), use_sola=False)
    assert _min_local_peak(y0, SR / f) < 0.9 * a


def _min_local_peak(y, period):
    """Smallest peak |y| over windows of one period: the envelope's deepest dip."""
    w = int(np.ceil(period)) + 1
    return min(np.abs(y[i:i + w]).max() for i in range(0, len(y) - w, w // 4))


def test_crossfade_hides_a_level_step_that_a_hard_cut_shows():
    # Each "inference" comes back at a different gain (0.5 ↔ 0.35): a hard cut steps
    # the waveform at every seam; the sin² crossfade ramps it over 20 ms instead.
    f, block, cf = 220.0, 3 * ZC, 2 * ZC
    max_slope = 2 * np.pi * f * 0.5 / SR
    outs_fade, outs_cut = [], []
    sola = SolaCrossfader(SolaConfig(cf, 0))
    for i in range(10):
        gain = 0.5 if i % 2 == 0 else 0.35
        t = i * block + np.arange(block + cf)
        wav = (gain * np.sin(2 * np.pi * f * t / SR)).astype(np.float32)
        outs_fade.append(sola.process(wav, block))
        outs_cut.append(wav[:block])
    fade, cut = np.concatenate(outs_fade), np.concatenate(outs_cut)
    assert np.abs(np.diff(cut)).max() > 0.02          # the step shows
    assert np.abs(np.diff(fade)).max() <= 1.2 * max_slope


def test_sola_first_call_and_reset_pass_through():
    sola = SolaCrossfader(SolaConfig(4, 2))
    wav = np.arange(20, dtype=np.float32)
    np.testing.assert_array_equal(sola.process(wav, 10), wav[:10])
    sola.reset()
    out = np.empty(16, np.float32)
    np.testing.assert_array_equal(sola.process(wav + 1, 10, out=out), wav[:10] + 1)
    with pytest.raises(ValueError):
        sola.process(wav[:15], 10)


# -- noise gate -----------------------------------------------------------------------

def test_gate_zeroes_quiet_frames_and_keeps_loud_ones():
    f = ZC
    rng = np.random.default_rng(0)
    loud = (0.3 * np.sin(2 * np.pi * 200 * np.arange(10 * f) / SR)).astype(np.float32)   # ≈ −13 dBFS
    quiet = (0.001 * rng.standard_normal(10 * f)).astype(np.float32)                    # −60 dBFS
    sig = np.concatenate([quiet, loud, quiet])
    gate = NoiseGate(-40.0, f)
    out = np.concatenate([gate.apply(sig[i:i + 4 * f].copy()) for i in range(0, len(sig), 4 * f)])
    assert np.all(out[: 10 * f] == 0)                    # leading noise removed
    np.testing.assert_array_equal(out[10 * f: 20 * f], loud)  # speech untouched
    # The windows reach 3 frames back: the noise right after the speech is kept for
    # up to 3 frames (the hang-over), then cut.
    assert np.all(out[24 * f:] == 0)


def test_gate_history_gives_block_starts_context_and_threshold_is_live():
    f = ZC
    loud = (0.3 * np.ones(8 * f)).astype(np.float32)
    gate = NoiseGate(-60.0, f)  # disabled: passes everything, still tracks history
    block = loud[:4 * f].copy()
    np.testing.assert_array_equal(gate.apply(block), loud[:4 * f])
    gate.threshold_db = -20.0
    # A block that starts with a near-silent frame right after loud audio: its window
    # covers the previous block's loud frames, so it is not cut.
    nxt = np.concatenate([np.full(f, 1e-4), np.zeros(3 * f)]).astype(np.float32)
    out = gate.apply(nxt.copy())
    assert np.all(out[:f] == nxt[:f])
    assert np.all(out[3 * f:] == 0)


# -- pitch cache -----------------------------------------------------------------------

def test_pitch_cache_matches_a_hand_computed_roll():
    pc = PitchCache(size=12)
    pc.push(np.arange(1, 9, dtype=np.float32), shift=4)   # writes f0[3:-1] = 4,5,6,7
    np.testing.assert_array_equal(pc.latest(6), [0, 0, 4, 5, 6, 7])
    pc.push(np.arange(101, 108, dtype=np.float32), shift=2)  # shift 2, then 104,105,106
    # By hand: the cache was 0×8,4,5,6,7; shifted left by 2 it is 0×6,4,5,6,7,6,7
    # (the last two are stale); the 3 fresh frames overwrite the last three.
    expected = np.array([0] * 6 + [4, 5, 6, 104, 105, 106], np.float32)
    np.testing.assert_array_equal(pc.latest(12), expected)
    assert pc.latest(3).dtype == np.float32
    pc.reset()
    assert not pc.latest(12).any()


def test_pitch_cache_long_tail_keeps_the_newest():
    pc = PitchCache(size=5)
    pc.push(np.arange(20, dtype=np.float32), shift=3)
    np.testing.assert_array_equal(pc.latest(5), [14, 15, 16, 17, 18])


# -- resampler -------------------------------------------------------------------------

@pytest.mark.parametrize("sr_in,sr_out", [(48000, 16000), (44100, 16000), (40000, 48000)])
def test_stream_resampler_matches_one_shot_soxr(sr_in, sr_out):
    rng = np.random.default_rng(0)
    t = np.arange(sr_in) / sr_in
    x = (0.4 * np.sin(2 * np.pi * 300 * t) + 0.05 * rng.standard_normal(sr_in)).astype(np.float32)
    rs = StreamResampler(sr_in, sr_out)
    sizes = rng.integers(50, sr_in // 20, 200)
    chunks, pos = [], 0
    for s in sizes:
        chunks.append(rs.process(x[pos:pos + s]))
        pos += s
        if pos >= len(x):
            break
    chunks.append(rs.process(x[pos:]))
    chunks.append(rs.flush())
    y = np.concatenate(chunks)
    ref = soxr.resample(x, sr_in, sr_out, quality=rs.quality)
    assert abs(len(y) - len(ref)) <= 1
    n = min(len(y), len(ref))
    np.testing.assert_allclose(y[:n], ref[:n], atol=1e-4)
    assert 0 < rs.delay < 0.05


def test_stream_resampler_identity_and_reset():
    rs = StreamResampler(16000, 16000)
    x = np.arange(10, dtype=np.float32)
    np.testing.assert_array_equal(rs.process(x), x)
    assert rs.delay == 0
    rs2 = StreamResampler(48000, 16000)
    rs2.process(np.ones(4800, np.float32))
    rs2.reset()
    z = np.concatenate([rs2.process(np.zeros(4800, np.float32)) for _ in range(4)])
    assert np.abs(z).max() == 0  # no leftovers from before the reset


# -- loudness ---------------------------------------------------------------------------

def test_rms_envelope_of_a_sine_and_rms_mix_follows_the_input():
    t = np.arange(SR) / SR
    sine = np.sin(2 * np.pi * 200 * t)
    env = framed_rms(sine, 4 * ZC, ZC)
    assert len(env) == 1 + SR // ZC
    np.testing.assert_allclose(env[5:-5], 1 / np.sqrt(2), rtol=0.01)

    inp = (0.1 * sine).astype(np.float32)        # quiet speaker
    out = (0.8 * sine).astype(np.float32)        # loud model output
    mixed = rms_mix(inp, out.copy(), 0.0, ZC)    # rate 0: take the input's loudness
    mid = slice(SR // 10, -SR // 10)
    np.testing.assert_allclose(np.sqrt(np.mean(mixed[mid] ** 2)), 0.1 / np.sqrt(2), rtol=0.02)
    half = rms_mix(inp, out.copy(), 0.5, ZC)     # halfway in the log domain: √(0.1·0.8)
    np.testing.assert_allclose(np.sqrt(np.mean(half[mid] ** 2)), np.sqrt(0.08) / np.sqrt(2), rtol=0.02)
    assert rms_mix(inp, out, 1.0, ZC) is out     # rate 1: untouched
    # Different rates: 16 kHz input against 48 kHz output of the same second.
    inp16 = soxr.resample(inp, SR, 16000)
    m16 = rms_mix(inp16, out.copy(), 0.0, ZC)
    np.testing.assert_allclose(np.sqrt(np.mean(m16[mid] ** 2)), 0.1 / np.sqrt(2), rtol=0.03)


# -- latency maths -----------------------------------------------------------------------

def test_find_delay_recovers_a_known_lag_to_a_fraction_of_a_sample():
    sr = 48000
    ref = chirp(sr)
    rng = np.random.default_rng(3)
    for lag in (0, 1234, 9876):
        rec = 0.01 * rng.standard_normal(len(ref) + 12000)
        rec[lag:lag + len(ref)] += 0.7 * ref
        assert find_delay(ref, rec, sr) * sr == pytest.approx(lag, abs=0.25)
    # Fractional lag: the reference delayed by 100.5 samples (band-limited shift).
    spec = np.fft.rfft(np.concatenate([ref, np.zeros(4000)]))
    k = np.arange(len(spec))
    shifted = np.fft.irfft(spec * np.exp(-2j * np.pi * k * 100.5 / (len(ref) + 4000)), len(ref) + 4000)
    assert find_delay(ref, shifted, sr) * sr == pytest.approx(100.5, abs=0.1)
    with pytest.raises(ValueError):
        find_delay(ref, 0.01 * rng.standard_normal(len(ref) + 1000), sr)
