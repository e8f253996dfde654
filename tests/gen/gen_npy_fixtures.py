#!/usr/bin/python3
"""Generates the committed .npy/.npz fixtures under tests/data/npy/ with
Debian's numpy and scipy (python3-numpy, python3-scipy), and the values the
tests expect, derived here by numpy, never by delift's own code.

Run from the source root:  /usr/bin/python3 tests/gen/gen_npy_fixtures.py
It is deterministic (fixed seeds); rerunning it must leave `git status` clean
except when numpy changes its header padding.

Outputs
  tests/data/npy/*.npy, *.npz          valid files
  tests/data/npy/expected.txt          one line per valid file:
      NAME ROWS COLS BORROW v(0,0) v(0,1) ... (row-major, as float32, dense)
      BORROW is 1 when the reader must hand out a zero-copy view
      (little-endian float32 .npy), 0 when it must convert, '-' for .npz
  tests/data/npy/bad/*                 malformed files
  tests/data/npy/bad/expected.txt      NAME STATUS OFFSET MESSAGE-SUBSTRING
      STATUS is dl_status_name(); OFFSET the byte offset the error must name
      ('-': not checked); the substring is matched case-sensitively
  tests/data/npy/cli/*.npy, *.npz      kernels for tests/cli_optimize.sh
  tests/data/npy/cli/expected.txt      FUNCTION PARAMS BUDGET FILES OPTIMIZERS : i0 g0 i1 g1 ...
      picks of a plain numpy naive greedy (the formulas of
      ../shared/spec/DELIFT.md §4, float32 memo, gains summed in double);
      OPTIMIZERS is "naive,lazy", or "naive" alone when a step had an exact
      tie (lazy greedy's heap may then take another index, as submodlib's does).
"""
import io
import os
import struct
import sys
import zipfile
import zlib

import numpy as np
import scipy.sparse as sp

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "npy")
BAD = os.path.join(ROOT, "bad")
CLI = os.path.join(ROOT, "cli")


def f32s(a):
    """Shortest decimal of each float32 that reads back to the same float32."""
    return " ".join(repr(float(x)) for x in np.asarray(a, dtype=np.float32).ravel())


def npy_bytes(arr, version=None):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, version=version, allow_pickle=False)
    return buf.getvalue()


def raw_npy(header, data=b"", version=1, pad=True):
    """A .npy image with a hand-written header dict (for malformed cases)."""
    h = header.encode("latin1")
    if pad:
        total = 10 + len(h) + 1
        h = h + b" " * ((64 - total % 64) % 64) + b"\n"
    if version == 1:
        pre = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h))
    else:
        pre = b"\x93NUMPY" + bytes([version, 0]) + struct.pack("<I", len(h))
    return pre + h + data


