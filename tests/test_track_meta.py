"""Meta TSV, BED/narrowPeak, chrom.sizes readers and chromosome-naming checks."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pyBigWig
import pytest

from nucflow.data.simulate_tracks import simulate_genome
from nucflow.errors import InputError
from nucflow.io.track_meta import (
    META_COLUMNS,
    TrackSample,
    check_chromosome_names,
    chromosome_style,
    read_chrom_sizes,
    read_intervals,
    read_meta,
)
from nucflow.io.tracks import write_bigwig


@pytest.fixture(scope="module")
def sim(tmp_path_factory) -> dict[str, Path]:
    """A small simulated genome in maxATAC's layout (3 cell lines, last one Test)."""
    out = tmp_path_factory.mktemp("sim")
    return simulate_genome(out, chromosome_lengths={"chr1": 60_000, "chr2": 40_000}, seed=3)


def _meta_lines(sim: dict[str, Path]) -> list[str]:
    return sim["meta"].read_text().splitlines()


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_read_meta_resolves_relative_paths(sim, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # resolution must not depend on the working directory
    samples = read_meta(sim["meta"])
    assert [s.cell_line for s in samples] == ["CL1", "CL2", "CL3"]
    assert [s.split for s in samples] == ["Train", "Train", "Test"]
    first = samples[0]
    assert isinstance(first, TrackSample)
    assert first.tf == "SIM_AP1"
    assert first.atac == sim["meta"].parent / "CL1_atac.bw"
    assert first.binding == sim["CL1_chip_bw"]
    assert first.atac_peaks == sim["CL1_atac_peaks"]
    assert first.chip_peaks == sim["CL1_chip_peaks"]
    assert all(p.is_file() for s in samples for p in (s.atac, s.binding))
    monkeypatch.chdir(sim["meta"].parent)
    relative = read_meta("meta.tsv")  # a relative meta path still gives absolute file paths
    assert relative == samples and relative[0].atac.is_absolute()


def test_real_example_meta_names_first_missing_file(shared_data):
    path = shared_data / "maxatac" / "Example_TF_META.tsv"
    with pytest.raises(InputError) as info:
        read_meta(path)  # extra CHIP_Peak_Counts column accepted; /path/to/... does not exist
    assert str(info.value).startswith(
        f"{path}: line 2, column ATAC_Signal_File: file "
        "'/path/to/CT1_RP20M_minmax_percentile99.bw' does not exist"
    )


def test_read_meta_any_column_order_extra_columns_and_absolute_paths(sim, tmp_path):
    header = _meta_lines(sim)[0].split("\t")
    rows = [line.split("\t") for line in _meta_lines(sim)[1:]]
    order = list(reversed(range(len(header))))
    lines = ["\t".join(["CHIP_Peak_Counts"] + [header[i] for i in order])]
    for n, row in enumerate(rows):
        fields = [
            str(sim["meta"].parent / row[i]) if row[i].endswith(("bw", "Peak")) else row[i]
            for i in order
        ]
        lines.append("\t".join([str(100 + n)] + fields))
    meta = _write(tmp_path / "meta.tsv", lines)  # not beside the data: paths are absolute
    samples = read_meta(meta)
    assert [s.cell_line for s in samples] == ["CL1", "CL2", "CL3"]
    assert samples[1].atac == sim["CL2_atac_bw"]  # absolute path used as given
    assert samples[2].split == "Test"


def _bad_meta(sim: dict[str, Path], edit) -> Path:
    lines = _meta_lines(sim)
    edit(lines)
    return _write(sim["meta"].parent / "bad_meta.tsv", lines)


def test_read_meta_missing_column(sim):
    def drop_tf(lines):
        for i, line in enumerate(lines):
            fields = line.split("\t")
            lines[i] = "\t".join(fields[:1] + fields[2:])

    path = _bad_meta(sim, drop_tf)
    with pytest.raises(InputError, match=r"bad_meta\.tsv: line 1: header lacks column\(s\) TF"):
        read_meta(path)


def test_read_meta_missing_file(sim):
    def wrong_file(lines):
        lines[2] = lines[2].replace("CL2_chip.bw", "CL2_nothere.bw")

    path = _bad_meta(sim, wrong_file)
    with pytest.raises(InputError) as info:
        read_meta(path)
    message = str(info.value)
    assert "bad_meta.tsv: line 3, column Binding_File" in message
    assert "CL2_nothere.bw" in message and "does not exist" in message
    assert "\n" not in message


@pytest.mark.parametrize("label", ["train", "TEST", "Validate", "Train "])
def test_read_meta_bad_label(sim, label):
    def relabel(lines):
        fields = lines[3].split("\t")
        fields[-1] = label
        lines[3] = "\t".join(fields)

    path = _bad_meta(sim, relabel)
    if label.strip() == "Train":  # surrounding white space is stripped, the value is exact
        assert read_meta(path)[2].split == "Train"
        return
    with pytest.raises(InputError, match=r"line 4, column Train_Test_Label: .*exactly"):
        read_meta(path)


def test_read_meta_duplicate_cell_line(sim):
    def duplicate(lines):
        lines.append(lines[1].replace("Train", "Test"))

    path = _bad_meta(sim, duplicate)
    with pytest.raises(
        InputError,
        match=r"line 5, column Cell_Line: duplicate cell line 'CL1' "
        r"\(first on line 2\)",
    ):
        read_meta(path)


def test_read_meta_empty_header_only_and_short_row(sim, tmp_path):
    empty = tmp_path / "empty.tsv"
    empty.write_text("\n\n")
    with pytest.raises(InputError, match="empty.tsv: file is empty"):
        read_meta(empty)
    header_only = _write(tmp_path / "header.tsv", ["\t".join(META_COLUMNS)])
    with pytest.raises(InputError, match="header.tsv: header only"):
        read_meta(header_only)

    def short(lines):
        lines[1] = lines[1].rsplit("\t", 1)[0]

    with pytest.raises(InputError, match=r"line 2: 6 tab-separated fields; expected 7"):
        read_meta(_bad_meta(sim, short))
    with pytest.raises(InputError, match="file not found"):
        read_meta(tmp_path / "nothere.tsv")


def test_read_intervals_narrowpeak_summits(sim):
    peaks = read_intervals(sim["CL1_chip_peaks"])
    raw = pd.read_csv(sim["CL1_chip_peaks"], sep="\t", header=None)
    assert list(peaks.columns) == ["chrom", "start", "end", "summit"]
    assert len(peaks) == len(raw) > 0
    assert peaks["start"].tolist() == raw[1].tolist()
    assert (peaks["summit"] == raw[1] + raw[9]).all()
    assert ((peaks["summit"] >= peaks["start"]) & (peaks["summit"] < peaks["end"])).all()


def test_read_intervals_bed_gzip_headers_and_no_summit(tmp_path):
    text = (
        "track name=x\nbrowser position chr1:1-100\n# comment\n\n"
        "chr1\t10\t20\nchr2\t5\t9\tname\t0\t+\n"
        "chr3\t0\t50\t.\t0\t.\t1\t-1\t-1\t-1\n"
    )
    path = tmp_path / "x.bed.gz"
    with gzip.open(path, "wt") as handle:
        handle.write(text)
    table = read_intervals(path)
    assert table["chrom"].tolist() == ["chr1", "chr2", "chr3"]
    assert table["end"].tolist() == [20, 9, 50]
    assert table["summit"].tolist() == [-1, -1, -1]
    assert table["start"].dtype == np.int64


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("chr1\t10", r"line 2: 2 tab-separated field\(s\)"),
        ("chr1\tten\t20", r"line 2, column start \(2\): 'ten' is not an integer"),
        ("chr1\t30\t20", r"line 2: interval 'chr1':30-20 is invalid"),
        ("chr1\t10\t20\t.\t0\t.\t1\t-1\t-1\t10", r"line 2, column peak \(10\): summit offset 10"),
    ],
)
def test_read_intervals_errors_name_file_and_line(tmp_path, line, match):
    path = tmp_path / "bad.bed"
    path.write_text(f"chr1\t0\t5\n{line}\n")
    with pytest.raises(InputError, match=rf"bad\.bed: {match}"):
        read_intervals(path)


