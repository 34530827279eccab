"""Commands that measure: plausible deniability (audit), Bayes recovery (attack, tune), and
utility (eval). Each calls the library (:mod:`..audit`, :mod:`..attack`, :mod:`..evaluate`)."""

from __future__ import annotations

import functools

import click

from ..mechanisms import MECHANISMS
from .group import cli
from .options import (apply, bar, echo_json, embeddings_options, eps_option, json_option, log,
                      mech_option, mechanism_options, options, progress_option, quiet_option,
                      seed_option)


@cli.command()
@mech_option("Mechanism to audit.")
@eps_option
@options(("--words", None, ("text",), None, "Comma-separated vocabulary words to audit."),
         ("--sample", None, ("int", 1), 100,
          "Without --words: this many words spread evenly over the frequency ranks."),
         ("--draws", None, ("int", 1), 1000, "Samples per word (m)."))
@mechanism_options
@embeddings_options
@seed_option
@json_option
@quiet_option
def audit(mech, eps, words, sample, draws, mech_options, open_store, seed, as_json):
    """Plausible deniability: N_w = Pr[M(w)=w] and S_w = distinct outputs in m draws.

    \b
    Example:
        dpsanitize audit --mech gumbel --eps 120 --sample 50 --draws 1000
    """
    from ..audit import audit as measure
    from ..audit import table
    from ..mechanisms import create

    mechanism = create(mech, epsilon=eps, store=open_store(), **mech_options)
    result = measure(mechanism, words=words, sample=sample, draws=draws, seed=seed)
    echo_json(result) if as_json else click.echo(table(result))


def prior_options(f):
    """--prior FILE [--column C] [--format F] [--no-header], --words D and the sampling
    options, handed to the command as ``load_prior(store)``."""
    specs = [
        ("--prior", "prior_path", ("text", "FILE"), None, "Text whose word frequencies the "
         "attacker knows, read as `run` reads it. Default: the first --words vocabulary ids, "
         "pi(i) ~ 1/(i+1)."),
        ("--column", "prior_columns", ("many",), (),
         "The column (CSV/TSV) or field (JSON lines) of --prior holding text (repeatable)."),
        ("--format", "prior_format", ("choice", ("auto", "text", "csv", "tsv", "jsonl")), "auto",
         "Format of --prior (auto: by extension)."),
        ("--no-header", "prior_header", ("off",), True,
         "--prior (CSV/TSV) has no header row; name columns by number."),
        ("--words", None, ("int", 1), 1000,
         "The attacker's domain: the D most frequent words of the prior."),
        ("--draws", None, ("int", 4), 1000,
         "Sampled method: draws per domain word (half fit the attack, half measure it)."),
        ("--method", None, ("choice", ("auto", "exact", "sampled")), "auto",
         "exact: from the closed-form law; sampled: split-sample estimate with a 95% interval; "
         "auto: exact where possible."),
    ]

    @functools.wraps(f)
    def wrapper(*args, prior_path, prior_columns, prior_format, prior_header, words, **kwargs):
        def load_prior(store):
            from ..attack import load_prior as load

            return load(prior_path, store, words, fmt=prior_format, columns=prior_columns,
                        header=prior_header)

        return f(*args, load_prior=load_prior, **kwargs)

    return apply([options(*specs), seed_option, json_option, progress_option], wrapper)


@cli.command()
@mech_option("Mechanism to attack.")
@eps_option
@mechanism_options
@prior_options
@embeddings_options
@quiet_option
def attack(mech, eps, mech_options, load_prior, draws, method, seed, as_json, progress,
           open_store):
    """Bayes recovery: how often the best attacker names the input word from its output.

    The attacker knows the mechanism, its parameters and the word frequencies of --prior.
    Comparable across mechanisms, unlike epsilon. Sampled values are an achievable attack
    (a lower bound on the Bayes-optimal value) with a 95% interval.

    \b
    Example:
        dpsanitize attack --mech santext --eps 3 --prior train.tsv --column sentence
    """
    from ..attack import bayes_recovery, resolve_method, table
    from ..mechanisms import create

    store = open_store()
    mechanism = create(mech, epsilon=eps, store=store, **mech_options)
    prior = load_prior(store)
    sampled = resolve_method(mechanism, prior, method) == "sampled"
    with bar(progress, prior.words * (draws if sampled else 1), "draw" if sampled else "word",
             "attack") as tick:
        result = bayes_recovery(mechanism, prior, method=method, draws=draws,
                                seed=seed, progress=tick.update)
    echo_json(result) if as_json else click.echo(table(result))


