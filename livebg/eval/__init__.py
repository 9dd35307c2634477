"""Measuring tools: quality metrics, test clips, ``livebg eval``, its report, ``livebg bench``."""
