"""The window's devices and model-file sides: device scans, the virtual microphone,
and downloading the shared model files (with progress and Cancel).

Mixins of `MainWindow`; scans and downloads run on the worker pool.
"""

from __future__ import annotations

import threading
from dataclasses import replace

from ..library.assets import hub_endpoint
from . import engine_link
from .asset_jobs import PANEL_ASSETS, by_hand_text, download, missing_assets
from .engine_link import DeviceChoice
from .panel_model import ASSETS, DEVICES, VOICE


class DeviceActions:
    def refresh_devices(self, *, quiet: bool = False) -> None:
        if self._engine_state != "stopped":
            # Rescanning re-initialises PortAudio, which would pull the running streams away.
            self.show_message("Stop the voice changer to look for new devices.", topic=DEVICES)
            return
        if self._listing_devices:
            return
        self._listing_devices = True
        if not quiet:
            self.show_message("Looking for audio devices\u2026", topic=DEVICES)
        self.workers.submit(
            engine_link.list_devices,
            on_done=lambda devices: self._devices_listed(devices, quiet),
            on_failed=self._devices_failed,
        )

    def _listing_done(self) -> None:
        self._listing_devices = False
        if self._start_after_listing:
            self._start_after_listing = False
            self.start_engine()

    def _devices_listed(self, devices: list, quiet: bool = True) -> None:
        self._show_devices(devices)
        if not quiet:
            inputs = sum(1 for d in devices if d.inputs > 0)
            outputs = sum(1 for d in devices if d.outputs > 0)
            self.show_message(f"Found {inputs} microphone(s) and {outputs} output(s).", topic=DEVICES)
        self._listing_done()

    def _show_devices(self, devices: list) -> None:
        s = self.state
        self.devices.set_devices(devices, DeviceChoice(s.input_device, s.output_device, s.monitor_device))
        if self._first_run and s.output_device is None:
            # First run: send to a virtual microphone if there is one, so Start is all it takes.
            self._first_run = False
            virtual = self.devices.preferred_virtual_output()
            if virtual is not None:
                self.devices.select_output(virtual)
                return  # select_output reported the change
        self._devices_changed(self.devices.choice(), restart=False)

    def _devices_failed(self, message: str) -> None:
        self.show_error(f"could not list audio devices: {message}", topic=DEVICES)
        self._listing_done()

    def _devices_changed(self, choice: DeviceChoice, restart: bool = True) -> None:
        changed = choice != DeviceChoice(self.state.input_device, self.state.output_device, self.state.monitor_device)
        self.state = replace(
            self.state, input_device=choice.input, output_device=choice.output, monitor_device=choice.monitor
        )
        if changed:
            self.status_clear(DEVICES)  # an error about the old devices no longer applies
        self._schedule_save()
        if restart and self._engine_state.active:
            self._restart()

    def create_virtual_mic(self) -> None:
        if self._engine_state != "stopped":
            self.show_message("Stop the voice changer first, then create the virtual microphone.", topic=DEVICES)
            return
        if self._listing_devices:
            return
        self.show_message("Creating the virtual microphone\u2026", topic=DEVICES)
        self._listing_devices = True

        def make() -> tuple[str, list]:
            name = engine_link.create_virtual_mic()
            return name, engine_link.list_devices()

        self.workers.submit(make, on_done=self._virtual_mic_made, on_failed=self._virtual_mic_failed)

    def _virtual_mic_failed(self, message: str) -> None:
        self.show_error(message, topic=DEVICES)
        self._listing_done()

    def _virtual_mic_made(self, result: tuple[str, list]) -> None:
        name, devices = result
        self.devices.set_devices(devices, self.devices.choice())
        self._listing_done()
        if not self.devices.select_output(name):
            self.show_error(f"created the virtual microphone, but no output device named '{name}' appeared", topic=DEVICES)
            return
        self.show_message(
            f"Virtual microphone ready: the changed voice goes to \u201c{name}\u201d. "
            "In Discord or OBS, pick \u201crvclora\u201d as the microphone.",
            topic=DEVICES,
        )


class AssetActions:
    def _check_assets(self) -> None:
        missing = missing_assets(self.home)
        self.asset_bar.show_missing(missing)
        self.download_action.setEnabled(bool(missing))
        if not missing:
            self.status_clear(ASSETS)

    def download_assets(self) -> None:
        if self._download_cancel is not None:
            return  # one download at a time
        self._download_cancel = threading.Event()
        self.asset_bar.set_downloading(True)
        self.show_message("Downloading shared models\u2026", topic=ASSETS)
        self.workers.submit(
            download, self.home, PANEL_ASSETS, self._download_cancel,
            on_progress=self.asset_bar.show_progress,
            on_done=lambda _r: self._downloaded(None),
            on_failed=self._downloaded,
        )

    def cancel_download(self) -> None:
        if self._download_cancel is not None:
            self._download_cancel.set()
            self.asset_bar.cancel_button.setEnabled(False)
            self.show_message("Cancelling the download\u2026", topic=ASSETS)

    def _downloaded(self, error: str | None) -> None:
        cancelled = self._download_cancel is not None and self._download_cancel.is_set()
        self._download_cancel = None
        self.asset_bar.set_downloading(False)
        self._check_assets()
        if cancelled and error:
            self.show_message("Download cancelled. \u201cDownload models\u201d continues where it stopped.", topic=ASSETS)
        elif error:
            reason = error.split(";")[0]
            missing = missing_assets(self.home)
            if missing:
                self.asset_bar.show_details(reason, by_hand_text(self.home, missing, hub_endpoint()))
            self.show_error(f"download failed: {reason}; \u201cGet them by hand\u2026\u201d lists the files", topic=ASSETS)
        else:
            self.status_clear(VOICE)  # "this voice needs ..." is resolved
            self.show_message("Shared models downloaded: your own voices are ready to use.", topic=ASSETS)
