"""Offline video: ``livebg process`` (decode with PyAV, the live pipeline, encode and mux)."""
