"""Shared fixtures: the dev photos, the shipped sample, small frames."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent


def portraits_dir() -> Path | None:
    """The dev photos: $LIVEBG_TEST_DATA or ../shared/data/portraits; None if absent."""
    env = os.environ.get("LIVEBG_TEST_DATA")
    path = Path(env) if env else REPO.parent / "shared" / "data" / "portraits"
    return path if (path / "images").is_dir() and (path / "masks").is_dir() else None


@pytest.fixture(scope="session")
def portraits() -> Path:
    path = portraits_dir()
    if path is None:
        pytest.skip("dev photos not found: set LIVEBG_TEST_DATA or put them at "
                    "../shared/data/portraits (images/ + masks/)")
    return path


@pytest.fixture(scope="session")
def portrait_pairs(portraits) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """(BGR image, float32 mask in {0,1}, stem) for every dev photo."""
    pairs = []
    for img in sorted((portraits / "images").glob("*.jpg")):
        mask = cv2.imread(str(portraits / "masks" / f"{img.stem}.png"), cv2.IMREAD_GRAYSCALE)
        pairs.append((cv2.imread(str(img)), (mask > 127).astype(np.float32), img.stem))
    assert pairs, f"no photos in {portraits / 'images'}"
    return pairs
