"""
bench/run.py's summary of repeated runs (``--repeat N``): the medians and
ranges it prints and writes must be those of the runs it was given.
"""

import importlib.util
import os

from twisted.trial import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
RUN_PY = os.path.join(os.path.dirname(HERE), "bench", "run.py")


def load_run():
    spec = importlib.util.spec_from_file_location("msgr2tx_bench_run", RUN_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class SummaryTests(unittest.TestCase):
    def setUp(self):
        if not os.path.exists(RUN_PY):
            raise unittest.SkipTest("bench/ is not in this tree")
        self.run = load_run()

    def test_medians_and_ranges_per_figure(self):
        records = []
        # three rounds; each figure's ratio is to the baseline of its own run
        for value, baseline in ((10, 40), (30, 50), (20, 20)):
            records.append({"name": "small crc", "value": value, "unit": "msg/s", "ratio": value / baseline,
                            "baseline": baseline, "baseline_name": "Twisted echo"})
            records.append({"name": "accept", "value": value * 10, "unit": "handshakes/s"})
        small, accept = self.run.summarise(records)
        self.assertEqual((small["name"], small["runs"]), ("small crc", 3))
        self.assertEqual((small["value"], small["value_min"], small["value_max"]), (20, 10, 30))
        self.assertEqual((small["ratio"], small["ratio_min"], small["ratio_max"]), (0.6, 0.25, 1.0))
        self.assertEqual(small["baseline"], 40)
        self.assertEqual(small["ratio_all"], [0.25, 0.6, 1.0])
        self.assertEqual((accept["value"], accept["runs"]), (200, 3))
        self.assertNotIn("ratio", accept)
        self.assertEqual(self.run._range(small, "ratio", lambda v: "%.2fx" % v), "0.60x (0.25x-1.00x)")

    def test_latency_records_get_a_name(self):
        rec = self.run.normalise({"scenario": "fresh -> msgr2tx", "ready_rtt": 5.5})
        self.assertEqual((rec["name"], rec["value"], rec["unit"]), ("RTTs to READY: fresh -> msgr2tx", 5.5, "RTT"))
        (s,) = self.run.summarise([rec])
        self.assertEqual(self.run._range(s, "value", str), "5.5")

    def test_anchor_ratio_per_round_and_target_verdicts(self):
        records = []
        for rnd, bulk, anchor in ((1, 1000.0, 400.0), (2, 600.0, 500.0), (3, 900.0, 300.0)):
            records.append({"name": "bulk secure rev1", "value": bulk, "unit": "MB/s", "round": rnd,
                            "ratio": bulk / 1500, "baseline": 1500})
            records.append({"name": "rados bench seq 4MiB secure (C++ anchor, objects cluster)", "value": anchor,
                            "unit": "MiB/s", "round": rnd})
            records.append({"name": "rados bench seq 4MiB secure (C++ anchor)", "value": 1.0, "unit": "MB/s",
                            "round": rnd})
        extra = self.run.anchor_records(records)
        # each round's bulk figure over the objects cluster's anchor of that round, MiB/s in MB/s
        self.assertEqual([r["ratio"] for r in extra],
                         [round(1000 / (400 * 1.048576), 3), round(600 / (500 * 1.048576), 3),
                          round(900 / (300 * 1.048576), 3)])
        summary = self.run.summarise(records + extra)
        rows = {text: met for text, _, _, met in self.run.target_rows(summary)}
        self.assertIs(rows["bulk secure rev1 / rados bench seq secure ratio \u2265 1.30x"], True)   # median 2.38x
        self.assertIs(rows["bulk secure rev1 ratio \u2265 0.60x"], True)                         # median 0.60x
        self.assertIsNone(rows["mon command rate (secure, cephx) ratio \u2265 1.10x"])            # not measured
        summary = self.run.summarise([{"name": "server CPU per accepted handshake (cephx, secure)", "value": 1.04,
                                       "unit": "ms"},
                                      {"name": "memory per idle connection (cephx, secure)", "value": 15.6,
                                       "unit": "KiB"}])
        rows = {text: met for text, _, _, met in self.run.target_rows(summary)}
        self.assertIs(rows["server CPU per accepted handshake (cephx, secure) value \u2264 1"], False)
        self.assertIs(rows["memory per idle connection value \u2264 16"], True)
