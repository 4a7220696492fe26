"""Replay storage for many tasks, with context and future windows built by index.

Every transition (s, a, r, s', terminated) is stored once per task, in float32, in one ring
buffer per task (all tasks in one array of shape [tasks, capacity, ...]); a state is stored once
too: a step's s' is the next slot's s, apart from each episode's last s' (kept beside the ring
while its slot lives) and the running episode's newest. A sampled step i can bring along

* its **context**: the K previous (state difference s'-s, action) pairs of the same episode,
  zero-padded before the episode start (the input of the context encoder C), both for z_t
  (steps i-K..i-1) and for z_{t+1} (steps i-K+1..i), as two views of one gathered window;
* its **future**: the M transitions i..i+M-1 of the same episode with a validity mask (the
  targets of the forward model's multi-step loss, paper Eq. 1);
* its **Monte-Carlo return**, computed when the episode ends (for self-imitation learning).

Windows are gathered with one fancy-index per field for all tasks and samples at once. Episode
membership is decided by a per-slot episode id, so a window never crosses an episode boundary,
the write pointer, or data overwritten by the ring.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mcat.errors import MCATError

FloatArray = np.ndarray


@dataclass
class ReplayBatch:
    """A batch of B samples for each of T tasks; every array is task-major, shape [T, B, ...]."""

    tasks: np.ndarray  # [T] task index of each row
    slot: np.ndarray  # [T, B] storage slot of each sample (for priorities and debugging)
    obs: FloatArray  # [T, B, obs]
    act: FloatArray  # [T, B, act]
    rew: FloatArray  # [T, B]
    next_obs: FloatArray  # [T, B, obs]
    done: FloatArray  # [T, B] 1.0 where the episode terminated (not truncated) at this step
    mc_return: FloatArray  # [T, B] discounted return from this step to the episode end
    mc_valid: FloatArray  # [T, B] 1.0 where the episode has ended, so mc_return is known
    ctx_delta: FloatArray  # [T, B, K, obs] s'-s of steps i-K..i-1 (oldest first), 0 if invalid
    ctx_act: FloatArray  # [T, B, K, act]
    ctx_mask: FloatArray  # [T, B, K] 1.0 where the step belongs to the episode of step i
    next_ctx_delta: FloatArray  # [T, B, K, obs] the same for steps i-K+1..i (context of s')
    next_ctx_act: FloatArray  # [T, B, K, act]
    next_ctx_mask: FloatArray  # [T, B, K]
    ctx_obs: FloatArray  # [T, B, K, obs] s of steps i-K..i-1 (0 if invalid; MQL's context)
    ctx_rew: FloatArray  # [T, B, K] their rewards
    next_ctx_obs: FloatArray  # [T, B, K, obs] the same for steps i-K+1..i
    next_ctx_rew: FloatArray  # [T, B, K]
    fut_obs: FloatArray  # [T, B, M, obs] s of steps i..i+M-1 (fut_obs[:, :, 0] == obs)
    fut_act: FloatArray  # [T, B, M, act]
    fut_delta: FloatArray  # [T, B, M, obs] s'-s of those steps
    fut_mask: FloatArray  # [T, B, M] 1.0 where the step exists in the same episode


def discounted_returns(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """R_t = r_t + gamma * R_{t+1}, with R after the last step = 0 (float64 accumulation).

    Runs once per finished episode, never per sampled transition."""
    out = np.empty(len(rewards), dtype=np.float64)
    acc = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        acc = float(rewards[t]) + gamma * acc
        out[t] = acc
    return out


class MultiTaskReplay:
    """Ring buffers of transitions for ``num_tasks`` tasks, ``capacity`` transitions each.

    ``capacity`` must exceed the longest episode (an episode may not overwrite itself).
    """

    def __init__(
        self,
        num_tasks: int,
        obs_dim: int,
        act_dim: int,
        capacity: int,
        gamma: float = 0.99,
        seed: int | None = 0,
    ):
        for name, value in (
            ("num_tasks", num_tasks),
            ("obs_dim", obs_dim),
            ("act_dim", act_dim),
            ("capacity", capacity),
        ):
            if int(value) != value or value < 1:
                raise MCATError(f"replay {name} must be a positive integer, got {value!r}")
        if not 0.0 <= gamma <= 1.0:
            raise MCATError(f"replay gamma must be in [0, 1], got {gamma!r}")
        T, C = int(num_tasks), int(capacity)
        self.num_tasks, self.capacity, self.obs_dim, self.act_dim = T, C, int(obs_dim), int(act_dim)
        self.gamma = float(gamma)
        self._allocate(T, C)
        self.ptr = np.zeros(T, dtype=np.int64)  # next slot to write
        self.size = np.zeros(T, dtype=np.int64)  # filled slots
        self.current_episode = np.zeros(T, dtype=np.int64)  # id of the episode being written
        self.episode_length = np.zeros(T, dtype=np.int64)  # steps written of that episode
        self.rng = np.random.default_rng(seed)

    def _allocate(self, T: int, C: int) -> None:
        """The stored arrays, [tasks, capacity, ...]."""
        self.obs = np.zeros((T, C, self.obs_dim), dtype=np.float32)
        self.act = np.zeros((T, C, self.act_dim), dtype=np.float32)
        self.rew = np.zeros((T, C), dtype=np.float32)
        self.terminated = np.zeros((T, C), dtype=bool)
        self.mc_return = np.zeros((T, C), dtype=np.float32)
        self.episode = np.full((T, C), -1, dtype=np.int32)  # episode id of each slot, -1 = empty
        # s' is stored once: it is the next slot's s, except after an episode's last step and
        # after the newest step of the running episode. Those s' wait in ``last_obs``: per task a
        # first-in-first-out ring of the ended episodes' last s' (entries 0..F-1, grown when
        # full) and the running episode's newest s' (entry F). ``last_ref`` says which entry
        # holds a slot's s' (-1: the next slot's s). A slot's successor is always overwritten
        # after the slot itself, so the next slot's s is there for as long as the slot is.
        self.last_ref = np.full((T, C), -1, dtype=np.int32)
        self.last_obs = np.zeros((T, 2, self.obs_dim), dtype=np.float32)
        self.last_head = np.zeros(T, dtype=np.int64)  # oldest entry in use
        self.last_count = np.zeros(T, dtype=np.int64)  # entries in use

    # ------------------------------------------------------------------ writing
    def add(
        self,
        obs: np.ndarray,
        act: np.ndarray,
        rew: np.ndarray,
        next_obs: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        tasks: np.ndarray | None = None,
    ) -> None:
        """Append one transition for each task in ``tasks`` (default: all tasks, in order).

        Arrays have a leading dimension of len(tasks). An episode ends where ``terminated`` or
        ``truncated`` is true; its Monte-Carlo returns are computed then.
        """
        tasks = (
            np.arange(self.num_tasks)
            if tasks is None
            else np.asarray(tasks, dtype=np.int64).reshape(-1)
        )
        check_added_tasks([tasks.tolist()], self.num_tasks)
        check_episode_room(int(self.episode_length[tasks].max(initial=0)), self.capacity)
        slots = self.ptr[tasks]
        ended = np.asarray(terminated, dtype=bool).reshape(-1) | np.asarray(
            truncated, dtype=bool
        ).reshape(-1)
        self._write(tasks, slots, obs, act, rew, next_obs, terminated)
        self._keep_next(tasks, slots, obs, next_obs, ended)
        self.ptr[tasks] = (slots + 1) % self.capacity
        self.size[tasks] = np.minimum(self.size[tasks] + 1, self.capacity)
        self.episode_length[tasks] += 1
        for task in tasks[ended]:
            self._finish_episode(int(task))

    def _write(self, tasks, slots, obs, act, rew, next_obs, terminated) -> None:
        """Store one transition per task at ``slots`` (counters are the caller's)."""
        self.obs[tasks, slots] = obs
        self.act[tasks, slots] = act
        self.rew[tasks, slots] = rew
        self.terminated[tasks, slots] = terminated
        self.mc_return[tasks, slots] = 0.0
        self.episode[tasks, slots] = self.current_episode[tasks]

    def _keep_next(self, tasks, slots, obs, next_obs, ended) -> None:
        """Where the s' of the transitions just written at ``slots`` are kept (see
        :meth:`_allocate`); called before the counters move."""
        # (once per env step: the common case, no entry freed or kept, in few NumPy calls)
        F = self.last_obs.shape[1] - 1
        # an ended episode's entry whose slot is overwritten now is the oldest in use
        old = self.last_ref[tasks, slots]
        freed = (old >= 0) & (old < F)
        if freed.any():
            self.last_head[tasks[freed]] = (self.last_head[tasks[freed]] + 1) % F
            self.last_count[tasks[freed]] -= 1
        # the running episode's previous step: its s' is this step's s (a collector's data,
        # bit for bit), or else (data written another way) it keeps an entry of its own
        going = self.episode_length[tasks] > 0
        if going.any():
            t, prev = tasks[going], (slots[going] - 1) % self.capacity
            s = np.asarray(obs, dtype=np.float32).reshape(len(tasks), -1)[going]
            same = (s.view(np.int32) == self.last_obs[t, F].view(np.int32)).all(1)
            if same.all():
                self.last_ref[t, prev] = -1
            else:
                self.last_ref[t[same], prev[same]] = -1
                for k in np.flatnonzero(~same):
                    self._keep_apart(int(t[k]), int(prev[k]), self.last_obs[t[k], -1].copy())
        F = self.last_obs.shape[1] - 1
        self.last_ref[tasks, slots] = F
        self.last_obs[tasks, F] = next_obs
        if ended.any():  # the episode's last s' for as long as its slot lives
            for k in np.flatnonzero(ended):
                t_k = int(tasks[k])
                self._keep_apart(t_k, int(slots[k]), self.last_obs[t_k, -1].copy())

    def _keep_apart(self, task: int, slot: int, next_obs: np.ndarray) -> None:
        """``next_obs`` as the s' of ``slot`` in a new entry of ``task``'s ring."""
        if self.last_count[task] == self.last_obs.shape[1] - 1:
            self._grow_last()
        F = self.last_obs.shape[1] - 1
        entry = (self.last_head[task] + self.last_count[task]) % F
        self.last_obs[task, entry] = next_obs
        self.last_ref[task, slot] = entry
        self.last_count[task] += 1

    def _grow_last(self) -> None:
        """Twice the entries for ended episodes, every task's in use moved to the front in
        order (episodes shorter than the replay's capacity / entries need more)."""
        T, F = self.num_tasks, self.last_obs.shape[1] - 1
        grown = np.zeros((T, 2 * F + 1, self.obs_dim), dtype=np.float32)
        for t in range(T):
            order = (self.last_head[t] + np.arange(self.last_count[t])) % F
            grown[t, : len(order)] = self.last_obs[t, order]
            refs = self.last_ref[t]
            running = refs == F
            kept = (refs >= 0) & ~running
            refs[kept] = (refs[kept] - self.last_head[t]) % F
            refs[running] = 2 * F
        grown[:, 2 * F] = self.last_obs[:, F]
        self.last_obs, self.last_head[:] = grown, 0

    def next_obs_at(self, tasks: int | np.ndarray, slots: np.ndarray) -> np.ndarray:
        """s' of the transitions at ``slots`` of ``tasks`` (broadcast together; a slot never
        written gives zeros)."""
        flat = np.asarray(tasks) * self.capacity + np.asarray(slots)
        return self._next_flat(flat, np.take(self._flat(self.episode), flat) < 0)

    def _next_flat(self, flat: np.ndarray, empty: np.ndarray) -> np.ndarray:
        """s' of the flat slots ``flat`` (task * capacity + slot), given which are empty: the
        next slot's s in one gather, as s itself is read, then the few kept apart."""
        C = self.capacity
        out = np.take(self._flat(self.obs), flat - flat % C + (flat + 1) % C, axis=0)
        ref = np.take(self._flat(self.last_ref), flat).reshape(-1)
        kept = np.flatnonzero(ref >= 0)
        if kept.size:
            rows = out.reshape(-1, self.obs_dim)  # a view: out is a fresh array
            rows[kept] = self.last_obs[flat.reshape(-1)[kept] // C, ref[kept]]
        if empty.any():
            out[empty] = 0.0
        return out

    def _finish_episode(self, task: int) -> None:
        length = int(self.episode_length[task])
        slots = oldest_first(int(self.ptr[task]), length, self.capacity)
        self._write_returns(task, slots, discounted_returns(self._rewards(task, slots), self.gamma))
        self.current_episode[task] += 1
        self.episode_length[task] = 0

    def _rewards(self, task: int, slots: np.ndarray) -> np.ndarray:
        return self.rew[task, slots]

    def _write_returns(self, task: int, slots: np.ndarray, returns: np.ndarray) -> None:
        self.mc_return[task, slots] = returns

    # ------------------------------------------------------------------ reading
    def sample(
        self,
        batch_size: int,
        context: int = 0,
        future: int = 0,
        tasks: np.ndarray | None = None,
        rng: np.random.Generator | None = None,
    ) -> ReplayBatch:
        """``batch_size`` uniformly drawn transitions of each task in ``tasks`` (default all),
        with ``context`` (K) steps of history and ``future`` (M) steps ahead."""
        if int(batch_size) != batch_size or batch_size < 1:
            raise MCATError(f"batch size must be a positive integer, got {batch_size!r}")
        if context < 0 or future < 0:
            raise MCATError(
                f"context and future window lengths must be >= 0, got {context}, {future}"
            )
        tasks = (
            np.arange(self.num_tasks)
            if tasks is None
            else np.asarray(tasks, dtype=np.int64).reshape(-1)
        )
        empty = tasks[self.size[tasks] == 0]
        if empty.size:
            raise MCATError(f"cannot sample: task(s) {empty.tolist()} have no stored transitions")
        rng = self.rng if rng is None else rng
        C = self.capacity
        # While a ring is filling, its slots 0..size-1 are the stored ones; once full, all are.
        slot = (rng.random((len(tasks), int(batch_size))) * self.size[tasks, None]).astype(np.int64)
        base = (tasks * C)[:, None]
        flat = base + slot
        K, M = int(context), int(future)
        # One window per sample covers steps i-K .. i+max(M,1)-1: the context of z_t (i-K..i-1),
        # of z_{t+1} (i-K+1..i), the sample itself (i) and the future (i..i+M-1).
        offsets = np.arange(-K, max(M, 1))
        j = base[..., None] + (slot[..., None] + offsets) % C  # [T, B, W] flat indices
        ep = np.take(self._flat(self.episode), flat)
        ep_j = np.take(self._flat(self.episode), j)
        mask = (ep_j == ep[..., None]).astype(np.float32)
        obs = np.take(self._flat(self.obs), j, axis=0)
        delta = self._next_flat(j, ep_j < 0)
        next_obs = delta[:, :, K].copy()  # the sample's own s', before the window's in-place edits
        delta -= obs  # s' - s
        act = np.take(self._flat(self.act), j, axis=0)
        rew = np.take(self._flat(self.rew), j) if K else np.zeros(j.shape, np.float32)
        # Zero every step outside the sample's episode, in place (the sample itself is always
        # valid, so its own obs and act are untouched); the fields below are views.
        for array in (obs, delta, act):
            array *= mask[..., None]
        rew *= mask
        i = K  # position of the sample in the window
        return ReplayBatch(
            tasks=tasks,
            slot=slot,
            obs=obs[:, :, i],
            act=act[:, :, i],
            rew=np.take(self._flat(self.rew), flat),
            next_obs=next_obs,
            done=np.take(self._flat(self.terminated), flat).astype(np.float32),
            mc_return=np.take(self._flat(self.mc_return), flat),
            mc_valid=(ep != self.current_episode[tasks, None]).astype(np.float32),
            ctx_delta=delta[:, :, :K],
            ctx_act=act[:, :, :K],
            ctx_mask=mask[:, :, :K],
            next_ctx_delta=delta[:, :, 1 : K + 1],
            next_ctx_act=act[:, :, 1 : K + 1],
            next_ctx_mask=mask[:, :, 1 : K + 1],
            ctx_obs=obs[:, :, :K],
            ctx_rew=rew[:, :, :K],
            next_ctx_obs=obs[:, :, 1 : K + 1],
            next_ctx_rew=rew[:, :, 1 : K + 1],
            fut_obs=obs[:, :, i : i + M],
            fut_act=act[:, :, i : i + M],
            fut_delta=delta[:, :, i : i + M],
            fut_mask=mask[:, :, i : i + M],
        )

    def _flat(self, array: np.ndarray) -> np.ndarray:
        """[T, C, ...] -> [T*C, ...] view."""
        return array.reshape(self.num_tasks * self.capacity, *array.shape[2:])

    # ------------------------------------------------------------------ checkpointing
    _ARRAYS = ("obs", "act", "rew", "terminated", "mc_return", "episode", "last_ref")
    _COUNTERS = ("ptr", "size", "current_episode", "episode_length")
    _LAST: tuple[str, ...] = ("last_obs", "last_head", "last_count")  # saved whole

    def state_dict(self, contents: bool = True) -> dict:
        """Counters and sampling generator and, with ``contents``, the stored transitions (the
        filled slots only; NumPy arrays shared with the store, not copied, once it is full)."""
        state = {name: getattr(self, name).copy() for name in self._COUNTERS}
        state["rng"] = self.rng.bit_generator.state
        state["shape"] = [self.num_tasks, self.capacity, self.obs_dim, self.act_dim]
        if contents:
            state["arrays"] = self._stored(int(self.size.max()))
            state.update(self._stored_last())
        return state

    def _stored_last(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in self._LAST}

    def _stored(self, filled: int) -> dict[str, np.ndarray]:
        """The first ``filled`` slots of every stored array (views, not copies)."""
        return {name: getattr(self, name)[:, :filled] for name in self._ARRAYS}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        for name in self._ARRAYS:
            if name not in arrays:  # last_ref in a checkpoint of every s': _restore_last
                continue
            saved = arrays[name]
            getattr(self, name)[:, : saved.shape[1]] = saved

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`. Without stored transitions the store starts empty (its
        generator and nothing else is restored)."""
        shape = [self.num_tasks, self.capacity, self.obs_dim, self.act_dim]
        saved_shape = list(state["shape"])
        if saved_shape != shape and self._can_grow(saved_shape):
            state = _grown(state, self.capacity) if "arrays" in state else state
        elif saved_shape != shape:
            raise MCATError(
                f"saved replay has shape (tasks, capacity, obs, act) {list(state['shape'])}, "
                f"this one {shape}"
            )
        self.rng.bit_generator.state = state["rng"]
        if "arrays" not in state:
            return
        for name in self._COUNTERS:
            getattr(self, name)[...] = state[name]
        self._restore(state["arrays"])
        self._restore_last(state)

    def _restore_last(self, state: dict) -> None:
        """The s' kept apart (:meth:`_allocate`): saved as they are or, from a checkpoint that
        stored every s' (before 2026-12-07, and the fast path's), picked from those."""
        if "last_obs" in state:
            self.last_obs = np.array(state["last_obs"], dtype=np.float32)
            self.last_head[...] = state["last_head"]
            self.last_count[...] = state["last_count"]
            return
        self._link_saved_next(np.asarray(state["arrays"]["next_obs"]))

    def _link_saved_next(self, saved: np.ndarray) -> None:
        """:meth:`_restore_last` from every slot's saved s' ([tasks, filled, obs])."""
        C = self.capacity
        self.last_ref[...] = -1
        links = []
        for t in range(self.num_tasks):
            n, p = int(self.size[t]), int(self.ptr[t])
            order = oldest_first(p, n, C)
            ep = self.episode[t, order]
            last = np.ones(n, dtype=bool)  # no successor in its episode whose s is its s'
            same = saved[t, order[:-1]].view(np.int32) == self.obs[t, order[1:]].view(np.int32)
            last[:-1] = (ep[1:] != ep[:-1]) | ~same.all(1)
            running = np.zeros(n, dtype=bool)  # the newest step of the running episode
            running[-1:] = ep[-1:] == self.current_episode[t]
            links.append((order[last & ~running], order[running]))
        F = max(1, *(len(ended) for ended, _ in links))
        self.last_obs = np.zeros((self.num_tasks, F + 1, self.obs_dim), dtype=np.float32)
        for t, (ended, running) in enumerate(links):
            self.last_obs[t, : len(ended)] = saved[t, ended]
            self.last_ref[t, ended] = np.arange(len(ended))
            self.last_obs[t, F] = saved[t, running] if len(running) else 0.0
            self.last_ref[t, running] = F
            self.last_count[t] = len(ended)
        self.last_head[:] = 0

    def _can_grow(self, saved_shape: list[int]) -> bool:
        """Whether a saved store of ``saved_shape`` fits in this one by growing: the same tasks
        and dimensions, a smaller capacity (a run whose budget was raised: its capacity is
        sized by the budget, see :meth:`mcat.train.Trainer`)."""
        tasks, capacity, obs_dim, act_dim = saved_shape
        same = (tasks, obs_dim, act_dim) == (self.num_tasks, self.obs_dim, self.act_dim)
        return same and capacity < self.capacity

    # ------------------------------------------------------------------ accounting
    @property
    def nbytes(self) -> int:
        """Bytes held by the stored arrays (all slots, filled or not)."""
        arrays = (
            self.obs,
            self.act,
            self.rew,
            self.terminated,
            self.mc_return,
            self.episode,
            self.last_ref,
            self.last_obs,
        )
        return int(sum(a.nbytes for a in arrays))

    def raw_transition_bytes(self) -> int:
        """Bytes of one bare transition: float32 s, a, r, s' and a one-byte done flag."""
        return 4 * (2 * self.obs_dim + self.act_dim + 1) + 1

    def bytes_per_transition(self) -> float:
        return self.nbytes / (self.num_tasks * self.capacity)

    def __len__(self) -> int:
        return int(self.size.sum())


def check_added_tasks(rows: list[list[int]], num_tasks: int) -> None:
    """The task indices of a replay's ``add`` (one list per seed): each task at most once a
    call, each one of the replay's. In plain Python: a handful of tasks, once per env step
    (NumPy's unique, min and max cost several times as much at this size, on the fast path's
    host side)."""
    if any(len(set(row)) != len(row) for row in rows):
        raise MCATError("replay.add got the same task twice in one call")
    if any(row and (min(row) < 0 or max(row) >= num_tasks) for row in rows):
        raise MCATError(f"replay.add got a task index outside 0..{num_tasks - 1}")


def check_episode_room(longest: int, capacity: int) -> None:
    """An episode of ``longest`` steps written so far can take one more (its whole episode must
    stay in the ring for its Monte-Carlo returns)."""
    if longest + 1 >= capacity:
        raise MCATError(
            f"an episode reached the replay capacity ({capacity}); use a larger capacity"
        )


def oldest_first(end: int, n: int, capacity: int) -> np.ndarray:
    """The ring slots of the ``n`` writes before slot ``end``, oldest first."""
    return (end - n + np.arange(n)) % capacity


def _grown(state: dict, capacity: int) -> dict:
    """A saved store's state laid out for a larger ``capacity``: each task's stored transitions
    oldest first from slot 0 (unchanged for a ring that never wrapped, so that sampling draws
    what a store of the larger capacity would have), its write pointer after them."""
    size, ptr = np.asarray(state["size"]), np.asarray(state["ptr"])
    old = int(state["shape"][1])
    filled = int(size.max())
    order = np.zeros((len(size), filled), dtype=np.int64)
    for t, (n, p) in enumerate(zip(size.tolist(), ptr.tolist(), strict=True)):
        order[t, :n] = oldest_first(p, n, old)
    valid = np.arange(filled)[None, :] < size[:, None]
    arrays = {}
    for name, saved in state["arrays"].items():
        saved = np.asarray(saved)
        grown = np.take_along_axis(saved, order.reshape(*order.shape, *[1] * (saved.ndim - 2)), 1)
        fill = np.full_like(grown, -1 if name in ("episode", "last_ref") else 0)  # never written
        arrays[name] = np.where(valid.reshape(*valid.shape, *[1] * (saved.ndim - 2)), grown, fill)
    shape = [state["shape"][0], capacity, *state["shape"][2:]]
    return {**state, "arrays": arrays, "ptr": size % capacity, "shape": shape}


def with_every_next_obs(state: dict) -> dict:
    """A saved store's state (:meth:`MultiTaskReplay.state_dict`) with every slot's s' among its
    arrays, as ``next_obs`` (the layout of the fast path's device replay)."""
    arrays = state.get("arrays")
    if arrays is None or "next_obs" in arrays:
        return state
    obs, ref = np.asarray(arrays["obs"]), np.asarray(arrays["last_ref"])
    n = obs.shape[1]
    after = np.arange(1, n + 1)
    after[-1] = 0 if n == int(state["shape"][1]) else n  # the ring's wrap, or past the filled
    out = np.concatenate([obs, np.zeros_like(obs[:, :1])], axis=1)[:, after]
    kept = ref >= 0
    out[kept] = np.asarray(state["last_obs"])[np.nonzero(kept)[0], ref[kept]]
    out[np.asarray(arrays["episode"]) < 0] = 0.0
    return {**state, "arrays": {**arrays, "next_obs": out}}
