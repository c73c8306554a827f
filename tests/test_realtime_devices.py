"""Real audio devices through a private PulseAudio server (tests/pulse_audio.py)."""

import numpy as np
import pytest
import sounddevice as sd

from rvclora.realtime.devices import (
    DeviceError,
    find_device,
    list_devices,
    pulse_device_env,
    pulse_env,
    pulse_virtual_sources,
    virtual_kind,
)
from rvclora.realtime.latency import chirp, find_delay, measure_latency
from rvclora.realtime.virtual_mic import create_virtual_mic, find_virtual_mic, remove_virtual_mic

SR = 48000


@pytest.mark.parametrize("name,kind", [
    ("CABLE Input (VB-Audio Virtual Cable)", "VB-CABLE"),
    ("CABLE Output (VB-Audio Virtual Cable)", "VB-CABLE"),
    ("VoiceMeeter Aux Input (VB-Audio VoiceMeeter AUX VAIO)", "VoiceMeeter"),
    ("BlackHole 2ch", "BlackHole"),
    ("Line 1 (Virtual Audio Cable)", "Virtual Audio Cable"),
    ("rvclora", "rvclora"),
    ("Null Output", "PulseAudio null sink"),
    ("Microphone (Realtek(R) Audio)", None),
    ("MacBook Pro Speakers", None),
    ("pulse", None),
])
def test_virtual_kind_from_names(name, kind):
    assert virtual_kind(name) == kind


def test_lists_the_alsa_pulse_devices_and_the_pulse_nodes(pulse):
    devs = list_devices()
    names = {d.name for d in devs}
    assert {"pulse", "default"} <= names
    sink = next(d for d in devs if d.pulse == "vsink")
    mic = next(d for d in devs if d.pulse == "vmic")
    assert sink.max_output_channels > 0 and sink.max_input_channels == 0
    assert mic.max_input_channels > 0 and mic.max_output_channels == 0
    assert sink.virtual == "PulseAudio null sink" and mic.virtual is not None
    nodes = {n.name: n for n in pulse_virtual_sources()}
    assert nodes["vsink.monitor"].monitor_of == "vsink"


def test_find_device_by_default_index_and_name(pulse):
    assert find_device(None, "output").name == "default"
    assert find_device("DEFAULT", "input").name == "default"
    idx = find_device("pulse", "output").index
    assert find_device(idx, "input").index == idx and find_device(str(idx), "input").index == idx
    assert find_device("vmic", "input").pulse == "vmic"
    assert find_device("virtualsink", "output").pulse == "vsink"


def test_find_device_errors_are_one_line_and_point_to_rvclora_devices(pulse):
    for spec, kind in [("no such mic", "input"), (999, "output"), ("vmic", "output"), ("VirtualMic", "output")]:
        with pytest.raises(DeviceError) as e:
            find_device(spec, kind)
        msg = str(e.value)
        assert "rvclora devices" in msg and "\n" not in msg


def _zc_freq(x, sr=SR):
    x = x - x.mean()
    i = np.flatnonzero((x[:-1] < 0) & (x[1:] >= 0))
    t = i + (-x[i]) / (x[i + 1] - x[i])
    return (len(t) - 1) * sr / (t[-1] - t[0])


