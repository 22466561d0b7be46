"""E3Outlier's surrogate operations (Wang et al., NeurIPS 2019, Sec. 3.2), applied per batch.

K = 111 operations in the authors' order (``official_code_notes.md`` section 4), op 0 is the
identity:

* regular affine (RA, 72): horizontal flip (no / yes) x horizontal shift (0, -s, +s) x
  vertical shift (0, -s, +s) x rotation by k * 90 degrees (k = 0..3), s = a quarter of the
  side (8 px at 32 px), shifts with reflected borders (``F.pad(mode="reflect")``, the code's
  ``fill_mode='reflect'``);
* irregular affine (IA, 16): flip x rotation by 30 degrees times 1, 2, 4, 5, 7, 8, 10, 11
  (the multiples of 90 are in RA), bilinear, corners filled with mid-grey 0.5 (the code
  rotates [-1, 1] images with ``cval=0``);
* patch re-arranging (PR, 23): the 2 x 2 grid of half-side patches in every non-identity
  order.

:func:`apply_ops` transforms a batch with one operation per image, grouped by operation (a
loop over the distinct operations of the batch, never over images), so the N x K transformed
set is never materialised. Images are ``N x C x H x W`` floats, sides divisible by 4.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F

SUBSETS = ("ra", "ra+ia", "all")
IA_MULTIPLES = (1, 2, 4, 5, 7, 8, 10, 11)
FILL = 0.5


@dataclass(frozen=True)
class Op:
    kind: str             # "ra", "ia" or "pr"
    flip: bool = False
    tx: int = 0           # shift in quarters of the side: -1, 0, +1
    ty: int = 0
    k: int = 0            # quarter turns
    angle: float = 0.0    # degrees (IA)
    perm: tuple = ()      # patch order (PR): output patch i <- input patch perm[i]

    def label(self) -> str:
        if self.kind == "ra":
            return (f"{'flip ' if self.flip else ''}shift({self.tx:+d},{self.ty:+d})/4 "
                    f"rot{90 * self.k}")
        if self.kind == "ia":
            return f"{'flip ' if self.flip else ''}rot{self.angle:g}"
        return "patches " + "".join(map(str, self.perm))


@lru_cache(maxsize=None)
def operation_set(subset: str = "all") -> tuple[Op, ...]:
    """The operations of ``subset`` ("ra" = 72, "ra+ia" = 88, "all" = 111), op 0 = identity."""
    if subset not in SUBSETS:
        raise ValueError(f"unknown operation subset {subset!r}; choose one of {SUBSETS}")
    ops = [Op("ra", flip, tx, ty, k) for flip, tx, ty, k in
           itertools.product((False, True), (0, -1, 1), (0, -1, 1), range(4))]
    if subset in ("ra+ia", "all"):
        ops += [Op("ia", flip, angle=30.0 * m) for flip in (False, True) for m in IA_MULTIPLES]
    if subset == "all":
        ops += [Op("pr", perm=p) for p in itertools.permutations(range(4))
                if p != (0, 1, 2, 3)]
    return tuple(ops)


def apply_op(x: torch.Tensor, op: Op) -> torch.Tensor:
    """One operation on a whole batch (differentiable)."""
    if op.kind == "pr":
        h2, w2 = x.shape[-2] // 2, x.shape[-1] // 2
        tiles = [x[..., :h2, :w2], x[..., :h2, w2:], x[..., h2:, :w2], x[..., h2:, w2:]]
        t = [tiles[j] for j in op.perm]
        return torch.cat([torch.cat(t[:2], -1), torch.cat(t[2:], -1)], -2)
    y = torch.flip(x, dims=[-1]) if op.flip else x
    if op.kind == "ia":
        from torchvision.transforms.v2 import InterpolationMode
        from torchvision.transforms.v2.functional import rotate

        return rotate(y, op.angle, interpolation=InterpolationMode.BILINEAR, fill=FILL)
    if op.tx or op.ty:
        h, w = y.shape[-2:]
        s = h // 4
        p = F.pad(y, (s, s, s, s), mode="reflect")
        # content moves by (tx, ty) * s: output[i, j] = input[i - ty s, j - tx s]
        r0, c0 = s - op.ty * s, s - op.tx * s
        y = p[..., r0:r0 + h, c0:c0 + w]
    if op.k:
        y = torch.rot90(y, op.k, dims=(-2, -1))
    return y


def apply_ops(x: torch.Tensor, op_idx: torch.Tensor, ops: tuple[Op, ...]) -> torch.Tensor:
    """``x[i]`` transformed by ``ops[op_idx[i]]``, grouped by operation."""
    op_idx = op_idx.to(x.device)
    out = torch.empty_like(x)
    for t in torch.unique(op_idx).tolist():
        sel = op_idx == t
        out[sel] = apply_op(x[sel], ops[t])
    return out


def invert_right_angle(y: torch.Tensor, op: Op) -> torch.Tensor:
    """The inverse of a flip / quarter-turn operation without shift (for tests)."""
    if op.kind != "ra" or op.tx or op.ty:
        raise ValueError("only unshifted right-angle operations are invertible exactly")
    y = torch.rot90(y, -op.k, dims=(-2, -1)) if op.k else y
    return torch.flip(y, dims=[-1]) if op.flip else y
