"""titiler-otsu: seamless on-the-fly Otsu segmentation tiles, a TiTiler extension.

May import: anything in the package (top-level glue).
"""

from titiler_otsu.version import __version__

__all__ = ["__version__", "create_app"]


def __getattr__(name: str):  # pragma: no cover - thin lazy import
    """Import `create_app` lazily so importing the package builds no state."""
    if name == "create_app":
        from titiler_otsu.app import create_app

        return create_app
    raise AttributeError(name)
