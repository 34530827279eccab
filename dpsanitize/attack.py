"""Measured privacy: how often the best possible attacker names the input word (Bayes recovery).

The attacker knows the mechanism, its parameters and how often each word occurs (the *prior*),
sees one sanitized word y and names one guess. The best guess for y is the domain word w that
maximises pi(w) * Pr[M(w) = y], and its success is the Bayes vulnerability of the mechanism
(Smith 2009; Alvim et al., *The Science of Quantitative Information Flow*, 2020)::

    bayes_recovery = sum over y in W of  max over w in the domain of  pi(w) * Pr[M(w) = y]

Unlike epsilon, it is comparable across mechanisms and embeddings.

* The prior: the in-vocabulary words of a file (same readers, tokenizer and case folding as
  ``run``), counted by vocabulary id; the domain is the D most frequent ids (ties: lower id
  first) and pi(w) = count(w) / total count over the domain. Without a file: the first D ids,
  pi(i) proportional to 1/(i+1).
* **exact** (mechanisms whose ``probabilities(i)`` is the closed-form law): rows of P in float64,
  a running maximum over y; no sampling error.
* **sampled** (the others): m draws per domain word, split in halves. The first half fits an
  estimate of the law and fixes the guess for every output; the second half, never seen by the
  fit, measures that guess's success, with a 95 % interval. The value is the success of an
  attack one can actually run, so it is a lower bound on the Bayes-optimal value (up to its
  sampling error), never optimistic. To be tight as well as honest, the fit pools the outputs of
  all domain words into a likelihood by distance (or by neighbour rank) instead of trusting raw
  per-word counts, which are thin when a word's outputs spread over hundreds of words; which
  pooled model is used is chosen on a split of the first half alone.

Example::

    prior = default_prior(len(store.vocab), 1000)
    result = bayes_recovery(mech, prior)                      # exact when the law is closed-form
    result = bayes_recovery(mech, prior, method="sampled", draws=1000, rng=make_rng(1))
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np

from .errors import InputDataError, InvalidParameter
from .mechanisms.base import open_uniform

DEFAULT_WORDS = 1000
DEFAULT_DRAWS = 1000
METHODS = ("auto", "exact", "sampled")
MODELS = ("dist-norm", "dist", "rank", "counts")  # estimators of the law for the sampled path
LEVEL = 0.95
PRIOR_FORMATS = ("auto", "text", "csv", "tsv", "jsonl")

# Where `tune` looks for epsilon (geometric bisection), per mechanism: from nearly random
# output to nearly the identity on the default embeddings. gumbel starts just above its floor.
TUNE_RANGES = {
    "santext": (0.1, 40.0), "santext+": (0.1, 40.0), "tem": (0.1, 40.0),
    "density": (0.1, 40.0), "custext": (0.1, 60.0), "diffractor": (0.01, 20.0),
    "laplace": (1.0, 100.0), "mahalanobis": (1.0, 100.0), "vickrey": (1.0, 200.0),
    "density-mh": (1.0, 100.0),
}
GUMBEL_RANGE_FACTOR = (1.001, 20.0)  # times its epsilon_floor
TUNE_TOLERANCE = 1.02  # bisection stops when hi / lo <= this


# --------------------------------------------------------------------------------------------
# The prior


@dataclass
class Prior:
    """The attacker's knowledge of word frequencies.

    ``ids``: the domain (vocabulary ids, most probable first); ``weights``: pi over it (sums to
    1); ``coverage``: the domain's share of the prior's in-vocabulary tokens; ``counts``: tokens
    per vocabulary id of the whole prior text (None for the default prior).
    """

    ids: np.ndarray
    weights: np.ndarray
    coverage: float
    counts: np.ndarray | None = None

    @property
    def words(self) -> int:
        return len(self.ids)


def default_prior(vocab_size: int, words: int = DEFAULT_WORDS) -> Prior:
    """The first ``words`` vocabulary ids, pi(i) proportional to 1/(i+1) (Zipf)."""
    d = _check_words(words, vocab_size)
    ids = np.arange(d, dtype=np.int64)
    w = 1.0 / (ids + 1.0)
    return Prior(ids, w / w.sum(), 1.0, None)


def prior_from_counts(counts: np.ndarray, words: int = DEFAULT_WORDS) -> Prior:
    """The ``words`` most frequent ids of ``counts`` (tokens per vocabulary id; ties: lower id)."""
    counts = np.asarray(counts, dtype=np.int64)
    d = _check_words(words, len(counts))
    seen = np.flatnonzero(counts > 0)
    if not len(seen):
        raise InputDataError("the prior has no in-vocabulary word")
    order = seen[np.lexsort((seen, -counts[seen]))][:d]
    c = counts[order].astype(np.float64)
    return Prior(order, c / c.sum(), float(c.sum() / counts.sum()), counts)


def _check_words(words, limit: int) -> int:
    if int(words) != words or int(words) < 1:
        raise InvalidParameter("--words must be an integer >= 1")
    return min(int(words), limit)


def count_words(texts, vocab) -> np.ndarray:
    """Tokens per vocabulary id over ``texts``, tokenized and case-folded as ``run`` does."""
    from . import text as tx

    lookup = vocab.id_of.get
    fold = vocab.lowercase
    counts = np.zeros(len(vocab), dtype=np.int64)
    batch: list[int] = []
    for t in texts:
        words = tx.split(t)[1::2]
        keys = map(str.lower, words) if fold else words
        batch.extend(i for i in map(lookup, keys) if i is not None)
        if len(batch) > 1 << 20:
            counts += np.bincount(batch, minlength=len(vocab))
            batch = []
    if batch:
        counts += np.bincount(batch, minlength=len(vocab))
    return counts


def read_texts(path: str, fmt: str = "auto", columns=(), *, header: bool = True,
               encoding: str = "utf-8") -> list[str]:
    """The text ``run`` would sanitize in ``path``: every line of a text file, or the named
    columns (fields) of CSV, TSV or JSON lines. Errors name line numbers, never content."""
    from .formats import detect, make_format, read_columns
    from .io import open_input

    open_input(path).close()  # missing or unreadable: MissingInputError (66), like run's INPUT
    name = detect(path, fmt)
    make_format(name, columns, header=header)  # the same validation as run (InvalidParameter)
    if name in ("csv", "tsv"):
        return [v for row in read_columns(path, name, list(columns), header=header,
                                          encoding=encoding) for v in row]
    texts = []
    with open_input(path) as f:
        for n, raw in enumerate(f, start=1):
            try:
                line = raw.decode(encoding)
            except UnicodeDecodeError:
                raise InputDataError(f"{path}: line {n}: not valid {encoding}") from None
            if name == "text":
                texts.append(line)
            elif line.strip():
                texts.extend(_json_fields(line, columns, path, n))
    return texts


def _json_fields(line: str, columns, path: str, n: int) -> list[str]:
    try:
        obj = json.loads(line)
    except ValueError:
        raise InputDataError(f"{path}: line {n}: not a JSON object") from None
    out = []
    for col in columns:
        value = obj
        for key in col.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, str):
            out.append(value)
    return out


def load_prior(path: str | None, store, words: int = DEFAULT_WORDS, *, fmt: str = "auto",
               columns=(), header: bool = True, encoding: str = "utf-8") -> Prior:
    """The prior of ``path`` over ``store``'s vocabulary, or the default prior when None."""
    if path is None:
        return default_prior(len(store.vocab), words)
    counts = count_words(read_texts(path, fmt, columns, header=header, encoding=encoding),
                         store.vocab)
    return prior_from_counts(counts, words)


