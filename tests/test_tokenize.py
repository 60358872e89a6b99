"""Tests of the nuc / k-mer tokenizers, their specs and JSON save/load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nucflow.errors import InputError
from nucflow.io.fasta import read_fasta
from nucflow.tokenize import (
    CLS_ID,
    MASK_ID,
    PAD_ID,
    SEP_ID,
    UNK_ID,
    KmerTokenizer,
    Tokenizer,
    build_tokenizer,
    load_tokenizer,
    save_tokenizer,
    tokenizer_from_spec,
)
from nucflow.tokenize import kmer as kmer_module

BASE_INDEX = {"A": 0, "C": 1, "G": 2, "T": 3}


def reference_encode(sequence: str, k: int, context_length: int, keep: str) -> list[int]:
    """Straightforward per-character k-mer tokenizer, written independently of the package."""
    cap = (context_length - 1) * k
    if len(sequence) > cap:
        sequence = sequence[:cap] if keep == "five_prime" else sequence[len(sequence) - cap :]
    row = [CLS_ID]
    value, valid, filled = 0, True, 0
    for char in sequence:
        if char in BASE_INDEX:
            value = value * 4 + BASE_INDEX[char]
        else:
            valid = False
        filled += 1
        if filled == k:
            row.append(5 + value if valid else UNK_ID)
            value, valid, filled = 0, True, 0
    if len(row) < context_length:
        row.append(SEP_ID)
    return row + [PAD_ID] * (context_length - len(row))


def random_sequences(rng: np.random.Generator, n: int, max_length: int, alphabet: str) -> list[str]:
    """``n`` random sequences of lengths 0 … max_length over ``alphabet``."""
    letters = np.array(list(alphabet))
    return ["".join(rng.choice(letters, size=rng.integers(0, max_length + 1))) for _ in range(n)]


def test_worked_example() -> None:
    tokenizer = KmerTokenizer(3, 8)
    assert tokenizer.encode(["ACGTNAGG"]).tolist() == [[1, 11, 4, 2, 3, 3, 3, 3]]


@pytest.mark.parametrize(("k", "size"), [(1, 9), (2, 21), (3, 69), (6, 4101)])
def test_vocabulary_size(k: int, size: int) -> None:
    tokenizer = KmerTokenizer(k, 16)
    assert tokenizer.vocab_size == size
    assert len(tokenizer.vocabulary) == size
    assert tokenizer.vocabulary[:5] == ("[MASK]", "[CLS]", "[SEP]", "[PAD]", "[UNK]")


def test_nuc_is_kmer_with_k_one() -> None:
    nuc = build_tokenizer("nuc", k=5, context_length=10, keep="five_prime")
    assert nuc.method == "nuc" and nuc.vocab_size == 9
    assert nuc.encode(["ACGTN"]).tolist() == [[1, 5, 6, 7, 8, 4, 2, 3, 3, 3]]
    kmer = build_tokenizer("kmer", k=3, context_length=10, keep="three_prime")
    assert kmer.method == "kmer" and kmer.vocab_size == 69
    assert isinstance(kmer, Tokenizer)


@pytest.mark.parametrize(
    ("kmer", "expected"),
    [
        ("A", 5),
        ("T", 8),
        ("AAA", 5),
        ("ACG", 5 + 0 * 16 + 1 * 4 + 2),
        ("TTT", 5 + 63),
        ("GATTAC", 5 + 2 * 4**5 + 0 * 4**4 + 3 * 4**3 + 3 * 4**2 + 0 * 4 + 1),
        ("TTTTTT", 4100),
        ("CAGTACGT", 5 + int("10230123", 4)),
        ("ACGTACGTA", 5 + int("012301230", 4)),
    ],
)
def test_ids_match_formula(kmer: str, expected: int) -> None:
    tokenizer = KmerTokenizer(len(kmer), 4)
    assert tokenizer.encode([kmer])[0, 1] == expected
    assert tokenizer.token_id(kmer) == expected
    assert tokenizer.token_string(expected) == kmer
    if len(kmer) <= 6:
        assert tokenizer.vocabulary[expected] == kmer


@pytest.mark.parametrize("k", [1, 3, 6])
@pytest.mark.parametrize("keep", ["five_prime", "three_prime"])
def test_round_trip(k: int, keep: str) -> None:
    rng = np.random.default_rng(k)
    tokenizer = KmerTokenizer(k, 40, keep)
    cap = tokenizer.max_nucleotides
    sequences = random_sequences(rng, 50, 3 * cap, "ACGT")
    decoded = tokenizer.decode(tokenizer.encode(sequences))
    for sequence, tokens in zip(sequences, decoded, strict=True):
        kept = sequence[:cap] if keep == "five_prime" else sequence[-cap:]
        kept = kept[: len(kept) // k * k]
        assert tokens[0] == "[CLS]"
        content = [t for t in tokens if not t.startswith("[")]
        assert "".join(content) == kept
        assert all(len(t) == k for t in content)


def test_length_not_multiple_of_k_drops_partial_kmer() -> None:
    tokenizer = KmerTokenizer(2, 6)
    assert tokenizer.decode(tokenizer.encode(["ACGTA"])) == [["[CLS]", "AC", "GT", "[SEP]"]]


@pytest.mark.parametrize("k", [2, 3, 6])
def test_sequences_shorter_than_k(k: int) -> None:
    tokenizer = KmerTokenizer(k, 5)
    short = ["", "A", "N" * (k - 1), "ACGTACG"[: k - 1]]
    encoded = tokenizer.encode(short)
    assert encoded.tolist() == [[CLS_ID, SEP_ID, PAD_ID, PAD_ID, PAD_ID]] * len(short)


def test_non_acgt_becomes_unk_and_case_and_u() -> None:
    tokenizer = KmerTokenizer(2, 8)
    encoded = tokenizer.encode(["ANNNCGRY", "acgu", "ACé-"])
    assert encoded[0].tolist() == [1, UNK_ID, UNK_ID, 5 + 6, UNK_ID, 2, 3, 3]
    assert encoded[1].tolist() == [1, 5 + 1, 5 + 11, 2, 3, 3, 3, 3]
    assert encoded[2].tolist() == [1, 5 + 1, UNK_ID, 2, 3, 3, 3, 3]


def test_five_prime_and_three_prime_truncation() -> None:
    sequence = "AACCGGTTACG"  # 11 nt; k=2, context 5 keeps (5 - 1) * 2 = 8 nt
    five = KmerTokenizer(2, 5, "five_prime")
    three = KmerTokenizer(2, 5, "three_prime")
    assert five.decode(five.encode([sequence])) == [["[CLS]", "AA", "CC", "GG", "TT"]]
    assert three.decode(three.encode([sequence])) == [["[CLS]", "CG", "GT", "TA", "CG"]]
    # Shorter than the cap: both keep everything from the start.
    assert three.encode(["ACGTA"]).tolist() == five.encode(["ACGTA"]).tolist()


def test_long_sequence_keeps_exact_nucleotides() -> None:
    rng = np.random.default_rng(7)
    sequence = random_sequences(rng, 1, 0, "ACGT")[0] + "".join(rng.choice(list("ACGT"), 1000))
    for keep, kept in (("five_prime", sequence[:597]), ("three_prime", sequence[-597:])):
        tokenizer = KmerTokenizer(3, 200, keep)
        assert tokenizer.max_nucleotides == 597
        tokens = tokenizer.decode(tokenizer.encode([sequence]))[0]
        assert len(tokens) == 200 and "[SEP]" not in tokens
        assert "".join(tokens[1:]) == kept


def test_sep_only_when_room() -> None:
    tokenizer = KmerTokenizer(1, 4)
    encoded = tokenizer.encode(["AC", "ACG", "ACGT"])
    assert encoded.tolist() == [[1, 5, 6, 2], [1, 5, 6, 7], [1, 5, 6, 7]]
    assert KmerTokenizer(1, 2).encode(["", "A", "AC"]).tolist() == [[1, 2], [1, 5], [1, 5]]


def test_output_shape_dtype_and_empty_batch() -> None:
    tokenizer = KmerTokenizer(3, 12)
    encoded = tokenizer.encode(("ACGT", "GG"))
    assert encoded.dtype == np.int32 and encoded.shape == (2, 12)
    empty = tokenizer.encode([])
    assert empty.dtype == np.int32 and empty.shape == (0, 12)


@pytest.mark.parametrize("k", [1, 2, 3, 4, 6, 8, 9])
@pytest.mark.parametrize("context_length", [2, 9, 64])
def test_agrees_with_reference(k: int, context_length: int) -> None:
    rng = np.random.default_rng(100 * k + context_length)
    sequences = random_sequences(rng, 200, 300, "ACGTACGTACGTACGTN")
    for keep in ("five_prime", "three_prime"):
        tokenizer = KmerTokenizer(k, context_length, keep)
        expected = [reference_encode(s, k, context_length, keep) for s in sequences]
        assert tokenizer.encode(sequences).tolist() == expected


def test_chunked_encoding_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    sequences = random_sequences(rng, 300, 400, "ACGTN")
    tokenizer = KmerTokenizer(3, 50, "three_prime")
    whole = tokenizer.encode(sequences)
    monkeypatch.setattr(kmer_module, "_CHUNK_BYTES", 200)
    assert np.array_equal(tokenizer.encode(sequences), whole)


def test_encode_fasta_records(tmp_path: Path) -> None:
    fasta = tmp_path / "x.fa"
    fasta.write_text(">a\nacgu\nNNAC\n>b\nG\n")
    records = read_fasta(fasta)
    encoded = KmerTokenizer(2, 6).encode(records.sequences)
    assert encoded.tolist() == [[1, 5 + 1, 5 + 11, UNK_ID, 5 + 1, 2], [1, 2, 3, 3, 3, 3]]


def test_decode_keeps_specials_drops_pad() -> None:
    tokenizer = KmerTokenizer(1, 6)
    ids = np.array([[CLS_ID, MASK_ID, 5, UNK_ID, SEP_ID, PAD_ID]])
    assert tokenizer.decode(ids) == [["[CLS]", "[MASK]", "A", "[UNK]", "[SEP]"]]
    with pytest.raises(InputError, match="outside|must be in"):
        tokenizer.decode(np.array([[1, 9]]))


def test_bad_input_items(monkeypatch: pytest.MonkeyPatch) -> None:
    tokenizer = KmerTokenizer(3, 8)
    with pytest.raises(InputError, match="sequence 2"):
        tokenizer.encode(["ACG", None])  # type: ignore[list-item]
    monkeypatch.setattr(kmer_module, "_CHUNK_BYTES", 1)  # one sequence per chunk
    with pytest.raises(InputError, match="sequence 4 is a bytes"):
        tokenizer.encode(["ACG", "ACG", "ACG", b"ACG"])  # type: ignore[list-item]
    with pytest.raises(InputError, match="single string"):
        tokenizer.encode("ACGT")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0, 8), "k must"),
        ((16, 8), "k must"),
        ((True, 8), "k must"),
        ((3, 1), "context_length"),
        ((3, 8.0), "context_length"),
        ((3, 8, "middle"), "keep"),
    ],
)
def test_invalid_settings(args: tuple, message: str) -> None:
    with pytest.raises(InputError, match=message):
        KmerTokenizer(*args)


def test_unknown_method() -> None:
    with pytest.raises(InputError, match="unknown tokenizer method 'word2vec'"):
        build_tokenizer("word2vec", k=3, context_length=8, keep="five_prime")
    with pytest.raises(InputError, match="unknown tokenizer method 'word2vec'"):
        tokenizer_from_spec({"method": "word2vec", "context_length": 8})


@pytest.mark.parametrize(
    ("k", "context_length", "keep"),
    [(1, 768, "five_prime"), (3, 20, "three_prime"), (6, 9, "five_prime")],
)
def test_spec_round_trip(tmp_path: Path, k: int, context_length: int, keep: str) -> None:
    tokenizer = KmerTokenizer(k, context_length, keep)  # type: ignore[arg-type]
    path = tmp_path / "sub" / "tokenizer.json"
    save_tokenizer(tokenizer, path)
    spec = json.loads(path.read_text())
    assert spec["method"] == ("nuc" if k == 1 else "kmer")
    assert spec["k"] == k and spec["context_length"] == context_length and spec["keep"] == keep
    assert spec["vocab_size"] == 5 + 4**k
    assert spec["special_ids"] == {"mask": 0, "cls": 1, "sep": 2, "pad": 3, "unk": 4}
    assert "nucflow_version" in spec
    loaded = load_tokenizer(path)
    assert loaded == tokenizer
    sequences = random_sequences(np.random.default_rng(0), 30, 200, "ACGTN")
    assert np.array_equal(loaded.encode(sequences), tokenizer.encode(sequences))
    assert tokenizer_from_spec(tokenizer.to_spec()) == tokenizer


GOOD_SPEC = {"method": "kmer", "k": 3, "context_length": 8, "keep": "five_prime"}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (["kmer"], "expected a JSON object"),
        ({"k": 3, "context_length": 8, "keep": "five_prime"}, "missing key 'method'"),
        ({**GOOD_SPEC, "method": "transformer"}, "unknown tokenizer method"),
        ({"method": "kmer", "context_length": 8, "keep": "five_prime"}, "missing keys 'k'"),
        ({"method": "kmer", "k": 3, "context_length": 8}, "missing keys 'keep'"),
        ({**GOOD_SPEC, "k": "3"}, "k must"),
        ({**GOOD_SPEC, "k": 0}, "k must"),
        ({**GOOD_SPEC, "context_length": 1}, "context_length"),
        ({**GOOD_SPEC, "keep": "both"}, "keep must"),
        ({**GOOD_SPEC, "vocab_size": 70}, "vocab_size"),
        ({**GOOD_SPEC, "special_ids": {"pad": 0}}, "special_ids"),
        ({**GOOD_SPEC, "stride": 1}, "unknown keys 'stride'"),
        ({**GOOD_SPEC, "method": "nuc"}, "needs k = 1"),
    ],
)
def test_bad_specs(spec: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        tokenizer_from_spec(spec)  # type: ignore[arg-type]


def test_spec_without_optional_keys_and_nuc_without_k() -> None:
    assert tokenizer_from_spec(GOOD_SPEC) == KmerTokenizer(3, 8)
    nuc = tokenizer_from_spec({"method": "nuc", "context_length": 8, "keep": "three_prime"})
    assert nuc == KmerTokenizer(1, 8, "three_prime")


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        load_tokenizer(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        load_tokenizer(broken)
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"method": "word2vec"}))
    with pytest.raises(InputError, match=r"unknown\.json: unknown tokenizer method"):
        load_tokenizer(unknown)
