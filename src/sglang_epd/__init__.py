"""sglang-epd: render, validate, run and load-test SGLang EPD deployments."""