def test_real_blacklist_row_count(shared_data):
    path = shared_data / "maxatac" / "hg38_maxatac_blacklist.bed"
    lines = [
        line
        for line in path.read_text().splitlines()
        if line.strip() and not line.startswith(("#", "track", "browser"))
    ]
    table = read_intervals(path)
    assert len(table) == len(lines) == 376
    assert table["chrom"].iloc[0] == "chr1" and table["start"].iloc[0] == 0
    assert (table["end"] > table["start"]).all()


def test_read_chrom_sizes(shared_data, tmp_path):
    sizes = read_chrom_sizes(shared_data / "maxatac" / "hg38.chrom.sizes")
    assert len(sizes) == 24
    assert sizes["chr1"] == 248_956_422 and list(sizes)[-1] == "chrY"
    bad = tmp_path / "bad.sizes"
    bad.write_text("chr1\t100\nchr1\t200\n")
    with pytest.raises(InputError, match=r"bad\.sizes: line 2: chromosome 'chr1' is listed twice"):
        read_chrom_sizes(bad)
    bad.write_text("chr1\t-5\n")
    with pytest.raises(InputError, match=r"line 1: length -5"):
        read_chrom_sizes(bad)


def test_chromosome_style():
    assert chromosome_style(["chr1", "chrX"]) == "chr"
    assert chromosome_style(["1", "X", "MT"]) == "bare"
    assert chromosome_style(["chr1", "2"]) == "mixed"


