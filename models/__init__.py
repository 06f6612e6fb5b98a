"""Shipped model bundles live in the sub-folders of this package (data only).

It is a package so that an installed FaceMend (wheel, PyInstaller bundle,
Lambda image) finds the bundles next to its code; see core.bundle.search_dirs.
"""
