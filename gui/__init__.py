"""FaceMend desktop app (PySide6). Presentation only: every pixel decision
(detection, alignment, completion, blending, file formats) is made in core/.

Start it with `facemend` or `facemend gui [FILES...]`; `gui.app.main` is the entry.
"""
