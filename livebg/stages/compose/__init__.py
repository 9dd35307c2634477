"""The compositor: the person over a new background (blur, image, video, colour, alpha).

``compose`` holds the :class:`~livebg.stages.compose.compose.Compositor`,
``kernels`` its compiled per-pixel loops, ``backgrounds`` the picture and video
backgrounds it draws from.
"""
