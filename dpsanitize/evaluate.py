"""Choose epsilon by measurement: a classifier's accuracy on sanitized text, with N_w and S_w.

For each mechanism, epsilon and repeat (seed), the training text is sanitized (and the test text
too with ``sanitize="both"``), a classifier is trained on it and scored on the test text. Beside
the accuracy (mean and standard deviation over the repeats) each setting reports the share of
in-vocabulary words that were replaced and the mechanism's plausible deniability at that
epsilon — mean N_w and S_w over words of the dataset itself (spread over its frequency ranks) —
because epsilon is not comparable across mechanisms, but N_w and S_w are. Results are cached per
(data, mechanism, epsilon, seed, classifier, ...) so an interrupted grid resumes where it stopped.

Classifiers (scikit-learn): ``tfidf`` (word 1-2 grams, logistic regression) and
``mean-vector`` (the mean embedding of a text's in-vocabulary words, logistic regression).

Example::

    rows = evaluate(train, test, [("gumbel", 120.0), ("laplace", 10.0)], store=store, repeats=3)
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
from dataclasses import dataclass

import numpy as np

CLASSIFIERS = ("tfidf", "mean-vector")


@dataclass
class Dataset:
    """Texts and labels of a train or test split."""

    texts: list[str]
    labels: list[str]

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for t, y in zip(self.texts, self.labels):
            h.update(t.encode("utf-8", "surrogatepass") + b"\x1f" + y.encode() + b"\x1e")
        return h.hexdigest()


def split(data: Dataset, test_fraction: float, seed: int = 0) -> tuple[Dataset, Dataset]:
    """A fixed random split (the same for every mechanism and epsilon)."""
    order = np.random.default_rng(seed).permutation(len(data.texts))
    cut = int(round(len(order) * (1 - test_fraction)))
    pick = lambda idx: Dataset([data.texts[i] for i in idx], [data.labels[i] for i in idx])
    return pick(order[:cut]), pick(order[cut:])


def accuracy(classifier: str, train: Dataset, test: Dataset, store) -> float:
    from sklearn.linear_model import LogisticRegression

    if classifier == "tfidf":
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.pipeline import make_pipeline

        model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
                              LogisticRegression(C=4.0, max_iter=2000))
        model.fit(train.texts, train.labels)
        predicted = model.predict(test.texts)
    else:
        from sklearn.preprocessing import StandardScaler
        from sklearn.pipeline import make_pipeline

        model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
        model.fit(mean_vectors(train.texts, store), train.labels)
        predicted = model.predict(mean_vectors(test.texts, store))
    return float(np.mean(np.asarray(predicted) == np.asarray(test.labels)))


def mean_vectors(texts: list[str], store) -> np.ndarray:
    """The mean vector of each text's in-vocabulary words (zeros for none)."""
    from . import text as tx

    vocab = store.vocab
    fold = vocab.lowercase
    out = np.zeros((len(texts), vocab.dim))
    for r, t in enumerate(texts):
        ids = [i for w in tx.split(t)[1::2]
               if (i := vocab.id_of.get(w.lower() if fold else w)) is not None]
        if ids:
            out[r] = np.asarray(vocab.vectors[ids], dtype=np.float64).mean(axis=0)
    return out


def dataset_words(texts: list[str], store, sample: int) -> np.ndarray:
    """``sample`` in-vocabulary word ids of the texts, spread evenly over their frequency ranks."""
    from collections import Counter

    from . import text as tx

    vocab = store.vocab
    fold = vocab.lowercase
    counts = Counter()
    for t in texts:
        counts.update(w.lower() if fold else w for w in tx.split(t)[1::2])
    ranked = [vocab.id_of[w] for w, _ in counts.most_common() if w in vocab.id_of]
    if not ranked:
        return np.array([], dtype=np.int64)
    pick = np.unique(np.linspace(0, len(ranked) - 1, min(sample, len(ranked))).round().astype(int))
    return np.array([ranked[i] for i in pick], dtype=np.int64)


class ResultCache:
    """JSON files under ``folder``, one per key (a finished setting)."""

    def __init__(self, folder: str | None):
        self.folder = folder

    def get(self, key: dict):
        if not self.folder:
            return None
        try:
            with open(self._path(key)) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def put(self, key: dict, value) -> None:
        if not self.folder:
            return
        os.makedirs(self.folder, exist_ok=True)
        path = self._path(key)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump(value, f)
        os.replace(tmp, path)

    def _path(self, key: dict) -> str:
        name = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
        return os.path.join(self.folder, name + ".json")


