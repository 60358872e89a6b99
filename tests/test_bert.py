"""BERT / CSE-BERT: shapes, padding masks, attention equivalence, sizes, transfer, save/load."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from nucflow.errors import InputError
from nucflow.models import build_model
from nucflow.models.bert import BertClassifier, BertEncoder, BertMaskedLM, pool
from nucflow.models.files import ModelConfig, load_model, save_model
from nucflow.tokenize import CLS_ID, MASK_ID, PAD_ID, SEP_ID, UNK_ID, build_tokenizer

VOCAB = 69
TOKENS = {
    "input": "tokens",
    "vocab_size": VOCAB,
    "context_length": 12,
    "d_model": 16,
    "N": 2,
    "h": 2,
    "dropout": 0.1,
}
K = 3
CSE = {
    "input": "cse",
    "kernel_size": K,
    "n_kernels": 8,
    "context_length": 9,
    "d_model": 16,
    "N": 2,
    "h": 2,
    "dropout": 0.1,
}
L = (CSE["context_length"] - 1) * K  # nucleotides the CSE model reads: 24
WIDTH = L + K - 1  # stored CSE width (room for a random reading frame): 26
PAD_CODE = 5


def _tokens(lengths: list[int], width: int = 12, seed: int = 0) -> torch.Tensor:
    """Rows CLS c1..cn SEP PAD… with n = length random content ids."""
    generator = torch.Generator().manual_seed(seed)
    rows = torch.full((len(lengths), width), PAD_ID)
    for i, n in enumerate(lengths):
        rows[i, 0] = CLS_ID
        rows[i, 1 : n + 1] = torch.randint(5, VOCAB, (n,), generator=generator)
        rows[i, n + 1] = SEP_ID
    return rows


def _codes(lengths: list[int], width: int = WIDTH, seed: int = 0) -> torch.Tensor:
    """Rows of n random bases (with an N now and then) then pad codes."""
    generator = torch.Generator().manual_seed(seed)
    rows = torch.full((len(lengths), width), PAD_CODE)
    for i, n in enumerate(lengths):
        rows[i, :n] = torch.randint(0, 5, (n,), generator=generator)
    return rows


def _model(name: str, hparams: dict, seed: int = 0, **extra) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(name, **hparams, **extra).eval()


def _inputs(hparams: dict) -> torch.Tensor:
    return _tokens([10, 4, 0]) if hparams["input"] == "tokens" else _codes([WIDTH, 13, 2])


@pytest.mark.parametrize("hparams", [TOKENS, CSE], ids=["tokens", "cse"])
def test_output_shapes(hparams):
    x = _inputs(hparams)
    classifier = _model("bert", hparams, n_classes=3)
    assert classifier(x).shape == (3, 3)
    assert classifier.embed(x).shape == (3, 16)
    hidden, attend = classifier.encoder(x)
    positions = 12 if hparams["input"] == "tokens" else CSE["context_length"]
    assert hidden.shape == (3, positions, 16) and attend.shape == (3, positions)
    mlm = _model("bert_mlm", hparams)
    expected = (3, 12, VOCAB) if hparams["input"] == "tokens" else (3, 4, L)
    assert mlm(x).shape == expected
    assert mlm.embed(x).shape == (3, 16)
    assert isinstance(classifier, BertClassifier) and isinstance(mlm, BertMaskedLM)


def test_defaults_for_d_ff_and_heads():
    encoder = BertEncoder(vocab_size=9, context_length=4, d_model=128, N=1)
    assert (encoder.d_ff, encoder.h) == (512, 2)
    assert BertEncoder(vocab_size=9, context_length=4, d_model=32, N=1).h == 1


def test_cse_attend_masks_partial_last_window():
    encoder = BertEncoder(**CSE)
    _, attend = encoder(_codes([10, 0, WIDTH]))  # 10 nt = 3 full windows + 1 nt
    assert attend[0].tolist() == [True] * 4 + [False] * 5
    assert attend[1].tolist() == [True] + [False] * 8
    assert attend[2].all()  # the extra k-1 codes are cropped away


@pytest.mark.parametrize("attention", ["sdpa", "explicit"])
@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_token_padding_never_attended(attention, pooling):
    classifier = _model("bert", TOKENS, n_classes=2, attention=attention, pooling=pooling)
    mlm = _model("bert_mlm", TOKENS, attention=attention)
    short = _tokens([5], width=8)
    padded = torch.cat([short, torch.full((1, 4), PAD_ID)], dim=1)  # more padding
    with torch.no_grad():
        real = short != PAD_ID
        hidden, _ = classifier.encoder(short)
        torch.testing.assert_close(
            classifier.encoder(padded)[0][:, :8][real], hidden[real], atol=1e-5, rtol=0
        )
        torch.testing.assert_close(classifier(padded), classifier(short), atol=1e-5, rtol=0)
        torch.testing.assert_close(mlm(padded)[:, :8][real], mlm(short)[real], atol=1e-5, rtol=0)
        # whatever the padded positions hold (here: their embedding) is never attended
        before = classifier(padded)
        changed = copy.deepcopy(classifier)
        changed.encoder.embedding.weight[PAD_ID].normal_(0, 10)
        torch.testing.assert_close(changed(padded), before, atol=1e-5, rtol=0)
        # a padded row beside longer rows gives what it gives alone
        batch = torch.cat([padded, _tokens([10], seed=1)])
        torch.testing.assert_close(classifier(batch)[:1], before, atol=1e-5, rtol=0)
        # the check is not vacuous: changing a content token does change the logits
        other = padded.clone()
        other[0, 2] = 5 if other[0, 2] != 5 else 6
        assert not torch.allclose(classifier(other), before, atol=1e-4)


@pytest.mark.parametrize("attention", ["sdpa", "explicit"])
@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_cse_padding_and_partial_window_never_attended(attention, pooling):
    classifier = _model("bert", CSE, n_classes=2, attention=attention, pooling=pooling)
    mlm = _model("bert_mlm", CSE, attention=attention)
    codes = _codes([13], width=15)  # 4 full windows + 1 nt of a partial fifth
    changed = codes.clone()
    changed[0, 12] = (codes[0, 12] + 1) % 4  # a code inside the partial (masked) window
    padded = torch.cat([changed, torch.full((1, 30), PAD_CODE)], dim=1)  # more padding
    with torch.no_grad():
        hidden, attend = classifier.encoder(codes)
        assert attend[0].tolist() == [True] * 5 + [False] * 4
        for variant in (changed, padded):
            torch.testing.assert_close(
                classifier.encoder(variant)[0][attend], hidden[attend], atol=1e-5, rtol=0
            )
            torch.testing.assert_close(classifier(variant), classifier(codes), atol=1e-5, rtol=0)
            real = slice(0, 4 * K)
            torch.testing.assert_close(
                mlm(variant)[..., real], mlm(codes)[..., real], atol=1e-5, rtol=0
            )
        batch = torch.cat([padded[:, :WIDTH], _codes([WIDTH], seed=1)])
        torch.testing.assert_close(classifier(batch)[:1], classifier(codes), atol=1e-5, rtol=0)
        other = codes.clone()
        other[0, 0] = (codes[0, 0] + 1) % 4  # a code inside a full window does count
        assert not torch.allclose(classifier(other), classifier(codes), atol=1e-4)


@pytest.mark.parametrize("hparams", [TOKENS, CSE], ids=["tokens", "cse"])
def test_sdpa_and_explicit_attention_agree(hparams):
    x = _inputs(hparams)
    for name, extra in (("bert", {"n_classes": 3, "pooling": "mean"}), ("bert_mlm", {})):
        sdpa = _model(name, hparams, **extra)
        explicit = build_model(name, **hparams, **extra, attention="explicit").eval()
        explicit.load_state_dict(sdpa.state_dict())
        with torch.no_grad():
            torch.testing.assert_close(explicit(x), sdpa(x), atol=1e-5, rtol=0)
            torch.testing.assert_close(
                explicit.encoder(x)[0], sdpa.encoder(x)[0], atol=1e-5, rtol=0
            )


def test_parameter_counts_at_paper_size():
    """Paper-size models (d_model 768, N 12, d_ff 3072, h 12, context 768) vs lncRNA-BERT.

    Built on the meta device (no memory, no initialisation time). What is counted: trainable
    parameters only; the sinusoidal positions are a non-persistent buffer (the HF model cards'
    89M include a saved 5,000 × 768 position buffer). The reported "BERT 3-mer 85.11M" is the
    encoder alone (embedding 69 × 768, 12 blocks, final LayerNorm): 85,108,992, and also the
    encoder + a one-logit classifier (+769); the 3-mer MLM head Linear(768, 69) adds 53,061
    (85.16M). "CSEBERT k=9 85.09M" = CSE encoder (Conv1d 4→768, k 9, + learned CLS) + one
    logit; "CSE with the MLM head 85.70M" adds Linear(768, 768) + ConvTranspose1d(768→4, k 9).
    """
    paper = {"context_length": 768, "d_model": 768, "N": 12}
    cse = {"input": "cse", "kernel_size": 9, "n_kernels": 768, **paper}

    def count(module: torch.nn.Module) -> int:
        return sum(p.numel() for p in module.parameters())

    with torch.device("meta"):
        kmer_mlm = BertMaskedLM(input="tokens", vocab_size=VOCAB, **paper)
        kmer_cls = BertClassifier(n_classes=1, input="tokens", vocab_size=VOCAB, **paper)
        cse_cls = BertClassifier(n_classes=1, **cse)
        cse_mlm = BertMaskedLM(**cse)
    assert (kmer_mlm.encoder.d_ff, kmer_mlm.encoder.h) == (3072, 12)
    assert count(kmer_mlm.encoder) == 85_108_992  # 85.11M reported for "BERT 3-mer"
    assert count(kmer_mlm.head) == 768 * VOCAB + VOCAB
    assert count(kmer_mlm) == 85_162_053
    assert round(count(kmer_cls) / 1e6, 2) == 85.11
    assert count(cse_cls) == 85_085_953
    assert round(count(cse_cls) / 1e6, 2) == 85.09  # "CSEBERT k=9"
    assert round(count(cse_mlm) / 1e6, 2) == 85.70  # "CSE with the MLM head"
    assert not any("positions" in name for name in kmer_mlm.state_dict())


@pytest.mark.parametrize("hparams", [TOKENS, CSE], ids=["tokens", "cse"])
def test_hidden_classifier_layers(hparams):
    model = _model("bert", hparams, n_classes=3, hidden_cls_layers=[16, 8], head_dropout=0.2)
    linears = [m for m in model.head if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(16, 16), (16, 8), (8, 3)]
    assert sum(isinstance(m, torch.nn.ReLU) for m in model.head) == 2
    x = _inputs(hparams)
    assert model(x).shape == (3, 3)
    model.train()
    model(x).sum().backward()
    assert all(m.weight.grad is not None for m in linears)


@pytest.mark.parametrize("hparams", [TOKENS, CSE], ids=["tokens", "cse"])
def test_pretrained_encoder_transfers_to_classifier(hparams):
    mlm = _model("bert_mlm", hparams, seed=1)
    classifier = _model("bert", hparams, seed=2, n_classes=2, pooling="mean")
    classifier.encoder.load_state_dict(mlm.encoder.state_dict())
    x = _inputs(hparams)
    with torch.no_grad():
        assert torch.equal(classifier.embed(x), mlm.embed(x))
        assert torch.equal(classifier.embed(x, "cls"), mlm.embed(x, "cls"))


def test_mean_pooling_excludes_special_positions():
    encoder = BertEncoder(**TOKENS).eval()
    x = torch.tensor(
        [
            [CLS_ID, 7, MASK_ID, UNK_ID, 9, SEP_ID, PAD_ID, PAD_ID],
            [CLS_ID, SEP_ID, PAD_ID, PAD_ID, PAD_ID, PAD_ID, PAD_ID, PAD_ID],
        ]
    )
    with torch.no_grad():
        hidden, attend = encoder(x)
        content = encoder.content_mask(x, attend)
        assert content.tolist()[0] == [False, True, False, True, True, False, False, False]
        assert not content[1].any()
        embedding = encoder.embed(x)
    torch.testing.assert_close(embedding[0], hidden[0, [1, 3, 4]].mean(dim=0))
    torch.testing.assert_close(embedding[1], hidden[1, 0])  # no content: the CLS vector
    assert torch.isfinite(embedding).all()


def test_cse_mean_pooling_excludes_cls_and_masked_windows():
    encoder = BertEncoder(**CSE).eval()
    x = _codes([7, 0])  # 2 full windows; a row without any
    with torch.no_grad():
        hidden, _ = encoder(x)
        embedding = encoder.embed(x)
    torch.testing.assert_close(embedding[0], hidden[0, 1:3].mean(dim=0))
    torch.testing.assert_close(embedding[1], hidden[1, 0])
    hidden = torch.randn(1, 3, 4)
    torch.testing.assert_close(
        pool(hidden, torch.zeros(1, 3, dtype=torch.bool), "mean"), hidden[:, 0]
    )


@pytest.mark.parametrize("hparams", [TOKENS, CSE], ids=["tokens", "cse"])
@pytest.mark.parametrize("name", ["bert", "bert_mlm"])
def test_save_load_round_trip(tmp_path, hparams, name):
    extra = {"n_classes": 2, "hidden_cls_layers": [8], "pooling": "mean"} if name == "bert" else {}
    model = _model(name, hparams, **extra)
    if hparams["input"] == "tokens":
        tokenizer = build_tokenizer("kmer", k=3, context_length=12, keep="five_prime")
    else:
        tokenizer = build_tokenizer("cse", k=K, context_length=9, keep="five_prime")
    rng = np.random.default_rng(0)
    x = torch.from_numpy(
        tokenizer.encode(["".join(rng.choice(list("ACGTN"), n)) for n in (40, 12, 3)])
    ).long()
    assert x.shape[1] == (12 if hparams["input"] == "tokens" else WIDTH)
    task = "classification" if name == "bert" else "mlm"
    config = ModelConfig(name, {**hparams, **extra}, tokenizer.to_spec(), task, ["a", "b"])
    save_model(tmp_path / "m", model, config)
    loaded, loaded_config = load_model(tmp_path / "m")
    assert type(loaded) is type(model) and loaded_config.hyperparameters == {**hparams, **extra}
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


@pytest.mark.parametrize("attention", ["sdpa", "explicit"])
@pytest.mark.parametrize("hparams", [TOKENS, CSE], ids=["tokens", "cse"])
def test_bf16_autocast(hparams, attention):
    x = _inputs(hparams)
    for name, extra in (("bert", {"n_classes": 2, "pooling": "mean"}), ("bert_mlm", {})):
        model = _model(name, hparams, attention=attention, **extra)
        with torch.no_grad():
            reference = model(x)
        model.train()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x)
        assert out.shape == reference.shape and torch.isfinite(out).all()
        out.float().sum().backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        model.eval()
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            torch.testing.assert_close(model(x).float(), reference, atol=0.15, rtol=0.05)


@pytest.mark.parametrize(
    ("hparams", "message"),
    [
        ({**TOKENS, "d_model": 16, "h": 3}, r"d_model \(16\) must be divisible by h \(3\)"),
        ({**CSE, "input_linear": False}, "input_linear=False needs n_kernels == d_model"),
        ({**TOKENS, "context_length": 1}, "context_length must be an integer >= 2"),
        ({**TOKENS, "vocab_size": None}, "token input needs vocab_size"),
        ({**TOKENS, "input": "bytes"}, "input must be one of"),
        ({**TOKENS, "attention": "flash"}, "attention must be one of"),
        ({**TOKENS, "pooling": "max"}, "pooling must be one of"),
        ({**TOKENS, "hidden_cls_layers": [8, 0]}, "hidden_cls_layers must be a list"),
        ({**TOKENS, "n_classes": 0}, "n_classes must be a positive integer"),
    ],
)
def test_bad_hyperparameters(hparams, message):
    hparams = {"n_classes": 2, **hparams}
    with pytest.raises(InputError, match=message):
        build_model("bert", **hparams)


def test_too_many_token_positions():
    model = _model("bert", TOKENS, n_classes=2)
    with pytest.raises(InputError, match="at most 12"):
        model(_tokens([3], width=13))
