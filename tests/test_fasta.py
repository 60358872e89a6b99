"""FASTA reading: normalisation, compression, line ends and every bad input."""

from __future__ import annotations

import pytest
from conftest import write_fasta

from nucflow.errors import InputError
from nucflow.io.fasta import read_fasta


def test_reads_ids_and_normalises_case_and_u(tmp_path):
    path = write_fasta(tmp_path / "a.fa", [("r1 some description", "acgu"), ("r2", "NNACGT")])
    records = read_fasta(path)
    assert records.ids == ["r1", "r2"]
    assert records.sequences == ["ACGT", "NNACGT"]


def test_multiline_records_are_joined(tmp_path):
    path = tmp_path / "m.fa"
    path.write_text(">x\nACG\nTTA\n\n>y\nGG\n")
    assert read_fasta(path).sequences == ["ACGTTA", "GG"]


def test_gzip_and_crlf_read_like_plain(tmp_path):
    records = [("a", "ACGTACGT"), ("b", "TTTTGGGG")]
    plain = read_fasta(write_fasta(tmp_path / "p.fa", records))
    gz = read_fasta(write_fasta(tmp_path / "g.fa.gz", records, gz=True))
    crlf = read_fasta(write_fasta(tmp_path / "c.fa", records, crlf=True))
    gz_crlf = read_fasta(write_fasta(tmp_path / "gc.fa.gz", records, crlf=True, gz=True))
    for other in (gz, crlf, gz_crlf):
        assert other.ids == plain.ids and other.sequences == plain.sequences


def test_invalid_character_names_record_and_position(tmp_path):
    path = write_fasta(tmp_path / "bad.fa", [("ok", "ACGT"), ("broken", "ACXGT")])
    with pytest.raises(InputError) as error:
        read_fasta(path)
    message = str(error.value)
    assert "bad.fa" in message and "'broken'" in message and "'X'" in message
    assert "position 3" in message and "\n" not in message


def test_invalid_characters_replaced_with_n_when_asked(tmp_path):
    path = write_fasta(tmp_path / "r.fa", [("a", "ACRYT-u")])
    assert read_fasta(path, invalid="replace").sequences == ["ACNNTNT"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", "file is empty"),
        ("ACGT\n", "not FASTA"),
        (">a\nACGT\n>b\n>c\nAC\n", "record 'b' has no sequence"),
        (">a\nACGT\n>a\nAC\n", "duplicate id 'a' in records 1 and 2"),
        (">\nACGT\n", "record 1 has an empty header"),
    ],
)
def test_bad_fasta_raises_one_line_error(tmp_path, content, expected):
    path = tmp_path / "x.fa"
    path.write_text(content)
    with pytest.raises(InputError, match=expected) as error:
        read_fasta(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        read_fasta(tmp_path / "nope.fa")


def test_real_lncrna_files(shared_data):
    pc = read_fasta(shared_data / "lncrna" / "pcrna.fasta")
    nc = read_fasta(shared_data / "lncrna" / "ncrna.fasta")
    assert len(pc) == 10 and len(nc) == 9
    assert sum(map(len, pc.sequences)) == 20004
    assert "test" in nc.ids and "N" in nc.sequences[nc.ids.index("test")]
    assert all(pid.startswith("ENST") for pid in pc.ids)


def test_real_fixture_with_non_iupac_letter(shared_data):
    path = shared_data / "formats" / "tangermeme-test.fa"
    with pytest.raises(InputError, match="record 'chr5' has invalid character 'Z'"):
        read_fasta(path)
    records = read_fasta(path, invalid="replace")
    assert records.ids[0] == "chr1" and len(records.sequences[0]) == 284
    assert set("".join(records.sequences)) <= set("ACGTN")
