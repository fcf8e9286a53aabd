"""The subprocess daemon used by lifecycle tests lives in executor.daemon.testing."""

from __future__ import annotations

from executor.daemon.testing import ROOT, DaemonProcess

__all__ = ["ROOT", "DaemonProcess"]
