"""Where output frames go: virtual camera, overlay page, files, window, null."""