def evaluate(train: Dataset, test: Dataset, grid, *, store, repeats: int = 3,
             classifier: str = "tfidf", sanitize: str = "train", audit_sample: int = 50,
             draws: int = 200, cache_dir: str | None = None, progress=None,
             mechanism_options: dict | None = None, recovery_draws: int | None = None
             ) -> list[dict]:
    """One row per (mechanism, epsilon) of ``grid`` (after a clean row): accuracy mean and sd,
    per-seed accuracies, share of words replaced, mean N_w and S_w on the dataset's words, and
    ``bayes_recovery`` (:mod:`.attack` defaults, the training text's own words as prior).

    A grid entry may be ``(mechanism, epsilon, target, recovery)`` (from :func:`tuned_grid`): its
    row carries ``target_recovery`` and the recovery tune measured. ``recovery_draws``: m of the
    sampled method (default: attack's)."""
    from .audit import plausible_deniability, summarize
    from .mechanisms import create
    from .pipeline import Counters, Sanitizer
    from .rng import make_rng

    if classifier not in CLASSIFIERS:
        raise ValueError(f"classifier must be one of {', '.join(CLASSIFIERS)}")
    cache = ResultCache(cache_dir)
    base = {"train": train.fingerprint(), "test": test.fingerprint(), "classifier": classifier,
            "sanitize": sanitize, "vocabulary": store.manifest["key"],
            "version": 2}  # 2: since 0.5.0 santext, tem and density draw repeated words by row
    key = {**base, "mech": "none"}
    clean = cache.get(key)
    if clean is None:
        clean = accuracy(classifier, train, test, store)
        cache.put(key, clean)
    rows = [{"mechanism": "none", "epsilon": None, "accuracy_mean": clean, "accuracy_sd": 0.0,
             "accuracies": [clean], "changed": 0.0, "N_w": 1.0, "S_w": 1.0,
             "bayes_recovery": 1.0}]  # the identity: the attacker reads the word
    words = dataset_words(train.texts, store, audit_sample)
    options = mechanism_options or {}
    prior = None
    for name, eps, *tuned in grid:
        mech = create(name, epsilon=eps, store=store, **options)
        setting = {**base, "mech": name, "eps": eps, "options": options}
        accs, changed = [], []
        for seed in range(repeats):
            done = cache.get({**setting, "seed": seed})
            if done is None:
                # the repeats' seeds are the measurement's own, not a user's: a SeedSequence
                s = Sanitizer(mech, seed=np.random.SeedSequence(seed))
                new_train = Dataset(s.sanitize_lines(train.texts), train.labels)
                c: Counters = s.counters
                share = c.replaced / max(1, c.words - c.oov)
                new_test = test
                if sanitize == "both":
                    t = Sanitizer(mech, seed=np.random.SeedSequence(10_000 + seed))
                    new_test = Dataset(t.sanitize_lines(test.texts), test.labels)
                done = {"accuracy": accuracy(classifier, new_train, new_test, store),
                        "changed": share}
                cache.put({**setting, "seed": seed}, done)
            accs.append(done["accuracy"])
            changed.append(done["changed"])
            if progress is not None:
                progress(1)
        audit_key = {**setting, "audit": audit_sample, "draws": draws}
        pd = cache.get(audit_key)
        if pd is None:
            pd = summarize(plausible_deniability(mech, words, draws, make_rng(0))) if len(words) \
                else {"mean_N_w": float("nan"), "mean_S_w": float("nan")}
            cache.put(audit_key, pd)
        recovery_key = {**setting, "bayes_recovery": RECOVERY_VERSION,
                        **({"draws": recovery_draws} if recovery_draws else {})}
        recovery = tuned[1] if tuned else cache.get(recovery_key)
        if recovery is None:
            from . import attack

            if prior is None:
                prior = dataset_prior(train, store)
            recovery = attack.bayes_recovery(mech, prior, rng=make_rng(0),
                                             draws=recovery_draws or attack.DEFAULT_DRAWS)
            cache.put(recovery_key, recovery)
        rows.append({"mechanism": name, "epsilon": eps, "accuracy_mean": float(np.mean(accs)),
                     "accuracy_sd": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                     "accuracies": accs, "changed": float(np.mean(changed)),
                     "N_w": pd["mean_N_w"], "S_w": pd["mean_S_w"],
                     "bayes_recovery": recovery["bayes_recovery"],
                     **({"target_recovery": tuned[0]} if tuned else {})})
    return rows


RECOVERY_VERSION = 2  # part of the cache key of the recovery and tuning results (2: 0.5.0)


