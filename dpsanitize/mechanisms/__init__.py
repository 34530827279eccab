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
    "density": "density:DensityExp",
    "density-mh": "density_mh:DensityMH",
    "diffractor": "diffractor:Diffractor",
}

# Where epsilon does something, per word, on the default GloVe 6B 50d vocabulary of 100,000
# words: from N_w near 0 (almost every word replaced) to near 1 (almost none), as measured by
# scripts/audit_table.py (README). Other embeddings move these ranges: check with `audit`.
EPSILON_GUIDE = {  # name: (range, what it does there)
    "gumbel": ("above its floor, 79.8 here (calibrate prints epsilon_floor)",
               "the floor is (3 + 2(1 + ln|W|))/d_min and a smaller eps is refused with it; "
               "N_w stays at 0.16-0.19 at any eps"),
    "laplace": ("5 to 30", "N_w 0.13 at 5, 0.76 at 10, 0.98 at 20"),
    "mahalanobis": ("5 to 30", "N_w 0.12 at 5, 0.74 at 10, 0.98 at 20"),
    "vickrey": ("5 to 60", "N_w 0.09 at 5, 0.60 at 20, 0.78 at 60"),
    "tem": ("1 to 8", "N_w 0.01 at 2, 0.61 at 4, 0.96 at 6"),
    "santext": ("1 to 8", "N_w 0.01 at 2, 0.61 at 4, 0.96 at 6"),
    "santext+": ("1 to 10", "N_w 0.08 at 2, 0.63 at 4, 0.93 at 6"),
    "custext": ("1 to 16", "N_w 0.07 at 1, 0.57 at 8, 0.96 at 16"),
    "density": ("1 to 8", "N_w 0.01 at 2, 0.60 at 4, 0.96 at 6"),
    "density-mh": ("as laplace (experimental, needs --experimental)",
                   "no formal guarantee: approximate sampling; every step scores all of W"),
    "diffractor": ("0.1 to 6 (per list position, not Euclidean)",
                   "N_w 0.05 at 0.1, 0.46 at 1, 0.96 at 4"),
}


def mechanism_class(name: str):
    """The class registered under ``name`` (KeyError for an unknown name)."""
    module, _, cls = MECHANISMS[name].partition(":")
    return getattr(import_module(f"{__name__}.{module}"), cls)


def create(name: str, *, epsilon: float, store, experimental: bool = False, **options):
    """Instantiate mechanism ``name``; options it does not take are an InvalidParameter.

    Options whose value is None are ignored (not given on the command line). An experimental
    mechanism (no formal guarantee) is refused unless ``experimental=True``, and then runs
    with a :class:`..errors.PrivacyWarning`.
    """
    import inspect
    import warnings

    from ..errors import InvalidParameter, PrivacyWarning

    cls = mechanism_class(name)
    if cls.experimental:
        if not experimental:
            raise InvalidParameter(f"--mech {name} is experimental (no formal guarantee: "
                                   f"approximate sampling); add --experimental (experimental="
                                   f"True) to run it")
        warnings.warn(f"--mech {name} has no formal guarantee: approximate sampling",
                      PrivacyWarning, stacklevel=2)
    given = {k: v for k, v in options.items() if v is not None}
    accepted = inspect.signature(cls.__init__).parameters
    unknown = sorted(k for k in given if k not in accepted)
    if unknown:
        flags = ", ".join("--" + k.replace("_", "-") for k in unknown)
        raise InvalidParameter(f"{flags} does not apply to --mech {name}")
    return cls(epsilon=epsilon, store=store, **given)
