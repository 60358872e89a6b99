"""Round trips for the 2bit, bigWig, BED, narrowPeak and chrom.sizes writers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import py2bit
import pyBigWig
import pytest

from nucflow.errors import InputError
from nucflow.io.tracks import (
    value_runs,
    write_bed,
    write_bigwig,
    write_chrom_sizes,
    write_narrowpeak,
)
from nucflow.io.twobit import write_2bit


def _runs_of(sequence: str, predicate) -> list[tuple[int, int]]:
    """(start, end) runs of positions whose character satisfies ``predicate``."""
    runs, start = [], None
    for i, char in enumerate(sequence + "\0"):
        if i < len(sequence) and predicate(char):
            start = i if start is None else start
        elif start is not None:
            runs.append((start, i))
            start = None
    return runs


def test_write_2bit_round_trip_with_n_and_soft_mask(tmp_path):
    rng = np.random.default_rng(1)
    long = "".join(rng.choice(list("ACGT"), size=10_001))
    long = long[:100] + "N" * 50 + long[150:3000].lower() + long[3000:9000] + "nnnnn" + "NNN"
    sequences = {
        "chrA": "ACGTNNNNacgtnnACGTA",
        "chrB": "G",
        "chrC": "nnnnTTTTt",
        "chr_long": long,
        "chrD": "ACGTACGTAC",
    }
    path = tmp_path / "genome.2bit"
    write_2bit(path, sequences)

    masked = py2bit.open(str(path), True)
    try:
        assert list(masked.chroms()) == list(sequences)
        assert masked.chroms() == {name: len(seq) for name, seq in sequences.items()}
        info = masked.info()
        assert info["nChroms"] == len(sequences)
        assert info["sequence length"] == sum(len(s) for s in sequences.values())
        for name, seq in sequences.items():
            expected = seq.replace("n", "N")  # N blocks read back upper case
            assert masked.sequence(name) == expected
            if len(seq) > 1:
                assert masked.sequence(name, 1, len(seq)) == expected[1:]
            hard = [tuple(b) for b in masked.hardMaskedBlocks(name)]
            assert hard == _runs_of(seq, lambda c: c in "Nn")
            soft = [tuple(b) for b in masked.softMaskedBlocks(name)]
            assert soft == _runs_of(seq, str.islower)
    finally:
        masked.close()
    plain = py2bit.open(str(path))
    try:
        assert plain.sequence("chr_long") == long.upper()
        assert plain.info()["hard-masked length"] == sum(
            seq.upper().count("N") for seq in sequences.values()
        )
    finally:
        plain.close()


def test_write_2bit_rejects_bad_input_and_leaves_no_file(tmp_path):
    path = tmp_path / "bad.2bit"
    with pytest.raises(InputError, match="'R' at position 2"):
        write_2bit(path, {"chr1": "ACRT"})
    with pytest.raises(InputError, match="name"):
        write_2bit(path, {"chr 1": "ACGT"})
    with pytest.raises(InputError, match="no sequences"):
        write_2bit(path, {})
    assert list(tmp_path.iterdir()) == []


def test_value_runs_compresses_and_drops_nan():
    values = np.array([0, 0, 1.5, 1.5, np.nan, np.nan, 2, 0], dtype=np.float64)
    starts, ends, run_values = value_runs(values)
    assert starts.tolist() == [0, 2, 6, 7]
    assert ends.tolist() == [2, 4, 7, 8]
    assert run_values.tolist() == [0.0, 1.5, 2.0, 0.0]
    assert [a.size for a in value_runs(np.zeros(0))] == [0, 0, 0]


def test_write_bigwig_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    sizes = {"chr2": 5_000, "chr10": 3_000, "chrEmpty": 100}
    values = {
        "chr2": np.repeat(rng.uniform(0, 5, size=500), 10),
        "chr10": rng.integers(0, 2, size=3_000).astype(float),
    }
    values["chr2"][100:250] = np.nan
    path = tmp_path / "track.bw"
    write_bigwig(path, sizes, values)

    bw = pyBigWig.open(str(path))
    try:
        assert bw.isBigWig()
        assert list(bw.chroms()) == list(sizes)
        assert bw.chroms() == sizes
        for chrom, array in values.items():
            got = np.asarray(bw.values(chrom, 0, sizes[chrom], numpy=True))
            np.testing.assert_array_equal(got, array.astype(np.float32))
        assert bw.intervals("chrEmpty") is None
        n_runs = len(bw.intervals("chr2"))
        assert n_runs == value_runs(values["chr2"])[0].size < sizes["chr2"]
    finally:
        bw.close()


def test_write_bigwig_rejects_bad_input(tmp_path):
    path = tmp_path / "bad.bw"
    with pytest.raises(InputError, match="shape"):
        write_bigwig(path, {"chr1": 10}, {"chr1": np.zeros(9)})
    with pytest.raises(InputError, match="not in chrom sizes"):
        write_bigwig(path, {"chr1": 10}, {"chr2": np.zeros(10)})
    with pytest.raises(InputError, match="size"):
        write_bigwig(path, {"chr1": 0}, {})
    assert list(tmp_path.iterdir()) == []


def test_write_chrom_sizes_and_bed(tmp_path):
    write_chrom_sizes(tmp_path / "chrom.sizes", {"chr1": 100, "chrX": 50})
    assert (tmp_path / "chrom.sizes").read_text() == "chr1\t100\nchrX\t50\n"

    bed3 = pd.DataFrame({"chrom": ["chr1", "chrX"], "start": [0, 10], "end": [5, 20]})
    write_bed(tmp_path / "a.bed", bed3)
    assert (tmp_path / "a.bed").read_text() == "chr1\t0\t5\nchrX\t10\t20\n"

    bed6 = bed3.assign(name=["a", "b"], score=[0, 7], strand=["+", "-"])
    write_bed(tmp_path / "b.bed", bed6)
    assert (tmp_path / "b.bed").read_text().splitlines()[1] == "chrX\t10\t20\tb\t7\t-"

    with pytest.raises(InputError, match="row 1"):
        write_bed(tmp_path / "c.bed", bed3.assign(end=[5, 10]))
    with pytest.raises(InputError, match="column"):
        write_bed(tmp_path / "c.bed", bed3.drop(columns="end"))
    assert not (tmp_path / "c.bed").exists()


def test_write_narrowpeak(tmp_path):
    peaks = pd.DataFrame(
        {
            "chrom": ["chr1", "chr2"],
            "start": [100, 0],
            "end": [300, 50],
            "signalValue": [12.5, 3.0],
            "peak": [100, 0],
        }
    )
    path = tmp_path / "p.narrowPeak"
    write_narrowpeak(path, peaks)
    table = pd.read_csv(path, sep="\t", header=None)
    assert table.shape == (2, 10)
    assert table.iloc[0].tolist() == ["chr1", 100, 300, ".", 0, ".", 12.5, -1, -1, 100]
    assert table[9].between(0, table[2] - table[1] - 1).all()

    with pytest.raises(InputError, match="summit"):
        write_narrowpeak(tmp_path / "q.narrowPeak", peaks.assign(peak=[200, 0]))
    with pytest.raises(InputError, match="score"):
        write_narrowpeak(tmp_path / "q.narrowPeak", peaks.assign(score=[1001, 0]))
    assert not (tmp_path / "q.narrowPeak").exists()
    assert not math.isnan(table[6].sum())
