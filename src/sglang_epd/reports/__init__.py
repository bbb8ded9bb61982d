"""Reports of finished load-test runs: summary.json and the console table (`report`), PNG plots (`plots`),
runs side by side (`compare`). They read a run's results directory (load/samples.py)."""
