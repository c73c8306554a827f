"""The window's voice side: the list, the selected voice's own settings and adapters.

A mixin of `MainWindow`. Settings that do not apply to the selected voice (the pitch
tracker and voice detail of a built-in voice, voice detail without an .index file)
are hidden rather than shown greyed out with another voice's value.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..library.voice_library import AdapterSlot, VoiceLibraryError
from ..synth.pitch_options import known_f0_method
from . import engine_link
from .asset_jobs import needed_to_start, start_refusal
from .library_jobs import encoder_note
from .panel_model import ASSETS, ENGINE, LIBRARY, SETTINGS, VOICE
from .voice_choice import VoiceChoice
from .voice_list import display_name
from .workers import one_line


class VoiceActions:
    def refresh_voices(self) -> None:
        if not self._builtins:
            try:
                self._builtins = engine_link.builtin_voices()
            except Exception as e:  # noqa: BLE001 - the library must still show
                self.show_error(f"built-in voices unavailable: {one_line(e)}")
        self.voice_list.set_voices(self._builtins, self.library.list(), self.library.problems())

    def _select_initial_voice(self) -> None:
        wanted = VoiceChoice.from_key(self.state.voice)
        if wanted is None or not self.voice_list.select(wanted):
            choices = self.voice_list.choices()
            # A new user should hear a change on the first Start: skip presets that change nothing.
            audible = [c for c in choices if c.is_builtin and _audible_preset(c.name)]
            if audible or choices:
                self.voice_list.select((audible or choices)[0])

    def select_voice(self, choice: VoiceChoice) -> None:
        """Show a voice's settings and, if the engine runs, switch the engine to it."""
        self._flush_voice_save()
        entry = None
        if not choice.is_builtin:
            try:
                entry = self.library.get(choice.name)
            except VoiceLibraryError as e:
                self.show_error(str(e), topic=LIBRARY)
                self.refresh_voices()
                return
        if choice != self.voice:
            # What was said about the previous voice (a failed start, a missing file) no longer applies.
            self.status_clear(VOICE, ASSETS, SETTINGS, ENGINE)
        self.voice, self.entry = choice, entry
        self.state = replace(self.state, voice=choice.key)
        self._show_voice()
        self._schedule_save()
        if self._engine_state == "running":
            self._switch_voice()
        elif self._engine_state.active:
            self._restart()

    def _switch_voice(self) -> None:
        """The engine keeps playing: same-base voices swap adapters, others load in the background."""
        try:
            spec = engine_link.voice_spec(self.voice, self.entry)
        except ValueError as e:
            self.show_error(str(e), topic=VOICE)
            return
        self.show_message(f"Switching to \u201c{display_name(self.voice)}\u201d\u2026", topic=ENGINE)
        self.workers.submit(
            self.link.switch_voice, spec, on_done=lambda _kind: None, on_failed=lambda m: self.show_error(m, topic=ENGINE)
        )

    def _show_voice(self) -> None:
        if self.voice is None:
            return
        if self.entry is None:
            tweak = self.state.tweak(self.voice.name)
            pitch, formant, index_rate, f0 = tweak.pitch, tweak.formant, 0.0, self.settings.f0_method
            voice_f0 = 0.0
            try:
                preset_pitch, preset_formant = engine_link.builtin_preset(self.voice.name)
                self.voice_note.setText(
                    f"A built-in voice (preset: pitch {preset_pitch:+g} st, formant {preset_formant:+g} st). "
                    "The sliders add to the preset."
                )
            except Exception:  # noqa: BLE001 — the preset text is decoration: a plain note is the fallback
                self.voice_note.setText("A built-in voice.")
            self.adapters.set_adapters((), builtin=True)
        else:
            d = self.entry.defaults
            pitch, formant, index_rate, f0 = d.pitch, d.formant, d.index_rate, d.f0_method
            voice_f0 = float(d.typical_f0)  # for automatic pitch
            has_index = self.entry.index is not None
            note = "Settings here are saved with the voice." + (
                "" if has_index else " Voice detail needs an .index file: drop one on the window to add it."
            )
            self.voice_note.setText(note)
            entry = self.entry

            def show_encoder(text: str) -> None:
                if text and self.entry is not None and self.entry.name == entry.name:
                    self.voice_note.setText(f"{note} {text}")

            self.workers.submit(encoder_note, self.home, entry.runnable_model, on_done=show_encoder)
            self.adapters.set_adapters(self.entry.adapters)
        for slider, value in ((self.pitch, pitch), (self.formant, formant), (self.index_rate, index_rate)):
            slider.set_value(value)
        library = self.entry is not None
        self.index_rate.set_visible(library and self.entry.index is not None)
        self.f0_method.setVisible(library)
        self.f0_label.setVisible(library)
        self.adapters_group.setVisible(library)  # adapters attach to your own voices only
        f0 = known_f0_method(f0)
        blocked = self.f0_method.blockSignals(True)
        self.f0_method.setCurrentIndex(max(0, self.f0_method.findData(f0)))
        self.f0_method.blockSignals(blocked)
        self._set_setting(pitch=float(pitch), formant=float(formant), index_rate=float(index_rate), f0_method=f0,
                          voice_f0=voice_f0, save=False)

    def _voice_setting(self, name: str, value: object) -> None:
        """A per-voice setting moved: apply it live and remember it with the voice."""
        if not self._set_setting(save=False, **{name: value}):
            return
        if name == "f0_method" and self.voice is not None:
            missing = needed_to_start(self.home, builtin=self.voice.is_builtin, f0_method=str(value))
            if missing:
                self.show_error(start_refusal(missing), topic=ASSETS)
            else:
                self.status_clear(ASSETS)
        if self.entry is not None:
            self.entry = replace(self.entry, defaults=replace(self.entry.defaults, **{name: value}))
            self._voice_save_timer.start()
        elif self.voice is not None and name in ("pitch", "formant"):
            tweak = self.state.tweak(self.voice.name)
            self.state = self.state.with_tweak(self.voice.name, replace(tweak, **{name: float(value)}))
            self._schedule_save()

    def _save_voice_now(self) -> None:
        if self.entry is None:
            return
        try:
            self.library.update(self.entry)
        except (VoiceLibraryError, OSError) as e:
            self.show_error(f"could not save the settings of '{self.entry.name}': {one_line(e)}", topic=LIBRARY)

    def _flush_voice_save(self) -> None:
        if self._voice_save_timer.isActive():
            self._voice_save_timer.stop()
            self._save_voice_now()

    def _adapters_changed(self, slots: tuple[AdapterSlot, ...]) -> None:
        if self.entry is None:
            return
        self.entry = replace(self.entry, adapters=slots)
        self._voice_save_timer.start()
        if self._engine_state == "running":
            active, force = self.entry.active_adapters(), self.entry.needs_force
            self.workers.submit(
                lambda: self.link.set_adapters(active, force=force),
                on_done=lambda _r: self.show_message(_adapter_summary(slots), topic=ENGINE),
                on_failed=lambda m: self.show_error(m, topic=VOICE),
            )


def _audible_preset(name: str) -> bool:
    try:
        return engine_link.builtin_preset(name) != (0.0, 0.0)
    except Exception:  # noqa: BLE001 — an unknown preset counts as not audible
        return False


def _adapter_summary(slots: tuple[AdapterSlot, ...]) -> str:
    on = [f"{Path(s.file).stem} {round(s.weight * 100)} %" for s in slots if s.enabled]
    return "Adapters: " + (", ".join(on) if on else "none on")
