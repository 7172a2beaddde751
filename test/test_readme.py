"""The README's parameter tables are the ones scripts/params_table.py makes from the node declarations."""
import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_readme_parameter_tables_are_current():
    spec = importlib.util.spec_from_file_location("params_table", REPO / "scripts" / "params_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    readme = (REPO / "README.md").read_text()
    tables = readme.split("<!-- params-table -->\n", 1)[1].split("\n<!-- /params-table -->", 1)[0]
    assert tables == module.markdown_tables(), \
        "README parameter tables are stale: paste `.venv/bin/python scripts/params_table.py` into them"