def _loopback_tone(dev):
    """Play marker + 1 s of 440 Hz into the default sink, record the default source;
    return (measured frequency, SNR against the aligned reference in dB)."""
    t = np.arange(SR) / SR
    sig = np.zeros(SR + SR // 2, np.float32)
    marker = chirp(SR)
    lead = SR // 20  # the very first samples of a stream may be lost while it starts
    sig[lead:lead + len(marker)] = marker
    sig[SR // 4: SR // 4 + SR] = 0.5 * np.sin(2 * np.pi * 440 * t)
    rec = sd.playrec(sig, SR, channels=1, dtype="float32", device=(dev, dev), latency="high", blocking=True)[:, 0]
    lag = int(round(find_delay(marker, rec[lead:SR // 4], SR) * SR))
    tone = rec[lag + SR // 4 + 2400: lag + SR // 4 + SR - 2400]
    ref = sig[SR // 4 + 2400: SR // 4 + SR - 2400]
    snr = 10 * np.log10(np.sum(ref ** 2) / max(np.sum((tone - ref) ** 2), 1e-20))
    return _zc_freq(tone), snr


def test_a_tone_played_into_vsink_comes_back_from_vmic(pulse):
    # The mono float32 sink is a bit-transparent loopback. On a loaded 2-core CI box
    # the ALSA-pulse plugin can underrun (PortAudio's thread starved), which shows as
    # dropouts; that is the machine, not the path, so up to 3 attempts are allowed,
    # and one must come back clean.
    dev = find_device(None, "output").index
    results = []
    for _ in range(3):
        try:
            freq, snr = _loopback_tone(dev)
        except (ValueError, IndexError):  # marker or tone lost in a dropout
            results.append((None, None))
            continue
        results.append((round(freq, 3), round(snr, 1)))
        if snr > 60:
            break
    freq, snr = results[-1]
    assert snr is not None and snr > 60, f"every attempt glitched: {results}"
    assert freq == pytest.approx(440.0, abs=0.05)


def test_measure_latency_round_trip_is_plausible(pulse):
    # A device xrun (an ALSA-pulse underrun on a starved machine) re-buffers the loop and moves its
    # delay: the measurement then waits for chirps in a row without one, and says so when there
    # were none. Between xruns a loopback's delay is steady: every try agrees.
    try:
        res = measure_latency(None, None, SR, tries=3)
    except DeviceError as e:
        if "too busy" in str(e):
            pytest.skip(str(e))
        raise
    assert len(res.tries) >= 2, res.tries
    assert 1.0 < res.ms < 300.0
    assert max(res.tries) - min(res.tries) < 5.0, res.tries


def test_virtual_mic_create_is_idempotent_and_routable(pulse):
    assert find_virtual_mic("rvclora") is None
    vm = create_virtual_mic("rvclora")
    try:
        assert (vm.name, vm.sink) == ("rvclora", "rvclora_sink")
        assert create_virtual_mic("rvclora") == vm  # second call: the same modules
        assert find_virtual_mic("rvclora") == vm
        # Discord/OBS would list the source by its description.
        assert "Description: rvclora\n" in pulse.pactl("list", "sources")
        out, mic = find_device("rvclora_sink", "output"), find_device("rvclora", "input")
        assert out.virtual == mic.virtual == "rvclora"
        # Play a marker into rvclora's sink and record the virtual mic: a different
        # sink/source than the defaults, reached through the env routing.
        assert pulse_device_env(sink="a", source="b") == {"PULSE_SINK": "a", "PULSE_SOURCE": "b"}
        marker = chirp(SR)
        sig = np.zeros(SR // 2, np.float32)
        sig[SR // 10:SR // 10 + len(marker)] = marker
        # Separate streams: one duplex stream over two different Pulse nodes behind the
        # same ALSA device can stall (research §C1); the marker only has to arrive.
        for _ in range(3):
            chunks = []
            with pulse_env(mic, "input"):
                inp = sd.InputStream(SR, device=mic.index, channels=1, dtype="float32", latency="high",
                                     callback=lambda data, frames, t, status, chunks=chunks: chunks.append(data.copy()))
            with inp:
                with pulse_env(out, "output"):
                    sd.play(sig, SR, device=out.index, latency="high", blocking=True)
                sd.sleep(300)
            rec = np.concatenate(chunks)[:, 0] if chunks else np.zeros(0, np.float32)
            try:
                find_delay(marker, rec, SR)
                break
            except ValueError:
                continue
        else:
            pytest.fail("the marker played into rvclora_sink never came out of the rvclora source")
        # And the routing is real: the default source (vmic, fed by vsink) heard nothing.
        chunks = []
        with (sd.InputStream(SR, device=mic.index, channels=1, dtype="float32", latency="high",
                             callback=lambda data, frames, t, status: chunks.append(data.copy())),
              pulse_env(out, "output")):
            sd.play(sig, SR, device=out.index, latency="high", blocking=True)
        assert np.abs(np.concatenate(chunks)).max() == 0
    finally:
        assert remove_virtual_mic("rvclora") is True
    assert find_virtual_mic("rvclora") is None
    assert remove_virtual_mic("rvclora") is False
    assert "rvclora" not in pulse.pactl("list", "short", "sources")