# --------------------------------------------------------------------------------------------
# Bayes recovery


def bayes_recovery(mech, prior: Prior, *, method: str = "auto", draws: int = DEFAULT_DRAWS,
                   seed=None, rng: np.random.Generator | None = None,
                   progress=None) -> dict:
    """Bayes recovery of ``mech`` under ``prior``: the JSON object of ``dpsanitize attack``.

    Keys: ``bayes_recovery``, ``bayes_recovery_ci`` ([low, high]; [v, v] when exact),
    ``prior_only``, ``identity_recovery``, ``coverage``, ``words``, ``method``.
    The sampled method draws from ``rng``, else from ``seed`` (a user's int: a
    PrivacyWarning; a SeedSequence; None: OS entropy). ``progress(n)`` is called with the
    domain words (exact) or draws (sampled) done.
    """
    from .rng import make_rng, warn_if_seeded

    warn_if_seeded(seed)
    if seed is not None and rng is not None:
        raise InvalidParameter("give bayes_recovery a seed or an rng, not both")
    if resolve_method(mech, prior, method) == "exact":
        value, identity = exact_recovery(mech, prior, progress=progress)
        ci, used = [value, value], "exact"
    else:
        rng = make_rng(seed) if rng is None else rng
        est = sampled_recovery(mech, prior, draws=draws, rng=rng, progress=progress)
        value, identity, ci, used = est["value"], est["identity"], est["ci"], "sampled"
    return {"bayes_recovery": value, "bayes_recovery_ci": ci,
            "prior_only": float(prior.weights.max()), "identity_recovery": identity,
            "coverage": prior.coverage, "words": prior.words, "method": used}


