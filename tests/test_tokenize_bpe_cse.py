"""Tests of the BPE tokenizer (learn_bpe) and the CSE nucleotide-code encoding."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from nucflow.errors import InputError
from nucflow.tokenize import (
    CLS_ID,
    CSE_N_CODE,
    CSE_PAD_CODE,
    PAD_ID,
    SEP_ID,
    TOKENIZER_METHODS,
    BpeTokenizer,
    CseEncoding,
    Tokenizer,
    build_tokenizer,
    learn_bpe,
    load_tokenizer,
    one_hot_codes,
    save_tokenizer,
    tokenizer_from_spec,
)

SPECIALS = ["[MASK]", "[CLS]", "[SEP]", "[PAD]", "[UNK]"]
REPEAT = "GATTACACCGT"


def planted_sequences(seed: int = 0, n: int = 60) -> list[str]:
    """Random ACGT sequences, each holding several copies of :data:`REPEAT` (and a few N)."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("ACGT"))
    sequences = []
    for _ in range(n):
        parts = []
        for _ in range(rng.integers(2, 6)):
            parts.append("".join(rng.choice(letters, size=rng.integers(5, 40))))
            parts.append(REPEAT)
        parts.append("NN" if rng.random() < 0.2 else "")
        sequences.append("".join(parts))
    return sequences


@pytest.fixture(scope="module")
def bpe() -> BpeTokenizer:
    return learn_bpe(planted_sequences(), vocab_size=64, context_length=32)


def manual_row(pieces: list[int], context_length: int, keep: str) -> list[int]:
    """Expected row written out directly from the whole sequence's pieces."""
    room = context_length - 1
    kept = pieces[:room] if keep == "five_prime" else pieces[max(len(pieces) - room, 0) :]
    row = [CLS_ID, *kept] + ([SEP_ID] if len(kept) < room else [])
    return row + [PAD_ID] * (context_length - len(row))


# --- BPE -------------------------------------------------------------------------------


def test_bpe_specials_and_vocabulary(bpe: BpeTokenizer) -> None:
    assert bpe.method == "bpe" and isinstance(bpe, Tokenizer)
    assert bpe.vocab_size == 64 == len(bpe.vocabulary)
    assert list(bpe.vocabulary[:5]) == SPECIALS
    assert sorted(bpe.vocabulary[5:10]) == list("ACGNT")
    content = bpe.vocabulary[5:]
    assert all(token and set(token) <= set("ACGTN") for token in content)
    assert "None" not in bpe.vocabulary and len(set(bpe.vocabulary)) == bpe.vocab_size
    hf_vocab = bpe.hf_tokenizer.get_vocab(with_added_tokens=True)
    assert [hf_vocab[token] for token in SPECIALS] == [0, 1, 2, 3, 4]


def test_bpe_learns_planted_repeat(bpe: BpeTokenizer) -> None:
    assert max(map(len, bpe.vocabulary[5:])) > 3
    assert REPEAT in bpe.vocabulary  # the planted repeat ends up as one piece
    # In new sequences every copy of the repeat is covered by (nearly) one piece.
    pieces = bpe.pieces(planted_sequences(seed=1, n=10))
    core = REPEAT[:-1]
    assert all(any(core in bpe.vocabulary[i] for i in row) for row in pieces)


def test_bpe_round_trip(bpe: BpeTokenizer) -> None:
    sequences = [*planted_sequences(seed=2, n=20), "", "A", "NNNN", "ACGTN"]
    sequences = [s for s in sequences if len(s) <= bpe.context_length - 1] + sequences[:5]
    ids = bpe.encode(sequences)
    assert ids.dtype == np.int32 and ids.shape == (len(sequences), 32)
    assert (ids[:, 0] == CLS_ID).all()
    for sequence, row, tokens in zip(sequences, ids, bpe.decode(ids), strict=True):
        n_pieces = int(np.count_nonzero(row >= 5))
        if n_pieces < bpe.context_length - 1:  # fits: exact round trip, SEP after the pieces
            assert "".join(tokens[1:-1]) == sequence
            assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]"
            assert row[n_pieces + 1] == SEP_ID and (row[n_pieces + 2 :] == PAD_ID).all()
    assert bpe.encode([""]).tolist() == [[CLS_ID, SEP_ID] + [PAD_ID] * 30]
    assert bpe.encode([]).shape == (0, 32)


