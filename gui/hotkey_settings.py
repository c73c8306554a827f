"""Hotkey bindings saved with the panel's settings, and Qt's key names turned into pynput's.

The bindings live under the "hotkeys" key of RVCLORA_HOME/settings.json (the panel's
own settings are under "panel"; each part rewrites only its key). The panel records a
key with Qt (the user presses it); the listener needs pynput's notation, so
`from_qt_text("Ctrl+Alt+B")` gives "<ctrl>+<alt>+b" and `to_qt_text` goes back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..synth.output_file import replaced_atomically
from .hotkeys import HotkeyError, check_action

HOTKEYS_KEY = "hotkeys"

_MODIFIERS = {"ctrl": "<ctrl>", "alt": "<alt>", "shift": "<shift>", "meta": "<cmd>"}
_NAMED = {
    "space": "<space>", "return": "<enter>", "enter": "<enter>", "esc": "<esc>", "tab": "<tab>",
    "backspace": "<backspace>", "del": "<delete>", "ins": "<insert>", "home": "<home>", "end": "<end>",
    "pgup": "<page_up>", "pgdown": "<page_down>", "left": "<left>", "right": "<right>", "up": "<up>",
    "down": "<down>", "pause": "<pause>", "print": "<print_screen>", "scrolllock": "<scroll_lock>",
    "numlock": "<num_lock>", "capslock": "<caps_lock>", "menu": "<menu>",
    "media play": "<media_play_pause>", "media next": "<media_next>", "media previous": "<media_previous>",
    "volume mute": "<media_volume_mute>", "volume up": "<media_volume_up>", "volume down": "<media_volume_down>",
}
_QT_NAMES = {v: k for k, v in _NAMED.items() if k not in ("enter",)}
_QT_MODIFIERS = {v: k.capitalize() for k, v in _MODIFIERS.items()}


def from_qt_text(text: str) -> str:
    """Qt's portable key text ("Ctrl+Alt+B", "F9", "Shift+Space") as a pynput binding."""
    text = text.strip()
    if not text or "," in text.replace("+,", ""):
        raise HotkeyError(f"hotkey {text!r}: press one key, with modifiers if you like")
    parts = text.split("+")
    if text.endswith("++"):  # the plus key itself
        parts = [*text[:-2].split("+"), "+"]
    out = []
    for part in parts:
        low = part.strip().lower()
        if low in _MODIFIERS:
            out.append(_MODIFIERS[low])
        elif low in _NAMED:
            out.append(_NAMED[low])
        elif low.startswith("f") and low[1:].isdigit() and 1 <= int(low[1:]) <= 24:
            out.append(f"<{low}>")
        elif len(low) == 1:
            out.append(low)
        else:
            raise HotkeyError(f"hotkey {text!r}: the key {part!r} cannot be a global hotkey; pick another")
    if all(p in _MODIFIERS.values() for p in out):
        raise HotkeyError(f"hotkey {text!r}: add a key to the modifiers")
    return "+".join(out)


def to_qt_text(spec: str) -> str:
    """A pynput binding back in Qt's portable notation, to show it in the key editor."""
    out = []
    for part in spec.split("+") if spec != "+" else ["+"]:
        if part in _QT_MODIFIERS:
            out.append(_QT_MODIFIERS[part])
        elif part in _QT_NAMES:
            out.append(" ".join(w.capitalize() for w in _QT_NAMES[part].split()) if " " in _QT_NAMES[part]
                       else {"pgup": "PgUp", "pgdown": "PgDown", "scrolllock": "ScrollLock", "numlock": "NumLock",
                             "capslock": "CapsLock"}.get(_QT_NAMES[part], _QT_NAMES[part].capitalize()))
        elif part.startswith("<f") and part[2:-1].isdigit():
            out.append(part[1:-1].upper())
        else:
            out.append(part.upper())
    return "+".join(out)


def load_hotkeys(settings_file: Path) -> tuple[dict[str, str], str | None]:
    """The saved bindings, and a one-line problem when some could not be used (they are left out)."""
    try:
        data = json.loads(Path(settings_file).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}, None
    except (OSError, ValueError) as e:
        return {}, f"could not read hotkeys from {settings_file} ({e})"
    raw = data.get(HOTKEYS_KEY) if isinstance(data, dict) else None
    if not isinstance(raw, dict):
        return {}, None
    bindings, bad = {}, []
    for action, spec in raw.items():
        try:
            check_action(str(action))
            if not isinstance(spec, str) or not spec:
                raise HotkeyError("no key")
            bindings[str(action)] = spec
        except HotkeyError:
            bad.append(str(action))
    return bindings, (f"hotkeys left out (not understood): {', '.join(bad)}" if bad else None)


def save_hotkeys(settings_file: Path, bindings: dict[str, str]) -> None:
    """Rewrite only the "hotkeys" key of the settings file, atomically."""
    path = Path(settings_file)
    data: dict[str, Any] = {}
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
        data = loaded if isinstance(loaded, dict) else {}
    except FileNotFoundError:
        pass
    except ValueError:
        raise HotkeyError(f"{path} is damaged; hotkeys were not saved (fix or remove the file)") from None
    for action in bindings:
        check_action(action)
    data[HOTKEYS_KEY] = dict(sorted(bindings.items()))
    path.parent.mkdir(parents=True, exist_ok=True)
    with replaced_atomically(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
