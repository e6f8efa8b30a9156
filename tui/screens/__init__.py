"""One screen per file: setup, advice, presets, run, runs (and a confirm dialog)."""