def dataset_prior(train: Dataset, store):
    """The attacker's prior for eval: the training text's own words (attack defaults)."""
    from . import attack

    return attack.prior_from_counts(attack.count_words(train.texts, store.vocab))


def tuned_grid(train: Dataset, mechs, targets, *, store, cache_dir: str | None = None,
               mechanism_options: dict | None = None, progress=None, warn=None,
               recovery_draws: int | None = None) -> list[tuple]:
    """``(mechanism, epsilon, target, recovery)`` for every mechanism and target: the epsilon
    ``dpsanitize tune`` finds with the training text as prior (cached). A target a mechanism
    cannot reach is left out and ``warn(message)`` says why."""
    from . import attack
    from .errors import InputDataError

    cache = ResultCache(cache_dir)
    options = mechanism_options or {}
    prior = dataset_prior(train, store)
    grid = []
    for name in mechs:
        memo: dict = {}  # one bisection's evaluations serve every target
        for target in targets:
            key = {"train": train.fingerprint(), "vocabulary": store.manifest["key"],
                   "mech": name, "options": options, "tune": target,
                   "version": RECOVERY_VERSION,
                   **({"draws": recovery_draws} if recovery_draws else {})}
            found = cache.get(key)
            if found is None:
                try:
                    found = attack.tune(name, prior, target, store=store, options=options,
                                        seed=np.random.SeedSequence(0), memo=memo,
                                        progress=progress,
                                        draws=recovery_draws or attack.DEFAULT_DRAWS)
                except InputDataError as exc:
                    found = {"unreachable": str(exc)}
                cache.put(key, found)
            if "unreachable" in found:
                if warn is not None:
                    warn(found["unreachable"])
                continue
            grid.append((name, found["epsilon"], target, found))
    return grid