def valid_fixtures(expected):
    rng = np.random.default_rng(20251126)

    def dense(name, arr, borrow, writer=None):
        path = os.path.join(ROOT, name)
        if writer:
            with open(path, "wb") as f:
                f.write(writer(arr))
        else:
            np.save(path, arr)
        a32 = np.asarray(arr, dtype=np.float32)
        rows = a32.shape[0]
        cols = a32.shape[1] if a32.ndim == 2 else 1
        expected.append(f"{name} {rows} {cols} {borrow} {f32s(a32)}")

    a = rng.random((3, 4), dtype=np.float32)
    dense("f32_3x4.npy", a, 1)
    dense("f64_4x3.npy", rng.standard_normal((4, 3)), 0)
    dense("f32_v2.npy", rng.random((2, 5), dtype=np.float32), 1,
          lambda x: npy_bytes(x, (2, 0)))
    dense("f32_v3.npy", rng.random((5, 2), dtype=np.float32), 1,
          lambda x: npy_bytes(x, (3, 0)))
    dense("be_f4.npy", rng.random((2, 3)).astype(">f4"), 0)
    dense("be_f8.npy", rng.random((3, 2)).astype(">f8"), 0)
    dense("f32_1d.npy", rng.random(6, dtype=np.float32), 1)
    dense("f32_0x4.npy", np.zeros((0, 4), dtype=np.float32), 1)
    dense("f32_specials.npy", np.array([[0.0, -0.0, 1e-45, 3.4028235e38],
                                        [-3.4028235e38, 1.1754944e-38, -1.5, 7.0]],
                                       dtype=np.float32), 1)
    # A header with keys in another order, double quotes, no trailing
    # comma, Python 2's long suffix: still valid numpy.
    odd = np.arange(6, dtype="<f4").reshape(2, 3)
    with open(os.path.join(ROOT, "f32_oddheader.npy"), "wb") as f:
        f.write(raw_npy('{ "shape" : (2L,3L) ,"fortran_order":False,"descr":"<f4"}',
                        odd.tobytes()))
    expected.append(f"f32_oddheader.npy 2 3 1 {f32s(odd)}")

    def sparse(name, m, compressed):
        np_path = os.path.join(ROOT, name)
        sp.save_npz(np_path, m, compressed=compressed)
        d = m.toarray().astype(np.float32)
        expected.append(f"{name} {d.shape[0]} {d.shape[1]} - {f32s(d)}")

    m = sp.random(5, 7, density=0.35, format="csr", dtype=np.float32, random_state=7)
    sparse("csr_deflated.npz", m, True)
    sparse("csr_stored.npz", m, False)
    m64 = sp.random(4, 6, density=0.5, format="csr", dtype=np.float64, random_state=8)
    m64.indices = m64.indices.astype(np.int64)
    m64.indptr = m64.indptr.astype(np.int64)
    sparse("csr_f64_i64.npz", m64, True)
    e = sp.csr_matrix(np.array([[0, 0, 0], [1.5, 0, 2.5], [0, 0, 0]], dtype=np.float32))
    sparse("csr_empty_rows.npz", e, False)
    z = sp.csr_matrix((0, 3), dtype=np.float32)
    sparse("csr_0x3.npz", z, True)


# ---- malformed .npy -----------------------------------------------------------

