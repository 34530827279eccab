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


# The options of particular mechanisms, owned here with the mechanisms: (flag, type, help).
# type: ("choice", values) | ("int", low) | ("float", low, high, low_open, high_open) | ("flag",).
# The CLI turns each into an option; a mechanism whose constructor does not take one refuses it.
OPTIONS = (
    ("--decoder", ("choice", ("exact", "annoy")),
     "laplace, mahalanobis, vickrey: decode the noisy vector exactly (default) or with Annoy "
     "(approximate, post-processing)."),
    ("--device", ("choice", ("cpu", "cuda")),
     "laplace, mahalanobis, vickrey: score the vocabulary for exact decoding on the CPU "
     "(default) or a CUDA GPU (extra dpsanitize[gpu]); the same output either way."),
    ("--search-k", ("int", 1), "Annoy search_k with --decoder annoy (default 10000)."),
    ("--lam", ("float", 0, 1, False, False),
     "mahalanobis (and vickrey with --vickrey-base mahalanobis): weight of the covariance, in "
     "[0, 1]; default 0.2."),
    ("--vickrey-t", ("float", 0, 1, False, False), "vickrey: threshold t in [0, 1]; default 0.5."),
    ("--vickrey-base", ("choice", ("laplace", "mahalanobis")),
     "vickrey: the noise it builds on; default laplace."),
    ("--tem-beta", ("float", 0, 1, True, True), "tem: beta in (0, 1); default 0.001."),
    ("--santext-sensitive", ("float", 0, 1, True, False),
     "santext+: fraction of W (least frequent) treated as sensitive, in (0, 1]; default 0.9."),
    ("--santext-p", ("float", 0, 1, False, False),
     "santext+: probability that a non-sensitive word is resampled, in [0, 1]; default 0.3."),
    ("--custext-k", ("int", 1), "custext: group size K; default 20."),
    ("--diffractor-lists", ("int", 1),
     "diffractor: number of word lists L (list l starts at id l*floor(|W|/L)); default 1."),
    ("--mh-steps", ("int", 0), "density-mh: Metropolis-Hastings steps per word; default 20."),
    ("--experimental", ("flag",),
     "Allow an experimental mechanism (density-mh: no formal guarantee)."),
    ("--kde-bandwidth", ("float", 0, None, True, False),
     "density: bandwidth h of the Gaussian kernel density prior; default Scott's rule."),
    ("--truncate", ("float", 0, None, True, False),
     "laplace: truncate the noise radius at R. NOT pure metric DP: delta = Pr[Gamma(n, 1/eps) > "
     "R] per word (calibrate prints it)."),
    ("--truncate-delta", ("float", 0, 1, True, True),
     "laplace: truncate the noise radius where Pr[Gamma(n, 1/eps) > R] is this delta."),
    ("--max-delta", ("float", 0, 1, False, False),
     "laplace: refuse a truncation whose delta per word is larger (before any work, naming the "
     "radius that meets it); default 0.05."),
)


# What `dpsanitize run` does when not told (docs/privacy-by-attack.md): on SST-2, santext at eps
# 3.4 lets the best attacker name 27 % of the words (exact), against 42 % for gumbel at any eps.
# Over five seeds it leads at recovery 0.1; near 0.3 laplace is about 0.02 more accurate, but
# its recovery is only a sampled lower bound and it is 5-10x slower. Other mechanisms need --eps.
DEFAULT_MECHANISM = "santext"
DEFAULT_EPSILON = {"santext": 3.4}


def default_epsilon(name: str) -> float:
    """The measured default epsilon of ``name``, or InvalidParameter asking for --eps."""
    from ..errors import InvalidParameter

    if name not in DEFAULT_EPSILON:
        span = EPSILON_GUIDE.get(name, ("",))[0]
        raise InvalidParameter(f"--mech {name} needs --eps (useful range on the default "
                               f"embeddings: {span})")
    return DEFAULT_EPSILON[name]


def mechanism_class(name: str):
    """The class registered under ``name`` (KeyError for an unknown name)."""
    module, _, cls = MECHANISMS[name].partition(":")
    return getattr(import_module(f"{__name__}.{module}"), cls)


def describe_all() -> list[dict]:
    """``describe()`` of every registered mechanism: ``dpsanitize mechanisms --json``."""
    return [mechanism_class(name).describe() for name in MECHANISMS]


def table(rows: list[dict]) -> str:
    """The rows of :func:`describe_all` as terminal text."""
    return "\n".join(f"{r['name']}\n  guarantee: {r['guarantee']}\n  unit: {r['unit']}\n"
                     f"  useful eps (default embeddings): {r['typical_epsilon']}\n"
                     f"  reference: {r['reference']}" for r in rows)


def create(name: str, *, epsilon: float, store, experimental: bool = False, **options):
    """Instantiate mechanism ``name``; options it does not take are an InvalidParameter.

    Options whose value is None are ignored (not given on the command line). An experimental
    mechanism (no formal guarantee) is refused unless ``experimental=True``, and then runs
    with a :class:`..errors.PrivacyWarning`.
    """
    import inspect

    from ..errors import InvalidParameter

    cls = mechanism_class(name)
    if cls.experimental:
        if not experimental:
            raise InvalidParameter(f"--mech {name} is experimental (no formal guarantee: "
                                   f"approximate sampling); add --experimental (experimental="
                                   f"True) to run it")
        warn_experimental(name)
    given = {k: v for k, v in options.items() if v is not None}
    accepted = inspect.signature(cls.__init__).parameters
    unknown = sorted(k for k in given if k not in accepted)
    if unknown:
        flags = ", ".join("--" + k.replace("_", "-") for k in unknown)
        raise InvalidParameter(f"{flags} does not apply to --mech {name}")
    return cls(epsilon=epsilon, store=store, **given)


def warn_experimental(name: str, stacklevel: int = 2) -> None:
    """The PrivacyWarning of an experimental mechanism, whether made by name or by class."""
    import warnings

    from ..errors import PrivacyWarning

    warnings.warn(f"--mech {name} has no formal guarantee: approximate sampling",
                  PrivacyWarning, stacklevel=stacklevel + 1)
