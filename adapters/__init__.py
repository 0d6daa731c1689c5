"""Source adapters: each turns one kind of source system's records into UK Core R4.

Everything past an adapter speaks UK Core R4 as plain dicts that were validated when
they were made. This package never imports :mod:`gateway` or :mod:`consent`.
"""
