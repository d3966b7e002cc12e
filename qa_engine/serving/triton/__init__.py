"""Triton Inference Server: model configs, the python-backend models, the server process, the client."""
