"""How trials are driven (Ray Tune + Optuna), recorded (leaderboard) and reported.

`python tuning/run.py --help` is the entry point; `tuning.study.run_study` is the same
thing as a function.
"""