def resolve_method(mech, prior: Prior, method: str = "auto") -> str:
    """What :func:`bayes_recovery` does with ``method``: "exact" when asked, or when "auto"
    and ``mech`` has a closed-form law; else "sampled"."""
    if method not in METHODS:
        raise InvalidParameter(f"method must be one of {', '.join(METHODS)}")
    closed = mech.probabilities(int(prior.ids[0])) is not None
    if method == "exact" and not closed:
        raise InvalidParameter(f"--method exact needs a closed-form law, which --mech "
                               f"{mech.name} does not have; use --method sampled")
    return "exact" if method == "exact" or (method == "auto" and closed) else "sampled"


ROW_BLOCK = 32  # probability rows asked at once (_probability_rows)


def exact_recovery(mech, prior: Prior, *, chunk: int = ROW_BLOCK,
                   progress=None) -> tuple[float, float]:
    """(bayes_recovery, identity_recovery) from the closed-form rows, float64, no sampling."""
    best = np.zeros(mech.vocab_size)
    identity = 0.0
    ids, pis = prior.ids, prior.weights
    for s in range(0, len(ids), chunk):
        rows = _probability_rows(mech, ids[s:s + chunk])
        for r, (w, pi) in enumerate(zip(ids[s:s + chunk].tolist(), pis[s:s + chunk].tolist())):
            identity += pi * float(rows[r, w])
            rows[r] *= pi
        np.maximum(best, rows.max(axis=0), out=best)
        if progress is not None:
            progress(len(rows))
    return float(math.fsum(best)), float(identity)


def _probability_rows(mech, ids) -> np.ndarray:
    """``mech.probabilities`` of each word of ``ids`` as a fresh array: a block at once where
    the mechanism can (``probability_rows``: the vectors read once; a row's last bits may
    differ from the lone row's, see geometry.distance_rows), else row by row."""
    rows = getattr(mech, "probability_rows", None)
    return rows(ids) if rows else np.stack([mech.probabilities(int(i)) for i in ids])


def draw_outputs(mech, ids: np.ndarray, draws: int, rng: np.random.Generator, *,
                 batch: int = 1 << 15, progress=None) -> np.ndarray:
    """``draws`` outputs of every word of ``ids``: an array (len(ids), draws).

    A mechanism with a closed-form law (``probabilities``) is drawn from that law by inverse CDF:
    the same distribution as its sampler (whose own tests compare the two), in a fraction of the
    time when one word is drawn a thousand times over.
    """
    out = np.empty((len(ids), draws), dtype=np.int64)
    if len(ids) and mech.probabilities(int(ids[0])) is not None:
        for s in range(0, len(ids), ROW_BLOCK):
            for r, p in enumerate(_probability_rows(mech, ids[s:s + ROW_BLOCK]), start=s):
                cdf = np.cumsum(p)
                pos = np.searchsorted(cdf, open_uniform(rng, draws) * cdf[-1], side="right")
                out[r] = np.minimum(pos, len(cdf) - 1)
                if progress is not None:
                    progress(draws)
        return out
    flat = out.reshape(-1)
    inputs = np.repeat(np.asarray(ids, dtype=np.int64), draws)
    for s in range(0, len(inputs), batch):
        flat[s:s + batch] = mech.perturb(inputs[s:s + batch], rng)
        if progress is not None:
            progress(len(inputs[s:s + batch]))
    return out


