"""dpsanitize: differentially private word substitution for text files.

Example::

    from dpsanitize import Sanitizer
    s = Sanitizer(mech="gumbel", epsilon=120)
    s.sanitize_lines(["The quick brown fox."])
"""

__version__ = "0.3.0"

__all__ = ["Sanitizer", "__version__"]


def __getattr__(name):
    # Lazy so that `import dpsanitize` (and `dpsanitize --help`) stays free of numpy/gensim/annoy.
    if name == "Sanitizer":
        from .pipeline import Sanitizer

        return Sanitizer
    raise AttributeError(name)
