"""Black-box reconstruction of a training example from a model's goal-label log-probability.

Brown, Bun, Feldman, Smith, Talwar (STOC 2021, arXiv:2012.06421 v2), experiments: given only query access to
``x ↦ log p(goal | x)`` on the cube ``{-1, +1}^d``, where ``goal`` is the label of a singleton training
example, find the input that the model associates with that label. A model that memorized the singleton
returns (most of) its bits, including the free ones that are noise given the distribution.

* :func:`sign_attack` — for every coordinate ``i`` and repeat ``k``: draw a base point (uniform on the cube,
  *uninformed*, or a fresh sample of the goal's subpopulation, *informed*), score it with ``x_i = +1`` and
  with ``x_i = −1``, vote for the sign that scores higher; ``x̂_i`` is the majority vote over repeats.
* :func:`coordinate_ascent` — start from a point, propose single-bit flips and keep a flip when the score
  strictly increases; coordinates are visited in order (``"ordered"``), in a fresh random order every epoch
  (``"random-permutation"``), or the best flip is taken each time (``"greedy"``). An epoch is ``d``
  proposals; the attack stops after an epoch with no accepted flip, or after ``max_epochs`` epochs.

The score callable
------------------
The attacks see the model only through ``score``, which returns the goal label's log-probability for a batch
of inputs. Many targets are attacked together: with ``goals=None`` there is one target and ``score(X)`` maps
``(batch, d) -> (batch,)``; with ``goals`` an array of ``T`` labels, ``score(X, labels)`` receives each row's
goal label ``labels`` of shape ``(batch,)``. :func:`log_prob_scorer` builds such a callable from a torch
module. Every attack sends its queries in batches of at most ``batch_size`` rows.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._random import as_generator
from .._validation import MemlensInputError, check_array, check_int

__all__ = ["ReconstructionResult", "sign_attack", "coordinate_ascent", "log_prob_scorer"]

_SELECTIONS = {"ordered": "ordered", "random-permutation": "random-permutation",
               "randompermutation": "random-permutation", "greedy": "greedy"}


@dataclass(frozen=True, eq=False)
class ReconstructionResult:
    """What a reconstruction attack returns.

    Attributes
    ----------
    reconstruction : ndarray of int8, shape (n_targets, d)
        The reconstructed points, entries ±1 (one row per target, also when there is a single target).
    n_queries : ndarray of int64, shape (n_targets,)
        Queries the attack makes on each target as specified (for the ordered and random-permutation
        coordinate ascent: the initial score plus one per proposal, as if run one query at a time).
    n_evaluations : ndarray of int64, shape (n_targets,)
        Rows actually scored for each target. Equal to ``n_queries`` except for the batched coordinate
        ascent, which scores a block of proposals ahead and discards those after an accepted flip.
    method : str
        ``"sign-uninformed"``, ``"sign-informed"``, ``"coordinate-ordered"``,
        ``"coordinate-random-permutation"`` or ``"coordinate-greedy"``.
    goals : ndarray of int64, shape (n_targets,), or None
        The goal labels, None for a single-target attack.
    scores : ndarray of float64, shape (n_targets,), or None
        Goal log-probability of the reconstruction (coordinate ascent); None for the sign attack, which
        never scores its output.
    converged : ndarray of bool, shape (n_targets,), or None
        Coordinate ascent: True when the attack stopped at a local maximum (an epoch without accepted
        flip) rather than at ``max_epochs``.
    n_epochs : ndarray of int64, shape (n_targets,), or None
        Coordinate ascent: epochs started.
    """

    reconstruction: np.ndarray
    n_queries: np.ndarray
    n_evaluations: np.ndarray
    method: str
    goals: np.ndarray | None = None
    scores: np.ndarray | None = None
    converged: np.ndarray | None = None
    n_epochs: np.ndarray | None = None

    @property
    def n_targets(self) -> int:
        return int(self.reconstruction.shape[0])

    @property
    def d(self) -> int:
        return int(self.reconstruction.shape[1])

    def errors(self, x_true) -> np.ndarray:
        """``(n_targets, d)`` bool: True where the reconstruction differs from ``x_true`` (compared by sign)."""
        x_true = check_array("x_true", x_true, dtype=np.float64)
        x_true = np.atleast_2d(x_true)
        if x_true.shape != self.reconstruction.shape:
            raise MemlensInputError(f"x_true must have shape {self.reconstruction.shape} (one row per target); "
                                    f"got {x_true.shape}")
        return np.sign(x_true) != self.reconstruction

    def error_rate(self, x_true, *, mask=None) -> np.ndarray:
        """Fraction of wrong bits per target, shape (n_targets,), over all coordinates or where ``mask``
        (bool, shape (n_targets, d), e.g. the free coordinates) is True; NaN for a target with an empty mask."""
        err = self.errors(x_true)
        if mask is None:
            return err.mean(axis=1)
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != err.shape:
            raise MemlensInputError(f"mask must have shape {err.shape}; got {mask.shape}")
        m = mask.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(m > 0, (err & mask).sum(axis=1) / np.maximum(m, 1), np.nan)


class _Scorer:
    """Calls the user's score function in chunks and checks what comes back."""

    def __init__(self, score, goals, batch_size):
        if not callable(score):
            raise MemlensInputError(f"score must be a callable returning the goal label's log-probability for a "
                                    f"batch of inputs; got {type(score).__name__}")
        self.score = score
        self.goals = goals
        self.batch_size = batch_size

    def __call__(self, X: np.ndarray, targets: np.ndarray) -> np.ndarray:
        out = np.empty(X.shape[0], dtype=np.float64)
        for lo in range(0, X.shape[0], self.batch_size):
            hi = min(lo + self.batch_size, X.shape[0])
            xb = X[lo:hi]
            s = self.score(xb) if self.goals is None else self.score(xb, self.goals[targets[lo:hi]])
            s = np.asarray(_to_numpy(s), dtype=np.float64).reshape(-1)
            if s.shape[0] != hi - lo:
                raise MemlensInputError(f"score must return one value per input row (shape ({hi - lo},)); "
                                        f"got {s.shape[0]} values")
            out[lo:hi] = s
        if np.any(np.isnan(out)):
            raise MemlensInputError("score returned NaN; it must return finite log-probabilities "
                                    "(or -inf for probability 0)")
        return out


