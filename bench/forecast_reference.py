#!/usr/bin/python3
"""Day-ahead forecast benchmark: vpq's FORECAST models (`vpq backtest`) against reference
implementations on the same rolling-origin splits.

Series: the four PJM load zones (last 365 days) and the SE3/SE4 day-ahead prices (last 180 days,
with the weather of Stockholm / Malmö as features). Forecasts of the 24 hourly values are issued
at 00:00 UTC every day from the history before the issue time; every model is refitted at every
origin on the last 60 days. References: seasonal naive (day, week; a cross-check of vpq's
figures), statsmodels ExponentialSmoothing (additive trend and season) and scikit-learn
MLPRegressor on lag, calendar and weather features. Metrics: MAE and sMAPE (vpq's definitions),
plus the 80% interval coverage of vpq's best model.

Run with Debian's /usr/bin/python3 (python3-numpy, -pandas, -statsmodels, -sklearn); the shared
data is found at ../shared/data from the repository root, or at $VPQ_DATA.
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.neural_network import MLPRegressor
from statsmodels.tools.sm_exceptions import ConvergenceWarning
from statsmodels.tsa.holtwinters import ExponentialSmoothing

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
HORIZON = 24                 # hourly steps per forecast
HISTORY = 60 * 24            # hourly values every model is fitted on
WEEK = 7 * 24
LOAD_DAYS = 365
PRICE_DAYS = 180
LOAD_ZONES = ("pjme", "aep", "dayton", "dom")
PRICE_AREAS = {"se3": "stockholm", "se4": "malmo"}
WEATHER = ("temp_c", "wind_kmh", "cloud_pct")
NAIVE = ("naive_day", "naive_week")
VPQ_MODELS = ("holt_winters", "linear", "mlp")
REF_MODELS = ("statsmodels_hw", "sklearn_mlp")
REF_CHUNK = 30               # issues per reference task
COLUMNS = (("naive_day", "naive_day"), ("naive_week", "naive_week"), ("vpq holt_winters", "holt_winters"),
           ("vpq linear", "linear"), ("vpq mlp", "mlp"), ("statsmodels HW", "statsmodels_hw"),
           ("sklearn MLP", "sklearn_mlp"))

VPQ_QUERY = """\
CREATE STREAM s (ts TIMESTAMP, y DOUBLE{weather_schema})
  WITH (connector = 'file', path = '{csv}', format = 'csv', timestamp = 'ts');
