"""The stages a frame passes through: source, segment, temporal, refine, compose.

Each stage is a small object that takes and returns plain NumPy arrays; none of
them knows about threads, files or configuration formats.
"""
