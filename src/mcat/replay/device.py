"""The replay of the fast path: the same per-task rings as :class:`MultiTaskReplay`, held on the
learner's device (a GPU), for several independent runs (seeds) at once.

Rows are (seed, task) pairs, seed-major: row ``s * T + t``. Each seed's collector writes through
its :class:`SeedReplay` view, which keeps the small counters (write pointer, size, episode ids)
on the host, exactly as :class:`MultiTaskReplay` does, and queues the transitions; ``flush()``
then moves everything queued in one round of collection to the device in one copy. The views'
counters are rows of the store's [seeds, tasks] arrays, so :meth:`DeviceReplay.add` writes a
round of every seed's transitions in one set of NumPy operations, as the views' ``add`` one
seed after the other would. Sampling
(:meth:`DeviceReplay.gather`) builds the same context and future windows as
:meth:`MultiTaskReplay.sample`, on the device, from uniform numbers the caller draws (each seed
from its own generator), so it is a fixed sequence of kernels with no host synchronisation and
can be captured in a CUDA graph.

Transitions are stored once, on the device. The host keeps a copy of the rewards only (4 bytes a
transition), from which the Monte-Carlo returns of an episode are computed when it ends.
"""

from __future__ import annotations

import numpy as np
import torch

from mcat.errors import MCATError
from mcat.replay.store import (
    MultiTaskReplay,
    check_added_tasks,
    check_episode_room,
    with_every_next_obs,
)


