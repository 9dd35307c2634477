"""Rebuild livebg/data/astronaut_alpha.png, the cut-out of the built-in sample.

Made once with livebg's own square net (the sample only needs a plausible
cut-out to move over another scene): the probability is upsampled, sharpened
into a clean edge with a 2-pixel soft ramp, and written as 8-bit PNG.
Run from the repository root: ``python scripts/make_sample_alpha.py``.
"""

import cv2
import numpy as np

from livebg.stages.segment import Segmenter
from livebg.stages.sources import DATA_DIR

image = cv2.imread(str(DATA_DIR / "astronaut.jpg"))
prob = Segmenter("square").segment(image).probability
h, w = image.shape[:2]
p = cv2.resize(prob, (w, h), interpolation=cv2.INTER_CUBIC)
p = cv2.GaussianBlur(p, (0, 0), 1.5)
alpha = np.clip((p - 0.5) * 4 + 0.5, 0, 1)
cv2.imwrite(str(DATA_DIR / "astronaut_alpha.png"), (alpha * 255 + 0.5).astype(np.uint8))
