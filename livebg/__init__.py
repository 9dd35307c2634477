"""livebg: live webcam background replacement.

The package is a chain of small stages that take and return NumPy arrays
(see README "How a frame travels"). Importing it loads nothing heavy; each
stage lives in its own module.
"""

__version__ = "0.1.0"
