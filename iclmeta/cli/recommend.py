"""``iclmeta recommend``: its parser and command (flags for data, models and methods come from
``EvalConfig``; the race's own flags are defined here)."""
from __future__ import annotations

import dataclasses

from iclmeta.cli.flags import add_fields, check_used, given
from iclmeta.config import EvalConfig

RECOMMEND_EPILOG = """how it decides:
  Every round runs each surviving method on one more episode (all classes, the same support
  and queries for every method). After rounds 5, 8, 12, 16, 24, ... a method is dropped
  when another is confidently better: paired t-intervals over episodes, Bonferroni over every
  pair and over looks (error 6/(pi^2 r^2) x alpha spent at look r), so all difference
  intervals hold together with probability >= 1 - alpha (the means: a second such family). It stops when one method is left, when the survivors
  are within --tie-margin of the leader, or when --budget or --max-rounds runs out.

examples:
  iclmeta recommend --dataset tickets.csv --text-field body --label-field queue --budget 15m
  iclmeta recommend --dataset snips --budget 10m --metric macro-f1
  iclmeta recommend --dataset my.csv --method knn,protonet,retrieval --shots 4
  iclmeta export --from runs/latest --out predictor/     # ship the winner
"""
# The episode rule is the race's: every class, one shot count, as many rounds as the budget
# allows; these EvalConfig fields are therefore not flags of recommend.
NOT_FLAGS = {"episodes", "ways", "split", "log_prompts", "log_scores"}


def add_recommend_parser(sub, sections: dict, make) -> None:
    rc = make(sub, "recommend", "race the methods on your labelled data and recommend one",
              "Race candidate methods (default: zero-shot, icl, retrieval, instruct, knn, "
              "protonet, finetune, plus any --adapter/--checkpoint method) on paired episodes "
              "of your own data, drop the confidently worse after each look, and print the "
              "ranking with paired intervals, milliseconds and prompt tokens per query. "
              "Writes results.jsonl, ranking.md/csv, recommend.json, race.png and "
              "tradeoff.png to --out.", RECOMMEND_EPILOG)
    names = {f.name for f in dataclasses.fields(EvalConfig)} - NOT_FLAGS
    add_fields(rc, EvalConfig, names, sections, context={"methods": "any of 'iclmeta ls "
                                                          "methods'"})
    race = rc.add_argument_group("race")
    race.add_argument("--budget", default="15m", help="wall-time budget, model loading "
                      "included, e.g. 90s, 15m, 1h30m (default: 15m)")
    race.add_argument("--metric", default="accuracy", choices=("accuracy", "macro-f1"),
                      help="what the race ranks by (default: accuracy)")
    race.add_argument("--alpha", type=float, default=0.05, help="family-wise error of all "
                      "intervals over every look and pair (default: 0.05)")
    race.add_argument("--tie-margin", type=float, default=0.01, help="stop when every survivor "
                      "is within this of the leader, both ways (default: 0.01 = 1 point)")
    race.add_argument("--max-rounds", type=int, default=64, help="episodes per method at most "
                      "(default: 64)")
    rc.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def cmd_recommend(args, with_task) -> int:
    from iclmeta.deploy.race_files import format_ranking
    from iclmeta.deploy.recommend import RaceSettings, parse_budget, race_config, recommend
    typed = with_task(given(args, EvalConfig), EvalConfig)
    settings = RaceSettings(parse_budget(args.budget), args.metric, args.alpha, args.tie_margin,
                            args.max_rounds)
    settings.validate()
    config = race_config(EvalConfig.from_dict(typed), set(typed))
    check_used(given(args, EvalConfig), EvalConfig, config.methods,
               "recommend " + " ".join(f"--method {m}" for m in config.methods))
    race = recommend(config, settings, given=set(typed), progress=not args.no_progress)
    print(format_ranking(race))
    print(f"\nwritten to {race.out}: ranking.md, recommend.json, race.png, tradeoff.png; "
          f"ship it with: iclmeta export --from {race.out} --out predictor/")
    return 0
