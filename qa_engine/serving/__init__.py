"""Serving around the engine: the micro-batcher, Ray batch jobs and Triton."""
