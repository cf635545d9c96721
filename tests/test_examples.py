import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_threshold_chip_example_runs_on_the_bundled_chip(tmp_path):
    done = subprocess.run([sys.executable, str(EXAMPLES / "threshold_chip.py")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Spain_7370579 otsu: IoU" in done.stdout
    assert (tmp_path / "threshold_chip.png").read_bytes()[:4] == b"\x89PNG"
