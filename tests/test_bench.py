"""`madc bench` on CPU in a tiny shape: the table, JSON and PNG are produced (timings use the
CPU timer fallback and the Triton interpreter; no time is asserted)."""

from __future__ import annotations

import argparse
import json
import os

import pytest

os.environ.setdefault("TRITON_INTERPRET", "1")

from madc.bench import main_bench, parse_shape  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _args(tmp_path, file, shape, dtype="fp32"):
    return argparse.Namespace(file=os.path.join(ROOT, file), shape=shape, dtype=dtype,
                              out=str(tmp_path), backend="triton")


def test_bench_writes_table_json_and_png(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MADC_BENCH_SKIP", "compile")
    rc = main_bench(_args(tmp_path, "examples/scans/linear_scan.scan", "B=1,T=8,D=4"))
    assert rc == 0
    table = capsys.readouterr().out
    assert "madc triton" in table and "reference (eager loop)" in table
    assert "HBM roofline" in table
    data = json.loads((tmp_path / "linear_scan_fp32_B1_T8.json").read_text())
    names = [e["name"] for e in data["entries"]]
    assert names[0] == "madc triton" and "HBM roofline (I/O bytes)" in names
    # the diagonal scan again on inputs stored [B, D, T] (the anchors' layout), read in place
    assert "madc triton, channels first" in names
    assert all(e["fwd_ms"] > 0 for e in data["entries"])
    assert data["entries"][0]["fwd_vs_madc"] == 1.0 and data["copy_bandwidth_GBps"] > 0
    png = (tmp_path / "linear_scan_fp32_B1_T8.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_reports_exp_floor_for_fused_ssm(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MADC_BENCH_SKIP", "compile,reference")
    rc = main_bench(_args(tmp_path, "ops/selective_ssm.scan", "B=1,T=4,D=2,N=2"))
    assert rc == 0
    data = json.loads((tmp_path / "selective_ssm_fp32_B1_T4.json").read_text())
    names = [e["name"] for e in data["entries"]]
    assert any(n.startswith("special-function floor") for n in names)
    assert "madc triton, states materialised" in names  # the fused kernel's comparison
    assert data["exp_rate_Gps"] > 0


def test_bad_shape_is_a_usage_error(tmp_path, capsys):
    rc = main_bench(_args(tmp_path, "examples/scans/linear_scan.scan", "B=1,Q=3"))
    assert rc == 2
    assert "unknown dim 'Q'" in capsys.readouterr().err


def test_parse_shape():
    assert parse_shape("B=8,T=4096,D=4096", {"D": 64}) == (8, 4096, {"D": 4096})
    with pytest.raises(ValueError, match="NAME=POSITIVE_INT"):
        parse_shape("T=0", {})


def test_summary_compares_runs_of_one_folder(tmp_path, capsys, monkeypatch):
    from madc import bench_summary

    monkeypatch.setenv("MADC_BENCH_SKIP", "compile,reference")
    for spec in ("examples/scans/linear_scan.scan", "examples/scans/log_scan.scan"):
        assert main_bench(_args(tmp_path, spec, "B=1,T=8,D=4")) == 0
    assert main_bench(_args(tmp_path, "ops/selective_ssm.scan", "B=1,T=4,D=2,N=2")) == 0
    capsys.readouterr()
    results = bench_summary.load(tmp_path)
    by_spec = {r["spec"]: r for r in results}
    rows = {(case.split()[0], measure): (value, target)
            for case, measure, value, target in bench_summary.rows(results)}
    madc_ms = {s: r["entries"][0]["fwd_ms"] for s, r in by_spec.items()}
    value, target = rows[("log_scan", "forward, time / the real linear scan's")]
    assert value == pytest.approx(madc_ms["log_scan"] / madc_ms["linear_scan"])
    assert target == "<= 1.2x"
    fb = {s: r["entries"][0]["fwdbwd_ms"] for s, r in by_spec.items()}
    value, target = rows[("log_scan", "forward+backward, time / the real linear scan's")]
    assert value == pytest.approx(fb["log_scan"] / fb["linear_scan"]) and target == "<= 1.2x"
    value, target = rows[("linear_scan", "forward, fraction of the I/O roofline")]
    roof = next(e for e in by_spec["linear_scan"]["entries"] if e["name"].startswith("HBM"))
    assert value == pytest.approx(roof["fwd_ms"] / madc_ms["linear_scan"])
    assert target == ">= 70%"  # B = 1: the small-batch long-sequence target
    assert rows[("log_scan", "forward, fraction of the I/O roofline")][1] == "-"
    # B = 1 has no forward+backward target
    assert rows[("linear_scan", "forward+backward, fraction of the I/O roofline")][1] == "-"
    assert ("selective_ssm", "forward, states materialised / fused") in rows
    assert ("selective_ssm", "forward / its floor (max of exp and I/O)") in rows
    assert not any(s == "selective_ssm" and "roofline" in m for s, m in rows)
    assert bench_summary.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "time / the real linear scan's" in out
    # these tiny shapes are none of the issue's cases: all six are listed as not measured
    assert out.count("not measured in this run") == 1
    assert "linear_scan fp32 B8 T4096 D=4096" in out and "selective_ssm bf16 B8" in out
    assert bench_summary.main([str(tmp_path / "empty")]) == 2


def test_summary_targets_follow_the_batch():
    """The forward+backward and accelerated-scan targets are B = 8's; at B = 1 only the
    forward's 70% is one (the rows are still printed, without a target)."""
    from madc import bench_summary

    def result(B):
        entries = [{"name": "madc triton", "fwd_ms": 1.0, "fwdbwd_ms": 2.0},
                   {"name": "madc triton, CUDA graph", "fwd_ms": 0.9, "fwdbwd_ms": 1.95},
                   {"name": "madc triton, channels first", "fwd_ms": 0.85,
                    "fwdbwd_ms": 2.0},
                   {"name": "accelerated-scan", "fwd_ms": 0.9, "fwdbwd_ms": 2.2},
                   {"name": "HBM roofline (I/O bytes)", "fwd_ms": 0.8, "fwdbwd_ms": 1.9}]
        return {"spec": "linear_scan", "B": B, "T": 64, "dims": {"D": 4}, "dtype": "bf16",
                "entries": entries}

    targets = {(case.split()[2], measure): (value, target)
               for case, measure, value, target in bench_summary.rows([result(8), result(1)])}
    assert targets[("B8", "forward, fraction of the I/O roofline")] == (0.8, ">= 95%")
    assert targets[("B8", "forward+backward, fraction of the I/O roofline")] == (
        pytest.approx(0.95), ">= 90%")
    assert targets[("B8", "forward, accelerated-scan time / madc time")] == (0.9, ">= 1")
    assert targets[("B8", "forward+backward, accelerated-scan time / madc time")] == (1.1, ">= 1")
    assert targets[("B1", "forward, fraction of the I/O roofline")] == (0.8, ">= 70%")
    assert targets[("B1", "forward+backward, fraction of the I/O roofline")][1] == "-"
    assert targets[("B1", "forward, accelerated-scan time / madc time")] == (0.9, "-")
    # the same comparison in the anchor's own layout (madc reading [B, D, T] in place)
    first = "accelerated-scan / madc channels first"
    assert targets[("B8", f"forward, {first}")] == (pytest.approx(0.9 / 0.85), ">= 1")
    assert targets[("B8", f"forward+backward, {first}")] == (pytest.approx(1.1), ">= 1")
    assert targets[("B1", f"forward, {first}")][1] == "-"
    # the device-only rows (CUDA graphs): the forward's target follows the batch, the
    # forward+backward's is B = 8's only
    graph = "(CUDA graph), fraction of the I/O roofline"
    assert targets[("B8", f"forward {graph}")] == (pytest.approx(0.8 / 0.9), ">= 95%")
    assert targets[("B1", f"forward {graph}")] == (pytest.approx(0.8 / 0.9), ">= 70%")
    assert targets[("B8", f"forward+backward {graph}")] == (pytest.approx(1.9 / 1.95), ">= 90%")
    assert targets[("B1", f"forward+backward {graph}")][1] == "-"


def test_summary_lists_the_issue_cases_a_run_lacks():
    """A run that lost a case (a capped bench timing out) says which of the issue's cases it
    lacks; a run with all of them lists none."""
    from madc import bench_summary

    def result(spec, dtype, B, T, dims):
        return {"spec": spec, "dtype": dtype, "B": B, "T": T, "dims": dims, "entries": []}

    every = [result(*case) for case in bench_summary.ISSUE_CASES]
    assert bench_summary.missing(every) == []
    lacking = [r for r in every if r["dtype"] != "fp32" and r["spec"] != "tropical_scan"]
    assert bench_summary.missing(lacking) == ["linear_scan fp32 B8 T4096 D=4096",
                                              "tropical_scan bf16 B8 T4096 D=4096"]
    # another shape of a case is not that case
    other = dict(every[0], dims={"D": 2048})
    assert bench_summary.missing([other] + every[1:]) == ["linear_scan bf16 B8 T4096 D=4096"]


def test_autotuned_lists_what_each_autotuner_picked(tmp_path, monkeypatch):
    """`autotuned` reports the tile of every autotuner of a generated module that has tuned
    (one per key), and nothing for one that has not; the table prints them."""
    import importlib

    import triton

    import madc
    from madc.bench import autotuned, format_table

    mod = madc.load("examples/scans/linear_scan.scan", backend="triton", D=8)
    package = type(mod).__module__
    tv = importlib.import_module(f"{package}.triton_vector")
    assert autotuned(package) == {}  # the interpreter never autotunes
    tuner = tv.linear_scan_bwd_tuned
    picked = triton.Config({"BT": 16, "BC": 128, "STAGES": 3}, num_warps=2)
    monkeypatch.setattr(tuner, "cache", {(4096, "torch.bfloat16"): picked})
    got = autotuned(package)
    assert got == {"linear_scan_bwd_tuned": {
        "4096, torch.bfloat16": "BT=16,BC=128,STAGES=3,num_warps=2"}}
    result = {"spec": "linear_scan", "B": 8, "T": 64, "dims": {"D": 8}, "dtype": "bf16",
              "device": "cpu", "entries": [], "madc_fraction_of_floor_fwd": 1.0,
              "madc_fraction_of_hbm_fwdbwd": 1.0, "autotuned": got}
    assert ("autotuned linear_scan_bwd_tuned (key 4096, torch.bfloat16): "
            "BT=16,BC=128,STAGES=3,num_warps=2") in format_table(result)


def test_summary_measures_an_exp_bound_graph_against_its_floor():
    """An exp-bound spec's CUDA-graph forward is measured against the same floor as its
    eager forward (the larger of the exp and I/O times)."""
    from madc import bench_summary

    entries = [{"name": "madc triton", "fwd_ms": 0.45, "fwdbwd_ms": 50.0},
               {"name": "madc triton, CUDA graph", "fwd_ms": 0.42, "fwdbwd_ms": None},
               {"name": "HBM roofline (I/O bytes)", "fwd_ms": 0.1, "fwdbwd_ms": 0.3},
               {"name": "special-function floor (1 exp/state elt)", "fwd_ms": 0.3,
                "fwdbwd_ms": None}]
    result = {"spec": "selective_ssm", "B": 8, "T": 64, "dims": {"D": 4, "N": 2},
              "dtype": "bf16", "entries": entries}
    rows = {measure: (value, target) for _, measure, value, target
            in bench_summary.rows([result])}
    assert rows["forward / its floor (max of exp and I/O)"] == (pytest.approx(1.5), "<= 1.5x")
    assert rows["forward (CUDA graph) / its floor"] == (pytest.approx(1.4), "<= 1.5x")


def test_summary_measures_channels_first_against_the_roofline():
    """The channels-first rows (eager and CUDA graph) are measured against the same roofline
    and targets as the row-major ones: B = 1 forward >= 70%, B = 8 forward and
    forward+backward."""
    from madc import bench_summary

    def result(B, entries):
        return {"spec": "linear_scan", "B": B, "T": 64, "dims": {"D": 4}, "dtype": "bf16",
                "entries": [{"name": "madc triton", "fwd_ms": 0.2, "fwdbwd_ms": 0.8},
                            {"name": "HBM roofline (I/O bytes)", "fwd_ms": 0.1,
                             "fwdbwd_ms": 0.4}] + entries}

    first = [{"name": "madc triton, channels first", "fwd_ms": 0.25, "fwdbwd_ms": 1.0},
             {"name": "madc triton, channels first, CUDA graph", "fwd_ms": 0.125,
              "fwdbwd_ms": 0.5}]
    rows = {(r[0].split()[2], r[1]): (r[2], r[3])
            for r in bench_summary.rows([result(1, first), result(8, first)])}
    assert rows[("B1", "forward (channels first), fraction of the I/O roofline")] == (
        pytest.approx(0.4), ">= 70%")
    assert rows[("B1", "forward (channels first, CUDA graph), fraction of the I/O "
                 "roofline")] == (pytest.approx(0.8), ">= 70%")
    assert ("B1", "forward+backward (channels first), fraction of the I/O roofline") \
        not in rows
    assert rows[("B8", "forward+backward (channels first, CUDA graph), fraction of the I/O "
                 "roofline")] == (pytest.approx(0.8), ">= 90%")
