"""Test helpers: small real videos made with the same ffmpeg the toolkit uses."""
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from media import write_test_video as make_video  # noqa: E402,F401  (tests import it from here)


@pytest.fixture
def video_factory(tmp_path):
    def factory(name="clip.mp4", **kw):
        return make_video(tmp_path / name, **kw)
    return factory
