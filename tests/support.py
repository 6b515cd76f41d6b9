"""Pieces of test code that several test modules run."""
import torch

from handssca.ssm.scan import selective_scan_reference

F64 = torch.float64

#: Python source that, run first in a fresh interpreter, records in ``attempts`` every attempt to
#: import mamba_ssm (a finder placed first on sys.meta_path); the code after it asserts on that.
MAMBA_IMPORT_SPY = """
import sys
attempts = []
class Spy:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "mamba_ssm":
            attempts.append(name)
        return None
sys.meta_path.insert(0, Spy())
"""


def assert_close_rel(actual, expected, rel, what):
    scale = expected.abs().max().item()
    err = (actual - expected).abs().max().item()
    assert err <= rel * max(scale, 1e-30), f"{what}: max error {err:.3g} vs scale {scale:.3g}"


def grouped_inputs(g=3, b=2, L=29, dg=4, n=5, dtype=F64, seed=0):
    gen = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=gen, dtype=dtype)

    return dict(u=r(g, b, L, dg), delta=r(g, b, L, dg) * 0.5 - 1.0,
                A=-(torch.rand(g, dg, n, generator=gen, dtype=dtype) * 2 + 0.05),
                B=r(g, b, L, n), C=r(g, b, L, n), D=r(g, dg), delta_bias=r(g, dg) * 0.3)


def grouped_by_reference(inp, **flags):
    """The grouped layout through the reference: (G, b, L, Dg) -> (b, G*Dg, L), B and C as
    (b, G, N, L) groups."""
    g, b, L, dg = inp["u"].shape
    n = inp["A"].shape[-1]

    def flat(x):  # (G, b, L, k) -> (b, G*k, L)
        return x.permute(1, 0, 3, 2).reshape(b, -1, L)

    out = selective_scan_reference(
        flat(inp["u"]), flat(inp["delta"]), inp["A"].reshape(g * dg, n),
        flat(inp["B"]).view(b, g, n, L), flat(inp["C"]).view(b, g, n, L),
        None if inp["D"] is None else inp["D"].reshape(-1), None,
        None if inp["delta_bias"] is None else inp["delta_bias"].reshape(-1), **flags)
    y, h = out if flags.get("return_last_state") else (out, None)
    y = y.view(b, g, dg, L).permute(1, 0, 3, 2)
    return y, (None if h is None else h.view(b, g, dg, n).transpose(0, 1))
