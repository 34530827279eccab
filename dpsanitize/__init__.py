"""dpsanitize: differentially private word substitution for text files.

Example::

    from dpsanitize import Sanitizer
    s = Sanitizer(mech="gumbel", epsilon=120)
    s.sanitize_lines(["The quick brown fox."])
"""

__version__ = "0.5.2"

__all__ = ["Sanitizer", "__version__", "batch_function", "sanitize_arrow", "sanitize_frame"]

_FRAMES = ("batch_function", "sanitize_arrow", "sanitize_frame")


def __getattr__(name):
    # Lazy so that `import dpsanitize` (and `dpsanitize --help`) stays free of numpy/gensim/annoy.
    if name == "Sanitizer":
        from .pipeline import Sanitizer

        return Sanitizer
    if name in _FRAMES:  # Arrow tables, pandas frames, datasets.map (dpsanitize.frames)
        from . import frames

        return getattr(frames, name)
    raise AttributeError(name)