def test_bpe_normalises_input(bpe: BpeTokenizer) -> None:
    assert (bpe.encode(["acgtuRY"]) == bpe.encode(["ACGTTNN"])).all()
    with pytest.raises(InputError, match="sequence 2 is a int"):
        bpe.encode(["ACGT", 5])  # type: ignore[list-item]
    with pytest.raises(InputError, match="single string"):
        bpe.encode("ACGT")


@pytest.mark.parametrize("keep", ["five_prime", "three_prime"])
def test_bpe_truncation_keeps_the_right_end(keep: str) -> None:
    sequences = [*planted_sequences(seed=3, n=30), "", "ACGT", REPEAT, "TTGACCA"]
    tokenizer = learn_bpe(sequences, vocab_size=40, context_length=8, keep=keep)  # type: ignore[arg-type]
    whole = tokenizer.pieces(sequences)
    assert any(len(p) > 7 for p in whole) and any(len(p) <= 7 for p in whole)
    ids = tokenizer.encode(sequences)
    assert ids.tolist() == [manual_row(p, 8, keep) for p in whole]
    long = next(i for i, p in enumerate(whole) if len(p) > 7)
    text = "".join(tokenizer.decode(ids[long])[0][1:])
    if keep == "five_prime":
        assert sequences[long].startswith(text)
    else:
        assert sequences[long].endswith(text)
    assert SEP_ID not in ids[long]


def test_bpe_long_training_sequences_are_used() -> None:
    rng = np.random.default_rng(4)
    long = "".join(rng.choice(list("ACGT"), size=30_000)) + "CATCATCAT" * 2000
    tokenizer = learn_bpe([long], vocab_size=30, context_length=16)
    assert tokenizer.vocab_size == 30
    assert any("CAT" in token for token in tokenizer.vocabulary[5:])


def test_bpe_spec_round_trip(bpe: BpeTokenizer, tmp_path: Path) -> None:
    spec = bpe.to_spec()
    assert spec["method"] == "bpe" and spec["vocab_size"] == 64 and spec["context_length"] == 32
    assert spec["keep"] == "five_prime" and isinstance(spec["tokenizer"], str)
    assert spec["special_ids"] == {"mask": 0, "cls": 1, "sep": 2, "pad": 3, "unk": 4}
    json.dumps(spec)
    path = tmp_path / "tokenizer.json"
    save_tokenizer(bpe, path)
    loaded = load_tokenizer(path)
    assert isinstance(loaded, BpeTokenizer) and loaded == bpe
    sequences = planted_sequences(seed=5, n=25)
    assert (loaded.encode(sequences) == bpe.encode(sequences)).all()
    assert loaded.vocabulary == bpe.vocabulary
    assert tokenizer_from_spec(spec).to_spec() == spec


