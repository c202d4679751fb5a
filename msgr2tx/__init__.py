from msgr2tx._version import __version__  # noqa: F401