def sampled_recovery(mech, prior: Prior, *, draws: int = DEFAULT_DRAWS,
                     rng: np.random.Generator, progress=None, level: float = LEVEL,
                     models=MODELS) -> dict:
    """The split-sample estimate: ``{"value", "ci", "identity", "model"}``.

    The first half of each word's draws fits the guess (the model among ``models`` chosen on a
    split of that half), the second half measures it.
    """
    if int(draws) != draws or draws < 4:
        raise InvalidParameter("--draws must be an integer >= 4 for the sampled method")
    out = draw_outputs(mech, prior.ids, int(draws), rng, progress=progress)
    half = draws // 2
    return estimate(mech.store, prior, out[:, :half], out[:, half:], level=level, models=models)


def estimate(store, prior: Prior, fit: np.ndarray, held: np.ndarray, *, level: float = LEVEL,
             models=MODELS) -> dict:
    """Fit the guess on ``fit`` (domain x draws), score it on ``held``. Honest only when the two
    are independent draws: passing the same array twice is the optimistic mistake the tests
    catch."""
    geo = _Geometry(store, prior, fit)
    if len(models) > 1:
        q = fit.shape[1] // 2
        guesses = _guesses(geo, models, fit[:, :q], fit[:, q:])
        trial = {m: _success(guesses[m], prior, fit[:, q:])[0] for m in models}
        model = max(models, key=lambda m: (trial[m], -models.index(m)))
    else:
        model = models[0]
    guess = _guesses(geo, (model,), fit, held)[model]
    value, var, per_word = _success(guess, prior, held)
    z = _z(level)
    half_width = z * math.sqrt(var)
    identity = float(np.dot(prior.weights, (held == prior.ids[:, None]).mean(axis=1)))
    return {"value": value, "ci": [max(0.0, value - half_width), min(1.0, value + half_width)],
            "identity": identity, "model": model}


def _z(level: float) -> float:
    from scipy.stats import norm

    return float(norm.isf((1.0 - level) / 2.0))


def _success(guess: dict, prior: Prior, held: np.ndarray):
    """Success of a guess table on held-out draws: (estimate, variance, per-word rates)."""
    g = guess["of"](held)
    hits = (g == prior.ids[:, None]).sum(axis=1)
    m = held.shape[1]
    rate = hits / m
    value = float(np.dot(prior.weights, rate))
    smooth = (hits + 0.5) / (m + 1.0)  # never a zero variance from a word with 0 or m hits
    var = float(np.dot(prior.weights ** 2, smooth * (1.0 - smooth) / m))
    return value, var, rate


