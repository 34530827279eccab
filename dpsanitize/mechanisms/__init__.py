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


def create(name: str, *, epsilon: float, store, **options):
    """Instantiate mechanism ``name``; options it does not take are an InvalidParameter.

    Options whose value is None are ignored (not given on the command line).
    """
    import inspect

    from ..errors import InvalidParameter

    cls = mechanism_class(name)
    given = {k: v for k, v in options.items() if v is not None}
    accepted = inspect.signature(cls.__init__).parameters
    unknown = sorted(k for k in given if k not in accepted)
    if unknown:
        flags = ", ".join("--" + k.replace("_", "-") for k in unknown)
        raise InvalidParameter(f"{flags} does not apply to --mech {name}")
    mechanism = cls(epsilon=epsilon, store=store, **given)
    mechanism.recipe = (name, given)  # enough to build the same mechanism in another process
    return mechanism
