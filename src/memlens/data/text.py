"""Text data for language-model memorization: byte-level tokenization and document corpora.

Tokenization is byte level: a document becomes ``[BOS] + its UTF-8 bytes + [EOS]``, with ``BOS = 256``,
``EOS = 257`` and ``VOCAB_SIZE = 258``, so any text (any language, any format) is representable and a model's
log-likelihood of a document is the log-likelihood of its exact bytes. Batches are right-padded with ``EOS``;
``lengths`` says where each document ends (BOS and EOS counted), so padding never enters a signal.
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._io import check_regular_file, read_budget
from .._random import as_generator
from .._validation import MemlensInputError, check_fraction, check_int

__all__ = ["BOS", "EOS", "VOCAB_SIZE", "encode_texts", "decode_tokens", "TextDataset", "load_text_dataset",
           "text_dataset_from_texts", "split_documents", "normalize_whitespace", "FORTUNES_DIR"]

BOS = 256
EOS = 257
VOCAB_SIZE = 258


def _as_text_list(texts, name: str = "texts") -> list[str]:
    if isinstance(texts, str):
        raise MemlensInputError(f"{name} must be a sequence of strings, not one string; got {texts[:40]!r} "
                                "(wrap it in a list)")
    try:
        texts = list(texts)
    except TypeError:
        raise MemlensInputError(f"{name} must be a sequence of strings; got {type(texts).__name__}") from None
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise MemlensInputError(f"{name}[{i}] must be a str; got {type(t).__name__}")
    return texts


def encode_texts(texts, *, max_len: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Byte-level token ids of documents.

    Parameters
    ----------
    texts : sequence of str, length n
    max_len : int, optional
        Padded length ``T`` (tokens, BOS and EOS included). Default: the longest encoded document. A document
        longer than ``max_len`` is refused (its index is named), never silently cut.

    Returns
    -------
    tokens : ndarray of int64, shape (n, T)
        Row ``i`` is ``[BOS] + utf8(texts[i]) + [EOS]``, right-padded with ``EOS``.
    lengths : ndarray of int64, shape (n,)
        Encoded length of each document, BOS and EOS included (``len(utf8) + 2``).
    """
    texts = _as_text_list(texts)
    encoded = [t.encode("utf-8") for t in texts]
    lengths = np.array([len(b) + 2 for b in encoded], dtype=np.int64)
    if max_len is None:
        t_len = int(lengths.max()) if len(lengths) else 2
    else:
        t_len = check_int("max_len", max_len, min_value=2, hint="room for BOS and EOS")
        too_long = np.flatnonzero(lengths > t_len)
        if too_long.size:
            i = int(too_long[0])
            raise MemlensInputError(
                f"texts[{i}] encodes to {int(lengths[i])} tokens (BOS + {int(lengths[i]) - 2} bytes + EOS) > "
                f"max_len={t_len} ({too_long.size} text(s) too long); raise max_len or shorten/filter the texts "
                "(e.g. load_text_dataset(..., max_chars=...))")
    tokens = np.full((len(texts), t_len), EOS, dtype=np.int64)
    tokens[:, 0] = BOS
    for i, b in enumerate(encoded):
        if b:
            tokens[i, 1:1 + len(b)] = np.frombuffer(b, dtype=np.uint8)
    return tokens, lengths


