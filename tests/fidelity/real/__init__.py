"""Drivers run by real SGLang's interpreter (.venv-sglang): each starts one of SGLang's own components."""