@cli.command()
@mech_option("Mechanism to tune.")
@click.option("--target-recovery", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              required=True, help="The highest Bayes recovery to allow, in (0, 1).")
@mechanism_options
@prior_options
@embeddings_options
@quiet_option
def tune(mech, target_recovery, mech_options, load_prior, draws, method, seed, as_json, progress,
         open_store):
    """The largest epsilon (within 2%) whose Bayes recovery is at most a target.

    Bisection over a range per mechanism (docs/privacy-by-attack.md); sampled mechanisms are
    held to the upper end of their interval. Exit 65 when no epsilon in range meets it.

    \b
    Example:
        dpsanitize tune --mech tem --target-recovery 0.2 --prior train.tsv --column sentence
    """
    from ..attack import tune as tune_epsilon
    from ..attack import tune_range, tune_table
    from ..mechanisms import create

    store = open_store()
    create(mech, epsilon=tune_range(mech, store)[1], store=store, **mech_options)  # options, early
    prior = load_prior(store)
    with bar(progress, unit="eps", desc="tune") as tick:
        result = tune_epsilon(mech, prior, target_recovery, store=store, options=mech_options,
                              method=method, draws=draws, seed=seed, progress=tick.update)
    echo_json(result) if as_json else click.echo(tune_table(result, mech, target_recovery))


@cli.command("eval")
@click.argument("dataset", type=click.Path(dir_okay=False))
@click.option("--text-column", required=True, help="The column of the text (header name).")
@click.option("--label-column", required=True, help="The column of the label (header name).")
@click.option("--mech", "mechs", type=click.Choice(list(MECHANISMS)), multiple=True,
              required=True, help="A mechanism to evaluate (repeatable).")
@options(
    ("--test", "test_file", ("file",), None,
     "A held-out test file with the same columns; default: a fixed 20% of DATASET."),
    ("--test-text-column", None, ("text",), None, "The text column of --test when its name "
     "differs."),
    ("--format", "fmt_name", ("choice", ("auto", "csv", "tsv")), "auto",
     "Format of DATASET and --test (auto: by extension)."),
    ("--eps", "grid", ("text",), None,
     "Epsilons: '2,4,8' for every --mech, or per mechanism 'gumbel=84,120;laplace=10,20'."),
    ("--target-recovery", "targets", ("text",), None, "Bayes recoveries '0.1,0.2,0.3': tune "
     "epsilon per --mech to each (the training text as prior) and evaluate there."),
    ("--repeats", None, ("int", 1), 3, "Seeds per setting (accuracy mean and sd over them)."),
    ("--sanitize", None, ("choice", ("train", "both")), "train",
     "Sanitize the training text only, or the test text too."),
    ("--classifier", None, ("choice", ("tfidf", "mean-vector")), "tfidf",
     "TF-IDF 1-2 grams or mean word vector, logistic regression."),
    ("--draws", None, ("int", 1), 200,
     "Samples per word for N_w and S_w (50 words of the dataset)."),
    ("--plot", "plot_path", ("file",), None,
     "PNG: accuracy against Bayes recovery, N_w and S_w (extra dpsanitize[eval])."),
    ("--force", None, ("flag",), False, "Replace an existing --plot file."))
@json_option
@progress_option
@embeddings_options
@quiet_option
def eval_command(dataset, as_json, progress, open_store, **options):
    """Accuracy of a classifier trained on sanitized text, with Bayes recovery, N_w and S_w.

    Epsilon is not comparable across mechanisms: compare them at equal Bayes recovery
    (--target-recovery). Results are cached per setting, so an interrupted grid resumes.

    \b
    Example:
        dpsanitize eval train.tsv --text-column sentence --label-column label \\
            --test test.tsv --mech tem --mech laplace --target-recovery 0.2,0.3 --plot acc.png
    """
    from ..evaluate import evaluate_files, table

    result = evaluate_files(dataset, open_store=lambda: open_store(progress), warn=log.warning,
                            progress=progress, **options)
    echo_json(result) if as_json else click.echo(table(result["rows"]))
