"""Commands that measure: plausible deniability (audit), Bayes recovery (attack, tune), and
utility (eval). Each calls the library (:mod:`..audit`, :mod:`..attack`, :mod:`..evaluate`)."""

from __future__ import annotations

import functools

import click

from ..mechanisms import MECHANISMS
from .group import cli
from .options import (apply, bar, echo_json, embeddings_options, eps_option, json_option, log,
                      mech_option, mechanism_options, progress_option, quiet_option,
                      seed_option)


@cli.command()
@mech_option("Mechanism to audit.")
@eps_option
@click.option("--words", help="Comma-separated vocabulary words to audit.")
@click.option("--sample", type=click.IntRange(min=1), default=100, show_default=True,
              help="Without --words: this many words spread evenly over the frequency ranks.")
@click.option("--draws", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Samples per word (m).")
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
    from ..rng import make_rng, warn_if_seeded

    warn_if_seeded(seed)
    mechanism = create(mech, epsilon=eps, store=open_store(), **mech_options)
    result = measure(mechanism, words=words, sample=sample, draws=draws, rng=make_rng(seed))
    echo_json(result) if as_json else click.echo(table(result))


def prior_options(f):
    """--prior FILE [--column C] [--format F] [--no-header], --words D and the sampling
    options, handed to the command as ``load_prior(store)``."""
    options = [
        click.option("--prior", "prior_path", type=click.Path(exists=True, dir_okay=False),
                     help="Text whose word frequencies the attacker knows, read as `run` reads "
                          "it. Default: the first --words vocabulary ids, pi(i) ~ 1/(i+1)."),
        click.option("--column", "prior_columns", multiple=True,
                     help="The column (CSV/TSV) or field (JSON lines) of --prior holding text "
                          "(repeatable)."),
        click.option("--format", "prior_format", default="auto", show_default=True,
                     type=click.Choice(["auto", "text", "csv", "tsv", "jsonl"]),
                     help="Format of --prior (auto: by extension)."),
        click.option("--no-header", "prior_no_header", is_flag=True,
                     help="--prior (CSV/TSV) has no header row; name columns by number."),
        click.option("--words", type=click.IntRange(min=1), default=1000, show_default=True,
                     help="The attacker's domain: the D most frequent words of the prior."),
        click.option("--draws", type=click.IntRange(min=4), default=1000, show_default=True,
                     help="Sampled method: draws per domain word (half fit the attack, half "
                          "measure it)."),
        click.option("--method", type=click.Choice(["auto", "exact", "sampled"]),
                     default="auto", show_default=True,
                     help="exact: from the closed-form law; sampled: split-sample estimate "
                          "with a 95% interval; auto: exact where possible."),
        seed_option, json_option, progress_option,
    ]

    @functools.wraps(f)
    def wrapper(*args, prior_path, prior_columns, prior_format, prior_no_header, words,
                **kwargs):
        def load_prior(store):
            from ..attack import load_prior as load

            return load(prior_path, store, words, fmt=prior_format, columns=prior_columns,
                        header=not prior_no_header)

        return f(*args, load_prior=load_prior, **kwargs)

    return apply(options, wrapper)


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
    from ..attack import bayes_recovery, table
    from ..mechanisms import create
    from ..rng import make_rng, warn_if_seeded

    warn_if_seeded(seed)
    store = open_store()
    mechanism = create(mech, epsilon=eps, store=store, **mech_options)
    prior = load_prior(store)
    sampled = method == "sampled" or mechanism.probabilities(int(prior.ids[0])) is None
    with bar(progress, prior.words * (draws if sampled else 1), "draw" if sampled else "word",
             "attack") as tick:
        result = bayes_recovery(mechanism, prior, method=method, draws=draws,
                                rng=make_rng(seed), progress=tick.update)
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
    from ..attack import tune_range
    from ..mechanisms import create
    from ..rng import warn_if_seeded

    warn_if_seeded(seed)
    store = open_store()
    create(mech, epsilon=tune_range(mech, store)[1], store=store, **mech_options)  # options, early
    prior = load_prior(store)
    with bar(progress, unit="eps", desc="tune") as tick:
        result = tune_epsilon(mech, prior, target_recovery, store=store, options=mech_options,
                              method=method, draws=draws, seed=seed, progress=tick.update)
    if as_json:
        return echo_json(result)
    click.echo(f"--mech {mech} --eps {result['epsilon']:.4g}: bayes_recovery "
               f"{result['bayes_recovery']:.4f} ({result['method']}; target {target_recovery:g}), "
               f"{100 * result['changed']:.1f}% of the prior's words changed")


@cli.command("eval")
@click.argument("dataset", type=click.Path(dir_okay=False))
@click.option("--text-column", required=True, help="The column of the text (header name).")
@click.option("--label-column", required=True, help="The column of the label (header name).")
@click.option("--test", "test_file", type=click.Path(dir_okay=False),
              help="A held-out test file with the same columns; default: a fixed 20% of DATASET.")
@click.option("--test-text-column", help="The text column of --test when its name differs.")
@click.option("--format", "fmt_name", type=click.Choice(["auto", "csv", "tsv"]), default="auto",
              show_default=True, help="Format of DATASET and --test (auto: by extension).")
@click.option("--mech", "mechs", type=click.Choice(list(MECHANISMS)), multiple=True,
              required=True, help="A mechanism to evaluate (repeatable).")
@click.option("--eps", "grid", help="Epsilons: '2,4,8' for every --mech, or per mechanism "
                                    "'gumbel=84,120;laplace=10,20'.")
@click.option("--target-recovery", "targets",
              help="Bayes recoveries '0.1,0.2,0.3': tune epsilon per --mech to each (the "
                   "training text as prior) and evaluate there.")
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True,
              help="Seeds per setting (accuracy mean and sd over them).")
@click.option("--sanitize", type=click.Choice(["train", "both"]), default="train",
              show_default=True, help="Sanitize the training text only, or the test text too.")
@click.option("--classifier", type=click.Choice(["tfidf", "mean-vector"]), default="tfidf",
              show_default=True, help="TF-IDF 1-2 grams or mean word vector, logistic regression.")
@click.option("--draws", type=click.IntRange(min=1), default=200, show_default=True,
              help="Samples per word for N_w and S_w (50 words of the dataset).")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False),
              help="PNG: accuracy against Bayes recovery, N_w and S_w (extra dpsanitize[eval]).")
@click.option("--force", is_flag=True, help="Replace an existing --plot file.")
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
                            bar=lambda total, unit, desc: bar(progress, total, unit, desc),
                            **options)
    echo_json(result) if as_json else click.echo(table(result["rows"]))
