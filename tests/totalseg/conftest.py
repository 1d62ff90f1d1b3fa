"""One torch thread for these tests: tiny networks spend most of a multi-threaded forward waiting on the
other threads of a busy machine (4 ms with one thread, over a second with two under load)."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
