"""The cost-versus-size measurement behind the book's cost chapter."""
import math

from handssca.bench.cost import fit_slopes, measure_cost


def test_fit_slopes_recovers_known_exponents():
    rows = [{"kind": k, "L": L, "seconds": c * L ** e, "peak_bytes": None}
            for k, c, e in (("quad", 1e-6, 2.0), ("lin", 3e-4, 1.0)) for L in (64, 256, 1024, 4096)]
    s = fit_slopes(rows, "seconds")
    assert math.isclose(s["quad"], 2.0, rel_tol=1e-9) and math.isclose(s["lin"], 1.0, rel_tol=1e-9)
    assert math.isclose(fit_slopes(rows, "seconds", min_L=1024)["quad"], 2.0, rel_tol=1e-9)
    assert fit_slopes(rows, "peak_bytes") == {}  # no memory measured: no slope


def test_measure_cost_rows():
    rows = measure_cost(grids=(4, 8), kinds=("self_attention", "ssca"), repeats=1)
    assert [(r["kind"], r["grid"], r["L"]) for r in rows] == [
        ("self_attention", 4, 16), ("ssca", 4, 16), ("self_attention", 8, 64), ("ssca", 8, 64)]
    for r in rows:
        assert r["seconds"] > 0 and r["peak_bytes"] > 0 and r["params"] > 0
    # self-attention's position embedding grows with the map; SSCA's channel branch with W
    sa = [r["params"] for r in rows if r["kind"] == "self_attention"]
    assert sa[1] - sa[0] == (64 - 16) * 256
