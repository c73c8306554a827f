"""Global hotkeys: keys that work while another window (a game, OBS, Discord) has the focus.

`pynput` listens to the whole desktop (X11 RECORD on Linux, hooks on Windows and
macOS). Each binding is a key or chord in pynput's notation ("<ctrl>+<alt>+p",
"<f9>"); pressing it sends a control command (the same commands as `rvclora ctl`),
and hold actions (push-to-talk, push-to-mute) send another when the key is let go.

Where global keys are not allowed (a Wayland session, no X display) `unavailable_reason`
says so in one line and names what works instead: `rvclora ctl` bound to a key in
the desktop's own shortcut settings, a Stream Deck or an OBS script.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Mapping

ACTIONS: dict[str, str] = {
    "start_stop": "Start / stop",
    "bypass": "Passthrough (bypass) on/off",
    "push_to_talk": "Push to talk (hold)",
    "push_to_mute": "Push to mute (hold)",
    "next_voice": "Next voice",
    "previous_voice": "Previous voice",
    "pitch_up": "Pitch up a semitone",
    "pitch_down": "Pitch down a semitone",
}
VOICE_PREFIX = "voice:"  # "voice:NAME": a key per favourite voice
PRESET_PREFIX = "preset:"  # "preset:NAME": a key per preset
INSTEAD = ("bind `rvclora ctl start|stop|voice NAME|preset NAME|pitch +1|bypass toggle` to keys in your "
           "desktop's shortcut settings, a Stream Deck or an OBS script")

Command = tuple[str, str]


class HotkeyError(ValueError):
    """A binding cannot be used; one line for the user."""


def check_action(action: str) -> None:
    if action in ACTIONS or (action.startswith((VOICE_PREFIX, PRESET_PREFIX)) and action.split(":", 1)[1].strip()):
        return
    raise HotkeyError(f"unknown hotkey action {action!r}; actions: {', '.join(ACTIONS)}, voice:NAME, preset:NAME")


def command_for(action: str, pressed: bool) -> Command | None:
    """The control command a key press (or release) sends; None when that edge does nothing."""
    if action == "push_to_talk":
        return ("mute", "off" if pressed else "on")
    if action == "push_to_mute":
        return ("mute", "on" if pressed else "off")
    if not pressed:
        return None
    if action.startswith(VOICE_PREFIX):
        return ("voice", action[len(VOICE_PREFIX):])
    if action.startswith(PRESET_PREFIX):
        return ("preset", action[len(PRESET_PREFIX):])
    return {
        "start_stop": ("toggle", ""),
        "bypass": ("bypass", "toggle"),
        "next_voice": ("voice", "+1"),
        "previous_voice": ("voice", "-1"),
        "pitch_up": ("pitch", "+1"),
        "pitch_down": ("pitch", "-1"),
    }.get(action)


def initial_commands(bindings: Mapping[str, str]) -> list[Command]:
    """What to send when the hotkeys start: with push-to-talk bound, the voice starts muted."""
    return [("mute", "on")] if "push_to_talk" in bindings else []


def unavailable_reason(env: Mapping[str, str] | None = None, platform: str | None = None) -> str | None:
    """Why global hotkeys cannot work here (one line, with what works instead), or None."""
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    if platform.startswith("linux"):
        if env.get("XDG_SESSION_TYPE") == "wayland" or (env.get("WAYLAND_DISPLAY") and not env.get("DISPLAY")):
            return ("global hotkeys are not available in a Wayland session (it does not let apps see "
                    f"other windows' keys); {INSTEAD}")
        if not env.get("DISPLAY"):
            return f"global hotkeys need an X display and there is none; {INSTEAD}"
    try:
        from pynput import keyboard  # noqa: F401, PLC0415 - pynput connects to the display when imported; fails without one
    except ImportError as e:
        if isinstance(e, ModuleNotFoundError) and e.name and e.name.startswith("pynput"):
            return f"global hotkeys need the pynput package (pip install pynput); {INSTEAD}"
        return f"global hotkeys are not available here ({str(e).splitlines()[0]}); {INSTEAD}"
    return None


def parse_binding(spec: str) -> frozenset:
    """pynput keys of a binding such as "<ctrl>+<alt>+p"; one-line HotkeyError when malformed."""
    from pynput import keyboard  # noqa: PLC0415 - pynput connects to the display when imported

    try:
        keys = keyboard.HotKey.parse(spec.strip().lower())
    except ValueError as e:
        raise HotkeyError(f"hotkey {spec!r}: {e}; write keys like <ctrl>+<alt>+p or <f9>") from None
    if not keys:
        raise HotkeyError(f"hotkey {spec!r}: no key given")
    return frozenset(keys)


class GlobalHotkeys:
    """Listens for `bindings` ({action: key spec}) and calls `on_command(command, arg)` from the listener thread."""

    def __init__(self, bindings: Mapping[str, str], on_command: Callable[[str, str], object]) -> None:
        seen: dict[str, str] = {}
        for action, spec in bindings.items():
            check_action(action)
            key = spec.strip().lower()
            if key in seen:
                raise HotkeyError(f"{spec!r} is bound to both {seen[key]} and {action}; pick another key")
            seen[key] = action
        self.bindings = dict(bindings)
        self._chords: dict[str, frozenset] = {}
        self.on_command = on_command
        self._pressed: set = set()
        self._active: set[str] = set()
        self._listener = None
        self._lock = threading.Lock()
        self.errors: list[str] = []  # one line per command the engine refused

    def start(self) -> GlobalHotkeys:
        reason = unavailable_reason()
        if reason:
            raise HotkeyError(reason)
        from pynput import keyboard  # noqa: PLC0415 - pynput connects to the display when imported

        self._chords = {action: parse_binding(spec) for action, spec in self.bindings.items()}
        for command in initial_commands(self.bindings):
            self._send(command)
        listener = keyboard.Listener(on_press=self._press, on_release=self._release)
        listener.start()
        listener.wait()  # the hook is in place when start returns
        self._listener = listener
        return self

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.stop()
            _wake_x11_listener(listener)
            listener.join(timeout=5)

    @property
    def running(self) -> bool:
        return self._listener is not None and self._listener.running

    def _canonical(self, key: object) -> object:
        listener = self._listener
        return listener.canonical(key) if listener is not None else key

    def _press(self, key: object) -> None:
        key = self._canonical(key)
        fired = []
        with self._lock:
            self._pressed.add(key)
            for action, chord in self._chords.items():
                if action not in self._active and key in chord and chord <= self._pressed:
                    self._active.add(action)
                    fired.append(action)
        for action in fired:
            self._fire(action, True)

    def _release(self, key: object) -> None:
        key = self._canonical(key)
        ended = []
        with self._lock:
            self._pressed.discard(key)
            for action in list(self._active):
                if key in self._chords[action]:
                    self._active.discard(action)
                    ended.append(action)
        for action in ended:
            self._fire(action, False)

    def _fire(self, action: str, pressed: bool) -> None:
        command = command_for(action, pressed)
        if command is not None:
            self._send(command)

    def _send(self, command: Command) -> None:
        try:
            self.on_command(*command)
        except (ValueError, OSError, RuntimeError) as e:  # a refused command must not kill the listener
            self.errors.append(str(e).splitlines()[0] if str(e) else type(e).__name__)


def _wake_x11_listener(listener: object) -> None:
    """pynput's X11 listener queues its "stop recording" request on the connection its own thread
    is blocked reading, so it only stops at the next key event; send the same request on a
    connection of ours so it stops now (and never outlives the X server)."""
    context = getattr(listener, "_context", None)
    if context is None or not sys.platform.startswith("linux"):
        return
    from Xlib import display as xdisplay  # noqa: PLC0415 - only on X11 sessions, with pynput
    from Xlib.error import DisplayError  # noqa: PLC0415 - only on X11 sessions, with pynput

    try:
        d = xdisplay.Display()
    except DisplayError:
        return  # the server is gone: the listener's thread has ended with it
    try:
        d.record_disable_context(context)
        d.flush()
    finally:
        d.close()
