"""The README's custom-PDE example runs as printed and is accurate."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_custom_pde_example_runs_and_is_accurate(capsys):
    text = README.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "README has no python example"
    namespace: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)  # noqa: S102
    error = namespace["result"].rel_l2_error
    print(f"README custom PDE example (Fisher-KPP): rel L2 error {error:.2e}")
    assert error < 1e-3
