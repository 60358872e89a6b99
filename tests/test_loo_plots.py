"""Plots of LOO tables: per-position scores, strongest window, PNG files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from nucflow.errors import InputError
from nucflow.interpret.plots import (
    plot_loo,
    plot_loo_tables,
    position_scores,
    replacement_names,
    safe_name,
    strongest_window,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
REMOVE_COLUMNS = ["sequence", "token", "label", "pred", "start_offset", "end_offset", "loo"]


def _kmer_table(identifier: str, sequence: str, k: int = 3, seed: int = 0) -> pd.DataFrame:
    """Remove-mode rows of non-overlapping k-mers with random scores."""
    rng = np.random.default_rng(seed)
    rows = [
        (identifier, sequence[s : s + k], 1.5, 0.7, s, s + k, float(rng.normal()))
        for s in range(0, len(sequence) - k + 1, k)
    ]
    return pd.DataFrame(rows, columns=REMOVE_COLUMNS)


def _replace_table(identifier: str, sequence: str, seed: int = 0) -> pd.DataFrame:
    """Replace-mode rows: every nucleotide swapped for the other three."""
    rng = np.random.default_rng(seed)
    rows = []
    for i, base in enumerate(sequence):
        for other in "ACGT":
            if other != base:
                rows.append((identifier, base, other, 2.0, 1.0, i, i + 1, float(rng.normal())))
    columns = [*REMOVE_COLUMNS[:2], "replacement", *REMOVE_COLUMNS[2:]]
    return pd.DataFrame(rows, columns=columns)


def _check_png(path: Path) -> None:
    """A readable PNG that is not a single colour."""
    assert path.read_bytes()[:8] == PNG_MAGIC
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    differs = (image != image[0, 0]).any(axis=-1)  # pixels unlike the background corner
    assert 0.01 < differs.mean() < 0.99
    assert len(np.unique(image[..., 0])) > 2  # several shades, not two flat colours


def test_position_scores_kmers_without_replacement():
    table = pd.DataFrame(
        [
            ("s", "ACG", 1.0, 0.5, 0, 3, 0.25),
            ("s", "TTA", 1.0, 0.5, 3, 6, -0.75),
        ],
        columns=REMOVE_COLUMNS,
    )
    values, index = position_scores(table, 8)
    np.testing.assert_allclose(values, [0.25] * 3 + [-0.75] * 3 + [0.0, 0.0])
    np.testing.assert_array_equal(index, [0] * 6 + [-1, -1])
    assert replacement_names(table) == ["loo"]


def test_position_scores_replacements_keep_signed_max():
    columns = [*REMOVE_COLUMNS[:2], "replacement", *REMOVE_COLUMNS[2:]]
    table = pd.DataFrame(
        [
            # a k-mer unit at 1..4 with three replacements: the largest |loo| (T, negative) wins
            ("s", "CGA", "A", 1.0, 0.5, 1, 4, 0.3),
            ("s", "CGA", "G", 1.0, 0.5, 1, 4, 0.1),
            ("s", "CGA", "T", 1.0, 0.5, 1, 4, -0.9),
            # single letter at 5, overlapping nothing: G wins with a positive score
            ("s", "C", "A", 1.0, 0.5, 5, 6, -0.2),
            ("s", "C", "G", 1.0, 0.5, 5, 6, 0.4),
            ("s", "C", "T", 1.0, 0.5, 5, 6, 0.0),
            # a wider unit overlapping position 3 with a weaker score: does not override
            ("s", "AC", "G", 1.0, 0.5, 3, 5, 0.5),
        ],
        columns=columns,
    )
    assert replacement_names(table) == ["A", "G", "T"]
    values, index = position_scores(table, 7)
    np.testing.assert_allclose(values, [0.0, -0.9, -0.9, -0.9, 0.5, 0.4, 0.0])
    np.testing.assert_array_equal(index, [-1, 2, 2, 2, 1, 1, -1])


def test_position_scores_zero_score_counts_as_covered():
    table = pd.DataFrame([("s", "A", 1.0, 0.5, 1, 2, 0.0)], columns=REMOVE_COLUMNS)
    values, index = position_scores(table, 3)
    np.testing.assert_array_equal(values, [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(index, [-1, 0, -1])


def test_position_scores_rejects_offsets_beyond_length():
    table = pd.DataFrame([("s", "ACG", 1.0, 0.5, 2, 5, 0.1)], columns=REMOVE_COLUMNS)
    with pytest.raises(InputError, match="beyond"):
        position_scores(table, 4)


def test_strongest_window_finds_planted_block():
    scores = np.zeros(100)
    scores[60:70] = -2.0  # negative: magnitude counts
    scores[10] = 5.0
    start, stop = strongest_window(scores, 10)
    assert (start, stop) == (60, 70)


def test_strongest_window_clips_at_the_ends():
    scores = np.zeros(30)
    scores[-3:] = 1.0
    assert strongest_window(scores, 8) == (22, 30)
    scores = np.zeros(30)
    scores[:2] = 1.0
    assert strongest_window(scores, 8) == (0, 8)
    assert strongest_window(np.ones(5), 40) == (0, 5)
    assert strongest_window(np.zeros(0), 40) == (0, 0)
    with pytest.raises(ValueError):
        strongest_window(np.ones(5), 0)


def test_plot_loo_writes_png_without_replacement(tmp_path):
    sequence = "ACGTACGTTGCAAGCT" * 6
    table = _kmer_table("seq1", sequence)
    path = tmp_path / "sub" / "seq1.png"
    plot_loo(table, sequence, path, window=20)
    _check_png(path)
    assert [p.name for p in path.parent.iterdir()] == ["seq1.png"]  # no temporary left


def test_plot_loo_writes_png_with_replacements(tmp_path):
    sequence = "ACGTTGCAAGCTAGCTTAGC" * 3
    table = _replace_table("seq2", sequence)
    path = tmp_path / "seq2.png"
    plot_loo(table, sequence, path, window=15, title="custom")
    _check_png(path)


def test_plot_loo_sequence_shorter_than_window(tmp_path):
    sequence = "ACGTAC"
    table = _replace_table("short", sequence)
    path = tmp_path / "short.png"
    plot_loo(table, sequence, path, window=40)
    _check_png(path)


def test_plot_loo_atomic_units(tmp_path):
    atoms = ["gej", "a", "bc", "gej", "d"]
    starts = np.cumsum([0, *map(len, atoms)])
    table = pd.DataFrame(
        [
            ("m", atom + ("#0.5,1" if i == 0 else ""), 0.2, 0.3, starts[i], starts[i + 1], 0.1 * i)
            for i, atom in enumerate(atoms)
        ],
        columns=REMOVE_COLUMNS,
    )
    path = tmp_path / "m.png"
    plot_loo(table, atoms, path)
    _check_png(path)


def test_plot_loo_rejects_several_ids(tmp_path):
    table = pd.concat([_kmer_table("a", "ACGTAC"), _kmer_table("b", "ACGTAC")])
    with pytest.raises(InputError):
        plot_loo(table, "ACGTAC", tmp_path / "x.png")
    assert not list(tmp_path.iterdir())


def test_safe_name():
    assert safe_name("chr1:5-9/x") == "chr1_5-9_x"
    assert safe_name("a.b_c-D9") == "a.b_c-D9"
    assert safe_name("..") != ".."


def test_plot_loo_tables_safe_names_and_clash(tmp_path):
    ids = ["chr1:5-9/x", "chr1_5-9_x", "plain", "chr1:5-9|x"]
    sequences = {
        "chr1:5-9/x": "ACGTACGTAC",
        "chr1_5-9_x": "TTGCAAGCTA",
        "plain": "GGGCCCAAAT",
        "chr1:5-9|x": "ACGTTTGCAA",
    }
    table = pd.concat(
        [_kmer_table(identifier, sequences[identifier], seed=n) for n, identifier in enumerate(ids)]
    )
    sequences["unused"] = "ACGT"  # sequences without rows are not plotted
    out = tmp_path / "plots" / "loo"
    paths = plot_loo_tables(table, sequences, out, window=5)
    assert [p.name for p in paths] == [
        "chr1_5-9_x.png",
        "chr1_5-9_x_2.png",
        "plain.png",
        "chr1_5-9_x_3.png",
    ]
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in paths)
    for path in paths:
        _check_png(path)


def test_plot_loo_tables_with_replacement_column(tmp_path):
    sequences = {"r1": "ACGTACGT", "r2": "TTGCA"}
    table = pd.concat([_replace_table(i, s) for i, s in sequences.items()])
    paths = plot_loo_tables(table, sequences, tmp_path)
    assert [p.name for p in paths] == ["r1.png", "r2.png"]
    for path in paths:
        _check_png(path)


def test_plot_loo_tables_missing_id(tmp_path):
    table = pd.concat([_kmer_table("here", "ACGTAC"), _kmer_table("gone", "ACGTAC")])
    out = tmp_path / "out"
    with pytest.raises(InputError, match="'gone'") as info:
        plot_loo_tables(table, {"here": "ACGTAC"}, out)
    assert "\n" not in str(info.value)
    assert not out.exists() or not list(out.iterdir())  # checked before anything is written


def test_plot_loo_tables_offset_beyond_sequence(tmp_path):
    table = _kmer_table("long", "ACGTACGTA")  # k-mers up to offset 9
    with pytest.raises(InputError, match="'long'") as info:
        plot_loo_tables(table, {"long": "ACGTAC"}, tmp_path / "out")
    assert "\n" not in str(info.value)
