"""The replay of the fast path: the same per-task rings as :class:`MultiTaskReplay`, held on the
learner's device (a GPU), for several independent runs (seeds) at once.

Rows are (seed, task) pairs, seed-major: row ``s * T + t``. Each seed's collector writes through
its :class:`SeedReplay` view, which keeps the small counters (write pointer, size, episode ids)
on the host, exactly as :class:`MultiTaskReplay` does, and queues the transitions; ``flush()``
then moves everything queued in one round of collection to the device in two copies. Sampling
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
from mcat.replay.store import MultiTaskReplay


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
    ):
        # the host-side checks and counters of the ordinary replay, one per seed
        self.views = [
            SeedReplay(self, s, num_tasks, obs_dim, act_dim, capacity, gamma) for s in range(seeds)
        ]
        R, C = seeds * num_tasks, capacity
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

    def flush(self) -> None:
        """Write every queued transition and finished episode's returns to the device."""
        queued = [q for v in self.views for q in v._queue]
        flats = [q[0] for q in queued]
        episodes = [q[1] for q in queued]
        floats = [q[2] for q in queued]
        mc = [(flat, ret) for v in self.views for flat, ret in v._returns]
        counters = np.concatenate(
            [np.stack([v.size, v.current_episode]) for v in self.views], axis=1
        )  # [2, R]
        n = sum(len(f) for f in flats)
        m = sum(len(f) for f, _ in mc)
        # one copy of integers (slots, episode ids, counters) and one of floats
        head = np.concatenate(
            [*flats, *episodes, *(f for f, _ in mc), counters.reshape(-1)]
        ).astype(np.int64)
        body = np.concatenate(
            [np.zeros(0, np.float32), *(p.reshape(-1) for p in floats), *(r for _, r in mc)]
        ).astype(np.float32)
        if self.wait_for is not None:
            torch.cuda.current_stream().wait_stream(self.wait_for)
        head_t, body_t = self._upload(head), self._upload(body)
        if n:
            flat_t, episode_t = head_t[:n], head_t[n : 2 * n]
            packed = body_t[: n * self._width].view(n, self._width)
            o, a = self.obs_dim, self.act_dim
            self.obs[flat_t] = packed[:, :o]
            self.act[flat_t] = packed[:, o : o + a]
            self.rew[flat_t] = packed[:, o + a]
            self.next_obs[flat_t] = packed[:, o + a + 1 : 2 * o + a + 1]
            self.terminated[flat_t] = packed[:, -1]
            self.mc_return[flat_t] = 0.0
            self.episode[flat_t] = episode_t.to(torch.int32)
        if m:
            self.mc_return[head_t[2 * n : 2 * n + m]] = body_t[n * self._width :]
        tail = head_t[2 * n + m :].view(2, self.rows)
        self.size.copy_(tail[0])
        self.current_episode.copy_(tail[1])
        for v in self.views:
            v._queue.clear()
            v._returns.clear()

    def _upload(self, array: np.ndarray) -> torch.Tensor:
        """``array`` on the device. To a GPU through pinned memory, asynchronously: a copy from
        pageable memory would first wait for the stream, which waits for the gradient step in
        flight, and hold the host there (the pinned block is not reused before its copy is
        done: PyTorch's pinned-memory cache records the copy's stream)."""
        t = torch.from_numpy(array)
        if self.device.type != "cuda":
            return t.to(self.device)
        return t.pin_memory().to(self.device, non_blocking=True)

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
        self.store, self.first_row = store, seed_index * int(num_tasks)
        # the base class's checks and host counters; its stored arrays are the store's rows
        # (seed 0: its generator is never drawn from, sampling is the learner's)
        super().__init__(num_tasks, obs_dim, act_dim, capacity, gamma, seed=0)
        self._queue: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._returns: list[tuple[np.ndarray, np.ndarray]] = []

    def _allocate(self, T: int, C: int) -> None:
        # the transitions live on the device; the host keeps the rewards for the MC returns
        self.host_rew = np.zeros((T, C), dtype=np.float32)

    def _write(self, tasks, slots, obs, act, rew, next_obs, terminated) -> None:
        """Queue the transitions for the next :meth:`DeviceReplay.flush`; keep the rewards."""
        rew = np.asarray(rew, dtype=np.float32).reshape(-1)
        self.host_rew[tasks, slots] = rew
        packed = np.concatenate(
            [
                np.asarray(obs, dtype=np.float32).reshape(len(tasks), -1),
                np.asarray(act, dtype=np.float32).reshape(len(tasks), -1),
                rew[:, None],
                np.asarray(next_obs, dtype=np.float32).reshape(len(tasks), -1),
                np.asarray(terminated, dtype=np.float32).reshape(-1, 1),
            ],
            axis=1,
        )
        flat = (self.first_row + tasks) * self.capacity + slots
        self._queue.append((flat, self.current_episode[tasks].copy(), packed))

    def _rewards(self, task: int, slots: np.ndarray) -> np.ndarray:
        return self.host_rew[task, slots]

    def _write_returns(self, task: int, slots: np.ndarray, returns: np.ndarray) -> None:
        flat = (self.first_row + task) * self.capacity + slots
        self._returns.append((flat, returns.astype(np.float32)))

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
        super().load_state_dict(state)
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
