"""Text canaries with a known randomness space (Carlini, Liu, Erlingsson, Kos & Song 2019, "The Secret Sharer",
§3–4).

A canary is a format sentence with a random secret, ``s[r]`` with ``r`` drawn uniformly from the randomness space
``R``: for ``CanaryFormat("my PIN is {secret}", alphabet="0123456789", length=4)``, ``R`` holds the
``10^4`` strings ``"0000" … "9999"`` and a canary is ``"my PIN is 4271"``. Because ``R`` is known and (for small
spaces) enumerable, how much a model memorized a canary is measurable exactly: exposure ranks the canary's
log-perplexity among all of ``R`` (:mod:`memlens.measures.exposure`).

:func:`make_text_canaries` draws distinct secrets and the number of times each is inserted;
:func:`insert_text_canaries` adds those copies to a corpus at random positions and says which new document is a
copy of which canary. Secrets are indexed in ``R`` in lexicographic order of the alphabet positions
(``"0000"`` is 0, ``"0001"`` is 1, …), so a secret and its index convert both ways.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from .._random import as_generator
from .._validation import MemlensInputError, check_int

__all__ = ["NamedCanaries", "make_named_canaries", "insert_named_canaries", "canary_name", "CANARY_NAMES",
           "DEFAULT_CANARY_TEMPLATE", "DEFAULT_ALPHABET", "DEFAULT_SECRET_LENGTH", "SECRET_FIELD", "CanaryFormat", "TextCanarySet", "make_text_canaries", "insert_text_canaries"]

SECRET_FIELD = "{secret}"
_MAX_ENUMERATE = 10**7


@dataclass(frozen=True)
class CanaryFormat:
    """A canary format: a template with one ``{secret}`` field, filled by ``length`` symbols of ``alphabet``.

    Parameters
    ----------
    template : str
        Text holding ``"{secret}"`` exactly once (other braces are plain text).
    alphabet : str
        Distinct symbols a secret is made of (each one character).
    length : int
        Symbols per secret.

    Attributes
    ----------
    space_size : int
        ``|R| = len(alphabet) ** length``.
    prefix, suffix : str
        The template's text before and after the secret.
    """

    template: str = "my PIN is {secret}"
    alphabet: str = "0123456789"
    length: int = 4

    def __post_init__(self):
        if not isinstance(self.template, str) or self.template.count(SECRET_FIELD) != 1:
            raise MemlensInputError(f"template must be a str holding {SECRET_FIELD!r} exactly once; got "
                                    f"{self.template!r} (e.g. 'my PIN is {{secret}}')")
        if not isinstance(self.alphabet, str) or len(self.alphabet) < 2:
            raise MemlensInputError(f"alphabet must be a str of at least 2 distinct symbols; got {self.alphabet!r}")
        if len(set(self.alphabet)) != len(self.alphabet):
            raise MemlensInputError(f"alphabet must hold distinct symbols; got {self.alphabet!r} (remove repeats)")
        check_int("length", self.length, min_value=1)

    @property
    def space_size(self) -> int:
        return len(self.alphabet) ** self.length

    @property
    def prefix(self) -> str:
        return self.template.split(SECRET_FIELD)[0]

    @property
    def suffix(self) -> str:
        return self.template.split(SECRET_FIELD)[1]

    @property
    def single_byte(self) -> bool:
        """True when every alphabet symbol is one UTF-8 byte (one token of the byte-level tokenizer)."""
        return all(len(c.encode("utf-8")) == 1 for c in self.alphabet)

    def check_secret(self, secret, name: str = "secret") -> str:
        """Return ``secret`` if it belongs to ``R``, else raise naming it."""
        if not isinstance(secret, str) or len(secret) != self.length or any(c not in self.alphabet for c in secret):
            raise MemlensInputError(f"{name} must be {self.length} symbol(s) of the alphabet {self.alphabet!r}; "
                                    f"got {secret!r}")
        return secret

    def render(self, secret: str) -> str:
        """The canary text ``s[secret]``: the template with its field replaced by ``secret``."""
        return self.prefix + self.check_secret(secret) + self.suffix

    def index_of(self, secrets) -> np.ndarray:
        """``(n,)`` int64 position of each secret in ``R`` (lexicographic in alphabet order)."""
        secrets = [secrets] if isinstance(secrets, str) else list(secrets)
        if self.space_size > np.iinfo(np.int64).max:
            raise MemlensInputError(f"the randomness space ({len(self.alphabet)}^{self.length}) is too large to "
                                    "index with int64; use fewer symbols")
        pos = {c: i for i, c in enumerate(self.alphabet)}
        out = np.zeros(len(secrets), dtype=np.int64)
        for j, s in enumerate(secrets):
            self.check_secret(s, f"secrets[{j}]")
            v = 0
            for c in s:
                v = v * len(self.alphabet) + pos[c]
            out[j] = v
        return out

    def digits(self, indices) -> np.ndarray:
        """``(n, length)`` int64 alphabet positions of the secrets at ``indices`` of ``R``."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.space_size):
            raise MemlensInputError(f"indices must lie in [0, space_size={self.space_size}); got range "
                                    f"[{idx.min()}, {idx.max()}]")
        a = len(self.alphabet)
        powers = a ** np.arange(self.length - 1, -1, -1, dtype=np.int64)
        return (idx[:, None] // powers[None, :]) % a

    def secrets_at(self, indices) -> tuple[str, ...]:
        """Secrets at positions ``indices`` of ``R`` (inverse of :meth:`index_of`)."""
        chars = np.array(list(self.alphabet))
        return tuple("".join(row) for row in chars[self.digits(indices)])

    def enumerate(self) -> tuple[str, ...]:
        """All of ``R`` in index order (refused above 10^7 secrets: use sampling and extrapolated exposure)."""
        if self.space_size > _MAX_ENUMERATE:
            raise MemlensInputError(f"the randomness space has {self.space_size} secrets > {_MAX_ENUMERATE}; too "
                                    "many to enumerate: sample secrets (sample_secrets) and use extrapolated "
                                    "exposure, or shorten the secret")
        return self.secrets_at(np.arange(self.space_size))

    def sample_secrets(self, n: int, *, seed=0, replace: bool = False, exclude=()) -> tuple[str, ...]:
        """``n`` secrets drawn uniformly from ``R``.

        Parameters
        ----------
        n : int
        seed : int or numpy.random.Generator
        replace : bool
            Draw with replacement (independent uniform draws, as for references of the extrapolation); default
            distinct secrets.
        exclude : sequence of str
            Secrets never returned (e.g. the inserted canaries when drawing references).
        """
        n = check_int("n", n, min_value=0)
        rng = as_generator(seed)
        excluded = {self.check_secret(s, "exclude") for s in exclude}
        available = self.space_size - len(excluded)
        if not replace and n > available:
            raise MemlensInputError(f"n must be <= {available} (the secrets of the space not excluded) to draw "
                                    f"distinct secrets; got {n} (lengthen the secret or pass replace=True)")
        if available <= 0 and n > 0:
            raise MemlensInputError("exclude removes the whole randomness space; nothing left to sample")
        chars = np.array(list(self.alphabet))
        out: list[str] = []
        seen: set[str] = set()
        while len(out) < n:
            draw = rng.integers(len(self.alphabet), size=(max(2 * (n - len(out)), 16), self.length))
            for row in chars[draw]:
                s = "".join(row)
                if s in excluded or (not replace and s in seen):
                    continue
                seen.add(s)
                out.append(s)
                if len(out) == n:
                    break
        return tuple(out)


@dataclass(frozen=True, eq=False)
class TextCanarySet:
    """Canaries of one format, with how often each is inserted into the training corpus.

    Attributes
    ----------
    format : CanaryFormat
    secrets : tuple of str, length n_canaries
        Distinct secrets of ``format``'s randomness space.
    texts : tuple of str, length n_canaries
        ``format.render(secret)`` for each secret.
    repetitions : ndarray of int64, shape (n_canaries,)
        Copies of each canary to insert (0 = a reference canary that the model never sees).
    """

    format: CanaryFormat
    secrets: tuple
    repetitions: np.ndarray
    texts: tuple = ()

    def __post_init__(self):
        if not isinstance(self.format, CanaryFormat):
            raise MemlensInputError(f"format must be a CanaryFormat; got {type(self.format).__name__}")
        secrets = tuple(self.format.check_secret(s, "secrets") for s in self.secrets)
        if len(set(secrets)) != len(secrets):
            raise MemlensInputError("secrets must be distinct (two canaries with one secret are one canary "
                                    "repeated: raise its repetitions instead)")
        reps = np.asarray(self.repetitions)
        if reps.shape != (len(secrets),) or (reps.size and (not np.issubdtype(reps.dtype, np.integer)
                                                            or reps.min() < 0)):
            raise MemlensInputError(f"repetitions must be {len(secrets)} integers >= 0 (one per secret); got "
                                    f"{self.repetitions!r}")
        rendered = tuple(self.format.render(s) for s in secrets)
        if self.texts and tuple(self.texts) != rendered:
            raise MemlensInputError("texts must be the rendered secrets (format.render(secret)); leave texts out "
                                    "to have them rendered")
        object.__setattr__(self, "secrets", secrets)
        object.__setattr__(self, "texts", rendered)
        object.__setattr__(self, "repetitions", reps.astype(np.int64))

    @property
    def n_canaries(self) -> int:
        return len(self.secrets)

    @property
    def n_copies(self) -> int:
        """Documents that insertion adds (the sum of repetitions)."""
        return int(self.repetitions.sum())


def make_text_canaries(fmt: CanaryFormat, *, n_canaries: int, repetitions=1, seed=0) -> TextCanarySet:
    """Draw ``n_canaries`` distinct secrets uniformly from ``fmt``'s randomness space.

    Parameters
    ----------
    fmt : CanaryFormat
    n_canaries : int
    repetitions : int or sequence of int, length n_canaries
        Copies of each canary to insert; an int applies to all. Use 0 for reference canaries that stay out of
        the training data (their exposure is that of a random secret: ``Pr[exposure >= e] = 2^-e``).
    seed : int or numpy.random.Generator

    Returns
    -------
    TextCanarySet
    """
    if not isinstance(fmt, CanaryFormat):
        raise MemlensInputError(f"fmt must be a CanaryFormat; got {type(fmt).__name__}")
    n_canaries = check_int("n_canaries", n_canaries, min_value=1)
    if isinstance(repetitions, (numbers.Integral, np.integer)) and not isinstance(repetitions, bool):
        reps = np.full(n_canaries, check_int("repetitions", repetitions, min_value=0), dtype=np.int64)
    else:
        reps = np.asarray(repetitions)
        if reps.shape != (n_canaries,):
            raise MemlensInputError(f"repetitions must be an int or a sequence of n_canaries={n_canaries} ints; "
                                    f"got shape {reps.shape}")
    secrets = fmt.sample_secrets(n_canaries, seed=seed)
    return TextCanarySet(format=fmt, secrets=secrets, repetitions=reps)


def check_canary_set(canaries) -> "TextCanarySet":
    """``canaries`` if it is a :class:`TextCanarySet`, else a clear error saying how to make one."""
    if not isinstance(canaries, TextCanarySet):
        raise MemlensInputError(f"canaries must be a TextCanarySet (make_text_canaries); got "
                                f"{type(canaries).__name__}")
    return canaries


def insert_text_canaries(texts, canaries: TextCanarySet, *, seed=0) -> tuple[tuple[str, ...], np.ndarray]:
    """Insert each canary ``repetitions`` times at uniformly random positions of a corpus.

    The original documents keep their relative order; the copies take uniformly random slots among the
    ``len(texts) + canaries.n_copies`` positions, in random order.

    Parameters
    ----------
    texts : sequence of str, length n
    canaries : TextCanarySet
    seed : int or numpy.random.Generator

    Returns
    -------
    texts_with_copies : tuple of str, length n + canaries.n_copies
    copy_of : ndarray of int64, shape (n + canaries.n_copies,)
        Canary index of each new document, −1 for the original documents.
    """
    if isinstance(texts, str):
        raise MemlensInputError("texts must be a sequence of strings, not one string (wrap it in a list)")
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise MemlensInputError(f"texts[{i}] must be a str; got {type(t).__name__}")
    check_canary_set(canaries)
    rng = as_generator(seed)
    copies = np.repeat(np.arange(canaries.n_canaries, dtype=np.int64), canaries.repetitions)
    copies = rng.permutation(copies)
    total = len(texts) + copies.size
    slots = np.sort(rng.choice(total, size=copies.size, replace=False)) if copies.size else np.empty(0, np.int64)
    copy_of = np.full(total, -1, dtype=np.int64)
    copy_of[slots] = copies
    out, it = [], iter(texts)
    for j in range(total):
        out.append(canaries.texts[copy_of[j]] if copy_of[j] >= 0 else next(it))
    return tuple(out), copy_of


# ---------------------------------------------------------------------------------------------- named canaries
#: The text audit's default canary: a 4-digit PIN, a randomness space of 10,000 secrets (exact rank exposure).
DEFAULT_CANARY_TEMPLATE = "my PIN is {secret}"
DEFAULT_ALPHABET = "0123456789"
DEFAULT_SECRET_LENGTH = 4


#: Names that give each canary its own prefix (``"alice: my PIN is 4271"``): greedy decoding from one shared prefix
#: can extract at most one secret, so canaries of one template would compete for it; distinct prefixes make
#: extraction and exposure per canary.
CANARY_NAMES = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
                "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "yolanda")


def canary_name(c: int) -> str:
    """The name of canary ``c``: :data:`CANARY_NAMES` in order, then ``name2``, ``name3``, ..."""
    base = CANARY_NAMES[c % len(CANARY_NAMES)]
    return base if c < len(CANARY_NAMES) else f"{base}{c // len(CANARY_NAMES) + 1}"


@dataclass(frozen=True, eq=False)
class NamedCanaries:
    """Canaries of one template, each with its own name prefix (``"{name}: " + template``).

    Attributes
    ----------
    sets : tuple of memlens.data.text_canaries.TextCanarySet
        One single-canary set per canary (its own format, so its own prefix and randomness space of equal size).
    names, secrets, texts : tuple of str, length n_canaries
    repetitions : ndarray of int64, shape (n_canaries,)
    template : str
        The shared template (without the name).
    space_size : int
        Size of each canary's randomness space, ``len(alphabet) ** length``.
    """

    sets: tuple
    names: tuple
    secrets: tuple
    texts: tuple
    repetitions: np.ndarray
    template: str
    space_size: int

    @property
    def n_canaries(self) -> int:
        return len(self.sets)


def make_named_canaries(template: str, *, alphabet: str = DEFAULT_ALPHABET, length: int = DEFAULT_SECRET_LENGTH,
                        repetitions, seed=0) -> NamedCanaries:
    """One canary per entry of ``repetitions``, canary ``c`` of format ``f"{canary_name(c)}: {template}"`` with a
    secret drawn uniformly from its space (Carlini et al. 2019, §3).

    Parameters
    ----------
    template : str
        Holds ``{secret}`` once, e.g. ``"my PIN is {secret}"``.
    alphabet, length :
        The randomness space: ``len(alphabet) ** length`` secrets.
    repetitions : sequence of int >= 0
        Copies of each canary to insert (0: a reference canary never inserted).
    seed : int or numpy.random.Generator
    """
    if not isinstance(template, str) or template.count("{secret}") != 1:
        raise MemlensInputError(f"canary_format must contain '{{secret}}' exactly once, e.g. "
                                f"'my PIN is {{secret}}'; got {template!r}")
    rng = as_generator(seed)
    reps = np.asarray(repetitions, dtype=np.int64).reshape(-1)
    sets = []
    for c, r in enumerate(reps):
        fmt = CanaryFormat(template=f"{canary_name(c)}: {template}", alphabet=alphabet, length=length)
        sets.append(make_text_canaries(fmt, n_canaries=1, repetitions=int(r), seed=rng))
    space = sets[0].format.space_size if sets else int(len(alphabet) ** length)
    return NamedCanaries(sets=tuple(sets), names=tuple(canary_name(c) for c in range(len(sets))),
                         secrets=tuple(s.secrets[0] for s in sets), texts=tuple(s.texts[0] for s in sets),
                         repetitions=reps, template=template, space_size=int(space))


def insert_named_canaries(texts, canaries: NamedCanaries, *, seed=0) -> tuple[tuple, np.ndarray]:
    """Insert every canary ``repetitions[c]`` times at random positions
    (:func:`insert_text_canaries`, one canary after the other).

    Returns
    -------
    texts_with_copies : tuple of str
    copy_of : ndarray of int64
        Canary index of each document, -1 for the original documents (which keep their order).
    """
    rng = as_generator(seed)
    texts = tuple(texts)
    copy_of = np.full(len(texts), -1, dtype=np.int64)
    for c, cs in enumerate(canaries.sets):
        texts, co = insert_text_canaries(texts, cs, seed=rng)
        new = np.full(len(texts), -1, dtype=np.int64)
        new[co < 0] = copy_of
        new[co >= 0] = c
        copy_of = new
    return texts, copy_of