def _to_numpy(s):
    if hasattr(s, "detach"):
        return s.detach().cpu().numpy()
    return s


def _setup(score, d, goals, batch_size):
    d = check_int("d", d, min_value=1)
    batch_size = check_int("batch_size", batch_size, min_value=1)
    if goals is not None:
        goals = np.atleast_1d(np.asarray(goals))
        if goals.ndim != 1 or goals.size == 0 or not np.issubdtype(goals.dtype, np.integer):
            raise MemlensInputError(f"goals must be a non-empty 1-d array of integer labels (one per target); "
                                    f"got {goals!r:.80}")
        goals = goals.astype(np.int64)
    n_targets = 1 if goals is None else goals.shape[0]
    return d, batch_size, goals, n_targets, _Scorer(score, goals, batch_size)


def _uniform_signs(rng, shape) -> np.ndarray:
    # one float64 draw per entry, so the stream does not depend on the chunking
    return np.where(rng.random(shape) < 0.5, 1.0, -1.0).astype(np.float32)


def sign_attack(score, *, d: int, goals=None, repeats: int = 5, adversary: str = "uninformed",
                sampler=None, batch_size: int = 8192, seed=0) -> ReconstructionResult:
    """Brown et al.'s sign attack (the authors' ``sign_attack``), all coordinates and repeats batched.

    For target ``t``, coordinate ``i`` and repeat ``k``, a base point ``x`` is drawn; the attack scores
    ``x`` with ``x_i = +1`` and with ``x_i = −1`` and votes ``+1`` if the first scores higher, ``−1`` if the
    second does (and abstains on an exact tie, where the authors' code votes ``−1``). ``x̂_i`` is the sign of
    the vote sum; a zero sum (possible with an even number of repeats or abstentions) is broken by a fair
    coin, so the reconstruction always lies on the cube. Queries: ``2 · repeats · d`` per target.

    Parameters
    ----------
    score : callable
        ``score(X) -> (batch,)`` for one target (``goals=None``), or ``score(X, labels) -> (batch,)`` where
        ``labels`` (batch,) is each row's goal; returns the goal label's log-probability. ``X`` is float32
        ``(batch, d)`` with entries ±1.
    d : int, keyword-only
        Input dimension.
    goals : array of int, shape (n_targets,), optional, keyword-only
        Goal labels of the targets attacked together.
    repeats : int, keyword-only
        Votes per coordinate (default 5, as in the paper).
    adversary : {"uninformed", "informed"}, keyword-only
        Uniform base points, or fresh samples of the goal's subpopulation drawn by ``sampler``.
    sampler : callable, optional, keyword-only
        Informed adversary only: ``sampler(targets, rng) -> (m, d)`` returns one fresh sample of the
        subpopulation of each target index in ``targets`` (int array (m,), indices into ``goals``; all 0 for a
        single target), drawing from the numpy Generator ``rng``.
    batch_size : int, keyword-only
        Maximum rows per call of ``score``.
    seed : int or numpy.random.Generator, keyword-only

    Returns
    -------
    ReconstructionResult
    """
    d, batch_size, goals, n_targets, scorer = _setup(score, d, goals, batch_size)
    repeats = check_int("repeats", repeats, min_value=1)
    if adversary not in ("uninformed", "informed"):
        raise MemlensInputError(f"adversary must be 'uninformed' or 'informed'; got {adversary!r}")
    if adversary == "informed" and not callable(sampler):
        raise MemlensInputError("sampler must be a callable sampler(targets, rng) -> (m, d) for the informed "
                                "adversary; pass sampler=... or use adversary='uninformed'")
    rng = as_generator(seed)

    # a "pair" is (target, repeat, coordinate); pairs are laid out target-major and scored in chunks
    n_pairs = n_targets * repeats * d
    pair_chunk = max(1, batch_size // 2)
    votes = np.zeros((n_targets, d), dtype=np.int64)
    for lo in range(0, n_pairs, pair_chunk):
        idx = np.arange(lo, min(lo + pair_chunk, n_pairs))
        target = idx // (repeats * d)
        coord = idx % d
        if adversary == "uninformed":
            base = _uniform_signs(rng, (idx.size, d))
        else:
            base = np.array(_to_numpy(sampler(target, rng)), dtype=np.float32)
            if base.shape != (idx.size, d):
                raise MemlensInputError(f"sampler must return shape ({idx.size}, {d}); got {base.shape}")
        rows = np.arange(idx.size)
        up = base
        down = base.copy()
        up[rows, coord] = 1.0
        down[rows, coord] = -1.0
        s = scorer(np.concatenate([up, down]), np.concatenate([target, target]))
        s_up, s_down = s[: idx.size], s[idx.size:]
        vote = (s_up > s_down).astype(np.int64) - (s_up < s_down)  # 0 on a tie, also -inf vs -inf
        np.add.at(votes, (target, coord), vote)
    recon = np.sign(votes).astype(np.int8)
    ties = recon == 0
    if ties.any():
        recon[ties] = np.where(rng.random(int(ties.sum())) < 0.5, 1, -1).astype(np.int8)
    n_q = np.full(n_targets, 2 * repeats * d, dtype=np.int64)
    return ReconstructionResult(reconstruction=recon, n_queries=n_q, n_evaluations=n_q.copy(),
                                method=f"sign-{adversary}", goals=goals)


def coordinate_ascent(score, *, d: int, goals=None, start="random", max_epochs: int = 10,
                      selection: str = "ordered", max_block: int = 64, batch_size: int = 8192,
                      seed=0) -> ReconstructionResult:
    """Brown et al.'s coordinate ascent (the authors' ``coordinate_ascent``), many targets at once.

    Each target starts at ``start`` and proposes single-bit flips, accepting a flip when the goal
    log-probability strictly increases. An epoch is ``d`` proposals: coordinates ``0..d−1`` in order
    (``"ordered"``), a fresh uniform permutation per epoch (``"random-permutation"``), or, ``d`` times, the
    flip with the highest score among all ``d`` (``"greedy"``, which stops as soon as no flip improves).
    The attack stops after an epoch with no accepted flip (converged) or after ``max_epochs`` epochs.

    Ordered and random-permutation keep the sequential semantics exactly: for each target a block of the
    next ``b ≤ max_block`` proposals is scored at once against the current point, the first improving one is
    accepted and the scan resumes right after it, so the accepted flips are those of the one-query-at-a-time
    algorithm. ``b`` doubles after a block without acceptance and halves after one with an acceptance.

    Parameters
    ----------
    score : callable
        ``score(X) -> (batch,)`` (``goals=None``) or ``score(X, labels) -> (batch,)``; see
        :func:`sign_attack`.
    d : int, keyword-only
    goals : array of int, shape (n_targets,), optional, keyword-only
    start : "random" or array, keyword-only
        ``"random"``: a uniform point of the cube per target; or an array of ±1 of shape (d,) (every target)
        or (n_targets, d).
    max_epochs : int, keyword-only
        Default 10, as in the paper's MLP experiment.
    selection : {"ordered", "random-permutation", "greedy"}, keyword-only
    max_block : int, keyword-only
        Largest block of speculative proposals per target and step (1 = strictly one query at a time).
    batch_size : int, keyword-only
        Maximum rows per call of ``score``.
    seed : int or numpy.random.Generator, keyword-only

    Returns
    -------
    ReconstructionResult
        With ``scores`` (final goal log-probability), ``converged`` and ``n_epochs``.
    """
    d, batch_size, goals, n_targets, scorer = _setup(score, d, goals, batch_size)
    max_epochs = check_int("max_epochs", max_epochs, min_value=1)
    max_block = check_int("max_block", max_block, min_value=1)
    if selection not in _SELECTIONS:
        raise MemlensInputError(f"selection must be one of 'ordered', 'random-permutation', 'greedy'; "
                                f"got {selection!r}")
    selection = _SELECTIONS[selection]
    rng = as_generator(seed)
    if isinstance(start, str):
        if start != "random":
            raise MemlensInputError(f"start must be 'random' or an array of ±1 values; got {start!r}")
        x = _uniform_signs(rng, (n_targets, d))
    else:
        x = check_array("start", start, dtype=np.float32)
        if x.shape == (d,):
            x = np.broadcast_to(x, (n_targets, d))
        x = x.copy()
        if x.shape != (n_targets, d) or not np.all(np.abs(x) == 1):
            raise MemlensInputError(f"start must hold ±1 values with shape ({d},) or ({n_targets}, {d}); "
                                    f"got shape {x.shape}")
    targets = np.arange(n_targets)
    current = scorer(x, targets)
    n_q = np.ones(n_targets, dtype=np.int64)
    n_ev = np.ones(n_targets, dtype=np.int64)
    epochs = np.ones(n_targets, dtype=np.int64)
    converged = np.zeros(n_targets, dtype=bool)
    if selection == "greedy":
        _greedy(scorer, x, current, n_q, n_ev, epochs, converged, max_epochs, batch_size)
    else:
        _sequential(scorer, x, current, n_q, n_ev, epochs, converged, max_epochs, max_block,
                    selection == "random-permutation", rng)
    return ReconstructionResult(reconstruction=np.sign(x).astype(np.int8), n_queries=n_q, n_evaluations=n_ev,
                                method=f"coordinate-{selection}", goals=goals, scores=current,
                                converged=converged, n_epochs=epochs)


def _sequential(scorer, x, current, n_q, n_ev, epochs, converged, max_epochs, max_block, permute, rng):
    """Ordered / random-permutation ascent with speculative blocks; updates the arrays in place."""
    n_targets, d = x.shape
    order = np.stack([rng.permutation(d) for _ in range(n_targets)]) if permute else \
        np.broadcast_to(np.arange(d), (n_targets, d)).copy()
    pos = np.zeros(n_targets, dtype=np.int64)       # next proposal within the epoch's order
    block = np.ones(n_targets, dtype=np.int64)
    changed = np.zeros(n_targets, dtype=bool)       # a flip was accepted in the current epoch
    active = np.ones(n_targets, dtype=bool)
    while active.any():
        act = np.flatnonzero(active)
        size = np.minimum(block[act], d - pos[act])
        owner = np.repeat(np.arange(act.size), size)                   # row -> index into act
        offset = np.arange(owner.size) - np.repeat(np.cumsum(size) - size, size)
        t_rows = act[owner]
        coords = order[t_rows, pos[t_rows] + offset]
        Xq = x[t_rows].copy()
        Xq[np.arange(owner.size), coords] *= -1.0
        s = scorer(Xq, t_rows)
        better = s > current[t_rows]
        # first improving proposal per active target (size+1 sentinel = none)
        first = np.full(act.size, np.iinfo(np.int64).max)
        np.minimum.at(first, owner[better], offset[better])
        hit = first < size
        n_ev[act] += size
        # targets with an acceptance: the proposals up to and including it were issued sequentially
        h = act[hit]
        if h.size:
            fh = first[hit]
            row = (np.cumsum(size) - size)[hit] + fh
            x[h, coords[row]] *= -1.0
            current[h] = s[row]
            n_q[h] += fh + 1
            pos[h] += fh + 1
            changed[h] = True
            block[h] = np.maximum(1, block[h] // 2)
        m = act[~hit]
        if m.size:
            n_q[m] += size[~hit]
            pos[m] += size[~hit]
            block[m] = np.minimum(max_block, block[m] * 2)
        # epoch ends
        for t in act[pos[act] >= d]:
            if not changed[t]:
                converged[t] = True
                active[t] = False
            elif epochs[t] >= max_epochs:
                active[t] = False
            else:
                epochs[t] += 1
                pos[t] = 0
                changed[t] = False
                if permute:
                    order[t] = rng.permutation(d)


def _greedy(scorer, x, current, n_q, n_ev, epochs, converged, max_epochs, batch_size):
    """Greedy ascent: each step scores all d flips of every active target and takes the best."""
    n_targets, d = x.shape
    steps = np.zeros(n_targets, dtype=np.int64)
    active = np.ones(n_targets, dtype=bool)
    per_call = max(1, batch_size // d)
    while active.any():
        act_all = np.flatnonzero(active)
        for chunk_lo in range(0, act_all.size, per_call):
            act = act_all[chunk_lo:chunk_lo + per_call]
            Xq = np.repeat(x[act], d, axis=0).reshape(act.size, d, d)
            Xq[:, np.arange(d), np.arange(d)] *= -1.0
            s = scorer(Xq.reshape(-1, d), np.repeat(act, d)).reshape(act.size, d)
            n_q[act] += d
            n_ev[act] += d
            best = s.argmax(axis=1)
            gain = s[np.arange(act.size), best] > current[act]
            done = act[~gain]
            converged[done] = True
            active[done] = False
            g = act[gain]
            x[g, best[gain]] *= -1.0
            current[g] = s[np.flatnonzero(gain), best[gain]]
            steps[g] += 1
            full = g[steps[g] % d == 0]
            stop = full[epochs[full] >= max_epochs]
            active[stop] = False
            epochs[np.setdiff1d(full, stop)] += 1


def _goal_log_prob(z, labels):
    """``log softmax(z)[r, labels[r]]`` for logits ``z`` (batch, C), accurate also when it is close to 0."""
    import torch  # torch is heavy: imported on first use

    rows = torch.arange(z.shape[0])
    zg = z[rows, labels]
    others = z.clone()
    others[rows, labels] = -float("inf")
    if z.shape[1] == 1:
        return torch.zeros_like(zg)
    return -torch.nn.functional.softplus(torch.logsumexp(others, dim=1) - zg)


def log_prob_scorer(model, *, goal: int | None = None, batch_size: int = 4096):
    """A score callable from a torch module returning logits (or log-probabilities), shape (batch, n_classes).

    The goal log-probability is computed as ``log p_g = −softplus(logsumexp_{c≠g} z_c − z_g)``, which keeps
    full relative precision when ``p_g ≈ 1``; a plain float32 ``log_softmax`` rounds ``log p_g`` to exactly 0
    for a confident model and hides every flip from the attacks.

    Parameters
    ----------
    model : torch.nn.Module or callable on a float32 tensor (batch, d)
    goal : int, optional, keyword-only
        Fixed goal label: returns ``score(X)``; otherwise returns ``score(X, labels)``.
    batch_size : int, keyword-only
        Rows per forward pass.
    """
    import torch  # torch is heavy: imported on first use

    batch_size = check_int("batch_size", batch_size, min_value=1)

    def _log_prob(X, labels):
        X = torch.as_tensor(np.asarray(X, dtype=np.float32))
        labels = torch.as_tensor(np.asarray(labels, dtype=np.int64))
        out = []
        with torch.no_grad():
            for lo in range(0, X.shape[0], batch_size):
                z = model(X[lo:lo + batch_size]).float()
                out.append(_goal_log_prob(z, labels[lo:lo + batch_size]))
        return torch.cat(out).double().numpy() if out else np.zeros(0)

    if goal is not None:
        goal = check_int("goal", goal, min_value=0)
        return lambda X: _log_prob(X, np.full(np.shape(X)[0], goal))
    return _log_prob