def bad_npy(cases):
    f4 = np.arange(6, dtype="<f4").tobytes()
    good_hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"

    def at(hdr, token, nth=0):
        """Byte offset of the nth occurrence of token in a v1 header dict."""
        pos = -1
        for _ in range(nth + 1):
            pos = hdr.index(token, pos + 1)
        return 10 + pos

    def add(name, data, status, offset, msg):
        with open(os.path.join(BAD, name), "wb") as f:
            f.write(data)
        cases.append(f"{name} {status} {offset} {msg}")

    add("empty.npy", b"", "input", 0, "truncated .npy preamble")
    add("bad_magic.npy", b"\x93NUMPX" + raw_npy(good_hdr, f4)[6:], "input", 5, "not a .npy file")
    add("zip_as_npy.npy", b"PK\x03\x04" + b"\x00" * 40, "input", 0, "not a .npy file")
    add("short_preamble.npy", b"\x93NUMPY\x01", "input", 7, "truncated .npy preamble")
    add("v2_short.npy", b"\x93NUMPY\x02\x00\x10\x00", "input", 10, "truncated .npy 2.0")
    add("version_4.npy", b"\x93NUMPY\x04\x00" + raw_npy(good_hdr, f4)[8:], "unsupported", 6,
        "version 4.0")
    add("version_1_1.npy", b"\x93NUMPY\x01\x01" + raw_npy(good_hdr, f4)[8:], "unsupported", 6,
        "version 1.1")
    add("hlen_past_end.npy", b"\x93NUMPY\x01\x00\xff\xff{'descr'", "input", 8,
        "runs past the end")
    add("v2_hlen_huge.npy", b"\x93NUMPY\x02\x00\xff\xff\xff\x7f{}", "input", 8,
        "exceeds the limit")
    add("no_brace.npy", raw_npy("'descr': '<f4'", f4), "input", 10, "expected '{'")
    hdr = "{'descr': '<f4', 'fortran_order': False, }"
    add("missing_shape.npy", raw_npy(hdr, f4), "input", "-", "missing key 'shape'")
    hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'descr': '<f4'}"
    add("dup_key.npy", raw_npy(hdr, f4), "input", at(hdr, "'descr'", 1), "duplicate key 'descr'")
    hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'align': 8}"
    add("unknown_key.npy", raw_npy(hdr, f4), "input", at(hdr, "'align'"), "unknown key 'align'")
    hdr = "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }"
    add("fortran.npy", raw_npy(hdr, f4), "unsupported", at(hdr, "True"), "fortran_order True")
    hdr = "{'descr': '<f4', 'fortran_order': 0, 'shape': (2, 3), }"
    add("fortran_int.npy", raw_npy(hdr, f4), "input", at(hdr, "0,"),
        "expected True or False")
    hdr = "{'descr': '<f4', 'fortran_order': Falsehood, 'shape': (2, 3), }"
    add("fortran_word.npy", raw_npy(hdr, f4), "input", at(hdr, "Falsehood"),
        "expected True or False")
    hdr = "{'descr': '<i2', 'fortran_order': False, 'shape': (2, 3), }"
    add("dtype_i2.npy", raw_npy(hdr, b"\0" * 12), "unsupported", at(hdr, "'<i2'"),
        "unsupported dtype '<i2'")
    hdr = "{'descr': '=f4', 'fortran_order': False, 'shape': (2, 3), }"
    add("dtype_native.npy", raw_npy(hdr, f4), "unsupported", at(hdr, "'=f4'"), "'=f4'")
    hdr = "{'descr': '|f4', 'fortran_order': False, 'shape': (2, 3), }"
    add("dtype_pipe_f4.npy", raw_npy(hdr, f4), "unsupported", at(hdr, "'|f4'"),
        "unsupported dtype '|f4'")
    hdr = "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }"
    add("dtype_struct.npy", raw_npy(hdr, f4[:8]), "input", at(hdr, "[("),
        "expected a quoted string")
    add("dtype_int_matrix.npy", npy_bytes(np.arange(6, dtype="<i4").reshape(2, 3)),
        "unsupported", "-", "not float32 or float64")
    add("dtype_unicode.npy", npy_bytes(np.array(["ab", "cd"])), "unsupported", "-",
        "not float32 or float64")
    hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2, 2), }"
    add("shape_3d.npy", raw_npy(hdr, f4 + f4[:8]), "unsupported", 10, "3-D array")
    hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (6), }"
    add("shape_not_tuple.npy", raw_npy(hdr, f4), "input", "-", "is not a tuple")
    hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (-2, 3), }"
    add("shape_negative.npy", raw_npy(hdr, f4), "input", at(hdr, "-2"),
        "expected a non-negative integer")
    hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (2; 3), }"
    add("shape_semicolon.npy", raw_npy(hdr, f4), "input", at(hdr, ";"), "expected ',' or ')'")
    hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999, 1), }"
    add("shape_dim_overflow.npy", raw_npy(hdr, f4), "input", "-", "overflows int64")
    hdr = ("{'descr': '<f4', 'fortran_order': False, "
           "'shape': (9223372036854775807, 9223372036854775807), }")
    add("shape_count_overflow.npy", raw_npy(hdr, f4), "input", "-", "shape overflows")
    hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 1), }"
    add("shape_bytes_overflow.npy", raw_npy(hdr, f4), "input", "-", "shape overflows")
    hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000, 1000000), }"
    add("shape_too_big.npy", raw_npy(hdr, f4), "input", "-", "truncated data")
    hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 3), }"
    img = raw_npy(hdr, f4)
    add("truncated_data.npy", img, "input", len(img), "truncated data")
    img = raw_npy(good_hdr, f4 + b"\0\0\0\0\0")
    add("trailing_data.npy", img, "input", len(img) - 5, "5 bytes after the data")
    hdr = "{'descr': '<f4, 'fortran_order': False, 'shape': (2, 3), }"
    add("string_quote.npy", raw_npy(hdr, f4), "unsupported", at(hdr, "'<f4"),
        "'descr' '<f4, '")
    hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } x"
    add("garbage_after.npy", raw_npy(hdr, f4), "input", at(hdr, " x") + 1, "after the dict")
    hdr = "{'descr': '<f4' 'fortran_order': False, 'shape': (2, 3), }"
    add("missing_comma.npy", raw_npy(hdr, f4), "input", at(hdr, " 'fortran") + 1,
        "expected '}' or ','")
    hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), "
    add("unterminated_dict.npy", raw_npy(hdr, f4, pad=False), "input", "-",
        "expected a quoted string")
    hdr = "{'descr': '<f\u00e94', 'fortran_order': False, 'shape': (2, 3), }"
    add("nonascii.npy", raw_npy(hdr, f4), "input", at(hdr, "\u00e9"), "inside a string")
    hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3,,), }"
    add("shape_double_comma.npy", raw_npy(hdr, f4), "input", at(hdr, ",,") + 1,
        "expected a non-negative integer")
    add("f64_beyond_f32.npy", npy_bytes(np.array([[1.0, 1e300]])), "input", "-",
        "beyond float32's range")
    add("vector_as_matrix.npy", npy_bytes(np.arange(3, dtype="<f4")), "input", "-",
        "1-D array: expected a 2-D matrix")
    add("scalar.npy", npy_bytes(np.float32(1.5)), "input", "-", "0-D array")


