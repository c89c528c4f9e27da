"""Text data for language-model memorization: byte-level tokenization and document corpora.

Tokenization is byte level: a document becomes ``[BOS] + its UTF-8 bytes + [EOS]``, with ``BOS = 256``,
``EOS = 257`` and ``VOCAB_SIZE = 258``, so any text (any language, any format) is representable and a model's
log-likelihood of a document is the log-likelihood of its exact bytes. Batches are right-padded with ``EOS``;
``lengths`` says where each document ends (BOS and EOS counted), so padding never enters a signal.
"""
from __future__ import annotations

import numpy as np

from .._validation import MemlensInputError, check_int

__all__ = ["BOS", "EOS", "VOCAB_SIZE", "encode_texts", "decode_tokens"]

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
