#!/usr/bin/env python3
"""The numbers issue 5 asks of an ib-tishby run, from its ib_summary.csv and grads.csv:

- the output layer's final I(T;Y) (target >= 0.9 bits);
- per layer, I(X;T) at the start, its peak, its end: the rise (peak - start) and the fall
  (peak - end); "compresses" when it rises and then falls by >= 0.5 bits;
- per layer, the gradient SNR (mean over seeds of ||mean|| / std) in the early, drift phase
  (median over logged epochs below 100) and the late, diffusion phase (median over the last
  quarter of logged epochs), and their ratio (target: falls >= 10x).

    python3 bench/ib_report.py results/ib-tishby/<run> [--estimator bin-fixed]
"""
import argparse
import csv
import statistics
from collections import defaultdict


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run")
    p.add_argument("--estimator", default=None)
    a = p.parse_args()
    rows = list(csv.DictReader(open(f"{a.run}/ib_summary.csv")))
    est = a.estimator or rows[0]["estimator"]
    layers = defaultdict(list)
    for r in rows:
        if r["estimator"] == est:
            layers[int(r["layer"])].append((int(r["epoch"]), float(r["I_XT_bits_mean"]), float(r["I_TY_bits_mean"])))
    out = max(layers)
    seeds = rows[0]["seeds"]
    print(f"estimator {est}, {seeds} seeds, {len(layers[out])} logged epochs")
    print(f"output layer {out}: final I(T;Y) = {layers[out][-1][2]:.4f} bits (target >= 0.9)")
    compressing = 0
    for l, pts in sorted(layers.items()):
        ixt = [x for _, x, _ in pts]
        k = max(range(len(ixt)), key=ixt.__getitem__)
        rise, fall = ixt[k] - ixt[0], ixt[k] - ixt[-1]
        c = rise > 0.0 and fall >= 0.5
        compressing += c and l >= out - 3
        print(f"layer {l}: I(X;T) start {ixt[0]:.3f}, peak {ixt[k]:.3f} at epoch {pts[k][0]}, end {ixt[-1]:.3f}"
              f" (rise {rise:+.3f}, fall {fall:.3f}){'  <- compresses' if c else ''}; final I(T;Y) {pts[-1][2]:.4f}")
    print(f"{compressing} of the last four layers rise then fall by >= 0.5 bits (target >= 2)")
    g = defaultdict(list)
    for r in csv.DictReader(open(f"{a.run}/grads.csv")):
        g[(int(r["layer"]), int(r["epoch"]))].append(float(r["snr"]))
    epochs = sorted({e for _, e in g})
    late = epochs[len(epochs) * 3 // 4:]
    for l in sorted({l for l, _ in g}):
        early_snr = statistics.median(statistics.mean(g[(l, e)]) for e in epochs if e < 100)
        late_snr = statistics.median(statistics.mean(g[(l, e)]) for e in late)
        print(f"layer {l}: SNR early (epochs < 100) {early_snr:.3g}, late (epochs >= {late[0]}) {late_snr:.3g},"
              f" ratio {early_snr / late_snr:.1f}x")


if __name__ == "__main__":
    main()
