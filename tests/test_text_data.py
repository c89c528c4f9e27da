"""Byte-level tokenization and document corpora (fortunes, user files)."""
import os
from collections import Counter

import numpy as np
import pytest

from memlens import MemlensInputError
from memlens.data.text import (
    BOS,
    EOS,
    FORTUNES_DIR,
    VOCAB_SIZE,
    TextDataset,
    decode_tokens,
    encode_texts,
    load_text_dataset,
    normalize_whitespace,
    split_documents,
    text_dataset_from_texts,
)

HAVE_FORTUNES = FORTUNES_DIR.is_dir()


# ------------------------------------------------------------------------------------------------- tokenization

def test_encode_layout_by_hand():
    tokens, lengths = encode_texts(["ab", "", "é"])
    assert (BOS, EOS, VOCAB_SIZE) == (256, 257, 258)
    assert tokens.dtype == np.int64 and lengths.dtype == np.int64
    np.testing.assert_array_equal(tokens, [[256, 97, 98, 257], [256, 257, 257, 257], [256, 0xC3, 0xA9, 257]])
    np.testing.assert_array_equal(lengths, [4, 2, 4])


def test_encode_decode_roundtrip_and_max_len():
    texts = ["Hello, world!", "naïve café ☕", "line one\n\tline two", ""]
    tokens, lengths = encode_texts(texts, max_len=40)
    assert tokens.shape == (4, 40)
    assert decode_tokens(tokens) == texts
    assert decode_tokens(tokens, lengths) == texts
    assert decode_tokens(tokens[1]) == [texts[1]]
    # a continuation without BOS, with invalid UTF-8, decodes with replacement characters
    assert decode_tokens(np.array([[0xFF, 104, 105, EOS, 120]])) == ["\ufffdhi"]


def test_encode_refuses_long_text_naming_index():
    with pytest.raises(MemlensInputError, match=r"texts\[1\] encodes to 7 tokens.*max_len=5"):
        encode_texts(["abc", "abcde"], max_len=5)
    with pytest.raises(MemlensInputError, match="sequence of strings"):
        encode_texts("abc")
    with pytest.raises(MemlensInputError, match=r"texts\[1\] must be a str"):
        encode_texts(["a", 3])


# ------------------------------------------------------------------------------------------------- corpora

def test_split_documents_lines_and_delimiters():
    content = "first doc\n\nsecond doc  \r\nthird\n"
    assert split_documents(content) == ["first doc", "second doc", "third"]
    fortune = "one\n  indented 50% off\n%\ntwo\n%\n\n%\nthree\n"
    assert split_documents(fortune, delimiter="%") == ["one\n  indented 50% off", "two", "three"]
    assert split_documents("a b\nc\n\nd\n\n\ne", delimiter="\n\n") == ["a b\nc", "d", "e"]
    with pytest.raises(MemlensInputError, match="delimiter"):
        split_documents("x", delimiter="")


def test_dedup_counts_and_split_sizes():
    texts = ["alpha  beta", "alpha beta", "gamma", " alpha\nbeta ", "delta", "epsilon", "zeta", "gamma"]
    ds = text_dataset_from_texts(texts, test_fraction=0.4, seed=3)
    # 5 distinct after whitespace normalization; "alpha beta" x3, "gamma" x2
    assert ds.n_train + ds.n_test == 5 and ds.n_test == 2
    assert set(ds.train_texts).isdisjoint(ds.test_texts)
    counts = dict(zip(ds.train_texts + ds.test_texts, np.concatenate([ds.train_counts, ds.test_counts])))
    assert counts["alpha  beta"] == 3 and counts["gamma"] == 2 and counts["delta"] == 1
    assert sum(counts.values()) == len(texts)
    # the split is a function of the seed
    assert text_dataset_from_texts(texts, test_fraction=0.4, seed=3).fingerprint() == ds.fingerprint()
    other = text_dataset_from_texts(texts, test_fraction=0.4, seed=4)
    assert set(other.train_texts + other.test_texts) == set(ds.train_texts + ds.test_texts)


def test_max_chars_filter_and_bad_split():
    ds = text_dataset_from_texts(["a" * 5, "b" * 50, "c" * 6, "d" * 7], max_chars=10, test_fraction=0.34)
    assert max(len(t) for t in ds.train_texts + ds.test_texts) <= 10 and ds.n_train + ds.n_test == 3
    with pytest.raises(MemlensInputError, match="empty train or test split"):
        text_dataset_from_texts(["only one"], test_fraction=0.5)
    with pytest.raises(MemlensInputError, match="max_chars=2"):
        text_dataset_from_texts(["abc", "defg"], max_chars=2)