def test_bpe_learning_is_deterministic() -> None:
    first = learn_bpe(planted_sequences(seed=6), vocab_size=50, context_length=16)
    second = learn_bpe(planted_sequences(seed=6), vocab_size=50, context_length=16)
    assert first == second


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"extra": 1}, "unknown keys 'extra'"),
        ({"tokenizer": None}, "must be a Hugging Face tokenizer JSON string"),
        ({"tokenizer": "{not json"}, "not a valid tokenizer"),
        ({"vocab_size": 65}, "vocab_size is 65"),
        ({"keep": "middle"}, "keep must be one of"),
        ({"context_length": 1}, "context_length must be an integer"),
    ],
)
def test_bpe_bad_spec(bpe: BpeTokenizer, change: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        tokenizer_from_spec({**bpe.to_spec(), **change}, source="model/config.json")
    spec = bpe.to_spec()
    del spec["tokenizer"]
    with pytest.raises(InputError, match="missing keys 'tokenizer'"):
        tokenizer_from_spec(spec)


def test_bpe_spec_with_stray_token_is_rejected(bpe: BpeTokenizer) -> None:
    hf = json.loads(bpe.to_spec()["tokenizer"])
    vocab = hf["model"]["vocab"]
    stray = next(token for token, index in vocab.items() if index == 63)
    vocab["None"] = vocab.pop(stray)
    hf["model"]["merges"] = []
    spec = {**bpe.to_spec(), "tokenizer": json.dumps(hf)}
    with pytest.raises(InputError, match="expected a string over ACGTN"):
        tokenizer_from_spec(spec)


def test_bpe_errors() -> None:
    with pytest.raises(InputError, match="BPE needs a learned vocabulary"):
        build_tokenizer("bpe", k=3, context_length=8, keep="five_prime")
    with pytest.raises(InputError, match="vocab_size must be an integer ≥ 10"):
        learn_bpe(["ACGT"], vocab_size=9, context_length=8)
    with pytest.raises(InputError, match="at least one non-empty"):
        learn_bpe([], vocab_size=32, context_length=8)
    with pytest.raises(InputError, match="at least one non-empty"):
        learn_bpe(["", ""], vocab_size=32, context_length=8)
    with pytest.raises(InputError, match="keep must be one of"):
        learn_bpe(["ACGT"], vocab_size=32, context_length=8, keep="both")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="out of range|outside|must be in"):
        learn_bpe(["ACGT"], vocab_size=12, context_length=8).decode(np.array([99]))
    assert "bpe" in TOKENIZER_METHODS and "cse" in TOKENIZER_METHODS


def test_bpe_minimal_vocabulary() -> None:
    tokenizer = learn_bpe(["ACGTACGT"], vocab_size=10, context_length=6)
    assert tokenizer.vocabulary == (*SPECIALS, "A", "C", "G", "N", "T")
    assert tokenizer.decode(tokenizer.encode(["ACG"]))[0] == ["[CLS]", "A", "C", "G", "[SEP]"]


# --- CSE -------------------------------------------------------------------------------


def test_cse_codes_width_and_padding() -> None:
    encoding = CseEncoding(kernel_size=3, context_length=3)
    assert encoding.method == "cse" and encoding.vocab_size == 6
    assert encoding.width == 2 * 3 + 2 == 8
    assert CSE_PAD_CODE == 5 and CSE_N_CODE == 4
    codes = encoding.encode(["ACGTN", "acgtuRX?", "", "ACGTACGTAC"])
    assert codes.dtype == np.uint8 and codes.shape == (4, 8)
    assert codes.tolist() == [
        [0, 1, 2, 3, 4, 5, 5, 5],
        [0, 1, 2, 3, 3, 4, 4, 4],
        [5] * 8,
        [0, 1, 2, 3, 0, 1, 2, 3],
    ]
    assert encoding.decode(codes) == [
        list("ACGTN"),
        list("ACGTTNNN"),
        [],
        list("ACGTACGT"),
    ]
    assert encoding.encode([]).shape == (0, 8)
    assert CseEncoding(9, 768).width == 6911


def test_cse_three_prime_keeps_the_last_nucleotides() -> None:
    encoding = CseEncoding(2, 3, keep="three_prime")
    assert encoding.width == 5
    assert encoding.encode(["AAAACGTN", "GT"]).tolist() == [[0, 1, 2, 3, 4], [2, 3, 5, 5, 5]]
    assert encoding.decode(encoding.encode(["AAAACGTN"]))[0] == list("ACGTN")
    five = CseEncoding(2, 3)
    assert five.decode(five.encode(["AAAACGTN"]))[0] == list("AAAAC")


def test_cse_matches_a_per_letter_reference() -> None:
    rng = np.random.default_rng(7)
    letters = np.array(list("ACGTNacgtU"))
    sequences = ["".join(rng.choice(letters, size=rng.integers(0, 40))) for _ in range(50)]
    lookup = {"A": 0, "C": 1, "G": 2, "T": 3, "U": 3}
    for keep in ("five_prime", "three_prime"):
        encoding = CseEncoding(4, 6, keep=keep)  # type: ignore[arg-type]
        codes = encoding.encode(sequences)
        for sequence, row in zip(sequences, codes, strict=True):
            kept = sequence[: encoding.width] if keep == "five_prime" else sequence[-23:]
            expected = [lookup.get(c.upper(), 4) for c in kept] if sequence else []
            assert row.tolist() == expected + [5] * (encoding.width - len(expected))