class _Geometry:
    """Distances between the domain and W, summarised once: the distance bins (edges from the
    fitting draws), the per-word histogram of distances to every word of W, and ranks."""

    def __init__(self, store, prior: Prior, fit: np.ndarray, bins: int = 48, chunk: int = 4096):
        self.store, self.prior = store, prior
        self.x = store.x64
        self.sq = np.einsum("ij,ij->i", self.x, self.x)
        self.n = len(self.x)
        self.ids = prior.ids
        self.log_pi = np.log(prior.weights)
        self.chunk = chunk
        ids = self.ids
        self.fit = fit
        self.fit_dist = self._pair_dist(np.repeat(ids, fit.shape[1]), fit.reshape(-1)).reshape(
            fit.shape)
        d = self.fit_dist[self.fit_dist > 0]
        if len(d):
            qs = np.unique(np.quantile(d, np.linspace(0, 1, bins + 1)[1:-1]))
        else:
            qs = np.array([], dtype=np.float64)
        self.edges = qs  # bin b = searchsorted(edges, d, side="right"); identity separate
        self.n_bins = len(qs) + 1
        bin_of = _Lookup(qs, store.d_max)
        hist = np.zeros((len(ids), self.n_bins))
        dsum = np.zeros(self.n_bins)
        for s in range(0, self.n, chunk):
            dd = self._block(s)
            b = bin_of(dd)
            same = ids[:, None] == np.arange(s, min(self.n, s + chunk))[None, :]
            b[same] = self.n_bins  # identity: its own bin, dropped below
            flat = b + (self.n_bins + 1) * np.arange(len(ids))[:, None]
            hist += np.bincount(flat.ravel(), minlength=len(ids) * (self.n_bins + 1)).reshape(
                len(ids), self.n_bins + 1)[:, :-1]
            dsum += np.bincount(b.ravel(), weights=dd.ravel(), minlength=self.n_bins + 1)[:-1]
        self.hist = hist
        pairs = hist.sum(axis=0)
        self.centers = np.where(pairs > 0, dsum / np.maximum(pairs, 1), 0.0)
        k = store.k_max
        self.table = np.asarray(store.nbr_ids[ids], dtype=np.int64)  # rank j+1 at column j
        self.far_pairs = max(0, self.n - 1 - k)

    def _pair_dist(self, a, b):
        from .geometry import dist64

        return dist64(self.x[a], self.x[b])

    def fit_distances(self, fit: np.ndarray) -> np.ndarray:
        """d(w, y) for the draws ``fit`` (domain x draws): computed once for the fitting draws
        and their leading columns, which every model fits on."""
        m = fit.shape[1]
        if m <= self.fit.shape[1] and np.array_equal(fit, self.fit[:, :m]):
            return self.fit_dist[:, :m]
        return self._pair_dist(np.repeat(self.ids, m), fit.reshape(-1)).reshape(fit.shape)

    def _block(self, start: int, cols=None) -> np.ndarray:
        """Distances domain x (W[start:start+chunk] or ``cols``), float64."""
        if cols is None:
            cols = np.arange(start, min(self.n, start + self.chunk))
        a, b = self.x[self.ids], self.x[cols]
        d2 = self.sq[self.ids][:, None] + self.sq[cols][None, :] - 2.0 * (a @ b.T)
        np.maximum(d2, 0.0, out=d2)
        return np.sqrt(d2, out=d2)

    def ranks(self, ys: np.ndarray) -> np.ndarray:
        """Rank of each y for each domain word: 0 itself, j+1 its table's j-th word, K+1 beyond."""
        k = self.table.shape[1]
        r = np.full((len(self.ids), len(ys)), k + 1, dtype=np.int64)
        pos = np.full(self.n, -1, dtype=np.int64)
        pos[ys] = np.arange(len(ys))
        col = pos[self.table]
        rows, js = np.nonzero(col >= 0)
        r[rows, col[rows, js]] = js + 1
        mine = np.flatnonzero(pos[self.ids] >= 0)
        r[mine, pos[self.ids[mine]]] = 0
        return r


_SCORED_COLUMNS = 512  # outputs scored at once: domain x 512 float64 fits in cache (D 1,000: 4 MiB)


def _guesses(geo: _Geometry, models, fit: np.ndarray, targets: np.ndarray) -> dict:
    """Per model, the guess for every output in ``targets`` from the law fitted on ``fit``
    (a dict model -> ``{"of": outputs -> guesses}``).

    Outputs never seen in ``fit`` are guessed as themselves when in the domain, else as the most
    probable prior word. Ties between domain words go to the lower vocabulary id. Models that
    differ only by a per-word offset (dist, dist-norm) share one pass over the distances.
    """
    ids = geo.ids
    seen = np.zeros(geo.n, dtype=bool)
    seen[fit.ravel()] = True
    top = int(ids[np.argmax(geo.prior.weights)])  # weights are sorted: the first maximum
    in_domain = np.zeros(geo.n, dtype=bool)
    in_domain[ids] = True
    ys = np.unique(targets)
    known = seen[ys]
    order = np.argsort(ids, kind="stable")  # argmax over rows in id order: ties to lower id
    scorers = _scorers(geo, models, fit)
    yk = ys[known]
    picks = {m: np.empty(len(yk), dtype=np.int64) for m in models}
    for s in range(0, len(yk), _SCORED_COLUMNS):
        cols = yk[s:s + _SCORED_COLUMNS]
        scored = {}
        for m in models:
            key, score, offset = scorers[m]
            if key not in scored:
                scored[key] = score(cols)[order]
            sc = scored[key] if offset is None else scored[key] + offset[order]
            picks[m][s:s + len(cols)] = ids[order][np.argmax(sc, axis=0)]
    out = {}
    for m in models:
        table = np.where(in_domain[ys], ys, top)
        table[known] = picks[m]
        lookup = np.full(geo.n, -1, dtype=np.int64)
        lookup[ys] = table
        out[m] = {"of": lookup.__getitem__}
    return out


