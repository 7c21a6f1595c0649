#!/usr/bin/env python3
"""The router bench's anchors: TF-IDF + LinearSVC and fastText, trained and
scored on the same files as the Flywheel router (`cargo bench --bench router`
runs this script; it can also be run by hand).

    scripts/router-anchors.py --train T.jsonl --eval V.jsonl --seeds 1,2,3

Prints one JSON object per (anchor, seed) on stdout:
    {"anchor": "svm", "seed": 1, "train_seconds": ..., "train_cpu_seconds": ...,
     "accuracy": ..., "in_scope_accuracy": ..., "oos_recall": ...}
`in_scope_accuracy` and `oos_recall` are null when the eval file has no `oos`
label. Neither anchor has a fallback: `oos` is an ordinary class for them
(they answer `oos` only by predicting that class), as in Larson et al. 2019.

Both anchors use fixed standard settings (no tuning, so nothing about them is
chosen on any data): the SVM is the one the issue names (word 1-2 + char_wb
2-5 n-grams, sublinear tf, LinearSVC with C = 1); fastText is the setting of
shared/data/README.md (wordNgrams 2, char n-grams 2-5, dim 100, 50 epochs,
2 threads, learning rate 0.5: the rate that reproduces that README's
figures; fastText's default 0.1 is 9 points worse on Hinglish-TOP).

The first run makes its own virtualenv under ~/.cache/flywheel (scikit-learn
and fastText from PyPI, about a minute) and re-runs itself there.
"""

import argparse
import json
import os
import subprocess
import sys
import time
import venv

VENV = os.path.join(os.path.expanduser("~"), ".cache", "flywheel", "router-anchors")
# numpy < 2: fasttext-wheel 0.9.2's predict() uses np.array(copy=False).
REQUIREMENTS = ["numpy<2", "scikit-learn==1.9.1", "fasttext-wheel==0.9.2"]
OOS = "oos"


def venv_python():
    return os.path.join(VENV, "bin", "python")


def ensure_venv():
    """Re-exec inside the anchors' virtualenv, creating it on first use."""
    if os.path.realpath(sys.prefix) == os.path.realpath(VENV):
        return
    marker = os.path.join(VENV, ".requirements")
    wanted = "\n".join(REQUIREMENTS)
    current = open(marker).read() if os.path.exists(marker) else None
    if current != wanted:
        print(f"router-anchors: installing {', '.join(REQUIREMENTS)} into {VENV}", file=sys.stderr)
        venv.create(VENV, with_pip=True, clear=True)
        subprocess.run(
            [venv_python(), "-m", "pip", "install", "--quiet", *REQUIREMENTS],
            check=True,
            stdout=sys.stderr,
        )
        with open(marker, "w") as f:
            f.write(wanted)
    os.execv(venv_python(), [venv_python(), *sys.argv])


def read(path):
    texts, labels = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                texts.append(row["text"])
                labels.append(row["intent"])
    return texts, labels


def scores(predicted, gold):
    n = len(gold)
    result = {"accuracy": sum(p == g for p, g in zip(predicted, gold)) / n}
    if OOS in gold:
        ins = [(p, g) for p, g in zip(predicted, gold) if g != OOS]
        oos = [p for p, g in zip(predicted, gold) if g == OOS]
        result["in_scope_accuracy"] = sum(p == g for p, g in ins) / len(ins)
        result["oos_recall"] = sum(p == OOS for p in oos) / len(oos)
    else:
        result["in_scope_accuracy"] = None
        result["oos_recall"] = None
    return result


def svm(train, evaluate, seed):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline, make_union
    from sklearn.svm import LinearSVC

    model = make_pipeline(
        make_union(
            TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True),
            TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True),
        ),
        LinearSVC(C=1.0, random_state=seed),
    )
    model.fit(*train)
    return lambda texts: list(model.predict(texts))


def fasttext_model(train, evaluate, seed):
    import tempfile

    import fasttext

    def clean(text):
        return " ".join(text.lower().split())

    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as f:
        for text, label in zip(*train):
            f.write(f"__label__{label} {clean(text)}\n")
        path = f.name
    try:
        model = fasttext.train_supervised(
            path,
            wordNgrams=2,
            minn=2,
            maxn=5,
            dim=100,
            epoch=50,
            lr=0.5,
            thread=2,
            seed=seed,
            verbose=0,
        )
    finally:
        os.unlink(path)
    prefix = len("__label__")
    return lambda texts: [model.predict(clean(t))[0][0][prefix:] for t in texts]


ANCHORS = {"svm": svm, "fasttext": fasttext_model}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", required=True)
    parser.add_argument("--eval", required=True)
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--anchors", default="svm,fasttext")
    args = parser.parse_args()
    ensure_venv()
    train = read(args.train)
    evaluate = read(args.eval)
    for name in args.anchors.split(","):
        for seed in [int(s) for s in args.seeds.split(",")]:
            wall, cpu = time.perf_counter(), time.process_time()
            predict = ANCHORS[name](train, evaluate, seed)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            row = {
                "anchor": name,
                "seed": seed,
                "train_seconds": wall,
                "train_cpu_seconds": cpu,
                **scores(predict(evaluate[0]), evaluate[1]),
            }
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