def test_one_hot_codes_values() -> None:
    codes = torch.tensor([[0, 1, 2, 3, 4, 5], [5, 4, 3, 2, 1, 0]], dtype=torch.uint8)
    one_hot = one_hot_codes(codes)
    assert one_hot.shape == (2, 4, 6) and one_hot.dtype == torch.float32
    expected = torch.tensor(
        [
            [1, 0, 0, 0, 0.25, 0],
            [0, 1, 0, 0, 0.25, 0],
            [0, 0, 1, 0, 0.25, 0],
            [0, 0, 0, 1, 0.25, 0],
        ]
    )
    assert torch.equal(one_hot[0], expected)
    assert torch.equal(one_hot[1], expected.flip(1))
    assert one_hot[0, :, 4].tolist() == [0.25] * 4  # N
    assert one_hot[1, :, 0].tolist() == [0.0] * 4  # padding
    assert one_hot_codes(codes.long(), dtype=torch.float64).dtype == torch.float64
    with pytest.raises(InputError, match="integer tensor"):
        one_hot_codes(codes.float())


def test_one_hot_codes_from_encoded_batch() -> None:
    encoding = CseEncoding(3, 4)
    codes = torch.from_numpy(encoding.encode(["ACGTN", "TTTTTTTTTTTTTTTT"]))
    one_hot = one_hot_codes(codes)
    assert one_hot.shape == (2, 4, encoding.width)
    assert one_hot[0].sum(0).tolist() == [1, 1, 1, 1, 1] + [0] * (encoding.width - 5)
    assert one_hot[1, 3].sum().item() == encoding.width


def test_cse_spec_round_trip(tmp_path: Path) -> None:
    encoding = CseEncoding(9, 768, keep="three_prime")
    spec = encoding.to_spec()
    assert spec["method"] == "cse" and spec["kernel_size"] == 9 and spec["vocab_size"] == 6
    path = tmp_path / "cse.json"
    save_tokenizer(encoding, path)  # type: ignore[arg-type]
    assert load_tokenizer(path) == encoding
    assert tokenizer_from_spec(spec) == encoding
    built = build_tokenizer("cse", k=9, context_length=768, keep="three_prime")
    assert built == encoding
    built = build_tokenizer("cse", k=3, kernel_size=9, context_length=768, keep="three_prime")
    assert built == encoding


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"stride": 1}, "unknown keys 'stride'"),
        ({"special_ids": {}}, "unknown keys 'special_ids'"),
        ({"kernel_size": 0}, "kernel_size must be an integer ≥ 1"),
        ({"kernel_size": 2.5}, "kernel_size must be an integer"),
        ({"context_length": 1}, "context_length must be an integer ≥ 2"),
        ({"vocab_size": 9}, "vocab_size is 9"),
        ({"keep": "random_crop"}, "keep must be one of"),
    ],
)
def test_cse_bad_spec(change: dict, message: str) -> None:
    spec = {**CseEncoding(3, 8).to_spec(), **change}
    with pytest.raises(InputError, match=message):
        tokenizer_from_spec(spec, source="cfg.json")
    spec = CseEncoding(3, 8).to_spec()
    del spec["kernel_size"]
    with pytest.raises(InputError, match="missing keys 'kernel_size'"):
        tokenizer_from_spec(spec)


def test_cse_bad_input() -> None:
    with pytest.raises(InputError, match="kernel_size must be an integer ≥ 1"):
        CseEncoding(0, 8)
    with pytest.raises(InputError, match="kernel_size"):
        CseEncoding(True, 8)  # type: ignore[arg-type]
    encoding = CseEncoding(3, 8)
    with pytest.raises(InputError, match="single string"):
        encoding.encode("ACGT")
    with pytest.raises(InputError, match="sequence 1 is a bytes"):
        encoding.encode([b"ACGT"])  # type: ignore[list-item]
    with pytest.raises(InputError, match="ids must be in 0 … 5 for this encoding"):
        encoding.decode(np.array([[0, 6]]))