class DeviceReplay:
    """Rings of ``capacity`` transitions for ``seeds`` x ``num_tasks`` rows on ``device``."""

    def __init__(
        self,
        seeds: int,
        num_tasks: int,
        obs_dim: int,
        act_dim: int,
        capacity: int,
        gamma: float = 0.99,
        device: torch.device | str = "cpu",
        graphs: bool | None = None,
    ):
        R, C = seeds * num_tasks, capacity
        if R * C >= 2**31:  # flush sends slot numbers as 32-bit integers
            raise MCATError(
                f"the device replay holds at most 2^31 transitions, asked for {R * C:,} "
                f"({seeds} seeds x {num_tasks} tasks x capacity {capacity:,})"
            )
        self.seeds, self.num_tasks, self.rows, self.capacity = seeds, num_tasks, R, C
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.device = dev = torch.device(device)

        def zeros(*shape: int) -> torch.Tensor:
            return torch.zeros(*shape, dtype=torch.float32, device=dev)

        self.obs = zeros(R * C, obs_dim)
        self.act = zeros(R * C, act_dim)
        self.rew = zeros(R * C)
        self.next_obs = zeros(R * C, obs_dim)
        self.terminated = zeros(R * C)
        self.mc_return = zeros(R * C)
        self.episode = torch.full((R * C,), -1, dtype=torch.int32, device=dev)
        # per row: filled slots and the id of the episode being written (read by gather)
        self.size = zeros(R)
        self.current_episode = torch.zeros(R, dtype=torch.int32, device=dev)
        self._width = 2 * obs_dim + act_dim + 2
        # a CUDA stream whose work (gradient steps reading this replay) writes must wait for
        self.wait_for: torch.cuda.Stream | None = None
        # flush's staging buffers (host, device), its scatter graphs and the last copy's event
        cuda = dev.type == "cuda"
        self.graphs = cuda if graphs is None else graphs
        host = torch.empty(0, dtype=torch.float32, pin_memory=cuda)
        self._words = (host, torch.empty(0, device=dev) if cuda else host)
        self._graphs: dict[int, torch.cuda.CUDAGraph] = {}
        self._scatter_calls: dict[int, int] = {}
        self._copied: torch.cuda.Event | None = None
        # the host side: every seed's counters ([seeds, tasks], each view's are its row), the
        # rewards from which episodes' returns are computed, and what the next flush writes
        self.counters = {
            name: np.zeros((seeds, num_tasks), dtype=np.int64) for name in SeedReplay._COUNTERS
        }
        self.host_rew = np.zeros((seeds, num_tasks, C), dtype=np.float32)
        self._rows = np.arange(R).reshape(seeds, num_tasks)  # flat (seed, task) rows of these
        self._queue: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._returns: list[tuple[np.ndarray, np.ndarray]] = []
        # the checks and counters of the ordinary replay, one view per seed
        self.views = [
            SeedReplay(self, s, num_tasks, obs_dim, act_dim, capacity, gamma) for s in range(seeds)
        ]

    def add(
        self,
        tasks: np.ndarray,
        obs: np.ndarray,
        act: np.ndarray,
        rew: np.ndarray,
        next_obs: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        seeds: list[int] | None = None,
    ) -> None:
        """One transition of each task in ``tasks`` ([S, n], n distinct tasks a seed) for each
        of the S seeds ``seeds`` (default all): what :meth:`MultiTaskReplay.add` does on each
        seed's view in turn (the same checks, counters and episode returns), in one go; the
        transitions are queued for :meth:`flush`."""
        T, C = self.num_tasks, self.capacity
        first = self._rows[:, :1] if seeds is None else self._rows[seeds, :1]  # [S, 1]
        S = len(first)
        tasks = np.asarray(tasks, dtype=np.int64).reshape(S, -1)
        n = tasks.shape[1]
        check_added_tasks(tasks.tolist(), T)
        rows = (first + tasks).reshape(-1)  # the counters' flat rows (seed, task)
        counts = self.counters
        ptr, size = counts["ptr"].reshape(-1), counts["size"].reshape(-1)
        episode, length = (
            counts["current_episode"].reshape(-1),
            counts["episode_length"].reshape(-1),
        )
        check_episode_room(int(length[rows].max(initial=0)), C)
        slots = ptr[rows]
        ended = np.asarray(terminated, dtype=bool).reshape(-1) | np.asarray(
            truncated, dtype=bool
        ).reshape(-1)
        rew = np.asarray(rew, dtype=np.float32).reshape(-1)
        self.host_rew.reshape(-1, C)[rows, slots] = rew
        packed = np.concatenate(
            [
                np.asarray(obs, dtype=np.float32).reshape(S * n, -1),
                np.asarray(act, dtype=np.float32).reshape(S * n, -1),
                rew[:, None],
                np.asarray(next_obs, dtype=np.float32).reshape(S * n, -1),
                np.asarray(terminated, dtype=np.float32).reshape(-1, 1),
            ],
            axis=1,
        )
        self._queue.append((rows * C + slots, episode[rows], packed))
        ptr[rows] = (slots + 1) % C
        size[rows] = np.minimum(size[rows] + 1, C)
        length[rows] += 1
        if ended.any():
            for row in rows[ended].tolist():
                self.views[row // T]._finish_episode(row % T)

    def flush(self) -> None:
        """Write every queued transition and finished episode's returns to the device.

        Everything goes in one buffer of 32-bit words (integers as their bit patterns), one
        copy: [transitions n x width | slots n, episode ids n, counters 2R | returns m, their
        slots m]. The first part has the same layout in every round of collection (n = the
        seeds' environments), so on a GPU its scatter into the rings is one CUDA graph replay;
        the returns of episodes that ended (now and then) are written eagerly after it."""
        queued, mc = self._queue, self._returns
        n = sum(len(q[0]) for q in queued)
        m = sum(len(f) for f, _ in mc)
        fixed = n * self._width + 2 * n + 2 * self.rows
        words = self._stage(fixed + 2 * m)
        host = words[0].numpy()
        as_int = host.view(np.int32)
        if n:
            at = n * self._width
            host[:at] = np.concatenate([q[2] for q in queued]).reshape(-1)
            as_int[at : at + n] = np.concatenate([q[0] for q in queued])
            as_int[at + n : at + 2 * n] = np.concatenate([q[1] for q in queued])
        as_int[fixed - 2 * self.rows : fixed - self.rows] = self.counters["size"].reshape(-1)
        as_int[fixed - self.rows : fixed] = self.counters["current_episode"].reshape(-1)
        if m:
            host[fixed : fixed + m] = np.concatenate([r for _, r in mc])
            as_int[fixed + m : fixed + 2 * m] = np.concatenate([f for f, _ in mc])
        if self.wait_for is not None:
            torch.cuda.current_stream().wait_stream(self.wait_for)
        staged = self._upload(words, fixed + 2 * m)
        self._run_scatter(staged, n)
        if m:
            ints = staged.view(torch.int32)
            self.mc_return[ints[fixed + m : fixed + 2 * m].long()] = staged[fixed : fixed + m]
        queued.clear()
        mc.clear()

    def _scatter(self, staged: torch.Tensor, n: int) -> None:
        """The transitions and counters of :meth:`flush`'s buffer into the rings."""
        w, o, a = self._width, self.obs_dim, self.act_dim
        ints = staged.view(torch.int32)
        if n:
            packed = staged[: n * w].view(n, w)
            flat = ints[n * w : n * w + n].long()
            self.obs[flat] = packed[:, :o]
            self.act[flat] = packed[:, o : o + a]
            self.rew[flat] = packed[:, o + a]
            self.next_obs[flat] = packed[:, o + a + 1 : 2 * o + a + 1]
            self.terminated[flat] = packed[:, -1]
            self.mc_return.index_fill_(0, flat, 0.0)  # a scalar fill: capturable
            self.episode[flat] = ints[n * w + n : n * w + 2 * n]
        tail = ints[n * w + 2 * n : n * w + 2 * n + 2 * self.rows].view(2, self.rows)
        self.size.copy_(tail[0])
        self.current_episode.copy_(tail[1])

    def _run_scatter(self, staged: torch.Tensor, n: int) -> None:
        """:meth:`_scatter`, on a GPU as one CUDA graph per ``n`` once it ran twice (a graph
        reads the kept device buffer; the graphs are dropped when that buffer is replaced)."""
        if not self.graphs or not n or staged.data_ptr() != self._words[1].data_ptr():
            self._scatter(staged, n)
            return
        graph = self._graphs.get(n)
        if graph is None:
            calls = self._scatter_calls[n] = self._scatter_calls.get(n, 0) + 1
            if calls <= 2:  # warm-up before capture (CUDA graph docs)
                self._scatter(staged, n)
                return
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                self._scatter(staged, n)
            self._graphs[n] = graph
        graph.replay()

    KEEP_WORDS = 1 << 20  # a larger buffer (a whole replay's transitions) is used once, not kept

    def _stage(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(host buffer, device buffer) of at least ``count`` 32-bit words: the kept pair, or a
        larger one (then kept unless it is very large). On a GPU the host side is pinned memory,
        written only once the copy that last read it is done."""
        if self._copied is not None:
            self._copied.synchronize()
        if count <= self._words[0].numel():
            return self._words
        cuda = self.device.type == "cuda"
        size = max(count, 2 * self._words[0].numel())
        host = torch.empty(size, dtype=torch.float32, pin_memory=cuda)
        pair = (host, torch.empty(size, dtype=torch.float32, device=self.device) if cuda else host)
        if size <= self.KEEP_WORDS:
            self._words, self._graphs, self._scatter_calls = pair, {}, {}
        return pair

    def _upload(self, words: tuple[torch.Tensor, torch.Tensor], count: int) -> torch.Tensor:
        """The first ``count`` words on the device: on a GPU one copy from pinned memory that
        does not hold the host (a copy from pageable memory would first wait for the stream,
        which waits for the gradient step in flight)."""
        host, device = words
        if host is device:
            return device
        device[:count].copy_(host[:count], non_blocking=True)
        self._copied = torch.cuda.Event()
        self._copied.record()
        return device

    def gather(self, u: torch.Tensor, context: int = 0, future: int = 0) -> dict[str, torch.Tensor]:
        """Samples of every row, row-major [R, B, ...], drawn by ``u`` (uniform in [0, 1), [R, B]),
        with the fields and window layout of :class:`mcat.replay.ReplayBatch` (same validity rules:
        a window never crosses an episode boundary or the write pointer)."""
        C, K, M = self.capacity, int(context), int(future)
        size = self.size[:, None]
        slot = torch.minimum((u * size).long(), (size - 1).long())
        base = torch.arange(self.rows, device=self.device)[:, None] * C
        flat = base + slot
        offsets = torch.arange(-K, max(M, 1), device=self.device)
        j = base[..., None] + (slot[..., None] + offsets) % C  # [R, B, W]
        ep = self.episode[flat]
        mask = (self.episode[j] == ep[..., None]).float()
        m = mask[..., None]
        obs = self.obs[j]
        delta = (self.next_obs[j] - obs) * m
        act = self.act[j] * m
        obs = obs * m
        i = K
        return {
            "obs": obs[:, :, i],
            "act": act[:, :, i],
            "rew": self.rew[flat],
            "next_obs": self.next_obs[flat],
            "done": self.terminated[flat],
            "mc_return": self.mc_return[flat],
            "mc_valid": (ep != self.current_episode[:, None]).float(),
            "ctx_delta": delta[:, :, :K],
            "ctx_act": act[:, :, :K],
            "ctx_mask": mask[:, :, :K],
            "next_ctx_delta": delta[:, :, 1 : K + 1],
            "next_ctx_act": act[:, :, 1 : K + 1],
            "next_ctx_mask": mask[:, :, 1 : K + 1],
            "fut_obs": obs[:, :, i : i + M],
            "fut_act": act[:, :, i : i + M],
            "fut_delta": delta[:, :, i : i + M],
            "fut_mask": mask[:, :, i : i + M],
        }


class SeedReplay(MultiTaskReplay):
    """One seed's rows of a :class:`DeviceReplay`: the interface of :class:`MultiTaskReplay`
    (``add``, counters, ``state_dict``) for its collector and checkpoints, with the transitions
    on the device. Sampling goes through the learner, never through this view."""

    def __init__(
        self,
        store: DeviceReplay,
        seed_index: int,
        num_tasks: int,
        obs_dim: int,
        act_dim: int,
        capacity: int,
        gamma: float,
    ):
        self.store, self.seed_index = store, seed_index
        self.first_row = seed_index * int(num_tasks)
        # the base class's checks and host counters; its stored arrays are the store's rows
        # (seed 0: its generator is never drawn from, sampling is the learner's)
        super().__init__(num_tasks, obs_dim, act_dim, capacity, gamma, seed=0)
        # the counters are this seed's rows of the store's (kept in place from now on)
        for name in self._COUNTERS:
            setattr(self, name, store.counters[name][seed_index])
        self.host_rew = store.host_rew[seed_index]  # the rewards, for the episodes' returns

    # the store's arrays, every s' among them (a GPU has the memory; its gather stays simple)
    _ARRAYS = ("obs", "act", "rew", "next_obs", "terminated", "mc_return", "episode")
    _LAST = ()

    def _allocate(self, T: int, C: int) -> None:
        pass  # the transitions live on the device

    def _restore_last(self, state: dict) -> None:
        pass  # restored with the others by _restore

    def add(self, obs, act, rew, next_obs, terminated, truncated, tasks=None) -> None:
        """:meth:`MultiTaskReplay.add`, the transitions queued for the store's next flush."""
        tasks = np.arange(self.num_tasks) if tasks is None else tasks
        self.store.add(
            np.asarray(tasks).reshape(1, -1),
            obs,
            act,
            rew,
            next_obs,
            terminated,
            truncated,
            seeds=[self.seed_index],
        )

    def _rewards(self, task: int, slots: np.ndarray) -> np.ndarray:
        return self.host_rew[task, slots]

    def _write_returns(self, task: int, slots: np.ndarray, returns: np.ndarray) -> None:
        flat = (self.first_row + task) * self.capacity + slots
        self.store._returns.append((flat, returns.astype(np.float32)))

    def sample(self, *args, **kwargs):
        raise MCATError("the fast path samples its replay on the device (FastLearner)")

    # ------------------------------------------------------------------ checkpointing
    def _rows(self) -> slice:
        return slice(
            self.first_row * self.capacity, (self.first_row + self.num_tasks) * self.capacity
        )

    def _device_rows(self, name: str) -> torch.Tensor:
        """This seed's rows of one of the store's arrays, [tasks, capacity, ...] (a view)."""
        full = getattr(self.store, name)[self._rows()]
        return full.view(self.num_tasks, self.capacity, *full.shape[1:])

    def state_dict(self, contents: bool = True) -> dict:
        """The format of :meth:`MultiTaskReplay.state_dict` (host arrays of the filled slots)."""
        self.store.flush()
        return super().state_dict(contents)

    def _stored(self, filled: int) -> dict[str, np.ndarray]:
        arrays = {name: self._device_rows(name)[:, :filled].cpu().numpy() for name in self._ARRAYS}
        arrays["terminated"] = arrays["terminated"] > 0.5
        return arrays

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(with_every_next_obs(state))
        self.store.flush()  # the counters

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        for name in self._ARRAYS:
            saved = np.asarray(arrays[name])
            view = self._device_rows(name)
            view[:, : saved.shape[1]] = torch.as_tensor(saved, device=self.store.device).to(
                view.dtype
            )
        self.host_rew[:, : arrays["rew"].shape[1]] = arrays["rew"]

    @property
    def nbytes(self) -> int:
        return 0

    def __len__(self) -> int:
        return int(self.size.sum())
