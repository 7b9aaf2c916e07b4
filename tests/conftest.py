"""Shared test set-up."""

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """One torch thread for the whole suite: the problems are tiny, and on a busy machine
    a second OpenMP thread spin-waiting for a core makes them 20-50x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