def _scorers(geo: _Geometry, models, fit: np.ndarray) -> dict:
    """model -> (key, score, offset): ``score(cols)`` is log(pi(w) * P_hat[w, y]) for the
    domain rows and those columns, plus ``offset`` per row when not None; models with one key
    share ``score``."""
    out, built = {}, {}
    for m in models:
        key = "dist" if m == "dist-norm" else m
        if key not in built:
            built[key] = _scorer(geo, key, fit)
        score, norm = built[key]
        out[m] = (key, score, -norm if m == "dist-norm" else None)
    return out


def _scorer(geo: _Geometry, model: str, fit: np.ndarray):
    """``(score, norm)``: ``score(cols)`` is log(pi(w) * P_hat[w, y]) for the domain rows and
    those columns; ``norm`` is dist-norm's per-word log normaliser for "dist", else None."""
    ids, m, d_count = geo.ids, fit.shape[1], len(geo.ids)
    log_pi = geo.log_pi[:, None]
    if model == "counts":
        key = np.repeat(np.arange(d_count), m) * geo.n + fit.ravel()
        uk, cnt = np.unique(key, return_counts=True)

        def counts_score(cols):
            pos = np.full(geo.n, -1, dtype=np.int64)
            pos[cols] = np.arange(len(cols))
            row, y = uk // geo.n, uk % geo.n
            keep = pos[y] >= 0
            c = np.zeros((d_count, len(cols)))
            c[row[keep], pos[y[keep]]] = cnt[keep]
            with np.errstate(divide="ignore"):
                return log_pi + np.log(c)
        return counts_score, None
    if model == "rank":
        k = geo.table.shape[1]
        r = np.zeros(k + 2)
        flat = fit.ravel()
        rows = np.repeat(np.arange(d_count), m)
        hit = geo.table[rows] == flat[:, None]
        rank = np.where(flat == ids[rows], 0, np.where(hit.any(axis=1), hit.argmax(axis=1) + 1,
                                                       k + 1))
        r += np.bincount(rank, minlength=k + 2)
        pairs = np.full(k + 2, float(m * d_count))
        pairs[k + 1] = m * d_count * max(geo.far_pairs, 1)
        log_r = np.log((r + 0.5) / pairs)
        return (lambda cols: log_pi + log_r[geo.ranks(cols)]), None
    # distance models: a pooled kernel k(d), interpolated in log between bin centres
    flat = fit.ravel()
    rows = np.repeat(np.arange(d_count), m)
    ident = flat == ids[rows]
    d = geo.fit_distances(fit).ravel()[~ident]
    cnt = np.bincount(np.searchsorted(geo.edges, d, side="right"), minlength=geo.n_bins)
    pairs = geo.hist.sum(axis=0)
    used = pairs > 0
    log_k = np.log((cnt[used] + 0.5) / (m * pairs[used]))
    centers = geo.centers[used]
    log_id = math.log((ident.sum() + 0.5) / (m * d_count))
    # dist-norm's per-word normalisation (sum over y of P_hat[w, y] = 1), returned beside
    k_bins = np.zeros(geo.n_bins)
    k_bins[used] = np.exp(log_k)
    norm = np.log(geo.hist @ k_bins + math.exp(log_id))[:, None]

    segment_of = _Lookup(centers, geo.store.d_max)

    def dist_score(cols):
        dd = geo._block(0, cols)
        lk = _interp(dd, centers, log_k, segment_of)
        lk[ids[:, None] == cols[None, :]] = log_id
        return log_pi + lk
    return dist_score, norm


