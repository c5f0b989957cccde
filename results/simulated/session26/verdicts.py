"""Issue 6's two targets per setting, from bench summary.csv files of chunked and pdmux runs at
13.125 and 8.75 req/s (one folder per variant of the virtual H100, as robust.py writes them):
at 13.125 (1.5 x chunked's goodput) attainment >= 90% and the last first token at most one TTFT
(2 s) after the last arrival; at 8.75 TTFT p90 at most chunked's and TPOT p90 at most 0.7 x
chunked's. Prints one line per variant and setting and writes verdicts.csv beside this file.
Usage: python verdicts.py FOLDER... (each holding chunked/ and pdmux/ summaries, and
pdmux-second/ where robust.py served its second set)."""

import os
import sys

import pandas as pd

rows = []
for folder in sys.argv[1:]:
    runs = pd.concat(pd.read_csv(os.path.join(folder, sub, "summary.csv")) for sub in ("chunked", "pdmux", "pdmux-second")
                     if os.path.exists(os.path.join(folder, sub, "summary.csv")))
    runs["setting"] = runs["mode"].str.replace(r"pdmux@.*/", "", regex=True).str.removesuffix(".json")
    chunked = runs[(runs.setting == "chunked") & (runs.rate == 8.75)].iloc[0]
    for setting, group in runs[runs.setting != "chunked"].groupby("setting", sort=False):
        high, low = group[group.rate == 13.125].iloc[0], group[group.rate == 8.75].iloc[0]
        row = {"variant": os.path.basename(folder.rstrip("/")), "setting": setting,
               "attainment_13.125": high.slo_attainment, "behind_s_13.125": high.backlog_s,
               "ttft_p90_vs_chunked_8.75": low["ttft_s.p90"] / chunked["ttft_s.p90"],
               "tpot_p90_vs_chunked_8.75": low["tpot_s.p90"] / chunked["tpot_s.p90"]}
        row["goodput_1.5x"] = row["attainment_13.125"] >= 0.9 and row["behind_s_13.125"] <= 2.0
        row["first_target"] = row["ttft_p90_vs_chunked_8.75"] <= 1.0 and row["tpot_p90_vs_chunked_8.75"] <= 0.7
        rows.append(row)
table = pd.DataFrame(rows)
pd.set_option("display.width", 200)
print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
table.to_csv(os.path.join(os.path.dirname(os.path.abspath(__file__)), "verdicts.csv"), index=False, float_format="%.4f")