CREATE STREAM naive_day AS FORECAST y FROM s USING seasonal_naive (season = 1 DAY) HORIZON 24 HOURS EVERY 1 DAY;
CREATE STREAM naive_week AS FORECAST y FROM s USING seasonal_naive (season = 7 DAYS) HORIZON 24 HOURS EVERY 1 DAY;
CREATE STREAM holt_winters AS FORECAST y FROM s USING holt_winters (season = 1 DAY, history = 60 DAYS) HORIZON 24 HOURS EVERY 1 DAY;
CREATE STREAM linear AS FORECAST y FROM s USING linear (season = 1 DAY, history = 60 DAYS{features}) HORIZON 24 HOURS EVERY 1 DAY;
CREATE STREAM mlp AS FORECAST y FROM s USING mlp (season = 1 DAY, history = 60 DAYS{features}) HORIZON 24 HOURS EVERY 1 DAY;
"""


@dataclass
class Series:
    """One hourly series on a regular grid: the evaluation period plus the 60 + 7 days before it."""
    name: str
    unit: str
    ts0: int                # epoch ms of y[0] (a midnight UTC)
    y: np.ndarray           # hourly values, NaN = missing
    x: np.ndarray | None    # hourly weather (len(y) × 3, NaN = missing), None for load
    first_issue: int        # epoch ms of the first scored issue
    end: int                # epoch ms: the evaluation period ends here (exclusive)

    def issues(self):
        """Grid indices of the daily issue times in [first_issue, end)."""
        return range((self.first_issue - self.ts0) // HOUR_MS, (self.end - self.ts0) // HOUR_MS, 24)


class Score:
    """MAE and sMAPE sums over (actual, forecast) pairs, as vpq backtest counts them: pairs with a
    missing actual are left out; sMAPE = 2|a − f| / (|a| + |f|), 0 when both are 0."""

    def __init__(self):
        self.n = 0
        self.abs = 0.0
        self.smape = 0.0

    def add(self, actual, forecast):
        """Adds the pairs of two equally long arrays."""
        ok = np.isfinite(actual) & np.isfinite(forecast)
        a, f = actual[ok], forecast[ok]
        err = np.abs(a - f)
        denom = np.abs(a) + np.abs(f)
        self.n += int(ok.sum())
        self.abs += float(err.sum())
        self.smape += float(np.sum(np.divide(2 * err, denom, out=np.zeros_like(err), where=denom > 0)))

    def merge(self, other):
        """Adds the sums of another Score."""
        self.n += other.n
        self.abs += other.abs
        self.smape += other.smape

    def result(self):
        """{"n", "mae", "smape" (%)}; None metrics when nothing was scored."""
        if not self.n:
            return {"n": 0, "mae": None, "smape": None}
        return {"n": self.n, "mae": self.abs / self.n, "smape": 100 * self.smape / self.n}


# ---- data ----

def grid_series(name, unit, ts, values, days, weather=None):
    """The Series of `values` (indexed like `ts`) whose evaluation period is the last `days` whole
    days (UTC) with data, on an hourly grid starting 60 + 7 days before it."""
    values = pd.Series(values.to_numpy(dtype=float), index=ts.to_numpy())
    last = int(values.dropna().index.max())
    end = (last + HOUR_MS) // DAY_MS * DAY_MS
    first_issue = end - days * DAY_MS
    ts0 = first_issue - (HISTORY + WEEK) * HOUR_MS
    grid = np.arange(ts0, end, HOUR_MS)
    y = values.reindex(grid).to_numpy()
    x = None if weather is None else weather.reindex(grid).to_numpy(dtype=float)
    return Series(name, unit, ts0, y, x, first_issue, end)


def load_series(data_dir):
    """The four PJM load zones and the two Swedish price areas (with their city's weather)."""
    load = pd.read_csv(os.path.join(data_dir, "load_pjm.csv"))
    series = [grid_series(zone, "MW", load["ts"], load[f"{zone}_mw"], LOAD_DAYS) for zone in LOAD_ZONES]
    prices = pd.read_csv(os.path.join(data_dir, "prices_se.csv"))
    weather = pd.read_csv(os.path.join(data_dir, "weather_se.csv")).set_index("ts")
    for area, city in PRICE_AREAS.items():
        city_weather = weather[[f"{city}_{w}" for w in WEATHER]]
        series.append(grid_series(area, "EUR/MWh", prices["ts"], prices[f"{area}_eur_mwh"], PRICE_DAYS,
                                  city_weather))
    return series


# ---- vpq ----

def run_vpq(vpq, series, workdir):
    """Writes the series' CSV and .vpq file into workdir, runs `vpq backtest` over the evaluation
    period; returns ({stream: vpq's JSON score}, seconds of the vpq run)."""
    csv = os.path.join(workdir, f"{series.name}.csv")
    frame = pd.DataFrame({"ts": series.ts0 + HOUR_MS * np.arange(len(series.y)), "y": series.y})
    if series.x is not None:
        for j, w in enumerate(WEATHER):
            frame[w] = series.x[:, j]
    frame.to_csv(csv, index=False, na_rep="", float_format="%.10g")
    weather = series.x is not None
    query = VPQ_QUERY.format(csv=csv,
                             weather_schema="".join(f", {w} DOUBLE" for w in WEATHER) if weather else "",
                             features=f", features = ({', '.join(WEATHER)})" if weather else "")
    vpq_file = os.path.join(workdir, f"{series.name}.vpq")
    with open(vpq_file, "w") as out:
        out.write(query)
    started = time.perf_counter()
    proc = subprocess.run([vpq, "backtest", vpq_file, "--from", str(series.first_issue), "--to", str(series.end),
                           "--json"], capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"vpq backtest {vpq_file} failed ({proc.returncode}):\n{proc.stderr}")
    scores = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record["step"] is None:
                scores[record["stream"]] = record
    return scores, seconds


# ---- references ----

def interpolated(values):
    """values with the missing ones linearly interpolated (held constant at the ends)."""
    return pd.Series(values).interpolate(limit_direction="both").to_numpy()


def seasonal_naive(y, i0, season):
    """vpq's seasonal naive forecast of y[i0 .. i0+23] from the 60 days before i0: the value whole
    seasons earlier, going back a further season while it is missing."""
    out = np.full(HORIZON, np.nan)
    for k in range(HORIZON):
        j = i0 - season + k % season
        while j >= i0 - HISTORY and np.isnan(y[j]):
            j -= season
        if j >= i0 - HISTORY:
            out[k] = y[j]
    return out


def holt_winters(y, i0):
    """statsmodels' additive Holt–Winters fitted on the 60 days before i0 (missing values
    interpolated); returns (the 24 forecasts, whether the optimizer warned of non-convergence).
    The window is standardised for the fit (the additive model is the same on any affine scale):
    on raw MW values statsmodels' optimizer stops short of the optimum and warns."""
    z = interpolated(y[i0 - HISTORY:i0])
    mean, sd = z.mean(), z.std() or 1.0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = ExponentialSmoothing((z - mean) / sd, trend="add", seasonal="add", seasonal_periods=24).fit()
        forecast = fit.forecast(HORIZON)
    return mean + sd * np.asarray(forecast), any(issubclass(w.category, ConvergenceWarning) for w in caught)


def calendar(series):
    """Per grid index: sin/cos of the hour of day and of the day of the week (Monday = 0)."""
    ts = series.ts0 + HOUR_MS * np.arange(len(series.y))
    day = 2 * np.pi * (ts % DAY_MS) / DAY_MS
    week = 2 * np.pi * ((ts // DAY_MS + 3) % 7) / 7
    return np.column_stack([np.sin(day), np.cos(day), np.sin(week), np.cos(week)])


def mlp_inputs(z, cal, x, targets, weather_at):
    """Input rows for the targets (indices into the window z, its calendar rows cal and weather x):
    z 24 h and 168 h before the target, the calendar features, the last value before the target
    day's midnight, and the weather at weather_at (indices into x; none when x is None)."""
    midnight = targets - targets % 24  # the window starts at a midnight
    columns = [z[targets - 24], z[targets - WEEK], cal[targets], z[midnight - 1]]
    if x is not None:
        columns.append(x[weather_at])
    return np.column_stack(columns)


def mlp(series, cal, i0):
    """scikit-learn's MLPRegressor trained on the 60 days before i0 (targets from day 8 on, so that
    every lag is inside the window; inputs and target standardised, missing inputs interpolated,
    rows with a missing target left out); returns (the 24 forecasts, whether it hit max_iter).
    Weather: every row sees the weather 24 h before its target, the training rows as the forecast
    rows (as vpq's models do: the future's weather is not known when forecasting)."""
    z = interpolated(series.y[i0 - HISTORY:i0])
    x = None if series.x is None else np.column_stack([interpolated(c) for c in series.x[i0 - HISTORY:i0].T])
    cal_w = cal[i0 - HISTORY:i0 + HORIZON]
    train = np.arange(WEEK, HISTORY)
    train = train[np.isfinite(series.y[i0 - HISTORY + train])]
    ahead = np.arange(HISTORY, HISTORY + HORIZON)
    z_ahead = np.concatenate([z, np.full(HORIZON, np.nan)])  # forecast rows read only the history
    inputs = mlp_inputs(z_ahead, cal_w, x, train, train - 24)
    mean, sd = inputs.mean(axis=0), inputs.std(axis=0)
    sd[sd == 0] = 1.0
    target = series.y[i0 - HISTORY + train]
    y_mean, y_sd = target.mean(), target.std() or 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MLPRegressor(hidden_layer_sizes=(16,), random_state=0, max_iter=300)
        model.fit((inputs - mean) / sd, (target - y_mean) / y_sd)
    forecast = model.predict((mlp_inputs(z_ahead, cal_w, x, ahead, ahead - 24) - mean) / sd)
    return y_mean + y_sd * forecast, model.n_iter_ >= model.max_iter


def run_references(series, issues):
    """Every reference model over the given issues (grid indices) of the series; returns
    ({model: Score}, {model: CPU seconds}, {"hw_not_converged", "mlp_max_iter": fits})."""
    scores = {m: Score() for m in NAIVE + REF_MODELS}
    seconds = {m: 0.0 for m in NAIVE + REF_MODELS}
    flags = {"hw_not_converged": 0, "mlp_max_iter": 0}
    cal = calendar(series)
    for i0 in issues:
        actual = series.y[i0:i0 + HORIZON]
        for model in NAIVE + REF_MODELS:
            started = time.process_time()
            if model in NAIVE:
                forecast = seasonal_naive(series.y, i0, 24 if model == "naive_day" else WEEK)
            elif model == "statsmodels_hw":
                forecast, warned = holt_winters(series.y, i0)
                flags["hw_not_converged"] += warned
            else:
                forecast, warned = mlp(series, cal, i0)
                flags["mlp_max_iter"] += warned
            seconds[model] += time.process_time() - started
            scores[model].add(actual, forecast)
    return scores, seconds, flags


def reference_side(series, jobs):
    """run_references over every series in chunks of REF_CHUNK issues on `jobs` processes (so that
    the processes stay busy to the end); returns per series ({model: Score.result()},
    {model: CPU seconds}, {flag: fits})."""
    tasks = [(k, s.issues()[at:at + REF_CHUNK]) for k, s in enumerate(series)
             for at in range(0, len(s.issues()), REF_CHUNK)]
    merged = [({m: Score() for m in NAIVE + REF_MODELS}, {m: 0.0 for m in NAIVE + REF_MODELS},
               {"hw_not_converged": 0, "mlp_max_iter": 0}) for _ in series]
    with ProcessPoolExecutor(jobs) as pool:
        done = pool.map(run_references, [series[k] for k, _ in tasks], [issues for _, issues in tasks])
        for (k, _), (scores, seconds, flags) in zip(tasks, done):
            for m in scores:
                merged[k][0][m].merge(scores[m])
                merged[k][1][m] += seconds[m]
            for f in flags:
                merged[k][2][f] += flags[f]
    return [({m: sc.result() for m, sc in scores.items()}, seconds, flags) for scores, seconds, flags in merged]


def data_key(series):
    """A fingerprint of the series' data and evaluation periods (what the references depend on)."""
    digest = hashlib.sha256()
    for s in series:
        digest.update(f"{s.name} {s.ts0} {s.first_issue} {s.end}".encode())
        digest.update(np.nan_to_num(s.y, nan=-1e300).tobytes())
        if s.x is not None:
            digest.update(np.nan_to_num(s.x, nan=-1e300).tobytes())
    return digest.hexdigest()


def cached_references(series, jobs, cache, vpq_wall):
    """reference_side's results and wall seconds, read from the JSON file `cache` when it holds them
    for the same data (data_key), else computed (and written to `cache` when given)."""
    key = data_key(series)
    if cache and os.path.exists(cache):
        with open(cache) as f:
            stored = json.load(f)
        if stored.get("key") == key:
            print(f"vpq done in {vpq_wall:.1f} s; references read from {cache}", file=sys.stderr)
            return [tuple(run) for run in stored["runs"]], stored["wall_s"]
    print(f"vpq done in {vpq_wall:.1f} s; running the references ...", file=sys.stderr)
    started = time.perf_counter()
    runs = reference_side(series, jobs)
    wall = time.perf_counter() - started
    if cache:
        with open(cache, "w") as f:
            json.dump({"key": key, "runs": runs, "wall_s": wall}, f)
    return runs, wall


# ---- report ----

def ratio(a, b):
    """a / b, None when either is missing."""
    return a / b if a is not None and b else None


def summarise(series, vpq_scores, ref_scores, ref_flags):
    """The report row of one series: each column's MAE and sMAPE, the ratios, the naive cross-check,
    the interval coverage of vpq's best model (by MAE) and the reference fits' warnings."""
    row = {"series": series.name, "unit": series.unit,
           "from": pd.Timestamp(series.first_issue, unit="ms").strftime("%Y-%m-%d"),
           "to": pd.Timestamp(series.end - DAY_MS, unit="ms").strftime("%Y-%m-%d"),
           "issues": len(series.issues()), "reference_flags": ref_flags, "models": {}}
    for _, key in COLUMNS:
        src = ref_scores[key] if key in REF_MODELS else vpq_scores[key]
        row["models"][key] = {"n": src["n"], "mae": src["mae"], "smape": src["smape"]}
    def best(keys, metric):
        """(value, model) of the lowest `metric` among the models `keys`."""
        return min((row["models"][k][metric], k) for k in keys if row["models"][k][metric] is not None)

    for metric in ("mae", "smape"):
        best_vpq, best_naive, best_ref = (best(keys, metric) for keys in (VPQ_MODELS, NAIVE, REF_MODELS))
        row[f"best_vpq_{metric}"] = best_vpq[1]
        row[f"vs_naive_{metric}"] = ratio(best_vpq[0], best_naive[0])
        row[f"vs_reference_{metric}"] = ratio(best_vpq[0], best_ref[0])
    row["best_vpq_coverage"] = vpq_scores[row["best_vpq_mae"]]["coverage"]
    row["naive_check"] = {m: {"vpq_n": vpq_scores[m]["n"], "vpq_mae": vpq_scores[m]["mae"],
                              "python_n": ref_scores[m]["n"], "python_mae": ref_scores[m]["mae"]} for m in NAIVE}
    return row


def fmt(v, width, digits):
    """v right-aligned in width with `digits` decimals, '-' when missing."""
    return f"{'-':>{width}}" if v is None else f"{v:>{width}.{digits}f}"


def print_table(rows, timing, notes):
    """The plain-text report: MAE and sMAPE tables, the naive cross-check, notes and run times."""
    head = " ".join(f"{label:>16}" for label, _ in COLUMNS)
    for metric, title, digits in (("mae", "MAE (load: MW, prices: EUR/MWh)", 1), ("smape", "sMAPE (%)", 2)):
        print(f"\n{title}; ratios on {metric.upper()}, best by {metric.upper()}")
        extra = f" {'cover80':>8}" if metric == "mae" else ""
        print(f"{'series':<8} {head} {'vpq/naive':>10} {'vpq/ref':>8}  {'best vpq':<12}{extra}")
        for r in rows:
            cells = " ".join(fmt(r["models"][k][metric], 16, digits) for _, k in COLUMNS)
            cover = r["best_vpq_coverage"]
            extra = f" {fmt(None if cover is None else 100 * cover, 7, 1)}%" if metric == "mae" else ""
            print(f"{r['series']:<8} {cells} {fmt(r[f'vs_naive_{metric}'], 10, 3)} "
                  f"{fmt(r[f'vs_reference_{metric}'], 8, 3)}  {r[f'best_vpq_{metric}']:<12}{extra}")
    print("\nSeasonal naive cross-check (MAE, scored points): vpq vs Python")
    for r in rows:
        cells = "   ".join(f"{m}: {fmt(c['vpq_mae'], 9, 2)} vs {fmt(c['python_mae'], 9, 2)} "
                           f"(n {c['vpq_n']} vs {c['python_n']})" for m, c in r["naive_check"].items())
        print(f"{r['series']:<8} {r['from']}..{r['to']} ({r['issues']} issues)  {cells}")
    print("\nNotes:")
    for note in notes:
        print(f"  - {note}")
    print("\nRun time:")
    print(f"  vpq:        {timing['vpq']}: {timing['vpq_wall_s']:.1f} s wall ({timing['jobs']} series at a time), "
          f"{timing['vpq_sum_s']:.1f} s summed over the {len(rows)} backtests (all 5 models each)")
    per_model = ", ".join(f"{m} {s:.1f} s" for m, s in timing["reference_cpu_s"].items())
    print(f"  reference:  {timing['reference_wall_s']:.1f} s wall ({timing['jobs']} processes); CPU per model: "
          f"{per_model}")


def main():
    """Parses the arguments, runs both sides and prints the report."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vpq", default=os.path.join(root, "build", "vpq"), help="the vpq binary")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")
    parser.add_argument("--jobs", type=int, default=2, help="series run in parallel on each side (default 2)")
    parser.add_argument("--reference-cache", metavar="FILE",
                        help="read the reference results from FILE when it holds them for the same data, else "
                        "compute them and write them there (the references take ~20 CPU minutes)")
    args = parser.parse_args()
    data_dir = os.environ.get("VPQ_DATA") or os.path.join(root, "..", "shared", "data")
    series = load_series(data_dir)

    built = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(os.path.getmtime(args.vpq)))
    with tempfile.TemporaryDirectory(prefix="vpq-forecast-") as workdir:
        # A copy: every series runs the same binary even if the checkout is rebuilt meanwhile.
        vpq = shutil.copy2(args.vpq, os.path.join(workdir, "vpq"))
        started = time.perf_counter()
        with ThreadPoolExecutor(args.jobs) as pool:
            vpq_runs = list(pool.map(lambda s: run_vpq(vpq, s, workdir), series))
        vpq_wall = time.perf_counter() - started
    ref_runs, ref_wall = cached_references(series, args.jobs, args.reference_cache, vpq_wall)

    rows = [summarise(s, v[0], r[0], r[2]) for s, v, r in zip(series, vpq_runs, ref_runs)]
    timing = {"jobs": args.jobs, "vpq": f"{os.path.abspath(args.vpq)} (built {built})", "vpq_wall_s": vpq_wall, "vpq_sum_s": sum(v[1] for v in vpq_runs),
              "reference_wall_s": ref_wall,
              "reference_cpu_s": {m: sum(r[1][m] for r in ref_runs) for m in NAIVE + REF_MODELS}}
    fits = sum(len(s.issues()) for s in series)
    hw_warned = sum(r[2]["hw_not_converged"] for r in ref_runs)
    mlp_capped = sum(r[2]["mlp_max_iter"] for r in ref_runs)
    capped_by_series = ", ".join(f"{s.name} {r[2]['mlp_max_iter']}/{len(s.issues())}"
                                 for s, r in zip(series, ref_runs))
    notes = [
        f"{fits} daily origins in all, every one scored (no subsampling); every model refitted at every origin on the "
        "60 days before it; vpq's CSVs hold 60 + 7 days before the first origin, scored from it (--from/--to).",
        "naive_day / naive_week columns are vpq's figures; the Python seasonal naive is the cross-check below.",
        "Weather (prices): vpq's linear and mlp, and the sklearn MLP, see the weather 24 h before each target hour, "
        "in training as in forecasting (seasonal persistence): no one sees future weather.",
        "statsmodels HW (vpq's models: engine/vpq_model.h): undamped trend, smoothing parameters by statsmodels' "
        "default fit() (one-step errors) on the standardised window (missing values interpolated); "
        f"{hw_warned}/{fits} fits warned of non-convergence.",
        "sklearn MLP: one direct model for the 24 hours on lag 24 h, lag 168 h, hour/day-of-week sin/cos, the last "
        f"value before the origin (+ weather), standardised; {mlp_capped}/{fits} fits stopped at max_iter = 300 "
        f"({capped_by_series}).",
        "sMAPE of prices is dominated by hours with prices near 0 EUR/MWh (common in SE3/SE4): read MAE there.",
        "cover80: share of actuals inside vpq's 80% interval, for the best vpq model by MAE.",
        "Wall times depend on what else runs on the machine; CPU seconds do not.",
    ]
    if args.json:
        json.dump({"series": rows, "timing": timing, "notes": notes}, sys.stdout, indent=1)
        print()
    else:
        print_table(rows, timing, notes)


if __name__ == "__main__":
    main()
