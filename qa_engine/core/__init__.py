"""The answering path every caller shares: settings, input checks, windows, buckets, the model-runner seam, span decoding."""
