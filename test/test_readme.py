"""The README's parameter table is the one scripts/params_table.py makes from TrackerConfig."""
import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_readme_parameter_table_is_current():
    spec = importlib.util.spec_from_file_location("params_table", REPO / "scripts" / "params_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    readme = (REPO / "README.md").read_text()
    table = readme.split("<!-- params-table -->\n", 1)[1].split("\n<!-- /params-table -->", 1)[0]
    assert table == module.params_table(), \
        "README parameter table is stale: paste `.venv/bin/python scripts/params_table.py` into it"
