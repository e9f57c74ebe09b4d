"""CI runs exactly the test command the README gives a new user, slow tests included."""
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    readme = (REPO / 'README.md').read_text(encoding='utf-8')
    command = re.search(r'## Install and test.*?```bash\n(.+?)\n```', readme, re.S).group(1)
    assert command.endswith('-m pytest -q tests')  # every test, the slow ones too: no -m/-k selection
    assert command in (REPO / '.ci' / 'run').read_text(encoding='utf-8').splitlines()