def decode_tokens(tokens, lengths=None) -> list[str]:
    """Texts from byte-level token ids (inverse of :func:`encode_texts`).

    Parameters
    ----------
    tokens : array of int, shape (n, T) or (T,)
        Token rows; a leading ``BOS`` is dropped and each row ends at its first ``EOS`` (or at ``lengths``).
        Other ids outside ``[0, 256)`` (a stray BOS) are dropped. Generated continuations without a BOS decode
        the same way.
    lengths : array of int, shape (n,), optional
        Encoded lengths (as returned by :func:`encode_texts`); tokens beyond them are ignored.

    Returns
    -------
    list of str, length n
        Invalid UTF-8 (a model may emit any byte sequence) is decoded with ``errors="replace"``.
    """
    arr = np.asarray(tokens)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise MemlensInputError(f"tokens must be an integer array of shape (n, T) or (T,); got shape "
                                f"{np.shape(tokens)}, dtype {arr.dtype}")
    if lengths is not None:
        lengths = np.asarray(lengths).reshape(-1)
        if lengths.shape != (arr.shape[0],):
            raise MemlensInputError(f"lengths must have shape ({arr.shape[0]},) (one per row of tokens); got "
                                    f"{np.shape(lengths)}")
    out = []
    for i, row in enumerate(arr):
        if lengths is not None:
            row = row[:int(lengths[i])]
        if row.size and row[0] == BOS:
            row = row[1:]
        stop = np.flatnonzero(row == EOS)
        if stop.size:
            row = row[:stop[0]]
        row = row[(row >= 0) & (row < 256)]
        out.append(row.astype(np.uint8).tobytes().decode("utf-8", errors="replace"))
    return out


# ---------------------------------------------------------------------------------------------------------------
# document corpora
# ---------------------------------------------------------------------------------------------------------------

FORTUNES_DIR = Path(os.environ.get("MEMLENS_FORTUNES_DIR", "/usr/share/games/fortunes"))


