"""Exported artifacts: the manifest, loading (local or hub, checksummed), publishing, atomic writes."""
