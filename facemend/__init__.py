"""FaceMend: repair damaged face photos."""

__version__ = "0.1.0"