@dataclass(frozen=True, eq=False)
class TextDataset:
    """A corpus of documents with a fixed train/test split (the text analogue of :class:`memlens.data.Dataset`).

    Attributes
    ----------
    name : str
    train_texts, test_texts : tuple of str
        Distinct documents (deduplicated after whitespace normalization; a document is in one split only).
    source : str
        Where the documents came from (a directory or a file path, or ``"arrays"``).
    train_counts, test_counts : ndarray of int64, shapes (n_train,), (n_test,)
        How many times each document occurred in the raw corpus before deduplication (1 = unique). Duplicates
        explain much memorization (Carlini et al. 2023; Zhang et al. 2021 §5).
    train_groups, test_groups : tuple of str
        A group label per document: the fortune file (category) it came from, or ``""``.
    description : str
        How the corpus was built (filters applied, documents dropped).
    """

    name: str
    train_texts: tuple
    test_texts: tuple
    source: str = "arrays"
    train_counts: np.ndarray | None = None
    test_counts: np.ndarray | None = None
    train_groups: tuple | None = None
    test_groups: tuple | None = None
    description: str = ""
    _fingerprint: list = field(default_factory=list, repr=False, compare=False)

    def __post_init__(self):
        tr = tuple(_as_text_list(self.train_texts, "train_texts"))
        te = tuple(_as_text_list(self.test_texts, "test_texts"))
        object.__setattr__(self, "train_texts", tr)
        object.__setattr__(self, "test_texts", te)
        for split, texts in (("train", tr), ("test", te)):
            counts = getattr(self, f"{split}_counts")
            counts = np.ones(len(texts), dtype=np.int64) if counts is None else np.asarray(counts, dtype=np.int64)
            if counts.shape != (len(texts),) or (counts.size and counts.min() < 1):
                raise MemlensInputError(f"{split}_counts must be positive integers of shape ({len(texts)},); got "
                                        f"shape {counts.shape}")
            counts.setflags(write=False)
            object.__setattr__(self, f"{split}_counts", counts)
            groups = getattr(self, f"{split}_groups")
            groups = ("",) * len(texts) if groups is None else tuple(str(g) for g in groups)
            if len(groups) != len(texts):
                raise MemlensInputError(f"{split}_groups must have one entry per document ({len(texts)}); got "
                                        f"{len(groups)}")
            object.__setattr__(self, f"{split}_groups", groups)

    @property
    def n_train(self) -> int:
        return len(self.train_texts)

    @property
    def n_test(self) -> int:
        return len(self.test_texts)

    def max_tokens(self) -> int:
        """Longest encoded document over both splits (bytes + BOS + EOS): the context a model needs."""
        return max((len(t.encode("utf-8")) + 2 for t in self.train_texts + self.test_texts), default=2)

    def encode(self, split: str = "train", *, max_len: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(tokens (n, T), lengths (n,))`` of one split (:func:`encode_texts`); ``T`` defaults to
        :meth:`max_tokens` so both splits share one width."""
        if split not in ("train", "test"):
            raise MemlensInputError(f"split must be 'train' or 'test'; got {split!r}")
        texts = self.train_texts if split == "train" else self.test_texts
        return encode_texts(texts, max_len=self.max_tokens() if max_len is None else max_len)

    def fingerprint(self) -> str:
        """SHA-256 of every document of both splits (in order), not of the name or file: changed text never reuses
        results, and a renamed file with the same text is the same corpus."""
        if not self._fingerprint:
            h = hashlib.sha256(b"memlens-text/2")
            for split in (self.train_texts, self.test_texts):
                h.update(f"|{len(split)}|".encode())
                for t in split:
                    b = t.encode("utf-8")
                    h.update(len(b).to_bytes(8, "little"))
                    h.update(b)
            self._fingerprint.append(h.hexdigest())
        return self._fingerprint[0]

    def subset(self, train_index=None, test_index=None, name: str | None = None) -> "TextDataset":
        """The dataset restricted to the given train (and test) documents, in the given order."""
        def pick(texts, counts, groups, index, what):
            if index is None:
                return texts, counts, groups
            idx = np.asarray(index)
            if idx.dtype == bool:
                if idx.shape != (len(texts),):
                    raise MemlensInputError(f"{what} as a boolean mask must have shape ({len(texts)},); got "
                                            f"{idx.shape}")
                idx = np.flatnonzero(idx)
            if idx.size and (not np.issubdtype(idx.dtype, np.integer) or idx.min() < -len(texts)
                             or idx.max() >= len(texts)):
                raise MemlensInputError(f"{what} must hold integer indices in [0, {len(texts)}); got "
                                        f"{idx[:5].tolist()}...")
            idx = idx.astype(np.int64).reshape(-1)
            return tuple(texts[i] for i in idx), counts[idx], tuple(groups[i] for i in idx)

        tr = pick(self.train_texts, self.train_counts, self.train_groups, train_index, "train_index")
        te = pick(self.test_texts, self.test_counts, self.test_groups, test_index, "test_index")
        return TextDataset(name=name or self.name, train_texts=tr[0], test_texts=te[0], source=self.source,
                           train_counts=tr[1], test_counts=te[1], train_groups=tr[2], test_groups=te[2],
                           description=self.description)

    def with_train_texts(self, texts, *, counts=None, groups=None, name: str | None = None) -> "TextDataset":
        """The same test split with new training documents (e.g. with inserted canaries); ``counts`` default 1."""
        texts = tuple(_as_text_list(texts))
        return TextDataset(name=name or self.name, train_texts=texts, test_texts=self.test_texts,
                           source=self.source, train_counts=counts, test_counts=self.test_counts,
                           train_groups=groups, test_groups=self.test_groups, description=self.description)


def normalize_whitespace(text: str) -> str:
    """The deduplication key of a document: runs of whitespace collapsed to one space, ends stripped."""
    return " ".join(text.split())


def split_documents(content: str, *, delimiter: str | None = None) -> list[str]:
    """Documents of a file's text.

    ``delimiter=None``: one document per line. A delimiter without a newline (``"%"`` as in fortune files)
    separates documents when it stands alone on a line (trailing whitespace ignored), so it may still occur
    inside a document. A delimiter containing a newline (``"\n\n"`` for paragraphs) splits on the substring.
    Documents keep their inner formatting; surrounding blank lines and trailing whitespace are removed, and
    documents empty after that are dropped.
    """
    content = content.replace("\r\n", "\n").replace("\r", "\n")
    if delimiter is None:
        parts = content.split("\n")
    elif not isinstance(delimiter, str) or delimiter == "":
        raise MemlensInputError(f"delimiter must be a non-empty string or None (one document per line); got "
                                f"{delimiter!r}")
    elif "\n" in delimiter:
        parts = content.split(delimiter)
    else:
        parts = re.split(r"(?m)^" + re.escape(delimiter) + r"[ \t]*(?:\n|\Z)", content)
    docs = []
    for p in parts:
        p = "\n".join(line.rstrip() for line in p.split("\n")).strip("\n")
        if p.strip():
            docs.append(p)
    return docs


def _dedup(docs: list[str], groups: list[str]):
    first, counts, order = {}, {}, []
    for d, g in zip(docs, groups):
        key = normalize_whitespace(d)
        if key not in first:
            first[key] = (d, g)
            order.append(key)
            counts[key] = 0
        counts[key] += 1
    return ([first[k][0] for k in order], np.array([counts[k] for k in order], dtype=np.int64),
            [first[k][1] for k in order])


def text_dataset_from_texts(texts, *, name: str = "texts", test_fraction: float = 0.2, max_chars: int | None = None,
                            seed=0, source: str = "arrays", groups=None, test_texts=None) -> TextDataset:
    """A :class:`TextDataset` from documents in memory: deduplicated (whitespace-normalized, counts kept),
    filtered by ``max_chars``, split at random (``seed``) into train and test unless ``test_texts`` is given."""
    docs = _as_text_list(texts)
    groups = [""] * len(docs) if groups is None else [str(g) for g in groups]
    if len(groups) != len(docs):
        raise MemlensInputError(f"groups must have one entry per text ({len(docs)}); got {len(groups)}")
    keep = [i for i, d in enumerate(docs) if d.strip()]
    docs, groups = [docs[i] for i in keep], [groups[i] for i in keep]
    n_raw = len(docs)
    docs, counts, groups = _dedup(docs, groups)
    n_distinct = len(docs)
    if max_chars is not None:
        max_chars = check_int("max_chars", max_chars, min_value=1)
        keep = [i for i, d in enumerate(docs) if len(d) <= max_chars]
        docs, counts, groups = [docs[i] for i in keep], counts[keep], [groups[i] for i in keep]
    if not docs:
        raise MemlensInputError(f"{source} holds no non-empty document"
                                + (f" of at most max_chars={max_chars} characters" if max_chars else "")
                                + "; check the file, the delimiter or raise max_chars")
    desc = (f"{n_raw} non-empty documents, {n_distinct} distinct after whitespace normalization"
            + (f", {len(docs)} of at most {max_chars} characters" if max_chars is not None else ""))
    if test_texts is not None:
        te = _as_text_list(test_texts, "test_texts")
        return TextDataset(name=name, train_texts=tuple(docs), test_texts=tuple(te), source=source,
                           train_counts=counts, train_groups=tuple(groups), description=desc)
    test_fraction = check_fraction("test_fraction", test_fraction)
    n = len(docs)
    n_test = int(round(test_fraction * n))
    if n < 2 or n_test < 1 or n_test >= n:
        raise MemlensInputError(f"test_fraction={test_fraction} of {n} distinct document(s) leaves an empty train "
                                "or test split; provide more documents or change test_fraction")
    perm = as_generator(seed).permutation(n)
    te_idx, tr_idx = np.sort(perm[:n_test]), np.sort(perm[n_test:])
    return TextDataset(name=name, train_texts=tuple(docs[i] for i in tr_idx),
                       test_texts=tuple(docs[i] for i in te_idx), source=source, train_counts=counts[tr_idx],
                       test_counts=counts[te_idx], train_groups=tuple(groups[i] for i in tr_idx),
                       test_groups=tuple(groups[i] for i in te_idx),
                       description=desc + f"; split {n - n_test}/{n_test} at random (seed {seed!r})")


#: The largest text file read as a corpus (the byte-level models train on far less; a bound keeps /dev/zero or a
#: runaway log from exhausting memory).
MAX_TEXT_BYTES = 1 << 30


def _read_utf8(path: Path) -> str:
    if path.exists() and not path.is_dir():
        check_regular_file(path, "text file", max_bytes=min(MAX_TEXT_BYTES, read_budget()))
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise MemlensInputError(f"text file {str(path)!r} does not exist; pass an existing file path or the name "
                                "'fortunes'") from None
    except IsADirectoryError:
        raise MemlensInputError(f"text file {str(path)!r} is a directory; pass a file path") from None
    except OSError as e:
        raise MemlensInputError(f"text file {str(path)!r} cannot be read ({e.strerror}); check its permissions") \
            from None
    if not data.strip():
        raise MemlensInputError(f"text file {str(path)!r} is empty; pass a file with at least two documents")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise MemlensInputError(f"text file {str(path)!r} is not UTF-8 (invalid byte 0x{data[e.start]:02x} at "
                                f"byte {e.start}, line {line}); convert it, e.g. `iconv -f latin1 -t utf-8`") \
            from None


def _fortune_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        raise MemlensInputError(f"the fortunes corpus is missing ({str(directory)!r} not found); install the Debian "
                                "package `fortunes` (`apt-get install fortunes`, or run `make setup`)")
    files = sorted(p for p in directory.iterdir()
                   if p.is_file() and not p.is_symlink() and p.suffix not in (".dat", ".u8"))
    if not files:
        raise MemlensInputError(f"the fortunes corpus in {str(directory)!r} holds no fortune file; reinstall the "
                                "Debian package `fortunes`")
    return files


def load_text_dataset(name_or_path="fortunes", *, delimiter: str | None = None, test_fraction: float = 0.2,
                      max_chars: int | None = 256, seed=0) -> TextDataset:
    """Load a document corpus with a train/test split.

    Parameters
    ----------
    name_or_path : str or path-like
        ``"fortunes"``: every fortune file of the Debian package ``fortunes`` (``/usr/share/games/fortunes/``,
        or ``$MEMLENS_FORTUNES_DIR``), documents separated by a line holding ``%``; the file name is kept as each
        document's group. Otherwise a UTF-8 text file: one document per line, or documents separated by
        ``delimiter`` (see :func:`split_documents`).
    delimiter : str, optional
        Document separator of a user file (ignored for ``"fortunes"``, which always uses ``%``).
    test_fraction : float in (0, 1)
        Share of the distinct documents held out as the test split.
    max_chars : int or None
        Keep documents of at most this many characters (short documents keep models small); None keeps all.
    seed : int or numpy.random.Generator
        The random train/test split.

    Returns
    -------
    TextDataset
        Deduplicated after whitespace normalization; ``train_counts``/``test_counts`` hold each document's
        number of occurrences in the raw corpus.

    Raises
    ------
    MemlensInputError
        A missing, empty or non-UTF-8 file, a corpus with no document left after filtering, a bad split.
    """
    if isinstance(name_or_path, str) and name_or_path == "fortunes":
        docs, groups = [], []
        for path in _fortune_files(FORTUNES_DIR):
            d = split_documents(_read_utf8(path), delimiter="%")
            docs += d
            groups += [path.name] * len(d)
        return text_dataset_from_texts(docs, name="fortunes", test_fraction=test_fraction, max_chars=max_chars,
                                       seed=seed, source=str(FORTUNES_DIR), groups=groups)
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise MemlensInputError(f"name_or_path must be 'fortunes' or a text file path; got "
                                f"{type(name_or_path).__name__}")
    path = Path(name_or_path)
    if not path.exists() and os.sep not in str(name_or_path) and "." not in str(name_or_path):
        raise MemlensInputError(f"unknown text dataset {str(name_or_path)!r}; use 'fortunes' or a path to a UTF-8 "
                                "text file")
    docs = split_documents(_read_utf8(path), delimiter=delimiter)
    return text_dataset_from_texts(docs, name=path.stem or "text", test_fraction=test_fraction,
                                   max_chars=max_chars, seed=seed, source=str(path))