def test_check_chromosome_names_mismatch_and_missing():
    check_chromosome_names(["chr1"], ["chr1", "chr2"], what="chromosome", source="f.bw")
    with pytest.raises(InputError) as info:
        check_chromosome_names(["chr1"], ["1", "2"], what="chromosome", source="f.bw")
    assert str(info.value) == (
        "f.bw: chromosome 'chr1' not found; the file names chromosomes like '1' "
        "(naming mismatch between files)"
    )
    with pytest.raises(InputError, match="naming mismatch"):  # style differs, no toggled twin
        check_chromosome_names(["chrX"], ["1", "2"], what="chromosome", source="f.bw")
    with pytest.raises(InputError, match=r"f\.bw: chromosome 'chr9' not found; the file has"):
        check_chromosome_names(["chr9"], ["chr1", "chr2"], what="chromosome", source="f.bw")
    missing = check_chromosome_names(
        ["chr1", "chr9"], ["chr1"], what="chromosome", source="f.bw", allow_missing=True
    )
    assert missing == ["chr9"]


def _bigwig_chroms(path: Path) -> list[str]:
    bw = pyBigWig.open(str(path))
    try:
        return list(bw.chroms())
    finally:
        bw.close()


def test_bigwig_with_bare_names_reports_naming(tmp_path, shared_data):
    path = tmp_path / "bare.bw"
    write_bigwig(path, {"1": 1000, "2": 500}, {"1": np.ones(1000, dtype=np.float32)})
    found = _bigwig_chroms(path)
    with pytest.raises(InputError, match=r"bare\.bw: chromosome 'chr1' not found.*naming"):
        check_chromosome_names(["chr1"], found, what="chromosome", source=path)
    real = shared_data / "maxatac" / "SK-N-SH__RXRA.bw"
    found = _bigwig_chroms(real)
    with pytest.raises(InputError, match=r"chromosome '1' not found; .* like 'chr1'"):
        check_chromosome_names(["1"], found, what="chromosome", source=real)