# ---- malformed .npz ---------------------------------------------------------

def members(m, fmt=b"csr", drop=(), extra=(), dtypes=None):
    d = {"indices": m.indices, "indptr": m.indptr, "format": np.array(fmt),
         "shape": np.array(m.shape), "data": m.data}
    if dtypes:
        for k, v in dtypes.items():
            d[k] = d[k].astype(v)
    out = [(k + ".npy", npy_bytes(v)) for k, v in d.items() if k not in drop]
    return out + list(extra)


def zip_bytes(items, method=zipfile.ZIP_STORED):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as zf:
        for name, data in items:
            zf.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), data,
                        compress_type=method)
    return bytearray(buf.getvalue())


def local_off(z, name):
    """Offset of member name's local header in archive bytes z."""
    zf = zipfile.ZipFile(io.BytesIO(bytes(z)))
    return zf.getinfo(name).header_offset


def bad_npz(cases):
    m = sp.random(4, 5, density=0.4, format="csr", dtype=np.float32, random_state=3)

    def add(name, data, status, offset, msg):
        with open(os.path.join(BAD, name), "wb") as f:
            f.write(bytes(data))
        cases.append(f"{name} {status} {offset} {msg}")

    good = zip_bytes(members(m))
    eocd = len(good) - 22
    add("npz_not_zip.npz", b"this is not a zip archive at all" * 2, "input", "-",
        "no end-of-central-directory")
    add("npz_tiny.npz", b"PK\x05\x06", "input", 0, "too short")
    add("npz_truncated.npz", good[: len(good) // 2], "input", "-",
        "no end-of-central-directory")
    add("npz_missing_data.npz", zip_bytes(members(m, drop=("data",))), "input", "-",
        "member missing")
    add("npz_duplicate.npz", zip_bytes(members(m) + [("shape.npy", npy_bytes(np.array([4, 5])))]),
        "input", "-", "duplicate member")
    z = bytearray(good)
    off = local_off(z, "indptr.npy") + 30 + len("indptr.npy") + 128  # first indptr element
    z[off] ^= 1
    add("npz_bad_crc.npz", z, "input", "-", "CRC-32 mismatch")
    z = zip_bytes(members(m), zipfile.ZIP_DEFLATED)
    off = local_off(z, "indices.npy") + 30 + len("indices.npy") + 10
    z[off] ^= 0x55
    add("npz_corrupt_deflate.npz", z, "input", "-", "indices.npy")
    z = bytearray(good)
    off = local_off(z, "data.npy")
    z[off + 14] ^= 0xff
    add("npz_local_crc.npz", z, "input", off + 14, "differ from the central directory")
    z = bytearray(good)
    struct.pack_into("<I", z, eocd + 16, struct.unpack_from("<I", z, eocd + 16)[0] - 1)
    add("npz_cd_offset.npz", z, "input", eocd + 12, "does not end at the end record")
    z = bytearray(good)
    struct.pack_into("<HH", z, eocd + 8, 0xFFFF, 0xFFFF)
    add("npz_zip64.npz", z, "unsupported", eocd + 10, "zip64")
    z = bytearray(good)
    cd = struct.unpack_from("<I", z, eocd + 16)[0]
    struct.pack_into("<H", z, cd + 8, 1)  # first member: encrypted
    add("npz_encrypted.npz", z, "unsupported", "-", "encrypted")
    z = bytearray(good)
    first = z[cd + 46: cd + 46 + struct.unpack_from("<H", z, cd + 28)[0]].decode()
    struct.pack_into("<H", z, cd + 10, 12)  # bzip2 in the central directory
    struct.pack_into("<H", z, local_off(z, first) + 8, 12)
    add("npz_bzip2.npz", z, "unsupported", cd + 10, "compression method 12")
    z = zip_bytes(members(m), zipfile.ZIP_DEFLATED)
    cdd = struct.unpack_from("<I", z, len(z) - 22 + 16)[0]
    p = cdd
    while True:  # find indices.npy's central entry and claim a huge size
        nlen = struct.unpack_from("<H", z, p + 28)[0]
        if z[p + 46: p + 46 + nlen] == b"indices.npy":
            break
        p += 46 + nlen + struct.unpack_from("<HH", z, p + 30)[0] \
            + struct.unpack_from("<HH", z, p + 30)[1]
    struct.pack_into("<I", z, p + 24, 0xF0000000)
    lo = local_off(z, "indices.npy")
    struct.pack_into("<I", z, lo + 22, 0xF0000000)
    add("npz_bomb.npz", z, "input", p + 24, "beyond deflate's ratio")
    add("npz_csc.npz", zip_bytes(members(m, fmt=b"csc")), "unsupported", "-",
        "sparse format 'csc'")
    bad = m.copy()
    bad.indptr = bad.indptr.copy()
    bad.indptr[2], bad.indptr[3] = bad.indptr[3] + 1, bad.indptr[2]
    add("npz_indptr_decreasing.npz", zip_bytes(members(bad)), "input", "-", "decreases")
    bad = m.copy()
    bad.indptr = bad.indptr.copy()
    bad.indptr[0] = 1
    add("npz_indptr_start.npz", zip_bytes(members(bad)), "input", "-", "indptr[0] is 1")
    bad = m.copy()
    bad.indices = bad.indices.copy()
    bad.indices[-1] = 5
    add("npz_index_range.npz", zip_bytes(members(bad)), "input", "-", "is outside [0, 5)")
    bad = m.copy()
    bad.indices = bad.indices.copy()
    bad.indices[0] = -1
    add("npz_index_negative.npz", zip_bytes(members(bad)), "input", "-", "is outside [0, 5)")
    items = members(m, drop=("indices",)) + [("indices.npy", npy_bytes(m.indices[:-1]))]
    add("npz_nnz_mismatch.npz", zip_bytes(items), "input", "-", "indices.npy")
    add("npz_data_int.npz", zip_bytes(members(m, dtypes={"data": np.int32})), "unsupported",
        "-", "expected '<f4' or '<f8'")
    items = members(m, drop=("shape",)) + [("shape.npy", npy_bytes(np.array([4, 5, 1])))]
    add("npz_shape_3.npz", zip_bytes(items), "input", "-", "expected (2,)")
    items = members(m, drop=("shape",)) + [("shape.npy", npy_bytes(np.array([-4, 5])))]
    add("npz_shape_negative.npz", zip_bytes(items), "input", "-", "negative dimension")
    items = members(m, drop=("data",)) + [("data.npy", npy_bytes(np.full(m.nnz, 1e300)))]
    add("npz_data_range.npz", zip_bytes(items), "input", "-", "beyond float32's range")
    items = members(m, drop=("format",)) + [("format.npy", npy_bytes(np.array(7)))]
    add("npz_format_int.npz", zip_bytes(items), "input", "-", "expected a 0-D string")
    items = members(m, drop=("data",)) + [("data.npy", b"\x93NUMPY\x01\x00\x02\x00{}")]
    add("npz_member_header.npz", zip_bytes(items), "input", "-", "field 'data.npy'")


# ---- kernels and expected picks for the CLI ------------------------------------

F32_MIN = np.float32(1.17549435e-38)


class Picks(list):
    """(index, gain) pairs; tied is True when some step had an exact tie for
    the best gain, where lazy greedy may legitimately pick another index."""
    tied = False


def greedy(n, gain_fn, add_fn, budget):
    """Naive greedy: the largest gain, ties to the largest index."""
    picked, out = set(), Picks()
    for _ in range(budget):
        best, bj, gains = None, -1, []
        for j in range(n):
            if j in picked:
                continue
            g = gain_fn(j)
            gains.append(g)
            if best is None or g >= best:
                best, bj = g, j
        out.tied = out.tied or gains.count(best) > 1
        picked.add(bj)
        add_fn(bj)
        out.append((bj, best))
    return out


def fl_family(S, start):
    memo = start.astype(np.float32).copy()

    def gain(j):
        col = S[:, j]
        return float(np.sum(np.maximum(col - memo, 0).astype(np.float64)))

    def add(j):
        np.maximum(memo, S[:, j], out=memo)
    return gain, add


def cli_fixtures(lines):
    rng = np.random.default_rng(42)
    n = 8
    S = rng.random((n, n), dtype=np.float32)
    Q = rng.random((n, 3), dtype=np.float32)
    P = rng.random((n, 2), dtype=np.float32) * np.float32(0.5)
    np.save(os.path.join(CLI, "k8.npy"), S)
    np.save(os.path.join(CLI, "k8_f64.npy"), S.astype(np.float64))
    np.save(os.path.join(CLI, "q8x3.npy"), Q)
    np.save(os.path.join(CLI, "p8x2.npy"), P)
    Ssym = ((S + S.T) / 2).astype(np.float32)
    np.save(os.path.join(CLI, "k8sym.npy"), Ssym)
    np.save(os.path.join(CLI, "k8x5.npy"), S[:, :5].copy())  # not square
    np.save(os.path.join(CLI, "q5x3.npy"), Q[:5].copy())     # wrong row count
    Snan = S.copy()
    Snan[3, 6] = np.nan
    np.save(os.path.join(CLI, "k8_nan.npy"), Snan)
    np.save(os.path.join(CLI, "c8_ones.npy"), np.ones(8, dtype=np.float32))
    np.save(os.path.join(CLI, "c7.npy"), np.ones(7, dtype=np.float32))
    c0 = np.ones(8)
    c0[4] = 0
    np.save(os.path.join(CLI, "c8_zero.npy"), c0)

    def emit(fn, params, budget, files, picks):
        body = " ".join(f"{j} {g!r}" for j, g in picks)
        opts = "naive" if picks.tied else "naive,lazy"
        lines.append(f"{fn} {params} {budget} {files} {opts} : {body}")

    g, a = fl_family(S, np.zeros(n))
    emit("fl", "-", 4, "k8.npy", greedy(n, g, a, 4))

    # flmi (min form): gain sum_i [min(max(m_i, S_ij), q_i) - min(m_i, q_i)]
    eta = np.float32(1.0)
    qmax = np.maximum(Q.max(axis=1), F32_MIN).astype(np.float32) * eta
    memo = np.zeros(n, dtype=np.float32)

    def gmi(j):
        new = np.minimum(np.maximum(memo, S[:, j]), qmax)
        return float(np.sum((new - np.minimum(memo, qmax)).astype(np.float64)))

    def ami(j):
        np.maximum(memo, S[:, j], out=memo)
    emit("flmi", "eta=1", 3, "k8.npy,q8x3.npy", greedy(n, gmi, ami, 3))

    nu = np.float32(1.0)
    start = np.maximum(P.max(axis=1) * nu, 0)
    g, a = fl_family(S, start)
    emit("flcg", "nu=1", 3, "k8.npy,p8x2.npy", greedy(n, g, a, 3))

    lam = np.float32(0.4)
    colsum = Ssym.astype(np.float64).sum(axis=0)
    chosen = []

    def ggc(j):
        s = colsum[j] - float(lam) * float(Ssym[j, j])
        for c in chosen:
            s -= float(lam) * (float(Ssym[c, j]) + float(Ssym[j, c]))
        return s
    emit("gc", "lambda=0.4", 3, "k8sym.npy", greedy(n, ggc, chosen.append, 3))

    chosen = []
    psum = P.astype(np.float64).sum(axis=1)

    def ggccg(j):
        return ggc(j) - 2 * float(lam) * float(nu) * psum[j]
    emit("gccg", "lambda=0.4", 3, "k8sym.npy,p8x2.npy", greedy(n, ggccg, chosen.append, 3))

    # flqmi (variant form): Q is n x q, row j = candidate j.
    qm = np.zeros(Q.shape[1], dtype=np.float32)

    def gqmi(j):
        cover = float(np.sum(np.maximum(Q[j] - qm, 0).astype(np.float64)))
        return cover + float(eta) * float(Q[j].max())

    def aqmi(j):
        np.maximum(qm, Q[j], out=qm)
    emit("flqmi", "eta=1", 3, "q8x3.npy", greedy(n, gqmi, aqmi, 3))

    qsum = Q.astype(np.float64).sum(axis=1)
    emit("gcmi", "-", 3, "q8x3.npy", greedy(n, lambda j: float(qsum[j]), lambda j: None, 3))

    # A sparse kernel: the 3 largest entries of each row of S kept, CSR.
    K = np.zeros_like(S)
    for i in range(n):
        top = np.argsort(S[i])[-3:]
        K[i, top] = S[i, top]
    sp.save_npz(os.path.join(CLI, "k8_top3.npz"), sp.csr_matrix(K))
    g, a = fl_family(K, np.zeros(n))
    emit("fl", "-", 3, "k8_top3.npz", greedy(n, g, a, 3))


def main():
    for d in (ROOT, BAD, CLI):
        os.makedirs(d, exist_ok=True)
    expected, bad, cli = [], [], []
    valid_fixtures(expected)
    bad_npy(bad)
    bad_npz(bad)
    cli_fixtures(cli)
    import scipy
    hdr = "# generated by tests/gen/gen_npy_fixtures.py with numpy %s, scipy %s\n" % (
        np.__version__, scipy.__version__)
    for path, lines in ((os.path.join(ROOT, "expected.txt"), expected),
                        (os.path.join(BAD, "expected.txt"), bad),
                        (os.path.join(CLI, "expected.txt"), cli)):
        with open(path, "w") as f:
            f.write(hdr + "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