class _Lookup:
    """``np.searchsorted(points, x, side="right")`` for many ``x >= 0`` and a few sorted points,
    from a table over a uniform grid of [0, top]: several times faster than a binary search per
    x. An x whose grid cell lies next to a point is settled by searchsorted itself, so every
    answer is the same.

    Example::

        _Lookup(np.array([1.0, 2.5]), 4.0)(np.array([0.5, 1.0, 3.0]))   # [0, 1, 2]
    """

    def __init__(self, points: np.ndarray, top: float, cells: int = 1 << 14):
        self.points, self.cells = points, cells
        top = max(float(top), float(points[-1]) if len(points) else 0.0, 1e-300)
        self.scale = cells / top
        self.table = np.searchsorted(points, np.arange(cells + 1) / self.scale, side="right")
        self.near = np.zeros(cells + 1, dtype=bool)
        self.near[cells] = True  # x at or beyond top
        cell = (points * self.scale).astype(np.int64)
        for c in cell:  # a point's cell and its neighbours: rounding cannot misplace an x there
            self.near[max(c - 1, 0):c + 2] = True

    def __call__(self, x: np.ndarray) -> np.ndarray:
        c = np.minimum(x * self.scale, self.cells).astype(np.intp)
        out = self.table[c]
        near = np.flatnonzero(self.near[c])
        if len(near):
            out.flat[near] = np.searchsorted(self.points, x.flat[near], side="right")
        return out


def _interp(x: np.ndarray, xp: np.ndarray, fp: np.ndarray, lookup: _Lookup) -> np.ndarray:
    """``np.interp(x, xp, fp)`` with the same arithmetic (so the same bits on the x86-64 builds
    we test; a build that fuses multiply-add may differ in the last bit), its segment search
    done by ``lookup`` (a :class:`_Lookup` of ``xp``). Needs finite slopes: knots that are not
    subnormally close, as bin centres never are (numpy has special cases for those)."""
    if len(xp) < 2:
        return np.interp(x, xp, fp)
    j = lookup(x) - 1
    k = np.clip(j, 0, len(xp) - 2)
    slopes = (fp[1:] - fp[:-1]) / (xp[1:] - xp[:-1])
    out = slopes[k] * (x - xp[k]) + fp[k]
    out[j < 0] = fp[0]
    out[j >= len(xp) - 1] = fp[-1]
    return out


# --------------------------------------------------------------------------------------------
# Share of words changed, and tune


def changed_share(mech, prior: Prior, rng: np.random.Generator, tokens: int = 100_000) -> float:
    """Expected share of the prior text's in-vocabulary tokens that the mechanism replaces,
    estimated on ``tokens`` tokens drawn from it (the domain under pi for the default prior)."""
    if prior.counts is not None:
        ids = np.flatnonzero(prior.counts)
        p = prior.counts[ids] / prior.counts.sum()
    else:
        ids, p = prior.ids, prior.weights
    sample = ids[np.minimum(np.searchsorted(np.cumsum(p), rng.random(tokens) * p.sum(),
                                            side="right"), len(ids) - 1)]
    return float(np.mean(mech.perturb(sample, rng) != sample))


def tune_range(name: str, store) -> tuple[float, float]:
    """The epsilon range ``tune`` searches for mechanism ``name`` (TUNE_RANGES; gumbel: from
    just above its floor)."""
    if name == "gumbel":
        from .mechanisms.gumbel import epsilon_floor

        floor = epsilon_floor(len(store.vocab), store.d_min)
        return floor * GUMBEL_RANGE_FACTOR[0], floor * GUMBEL_RANGE_FACTOR[1]
    return TUNE_RANGES.get(name, (0.1, 40.0))


