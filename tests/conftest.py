"""Shared fixtures: tiny models with fixed seeds, trained in seconds on the committed toy corpus."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "0")
torch.set_num_threads(1)

from tiny import make_tiny_checkpoint, toy_pairs  # noqa: E402


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A checkpoint folder of a tiny en→de model trained briefly on the toy corpus (session-wide; read-only)."""
    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "tiny-en-de", steps=120)


@pytest.fixture
def pairs() -> list[tuple[str, str]]:
    return toy_pairs()
