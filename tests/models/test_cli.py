"""The ``symgraph`` command, in-process: train, sample, eval, resume, --json, bad inputs."""

import json

import numpy as np
import pytest

from symgraph.models.checkpoint import load_checkpoint, save_checkpoint
from symgraph.models.cli import main
from symgraph.models.train import DEFAULTS

WORDS = ["saurus", "raptor", "don", "ceratops", "mimus", "titan"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    rng = np.random.default_rng(0)
    lines = ["".join(rng.choice(list("abcde"), rng.integers(1, 4))) + rng.choice(WORDS)
             for _ in range(48)]
    path = tmp_path_factory.mktemp("corpus") / "names.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _train_args(corpus, checkpoint, *extra):
    return ["train", "--corpus", str(corpus), "--backend", "numpy", "--quiet",
            "--embed", "8", "--hidden", "16", "--batch-size", "8", "--samples", "2",
            "--lr", "0.02", "--checkpoint", str(checkpoint), *extra]


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    """A 2-epoch run with --json; returns (checkpoint path, json record)."""
    d = tmp_path_factory.mktemp("run")
    ck, js = d / "ck.npz", d / "out.json"
    assert main(_train_args(corpus, ck, "--epochs", "2", "--dropout", "0.1",
                            "--json", str(js))) == 0
    return ck, json.loads(js.read_text())


def test_train_lowers_the_loss_and_writes_the_promised_json(trained):
    ck, record = trained
    assert set(record) == {"config", "epochs", "test_ppl"}
    assert [e["epoch"] for e in record["epochs"]] == [1, 2]
    for e in record["epochs"]:
        assert set(e) == {"epoch", "train_loss", "train_ppl", "valid_loss", "valid_ppl",
                          "tokens_per_s", "seconds", "peak_memory_mb", "memory_growth_mb"}
        assert e["peak_memory_mb"] > 10 and abs(e["memory_growth_mb"]) < 50
        assert e["train_ppl"] == pytest.approx(np.exp(e["train_loss"]))
        assert e["valid_ppl"] == pytest.approx(np.exp(e["valid_loss"]))
        assert e["tokens_per_s"] > 0 and e["seconds"] > 0
    first, last = record["epochs"]
    assert last["train_loss"] < first["train_loss"]
    assert record["test_ppl"] == pytest.approx(last["valid_ppl"], rel=1e-6)
    cfg = record["config"]
    assert cfg["hidden"] == [16] and cfg["embed"] == 8 and cfg["backend"] == "numpy"
    assert set(DEFAULTS) <= set(cfg)
    arrays, meta = load_checkpoint(ck)
    assert meta["epoch"] == 2 and meta["kind"] == "symgraph-lm"
    assert {"params/lstm0.W", "optim/adam.t", "vocab/tokens"} <= set(arrays)
    assert any(k.startswith("rng/") for k in arrays)  # dropout streams are checkpointed


def test_train_prints_epochs_padding_and_samples(corpus, tmp_path, capsys):
    assert main(_train_args(corpus, tmp_path / "c.npz", "--epochs", "1")) == 0
    out = capsys.readouterr().out
    assert "padding:" in out and "epoch   1/1" in out and "ppl" in out
    assert "samples:" in out and "tokens/s" in out
    assert "held-out perplexity" in out


def test_sample_and_eval_read_the_checkpoint(trained, corpus, capsys):
    ck, record = trained
    assert main(["sample", "--checkpoint", str(ck), "-n", "3", "--prefix", "ab",
                 "--temperature", "0.7", "--seed", "1", "--backend", "numpy"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all(s.startswith("ab") for s in lines)
    main(["sample", "--checkpoint", str(ck), "-n", "3", "--prefix", "ab",
          "--temperature", "0.7", "--seed", "1", "--backend", "numpy"])
    assert capsys.readouterr().out.splitlines() == lines  # seeded
    assert main(["eval", "--checkpoint", str(ck), "--corpus", str(corpus),
                 "--backend", "numpy"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("perplexity ")
    assert 1.0 < float(out.split()[1]) < 30.0
    assert main(["eval", "--checkpoint", str(ck), "--backend", "numpy"]) == 0
    held_out = float(capsys.readouterr().out.split()[1])
    assert held_out == pytest.approx(record["test_ppl"], rel=1e-4)


def test_resume_gives_the_same_parameters_as_an_uninterrupted_run(corpus, tmp_path):
    straight, resumed = tmp_path / "straight.npz", tmp_path / "resumed.npz"
    extra = ("--dropout", "0.2", "--samples", "0")
    assert main(_train_args(corpus, straight, "--epochs", "2", *extra)) == 0
    assert main(_train_args(corpus, resumed, "--epochs", "1", *extra)) == 0
    js = tmp_path / "resumed.json"
    assert main(_train_args(corpus, resumed, "--epochs", "2", "--resume", "--json", str(js),
                            *extra)) == 0
    a, meta_a = load_checkpoint(straight)
    b, meta_b = load_checkpoint(resumed)
    assert set(a) == set(b)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert [e["epoch"] for e in json.loads(js.read_text())["epochs"]] == [1, 2]
    assert meta_b["history"][0]["train_loss"] == meta_a["history"][0]["train_loss"]


def test_resume_refuses_a_different_model(corpus, tmp_path, capsys):
    ck = tmp_path / "c.npz"
    assert main(_train_args(corpus, ck, "--epochs", "1", "--samples", "0")) == 0
    capsys.readouterr()
    args = _train_args(corpus, ck, "--epochs", "2", "--resume")
    args[args.index("--hidden") + 1] = "32"
    assert main(args) == 2
    assert "differs from the checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize("extra", [
    ("--bptt", "5", "--cell", "gru", "--layers", "2"),
    ("--level", "word", "--cell", "rnn", "--optimizer", "sgd", "--lr", "0.5",
     "--lr-decay", "0.5", "--decay-after", "1", "--clip", "1", "--init-scale", "0.05"),
    ("--optimizer", "momentum", "--no-bucket", "--normalize", "sequence", "--hidden", "8,6"),
    ("--optimizer", "adagrad", "--bptt", "4", "--level", "word"),
])
def test_other_configurations_run(corpus, tmp_path, extra):
    js = tmp_path / "o.json"
    assert main(_train_args(corpus, tmp_path / "c.npz", "--epochs", "1", "--json", str(js),
                            *extra)) == 0
    record = json.loads(js.read_text())
    assert np.isfinite(record["epochs"][0]["train_loss"])
    assert main(["eval", "--checkpoint", str(tmp_path / "c.npz"), "--corpus", str(corpus),
                 "--backend", "numpy"]) == 0


def test_separate_valid_and_test_files(corpus, tmp_path, capsys):
    valid, test = tmp_path / "valid.txt", tmp_path / "test.txt"
    valid.write_text("abdon\ncaraptor\n", encoding="utf-8")
    test.write_text("zzz unseen chars\n", encoding="utf-8")  # maps to <unk>, no crash
    js = tmp_path / "o.json"
    assert main(_train_args(corpus, tmp_path / "c.npz", "--epochs", "1", "--valid", str(valid),
                            "--test", str(test), "--json", str(js))) == 0
    assert "test perplexity" in capsys.readouterr().out
    assert json.loads(js.read_text())["test_ppl"] > 1.0


def _error(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err
    return code, err


def test_bad_inputs_give_one_line_errors_and_exit_code_2(corpus, tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n", encoding="utf-8")
    code, err = _error(capsys, _train_args(empty, tmp_path / "c.npz", "--epochs", "1"))
    assert code == 2 and "empty" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1

    code, err = _error(capsys, _train_args(tmp_path / "missing.txt", tmp_path / "c.npz"))
    assert code == 2 and "not found" in err

    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 this is not a zip archive at all")
    code, err = _error(capsys, ["sample", "--checkpoint", str(corrupt), "--backend", "numpy"])
    assert code == 2 and "corrupt" in err and len(err.strip().splitlines()) == 1

    text = tmp_path / "text.npz"
    text.write_text("hello", encoding="utf-8")
    code, err = _error(capsys, ["eval", "--checkpoint", str(text), "--backend", "numpy"])
    assert code == 2 and "not an .npz checkpoint" in err

    foreign = tmp_path / "foreign.npz"
    save_checkpoint(foreign, {"w": np.zeros(3)}, {"something": "else"})
    code, err = _error(capsys, ["sample", "--checkpoint", str(foreign), "--backend", "numpy"])
    assert code == 2 and "not a language-model checkpoint" in err

    code, err = _error(capsys, ["sample", "--checkpoint", str(tmp_path / "none.npz")])
    assert code == 2 and "not found" in err

    code, err = _error(capsys, ["train", "--resume", "--checkpoint", str(tmp_path / "no.npz"),
                                "--backend", "numpy"])
    assert code == 2 and "not found" in err

    code, err = _error(capsys, _train_args(corpus, tmp_path / "c.npz", "--dropout", "1.5"))
    assert code == 2 and "--dropout" in err

    code, err = _error(capsys, ["train", "--cell", "transformer"])
    assert code == 2 and "invalid choice" in err

    code, err = _error(capsys, _train_args(corpus, tmp_path / "c.npz", "--bptt", "1000"))
    assert code == 2 and "too short" in err

    code, err = _error(capsys, _train_args(corpus, tmp_path / "no" / "c.npz"))
    assert code == 2 and "does not exist" in err

    code, err = _error(capsys, [])
    assert code == 2 and "choose a command" in err


class _Terminal:
    """A text stream that says it is a terminal."""

    def __init__(self):
        self.parts = []

    def write(self, text):
        self.parts.append(text)

    def flush(self):
        pass

    def isatty(self):
        return True


def test_builtin_progress_bar_draws_on_a_terminal_only():
    from symgraph.models.progress import ProgressBar

    term = _Terminal()
    bar = ProgressBar(4, desc="epoch 1", file=term, min_interval=0.0)
    for _ in range(4):
        bar.update(1, loss=2.5)
    bar.close()
    text = "".join(term.parts)
    assert "epoch 1" in text and "4/4" in text and "100%" in text and "loss=2.5" in text
    assert text.endswith("\r\x1b[K")  # the line is erased for the epoch summary
    pipe = _Terminal()
    pipe.isatty = lambda: False
    quiet = ProgressBar(4, file=pipe)
    quiet.update(4)
    quiet.close()
    assert pipe.parts == []
