"""The mechanism registry: ``--mech`` name -> class, imported on first use.

Names only here, so that building the CLI (``click.Choice``) imports no numpy.

Example::

    cls = mechanism_class("gumbel")
    mech = cls(epsilon=120.0, store=store)
"""

from importlib import import_module

MECHANISMS = {
    "gumbel": "gumbel:TruncatedGumbel",
    "laplace": "laplace:MultivariateLaplace",
    "mahalanobis": "mahalanobis:Mahalanobis",
    "vickrey": "vickrey:Vickrey",
    "tem": "tem:TruncatedExponential",
    "santext": "santext:SanText",
    "santext+": "santext:SanTextPlus",
    "custext": "custext:CusText",
}


def mechanism_class(name: str):
    """The class registered under ``name`` (KeyError for an unknown name)."""
    module, _, cls = MECHANISMS[name].partition(":")
    return getattr(import_module(f"{__name__}.{module}"), cls)
