"""``spotcheck.vrf.prove`` computed faster: the same signature ``sk * H(seed, jobRef)``.

The challenger proves once per sampling decision (every on-chain job, every batch leaf), so
the G1 scalar multiplication is its hot path. py-ecc's ``multiply`` is a recursive
double-and-add over field-element objects; this one is the same group operation on plain
integers in Jacobian coordinates (``dbl-2009-l`` doubling, ``madd-2007-bl`` mixed addition,
curve ``y^2 = x^3 + 3``, ``a = 0``) with a width-4 NAF of the fixed secret (about 51 additions
instead of 127). The result is normalised to affine and is bit for bit the signature
``spotcheck.vrf.prove`` returns (``tests/property/test_sampling.py`` asserts it on random
keys and messages); the hash to G1 is ``spotcheck.vrf.hash_to_g1`` itself.
"""

from __future__ import annotations

from spotcheck import vrf

P = vrf.P
_Jac = tuple[int, int, int]
_INF: _Jac = (1, 1, 0)


def _double(p: _Jac) -> _Jac:
    x, y, z = p
    if z == 0 or y == 0:
        return _INF
    a = x * x % P
    b = y * y % P
    c = b * b % P
    d = 2 * ((x + b) * (x + b) - a - c) % P
    e = 3 * a % P
    f = e * e % P
    x3 = (f - 2 * d) % P
    y3 = (e * (d - x3) - 8 * c) % P
    z3 = 2 * y * z % P
    return (x3, y3, z3)


def _add(p: _Jac, q: _Jac) -> _Jac:
    """General Jacobian addition (``add-2007-bl``)."""
    x1, y1, z1 = p
    x2, y2, z2 = q
    if z1 == 0:
        return q
    if z2 == 0:
        return p
    z1z1 = z1 * z1 % P
    z2z2 = z2 * z2 % P
    u1 = x1 * z2z2 % P
    u2 = x2 * z1z1 % P
    s1 = y1 * z2 * z2z2 % P
    s2 = y2 * z1 * z1z1 % P
    if u1 == u2:
        return _double(p) if s1 == s2 else _INF
    h = (u2 - u1) % P
    i = 4 * h * h % P
    j = h * i % P
    r = 2 * (s2 - s1) % P
    v = u1 * i % P
    x3 = (r * r - j - 2 * v) % P
    y3 = (r * (v - x3) - 2 * s1 * j) % P
    z3 = ((z1 + z2) * (z1 + z2) - z1z1 - z2z2) * h % P
    return (x3, y3, z3)


def _neg(p: _Jac) -> _Jac:
    return (p[0], (-p[1]) % P, p[2])


def wnaf(k: int, w: int = 4) -> list[int]:
    """Width-``w`` NAF digits of ``k``, least significant first (odd digits below 2**(w-1))."""
    digits: list[int] = []
    half, full = 1 << (w - 1), 1 << w
    while k > 0:
        if k & 1:
            d = k % full
            if d >= half:
                d -= full
            k -= d
        else:
            d = 0
        digits.append(d)
        k >>= 1
    return digits


def multiply(x: int, y: int, k: int, digits: list[int] | None = None) -> tuple[int, int]:
    """``k * (x, y)`` in affine coordinates (``k`` in ``[1, r)``, the point not infinity)."""
    naf = wnaf(k) if digits is None else digits
    base: _Jac = (x, y, 1)
    twice = _double(base)
    odd = [base]  # 1P, 3P, 5P, 7P
    for _ in range(3):
        odd.append(_add(odd[-1], twice))
    acc = _INF
    for d in reversed(naf):
        acc = _double(acc)
        if d > 0:
            acc = _add(acc, odd[d >> 1])
        elif d < 0:
            acc = _add(acc, _neg(odd[(-d) >> 1]))
    xj, yj, zj = acc
    if zj == 0:
        raise ValueError("scalar multiple is the point at infinity")
    zi = pow(zj, P - 2, P)
    zi2 = zi * zi % P
    return xj * zi2 % P, yj * zi2 * zi % P


class Prover:
    """VRF proofs under one secret key (its NAF computed once)."""

    def __init__(self, secret: int) -> None:
        if not 0 < secret < vrf.R:
            raise ValueError("VRF secret must be a scalar in [1, r)")
        self._digits = wnaf(secret)

    def prove(self, seed: bytes, job_ref: bytes) -> vrf.G1Point:
        """Equal to ``spotcheck.vrf.prove(secret, seed, job_ref)``."""
        h = vrf.hash_to_g1(vrf.DOMAIN, vrf.vrf_message(seed, job_ref))
        x, y = multiply(h.x, h.y, 0, self._digits)
        return vrf.G1Point(x, y)
