"""The README's Python example runs as written (with a one-epoch budget, so it stays cheap)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs(tmp_path, monkeypatch, capsys):
    text = README.read_text()
    block = re.search(r"## Python\n\n```python\n(.*?)```", text, re.S).group(1)
    budget = "epochs=20, decay_epochs=10"
    assert budget in block, "the README example changed: update this test's budget replacement"
    monkeypatch.chdir(tmp_path)  # the example writes runs/digits relative to the working directory
    exec(compile(block.replace(budget, "epochs=1, decay_epochs=0"), "README.md", "exec"), {})
    assert (tmp_path / "runs" / "digits" / "summary.json").is_file()
    mse, shape = capsys.readouterr().out.split(" ", 1)
    assert 0 <= float(mse) < 1 and shape.strip() == "torch.Size([8, 16])"
