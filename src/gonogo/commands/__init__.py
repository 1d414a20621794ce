"""One module per verb. Each exposes plain functions taking a Context (the Python API);
cli.py only parses arguments and renders what these return."""