def plot(rows: list[dict], out, title: str = "") -> None:
    """Accuracy against Bayes recovery, N_w and S_w, one line per mechanism, as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2), sharey=True)
    clean = next(r["accuracy_mean"] for r in rows if r["mechanism"] == "none")
    names = list(dict.fromkeys(r["mechanism"] for r in rows if r["mechanism"] != "none"))
    for ax, x, label in ((axes[0], "bayes_recovery", "Bayes recovery (best attacker's success)"),
                         (axes[1], "N_w", "mean N_w = Pr[M(w) = w]"),
                         (axes[2], "S_w", "mean S_w (distinct outputs)")):
        for name in names:
            pts = sorted((r[x], r["accuracy_mean"], r["accuracy_sd"]) for r in rows
                         if r["mechanism"] == name and r.get(x) is not None)
            ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts],
                        marker="o", capsize=3, label=name)
        ax.axhline(clean, color="grey", linestyle="--", label="clean training text")
        ax.set_xlabel(label)
        if x == "S_w":
            ax.set_xscale("log")
    axes[0].set_ylabel("accuracy")
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, format="png", dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------------------------
# What `dpsanitize eval` is asked


def parse_grid(value: str | None) -> dict:
    """'4,8' (every mechanism) or 'gumbel=84,120;laplace=10,20' -> {mech or '*': [eps, ...]}."""
    import math

    from .errors import InvalidParameter

    grid = {}
    try:
        for part in filter(None, (value or "").split(";")):
            name, _, numbers = part.rpartition("=")
            values = [float(v) for v in numbers.split(",") if v.strip()]
            if not values or not all(math.isfinite(v) and v > 0 for v in values):
                raise ValueError
            grid[name.strip() or "*"] = values
    except ValueError:
        raise InvalidParameter("--eps: expected positive numbers: '4,8' or "
                               "'gumbel=84,120;laplace=10'") from None
    return grid


def parse_targets(value: str | None) -> list[float]:
    """'0.1,0.2' -> [0.1, 0.2] (each in (0, 1))."""
    from .errors import InvalidParameter

    try:
        targets = [float(v) for v in (value or "").split(",") if v.strip()]
        if not all(0 < t < 1 for t in targets):
            raise ValueError
    except ValueError:
        raise InvalidParameter("--target-recovery: expected recoveries in (0, 1): "
                               "'0.1,0.2,0.3'") from None
    return targets


def load_dataset(path: str, fmt: str, text_column: str, label_column: str) -> Dataset:
    """Texts and labels of a CSV/TSV file, read as `run` reads it."""
    from .errors import InvalidParameter
    from .formats import detect, read_columns

    name = detect(path, fmt)
    if name not in ("csv", "tsv"):
        raise InvalidParameter(f"{path}: eval reads CSV or TSV (name it *.csv/*.tsv or pass "
                               f"--format)")
    rows = read_columns(path, name, [text_column, label_column])
    return Dataset([r[0] for r in rows], [r[1] for r in rows])


def settings(mechs, grid: dict, targets, train: Dataset, *, store, cache_dir, progress=None,
             warn=None) -> list:
    """(mechanism, eps[, target]) to evaluate: the --eps values and the --target-recovery tunes."""
    from .errors import InvalidParameter

    if not grid and not targets:
        raise InvalidParameter("give --eps, --target-recovery or both")
    out = []
    for m in mechs if grid else ():
        values = grid.get(m, grid.get("*"))
        if values is None and not targets:
            raise InvalidParameter(f"--eps gives no epsilon for --mech {m}")
        out.extend((m, v) for v in values or ())
    if targets:
        out += tuned_grid(train, mechs, targets, store=store, cache_dir=cache_dir,
                          progress=progress, warn=warn)
    return out


def evaluate_files(dataset: str, *, text_column: str, label_column: str, mechs, grid=None,
                   targets=None, test_file: str | None = None,
                   test_text_column: str | None = None, fmt_name: str = "auto", repeats: int = 3,
                   sanitize: str = "train", classifier: str = "tfidf", draws: int = 200,
                   plot_path: str | None = None, force: bool = False, open_store,
                   progress: bool | None = None, warn=None) -> dict:
    """``dpsanitize eval``: read the files, tune and evaluate, draw ``plot_path``; the JSON
    object (``train``/``test`` sizes, ``rows``, settings). ``grid``/``targets`` are the
    strings of --eps and --target-recovery; ``progress`` as :func:`.progress.progress_bar`'s
    ``enabled``."""
    from .io import atomic_output, check_output_path
    from .progress import progress_bar

    require("sklearn", "scikit-learn", "eval")
    if plot_path:
        check_output_path(plot_path, force)
        require("matplotlib", "matplotlib", "--plot")
    grid, targets = parse_grid(grid), parse_targets(targets)
    train = load_dataset(dataset, fmt_name, text_column, label_column)
    test = load_dataset(test_file, fmt_name, test_text_column or text_column, label_column) \
        if test_file else None
    train, test = (train, test) if test else split(train, 0.2)
    store = open_store()
    cache_dir = os.path.join(os.path.dirname(store.path), "eval")  # beside the index entries
    with progress_bar(unit="eps", desc="tune", enabled=progress) as tick:
        grid = settings(mechs, grid, targets, train, store=store, cache_dir=cache_dir,
                        progress=tick.update, warn=warn)
    with progress_bar(len(grid) * repeats, unit="run", desc="eval", enabled=progress) as tick:
        rows = evaluate(train, test, grid, store=store, repeats=repeats, classifier=classifier,
                        sanitize=sanitize, draws=draws, cache_dir=cache_dir,
                        progress=tick.update)
    if plot_path:
        with atomic_output(plot_path, force=force) as out:
            plot(rows, out, title=f"{os.path.basename(dataset)}: {classifier}, {repeats} seeds, "
                                  f"sanitized {sanitize}")
    return {"train": len(train.texts), "test": len(test.texts), "rows": rows,
            "classifier": classifier, "sanitize": sanitize, "repeats": repeats}


def require(module: str, package: str, what: str) -> None:
    """InvalidParameter unless ``module`` (from the extra ``eval``) is installed.

    Example::

        require("matplotlib", "matplotlib", "--plot")
    """
    import importlib

    from .errors import InvalidParameter

    try:
        importlib.import_module(module)
    except ImportError:
        raise InvalidParameter(f"{what} needs {package}: pip install 'dpsanitize[eval]'") from None


def table(rows: list[dict]) -> str:
    """The rows of :func:`evaluate` as a terminal table."""
    lines = [f"{'mechanism':<12} {'eps':>8} {'accuracy':>15} {'changed':>8} {'N_w':>6} "
             f"{'S_w':>7} {'recovery':>8}"]
    for r in rows:
        eps = "" if r["epsilon"] is None else f"{r['epsilon']:.4g}"
        lines.append(f"{r['mechanism']:<12} {eps:>8} {r['accuracy_mean']:.3f} ± "
                     f"{r['accuracy_sd']:.3f} {100 * r['changed']:7.0f}% {r['N_w']:6.3f} "
                     f"{r['S_w']:7.1f} {r['bayes_recovery']:8.3f}")
    return "\n".join(lines)