def test_text_dataset_subset_with_train_texts_fingerprint():
    ds = TextDataset(name="t", train_texts=("a", "b", "c"), test_texts=("d",), train_counts=[1, 2, 1])
    sub = ds.subset(train_index=[2, 0])
    assert sub.train_texts == ("c", "a") and sub.train_counts.tolist() == [1, 1] and sub.test_texts == ("d",)
    assert ds.subset(train_index=np.array([True, False, True])).train_texts == ("a", "c")
    assert sub.fingerprint() != ds.fingerprint()
    new = ds.with_train_texts(["a", "b", "c", "CANARY"])
    assert new.n_train == 4 and new.train_counts.tolist() == [1, 1, 1, 1] and new.test_texts == ds.test_texts
    assert TextDataset(name="t", train_texts=["a", "b", "c"], test_texts=["d"]).fingerprint() == \
        TextDataset(name="t", train_texts=("a", "b", "c"), test_texts=("d",)).fingerprint()
    assert ds.max_tokens() == 3
    tok, ln = ds.encode("test")
    assert tok.shape == (1, 3) and ln.tolist() == [3]
    with pytest.raises(MemlensInputError, match="train_counts"):
        TextDataset(name="t", train_texts=("a",), test_texts=(), train_counts=[0])


def test_user_file_lines_and_delimiter(tmp_path):
    lines = tmp_path / "corpus.txt"
    lines.write_text("\n".join([f"document number {i}" for i in range(20)] + ["document number 3", ""]),
                     encoding="utf-8")
    ds = load_text_dataset(lines, test_fraction=0.25, seed=0)
    assert ds.n_train + ds.n_test == 20 and ds.n_test == 5 and ds.source == str(lines)
    counts = dict(zip(ds.train_texts + ds.test_texts, np.concatenate([ds.train_counts, ds.test_counts])))
    assert counts["document number 3"] == 2
    delim = tmp_path / "fortune-like"
    delim.write_text("first\nspans two lines\n%\nsecond: 100% sure\n%\nthird\n%\nfourth\n%\nfifth\n", encoding="utf-8")
    ds = load_text_dataset(str(delim), delimiter="%", test_fraction=0.2)
    docs = set(ds.train_texts + ds.test_texts)
    assert docs == {"first\nspans two lines", "second: 100% sure", "third", "fourth", "fifth"}


def test_bad_files_refused_and_nothing_written(tmp_path):
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("caf\u00e9 au lait\nsecond line\n".encode("latin-1"))
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"  \n\n")
    before = sorted(os.listdir(tmp_path)), latin.read_bytes(), empty.read_bytes()
    with pytest.raises(MemlensInputError, match=r"not UTF-8 \(invalid byte 0xe9 at byte 3, line 1\).*iconv"):
        load_text_dataset(latin)
    with pytest.raises(MemlensInputError, match="is empty"):
        load_text_dataset(empty)
    with pytest.raises(MemlensInputError, match="does not exist"):
        load_text_dataset(tmp_path / "missing.txt")
    with pytest.raises(MemlensInputError, match="unknown text dataset 'shakespeare'"):
        load_text_dataset("shakespeare")
    with pytest.raises(MemlensInputError, match="is a directory"):
        load_text_dataset(tmp_path)
    assert (sorted(os.listdir(tmp_path)), latin.read_bytes(), empty.read_bytes()) == before


def test_missing_fortunes_names_the_package(tmp_path, monkeypatch):
    import memlens.data.text as text

    monkeypatch.setattr(text, "FORTUNES_DIR", tmp_path / "nowhere")
    with pytest.raises(MemlensInputError, match="apt-get install fortunes"):
        load_text_dataset("fortunes")


@pytest.mark.skipif(not HAVE_FORTUNES, reason="Debian package fortunes not installed")
def test_fortunes_split_sizes_and_duplicate_counts():
    ds = load_text_dataset("fortunes", max_chars=None, test_fraction=0.2, seed=0)
    # brute force: every fortune file, documents between lines holding "%", keyed by normalized whitespace
    raw = []
    for path in sorted(FORTUNES_DIR.iterdir()):
        if path.is_file() and not path.is_symlink() and path.suffix not in (".dat", ".u8"):
            doc = []
            for line in path.read_text(encoding="utf-8").split("\n") + ["%"]:
                if line.rstrip() == "%":
                    if "".join(doc).strip():
                        raw.append(normalize_whitespace("\n".join(doc)))
                    doc = []
                else:
                    doc.append(line)
    ref = Counter(raw)
    n = len(ref)
    assert n > 10_000
    assert ds.n_train + ds.n_test == n and ds.n_test == round(0.2 * n)
    got = Counter()
    for texts, counts in ((ds.train_texts, ds.train_counts), (ds.test_texts, ds.test_counts)):
        for t, c in zip(texts, counts):
            got[normalize_whitespace(t)] = int(c)
    assert got == ref
    assert sum(ref.values()) == int(ds.train_counts.sum() + ds.test_counts.sum())
    assert (ds.train_counts > 1).sum() > 10  # the corpus does hold duplicates
    assert set(ds.train_groups) >= {"fortunes", "wisdom", "computers"}
    short = load_text_dataset("fortunes", max_chars=100, seed=0)
    assert short.max_tokens() <= 4 * 100 + 2  # at most 4 UTF-8 bytes per character, plus BOS and EOS
    assert max(len(t) for t in short.train_texts + short.test_texts) <= 100
