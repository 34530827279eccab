#!/usr/bin/env python3
"""dpsanitize against a public implementation: mldp-text (PyPI), same text, same vectors.

The vectors are dpsanitize's output vocabulary W (the default 100k GloVe 50d words), exported
as a word2vec text file, so both sides choose among the same words. The text is the SST-2
training set (read in place from ../shared/data/sst2). mldp-text goes into a throwaway virtual
environment that this script makes (nothing of it enters dpsanitize's); it runs its
MultivariateCalibrated (= laplace) and TruncatedGumbel with exact search (use_faiss=False) and,
for the Gumbel mechanism, the exact d_min and d_max of W. Both sides run in one process each;
set-up (loading vectors, building indexes) is timed apart from the words. Prints tokens/s, the
ratio, and each process's peak memory (VmHWM).

dp-diffractor (PyPI, the authors' 1-Diffractor) goes into a second throwaway environment and
runs against `--mech diffractor` (one list, geometric noise). It cannot run offline as shipped:
its embeddings are downloaded from zenodo.org, a custom file is refused by name (Downloader.fetch
knows only its five hosted models), and it needs NLTK data (stopwords, punkt_tab) that
nltk.download fetches from GitHub. So the peer process is given W directly
(diffractor.core.ensure_embeddings patched to return the exported file), runs with
replace_stopwords=True (every token perturbed, as dpsanitize does; the stopword list is then only
read once, patched to be empty) and with str.split in place of nltk.word_tokenize (cheaper than
Punkt: this favours the peer). HOME points into the temporary folder (its cache is ~/.cache).

    python scripts/bench_peers.py [--peer-tokens 1000] [--venv DIR] [--laplace-eps 10]
                                  [--gumbel-eps 120] [--peers mldp-text,dp-diffractor]
                                  [--diffractor-eps 1] [--diffractor-venv DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sst2" / "train.tsv"
PEER = "mldp-text==0.1.2"

PEER_RUN = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
from gensim.models import KeyedVectors
import mldp_text
from mldp_text import MultivariateCalibrated, TruncatedGumbel
vectors, tokens_file, mech, eps, d_min, d_max = sys.argv[1:7]
kv = KeyedVectors.load_word2vec_format(vectors, binary=False)
tokens = open(tokens_file, encoding="utf-8").read().split()
vocab = set(kv.index_to_key)
common = dict(epsilon=float(eps), embedding_matrix=kv, dim=kv.vector_size, use_faiss=False,
              vocab=vocab)
if mech == "laplace":
    m = MultivariateCalibrated(**common)
else:
    m = TruncatedGumbel(**common, min_inter_dist=float(d_min), max_inter_dist=float(d_max))
setup = time.perf_counter() - t0
t = time.perf_counter()
out = [m.replace_word(w) for w in tokens]
words = time.perf_counter() - t
with open("/proc/self/status") as f:
    kib = int(next(l.split()[1] for l in f if l.startswith("VmHWM")))
print(json.dumps({"tokens": len(tokens), "seconds": words, "setup": setup, "peak_mib": kib / 1024,
                  "version": mldp_text.__version__}))
"""

DIFFRACTOR_PEER = "dp-diffractor==0.2.1"

DIFFRACTOR_RUN = r"""
import json, sys, time
t0 = time.perf_counter()
import nltk
import diffractor
import diffractor.core as core
vectors, tokens_file, eps = sys.argv[1:4]
core.ensure_embeddings = lambda names=None: [vectors]  # offline: W, not zenodo.org
class NoStopwords:  # NLTK data is not installed offline; replace_stopwords=True never asks
    def words(self, lang):
        return []
nltk.corpus.stopwords = NoStopwords()
core.nltk.word_tokenize = str.split  # Punkt data is not installed offline (and split is faster)
config = core.DiffractorConfig(method="geometric", epsilon=float(eps), replace_stopwords=True,
                               verbose=False, seed=0)
lines = open(tokens_file, encoding="utf-8").read().splitlines()
with core.Diffractor(config) as d:
    setup = time.perf_counter() - t0
    t = time.perf_counter()
    out = d.rewrite(lines)
    words = time.perf_counter() - t
    tokens = [w for l in lines for w in l.lower().split()]
    in_vocab = sum(w in d.mgr.word_to_idx[0] for w in tokens) / len(tokens)
with open("/proc/self/status") as f:
    kib = int(next(l.split()[1] for l in f if l.startswith("VmHWM")))
print(json.dumps({"tokens": len(tokens), "seconds": words, "in_vocab": in_vocab,
                  "setup": setup, "peak_mib": kib / 1024, "version": diffractor.__version__,
                  "lists": len(d.mgr.lists), "words": len(d.mgr.lists[0])}))
"""

OURS_RUN = r"""
import json, sys, time
t0 = time.perf_counter()
from dpsanitize import Sanitizer
import dpsanitize
cache, lines_file, mech, eps = sys.argv[1:5]
lines = open(lines_file, encoding="utf-8").read().splitlines()
s = Sanitizer(mech, float(eps), cache_dir=cache or None)
setup = time.perf_counter() - t0
t = time.perf_counter()
s.sanitize_lines(lines)
words = time.perf_counter() - t
with open("/proc/self/status") as f:
    kib = int(next(l.split()[1] for l in f if l.startswith("VmHWM")))
print(json.dumps({"tokens": sum(len(l.split()) for l in lines), "seconds": words, "setup": setup,
                  "peak_mib": kib / 1024, "version": dpsanitize.__version__}))
"""


