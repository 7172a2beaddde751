"""The commands behind the CLI: ``track`` (the library alone) and ``run`` (camera and tracker nodes)."""
