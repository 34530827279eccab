"""Plausible deniability by sampling (Feyisetan et al.): N_w = Pr[M(w) = w], S_w = |distinct outputs|.

For each audited word, ``draws`` independent outputs are sampled; N_w is the fraction equal to w
and S_w the number of distinct outputs. Where the mechanism has a closed-form output distribution
the exact N_w is reported too.

Example::

    rows = plausible_deniability(mech, audit_words(store, sample=50), draws=1000, rng=rng)
"""

from __future__ import annotations

import numpy as np


def audit_words(vocab_size: int, sample: int) -> np.ndarray:
    """``sample`` word ids spread evenly over the public frequency ranks (deterministic)."""
    sample = max(1, min(sample, vocab_size))
    return np.unique(np.linspace(0, vocab_size - 1, sample).round().astype(np.int64))


def plausible_deniability(mech, ids, draws: int, rng: np.random.Generator,
                          batch: int = 1 << 16) -> list[dict]:
    """One row per word id: ``{"id", "N_w", "S_w"[, "N_w_exact"]}``."""
    ids = np.asarray(ids, dtype=np.int64)
    per_batch = max(1, batch // draws)
    rows = []
    for start in range(0, len(ids), per_batch):
        chunk = ids[start:start + per_batch]
        out = mech.perturb(np.repeat(chunk, draws), rng).reshape(len(chunk), draws)
        for w, o in zip(chunk, out):
            row = {"id": int(w), "N_w": float(np.mean(o == w)), "S_w": int(len(np.unique(o)))}
            p = mech.probabilities(int(w))
            if p is not None:
                row["N_w_exact"] = float(p[w])
            rows.append(row)
    return rows


def summarize(rows: list[dict]) -> dict:
    """Means (and quantiles of N_w) over the audited words."""
    n_w = np.array([r["N_w"] for r in rows])
    s_w = np.array([r["S_w"] for r in rows])
    return {"words": len(rows), "mean_N_w": float(n_w.mean()), "mean_S_w": float(s_w.mean()),
            "median_N_w": float(np.median(n_w)), "min_N_w": float(n_w.min()),
            "max_N_w": float(n_w.max())}


def word_ids(words: str, vocab) -> list[int]:
    """Vocabulary ids of a comma-separated list (InvalidParameter names the position, never
    the word)."""
    from .errors import InvalidParameter

    ids = []
    for n, raw in enumerate(words.split(","), start=1):
        w = raw.strip()
        i = vocab.id_of.get(w.lower() if vocab.lowercase else w)
        if i is None:
            raise InvalidParameter(f"--words: word {n} of the list is not in the vocabulary")
        ids.append(i)
    return ids


def audit(mech, *, words: str | None = None, sample: int = 100, draws: int = 1000,
          seed=None) -> dict:
    """``dpsanitize audit``: N_w and S_w of the listed words (or ``sample`` words spread over
    the ranks), their means, and the mechanism's unit. A fixed ``seed`` is a PrivacyWarning."""
    from .rng import make_rng, warn_if_seeded

    warn_if_seeded(seed)
    vocab = mech.store.vocab
    ids = word_ids(words, vocab) if words else audit_words(len(vocab), sample)
    rows = plausible_deniability(mech, ids, draws, make_rng(seed))
    for r in rows:
        r["word"] = vocab.words[r.pop("id")]
    return {"mechanism": mech.name, "epsilon": mech.epsilon, "draws": draws, **summarize(rows),
            "unit": mech.unit, "rows": rows}


def table(result: dict) -> str:
    """The result of :func:`audit` as a terminal table: N_w and S_w per word, then their means."""
    rows = result["rows"]
    width = max(4, *(len(r["word"]) for r in rows))
    lines = [f"{'word':<{width}}  {'N_w':>7}  {'S_w':>6}"]
    lines += [f"{r['word']:<{width}}  {r['N_w']:7.4f}  {r['S_w']:6d}" for r in rows]
    lines.append(f"{'mean':<{width}}  {result['mean_N_w']:7.4f}  {result['mean_S_w']:6.1f}   "
                 f"({result['mechanism']}, eps={result['epsilon']:g} per word, "
                 f"{result['draws']} draws per word)")
    return "\n".join(lines)
