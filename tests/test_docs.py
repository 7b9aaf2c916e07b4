"""Every python snippet in docs/*.md runs as printed (each page in one namespace)."""

import re
from pathlib import Path

import pytest
import torch

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGES = sorted(DOCS.glob("*.md"))


CONCEPTS = {"geometry", "conditions", "fields", "objective", "optimizers", "inverse"}


def test_there_is_a_page_per_concept():
    assert CONCEPTS <= {p.stem for p in PAGES}


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_snippets_run(page, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)
    if page.stem in CONCEPTS:
        assert blocks, f"{page.name} has no python snippet"
    threads = torch.get_num_threads()
    namespace: dict = {}
    try:
        for i, block in enumerate(blocks):
            exec(compile(block, f"{page.name}[{i}]", "exec"), namespace)  # noqa: S102
    finally:
        torch.set_num_threads(threads)
