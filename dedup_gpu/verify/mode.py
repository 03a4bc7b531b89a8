"""Whether a run verifies: `--verify auto|on|off` against what is installed."""

from __future__ import annotations

from ..errors import BadArgumentError
from ..records import VerifyMode


def opencv_available() -> bool:
    try:
        import cv2  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_mode(mode: VerifyMode | str) -> bool:
    """Whether to verify; `on` without OpenCV is an argument error, `auto` quietly degrades."""
    try:
        mode = VerifyMode(mode)
    except ValueError as error:
        raise BadArgumentError(
            f"unknown --verify mode {mode!r}", hint="use auto, on or off"
        ) from error
    if mode is VerifyMode.off:
        return False
    if opencv_available():
        return True
    if mode is VerifyMode.on:
        raise BadArgumentError(
            "--verify on needs OpenCV, which is not installed",
            hint="pip install opencv-python-headless, or use --verify off",
        )
    return False
