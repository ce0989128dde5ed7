"""The CPU buffer pool never hands out memory that a live tensor still views."""

import torch

from neurogate.cpu import buffers
from neurogate.functional import lif_scan


def test_live_buffers_are_not_reused_and_dead_ones_are():
    buffers.clear()
    a = buffers.empty((512, 1024), torch.float32)
    view = a[3:]  # a view keeps the storage (and so the buffer) alive
    ptr = a.data_ptr()
    del a
    b = buffers.empty((512, 1024), torch.float32)
    assert b.data_ptr() != ptr
    del view
    c = buffers.empty((512, 1024), torch.float32)
    assert c.data_ptr() == ptr


def test_outputs_kept_by_the_caller_stay_intact():
    x = torch.randn(50, 16, 1024)
    first = lif_scan(x, decay=0.9)
    saved = first.clone()
    for _ in range(3):
        lif_scan(torch.randn(50, 16, 1024), decay=0.5)
    assert torch.equal(first, saved)


def test_limit_and_small_tensors(monkeypatch):
    buffers.clear()
    small = buffers.empty((10, 10), torch.float32)  # below 1 MB: ordinary allocation
    assert not buffers._pool and small.shape == (10, 10)
    monkeypatch.setattr(buffers, "_LIMIT", 3 << 20)
    keep = [buffers.empty((1 << 18,), torch.float32) for _ in range(5)]  # 1 MB each, all live
    assert len(buffers._pool) == 3 and all(t.numel() == 1 << 18 for t in keep)
    monkeypatch.setattr(buffers, "_LIMIT", 0)
    assert buffers.empty((1 << 20,), torch.float32).numel() == 1 << 20
    buffers.clear()


def test_training_steps_reuse_warm_buffers():
    # A repeated forward + backward takes its large outputs from the pool: same pages each step.
    buffers.clear()
    x = torch.randn(20, 8, 2048, requires_grad=True)  # 1.3 MB per [T, M] tensor
    ptrs = []
    for _ in range(3):
        x.grad = None
        s = lif_scan(x, decay=0.9)
        ptrs.append(s.data_ptr())
        s.sum().backward()
        ptrs.append(x.grad.data_ptr())
        del s
    assert set(ptrs[2:]) == set(ptrs[:2])  # steps 2 and 3 reuse step 1's buffers
    buffers.clear()


def test_unpooled_dtypes_and_sizes():
    assert buffers.empty((1 << 20,), torch.float16).dtype == torch.float16  # not pooled
    assert buffers.empty((0, 5), torch.float32).shape == (0, 5)
