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