def tune(name: str, prior: Prior, target: float, *, store, options: dict | None = None,
         method: str = "auto", draws: int = DEFAULT_DRAWS, seed=None,
         eps_range: tuple[float, float] | None = None, progress=None,
         memo: dict | None = None) -> dict:
    """The largest epsilon (within TUNE_TOLERANCE) whose Bayes recovery is at most ``target``
    (the upper end of the interval when sampled), by geometric bisection over ``eps_range``.

    Returns ``{"epsilon", "bayes_recovery", "bayes_recovery_ci", "method", "changed"}``; an
    InputDataError (exit 65) when no epsilon in the range meets the target, with the range of
    recovery reached. Sampled evaluations share one random stream (common random numbers), so
    the bisection compares like with like. ``progress(1)`` is called after each evaluation.
    ``memo`` (a dict) keeps the evaluations for another call with the same mechanism, prior,
    options and a fixed ``seed`` (several targets). A user's fixed ``seed`` (an int) is a
    PrivacyWarning; a SeedSequence (a measurement's own, as in eval) is not.
    """
    from .mechanisms import create
    from .rng import make_rng, seed_sequence, warn_if_seeded

    warn_if_seeded(seed)
    if not (0.0 < target < 1.0):
        raise InvalidParameter("--target-recovery must be in (0, 1)")
    lo, hi = eps_range or tune_range(name, store)
    seq = seed_sequence(seed)
    options = options or {}
    seen: dict[float, dict] = memo if memo is not None else {}

    def measure(eps: float) -> dict:
        if eps not in seen:
            mech = create(name, epsilon=eps, store=store, **options)
            seen[eps] = bayes_recovery(mech, prior, method=method, draws=draws,
                                       rng=make_rng(seq=np.random.SeedSequence(seq.entropy)))
            seen[eps]["mech"] = mech
            if progress is not None:
                progress(1)
        return seen[eps]

    def ok(eps: float) -> bool:
        return measure(eps)["bayes_recovery_ci"][1] <= target

    if not ok(lo):
        low, high = measure(lo), measure(hi)
        raise InputDataError(
            f"no --eps in [{lo:.4g}, {hi:.4g}] gives --mech {name} a bayes_recovery of at most "
            f"{target:g}: it reaches from {low['bayes_recovery']:.4f} (eps {lo:.4g}) to "
            f"{high['bayes_recovery']:.4f} (eps {hi:.4g}) on this prior "
            f"(guessing from the prior alone: {low['prior_only']:.4f})")
    if ok(hi):  # the whole range meets the target: its largest epsilon
        lo = hi
    else:
        # Earlier evaluations (memo: other targets) narrow the bracket before bisecting.
        lo = max([e for e in seen if lo <= e < hi and ok(e)] + [lo])
        hi = min([e for e in seen if lo < e <= hi and not ok(e)] + [hi])
        while hi / lo > TUNE_TOLERANCE:
            mid = math.sqrt(lo * hi)
            lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    best = measure(lo)
    changed = changed_share(best["mech"], prior, make_rng(seq=np.random.SeedSequence(seq.entropy)))
    return {"epsilon": lo, "bayes_recovery": best["bayes_recovery"],
            "bayes_recovery_ci": best["bayes_recovery_ci"], "method": best["method"],
            "changed": changed}


def table(result: dict) -> str:
    """The result of :func:`bayes_recovery` as ``key: value`` lines (the interval when sampled)."""
    low, high = result["bayes_recovery_ci"]
    interval = f"  (95% interval {low:.4f} to {high:.4f})" if result["method"] == "sampled" else ""
    lines = [f"{key:>18}: {result[key]:.4f}{interval if key == 'bayes_recovery' else ''}"
             for key in ("bayes_recovery", "prior_only", "identity_recovery", "coverage")]
    return "\n".join(lines + [f"{'words':>18}: {result['words']}",
                              f"{'method':>18}: {result['method']}"])


def tune_table(result: dict, name: str, target: float) -> str:
    """The result of :func:`tune` as the line ``dpsanitize tune`` prints."""
    return (f"--mech {name} --eps {result['epsilon']:.4g}: bayes_recovery "
            f"{result['bayes_recovery']:.4f} ({result['method']}; target {target:g}), "
            f"{100 * result['changed']:.1f}% of the prior's words changed")