def sentences(limit_tokens: int | None) -> list[str]:
    out, n = [], 0
    with open(DATA, encoding="utf-8") as f:
        next(f)  # header
        for line in f:
            text = line.rstrip("\n").split("\t", 1)[1]
            out.append(text)
            n += len(text.split())
            if limit_tokens and n >= limit_tokens:
                break
    return out


def make_venv(folder: Path, package: str = PEER) -> Path:
    python = folder / "bin" / "python"
    if not python.exists():
        venv.create(folder, with_pip=True)
        subprocess.run([python, "-m", "pip", "install", "-q", package], check=True)
    return python


def run_json(cmd, env=None) -> dict:
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        raise SystemExit(f"{cmd[2:4]} failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peer-tokens", type=int, default=1000,
                    help="SST-2 tokens for the peer (it is slow); dpsanitize gets all of train")
    ap.add_argument("--venv", default="", help="keep the peer's virtual environment here")
    ap.add_argument("--laplace-eps", type=float, default=10.0)
    ap.add_argument("--gumbel-eps", type=float, default=120.0)
    ap.add_argument("--cache-dir", default="")
    ap.add_argument("--peers", default="mldp-text,dp-diffractor")
    ap.add_argument("--diffractor-eps", type=float, default=1.0)
    ap.add_argument("--diffractor-venv", default="",
                    help="keep dp-diffractor's virtual environment here")
    ap.add_argument("--diffractor-peer-words", type=int, default=0,
                    help="give dp-diffractor only the first N words of W (its faiss walk over all "
                         "of W takes tens of minutes on 2 cores); dpsanitize keeps all of W")
    args = ap.parse_args()
    peers = set(args.peers.split(","))

    from dpsanitize.index import open_index

    store = open_index(None, vocab_size=100_000, cache_dir=args.cache_dir or None)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}; vectors: W of the default embeddings, |W| = "
          f"{len(store.vocab)}, d_min {store.d_min:.6f}, d_max {store.d_max:.6f}; text: SST-2 "
          f"train")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        vectors = tmp / "w.txt"
        with open(vectors, "w", encoding="utf-8") as f:
            f.write(f"{len(store.vocab)} {store.vocab.dim}\n")
            for word, row in zip(store.vocab.words, store.vocab.vectors):
                f.write(word + " " + " ".join(f"{x:.8g}" for x in row.tolist()) + "\n")
        few, every = tmp / "few.txt", tmp / "all.txt"
        few.write_text("\n".join(sentences(args.peer_tokens)) + "\n", encoding="utf-8")
        every.write_text("\n".join(sentences(None)) + "\n", encoding="utf-8")
        rows = []
        if "mldp-text" in peers:
            python = make_venv(Path(args.venv) if args.venv else tmp / "venv")
            for mech, eps in (("laplace", args.laplace_eps), ("gumbel", args.gumbel_eps)):
                peer = run_json([str(python), "-c", PEER_RUN, str(vectors), str(few), mech,
                                 str(eps), repr(store.d_min), repr(store.d_max)])
                ours = run_json([sys.executable, "-c", OURS_RUN, args.cache_dir, str(every), mech,
                                 str(eps)])
                rows.append((mech, eps, peer, ours))
        if "dp-diffractor" in peers:
            python = make_venv(Path(args.diffractor_venv) if args.diffractor_venv
                               else tmp / "venv-diffractor", DIFFRACTOR_PEER)
            home = tmp / "home"  # the peer's cache is ~/.cache/diffractor: keep it in tmp
            home.mkdir()
            env = {**os.environ, "HOME": str(home)}
            eps = args.diffractor_eps
            peer_vectors = vectors
            if args.diffractor_peer_words:
                peer_vectors = tmp / "w-peer.txt"
                with open(vectors, encoding="utf-8") as f, open(peer_vectors, "w",
                                                                encoding="utf-8") as g:
                    f.readline()
                    g.write(f"{args.diffractor_peer_words} {store.vocab.dim}\n")
                    for _ in range(args.diffractor_peer_words):
                        g.write(f.readline())
            peer = run_json([str(python), "-c", DIFFRACTOR_RUN, str(peer_vectors), str(few),
                             str(eps)], env=env)
            ours = run_json([sys.executable, "-c", OURS_RUN, args.cache_dir, str(every),
                             "diffractor", str(eps)])
            rows.append(("diffractor", eps, peer, ours))
    for mech, eps, peer, ours in rows:
        name = "dp-diffractor" if mech == "diffractor" else "mldp-text"
        how = (f"{peer['lists']} list over the first {peer['words']:,} words of W, "
               f"{peer['in_vocab']:.1%} of its tokens in it; faiss greedy walk, one pool process "
               f"per list, str.split tokens" if mech == "diffractor" else "exact search")
        print(f"{mech}: {name} {peer['version']} ({how}); dpsanitize {ours['version']}")
    print("\n| mechanism | eps | peer tokens/s | dpsanitize tokens/s | ratio | "
          "peer peak / set-up | dpsanitize peak / set-up |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for mech, eps, peer, ours in rows:
        p_rate, o_rate = peer["tokens"] / peer["seconds"], ours["tokens"] / ours["seconds"]
        print(f"| {mech} | {eps:g} | {p_rate:,.0f} ({peer['tokens']:,} tokens) | {o_rate:,.0f} "
              f"({ours['tokens']:,} tokens) | {o_rate / p_rate:,.0f}x | {peer['peak_mib']:,.0f} MiB"
              f" / {peer['setup']:.1f} s | {ours['peak_mib']:,.0f} MiB / {ours['setup']:.1f} s |")


if __name__ == "__main__":
    main()
